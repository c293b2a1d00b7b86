// Parameter servers and workers as real processes of the built CLI (apps/cli/dist), over real
// sockets on 127.0.0.1: sync across processes equals local training; the token is required; a
// client sending garbage does not disturb a training run beside it.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, statSync, existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { randomBytes } from 'node:crypto';
import WebSocket from 'ws';
import { PROTOCOL_VERSION, PsClient, decodeFrame, encodeFrame, shardRange } from '@loom/parameter-server';
import { MAIN, P, maxRelDiff, runParams, sandbox, writeCsv } from './harness.js';

const { dir, token: TOKEN, env } = sandbox('cluster');
const children: ChildProcess[] = [];
afterAll(() => {
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
});

/** 450 distinct rows (6 steps of 64 per epoch after the split). */
const CSV = join(dir, 'data.csv');
const TRAIN = ['--dataset', `csv:${CSV}`, '--label', 'label', '--model', 'mlp:5,16,3', '--epochs', '2', '--seed', '5', '--batch-size', '64'];
beforeAll(() => writeCsv(CSV, 450));

function loom(...args: string[]) {
  const r = spawnSync(process.execPath, [MAIN, ...args], { encoding: 'utf8', cwd: dir, env, timeout: 120_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

const params = (run: string): Float32Array => runParams(dir, run);

/** Starts `loom serve` and resolves with its URL and its stderr lines so far. */
function serve(args: string[], extraEnv: Record<string, string> = {}): Promise<{ url: string; proc: ChildProcess; stderr: string[] }> {
  const proc = spawn(process.execPath, [MAIN, 'serve', '--port', '0', ...args], { cwd: dir, env: { ...env, ...extraEnv } });
  children.push(proc);
  const stderr: string[] = [];
  createInterface({ input: proc.stderr! }).on('line', (l) => stderr.push(l));
  return new Promise((resolve, reject) => {
    createInterface({ input: proc.stdout! }).on('line', (l) => {
      const m = / listening on (ws:\/\/\S+)$/.exec(l);
      if (m) resolve({ url: m[1]!, proc, stderr });
    });
    proc.once('exit', (code) => reject(new Error(`loom serve exited with ${code}: ${stderr.join('\n')}`)));
  });
}

function worker(urls: string[], rank: number, workers: number): Promise<{ code: number | null; stderr: string }> {
  const proc = spawn(process.execPath, [MAIN, 'worker', '--connect', urls.join(','), '--rank', String(rank), '--workers', String(workers), ...TRAIN], { cwd: dir, env });
  children.push(proc);
  let stderr = '';
  proc.stderr!.on('data', (d) => (stderr += d));
  return new Promise((r) => proc.once('exit', (code) => r({ code, stderr })));
}

describe('loom train --cluster: sync across processes equals single-process training', () => {
  it('1 server, 1 worker: bitwise equal to one thread; 2 servers, 2 workers: bitwise equal to 2 local threads, and to one thread within float32 rounding', () => {
    for (const [out, flags] of [['single', ['--workers', '1']], ['threads', ['--workers', '2']], ['c11', ['--cluster', 'local:1,1']], ['c22', ['--cluster', 'local:2,2']]] as const) {
      const r = loom('train', ...TRAIN, ...flags, '--out', out, '--json');
      expect(r.code, r.stderr).toBe(0);
    }
    expect(params('c11')).toEqual(params('single'));
    expect(params('c22')).toEqual(params('threads'));
    expect(params('c22')).not.toEqual(params('single')); // another reduction order …
    expect(maxRelDiff(params('c22'), params('single'))).toBeLessThan(1e-4); // … equal to float32 tolerance
    // The same metrics as local training, and a run directory `loom eval` reads.
    const metrics = (run: string) => readFileSync(join(dir, run, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(metrics('c22').map((m) => m.validAccuracy)).toEqual(metrics('threads').map((m) => m.validAccuracy));
    expect(metrics('c22')[1].trainLoss).toBeCloseTo(metrics('threads')[1].trainLoss, 6);
    const e = loom('eval', '--run', 'c22', '--json');
    expect(e.code, e.stderr).toBe(0);
  });
});

describe('authentication', () => {
  it('refuses a client without the token, logs the attempt without it, and takes the token only from a file or the environment', async () => {
    const { url, proc, stderr } = await serve(['--model', 'mlp:5,16,3']);
    const attempt = async (first: Buffer) => {
      const ws = new WebSocket(url);
      await new Promise((r) => ws.once('open', r));
      ws.send(first);
      return new Promise<[number, string]>((r) => ws.once('close', (code, why) => r([code, why.toString()])));
    };
    expect(await attempt(randomBytes(64))).toEqual([1008, 'authentication required']);
    const guess = 'not-the-token-' + randomBytes(8).toString('hex');
    expect(await attempt(encodeFrame({ type: 'hello', v: PROTOCOL_VERSION, token: guess, role: 'worker', rank: 0, workers: 1, size: P }))).toEqual([1008, 'bad token']);
    await new Promise((r) => setTimeout(r, 100));
    const log = stderr.join('\n');
    expect(log).toMatch(/refused 127\.0\.0\.1:\d+: not a hello \(/);
    // The second refusal from the address is counted, and summarised when its window ends or the server closes.
    proc.kill();
    await new Promise((r) => proc.once('exit', r));
    expect(stderr.join('\n')).toMatch(/refused 2 connections from 127\.0\.0\.1 in \d+ s \(bad token 1, not a hello 1\)/);
    expect(stderr.join('\n')).not.toContain(guess);
    expect(stderr.join('\n')).not.toContain(TOKEN);
    // There is no flag that takes the token itself.
    expect(loom('serve', '--token', TOKEN).code).toBe(2);
  });

  it('without a token configured, serve writes a new one to a file only the user can read, and says where', async () => {
    const home = mkdtempSync(join(dir, 'home-'));
    const { proc, stderr } = await serve(['--model', 'mlp:5,16,3'], { LOOM_TOKEN: '', HOME: home });
    const file = join(home, '.loom', 'token');
    expect(existsSync(file)).toBe(true);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(stderr.join('\n')).toContain(`a new token, written to ${file} (readable only by you)`);
    expect(stderr.join('\n')).not.toContain(readFileSync(file, 'utf8').trim());
    proc.kill();
  });
});

describe('garbage beside a training run', () => {
  it('random bytes, truncated frames and bad requests are refused while 2 workers train to the same bits as 2 local threads', async () => {
    const servers = await Promise.all([0, 1].map((i) => serve(['--shard', `${i}/2`, '--workers', '2', '--model', 'mlp:5,16,3', '--seed', '5'])));
    const urls = servers.map((s) => s.url);
    const training = Promise.all([worker(urls, 0, 2), worker(urls, 1, 2)]);

    // Unauthenticated garbage, on both servers, while the workers train.
    const noise = urls.flatMap((url) =>
      Array.from({ length: 5 }, async () => {
        const ws = new WebSocket(url);
        ws.on('error', () => {});
        await new Promise((r) => ws.once('open', r));
        ws.send(randomBytes(1 + Math.floor(Math.random() * 5000)));
        return new Promise<number>((r) => ws.once('close', (code) => r(code)));
      }),
    );
    // An authenticated client (it has the token) sending truncated and malformed frames.
    const [lo, hi] = shardRange(P, 2, 0);
    const ws = new WebSocket(urls[0]!);
    const replies: Array<{ code?: string; type: string }> = [];
    ws.on('message', (d) => replies.push(decodeFrame(d as Buffer).header as { code?: string; type: string }));
    await new Promise((r) => ws.once('open', r));
    ws.send(encodeFrame({ type: 'hello', v: PROTOCOL_VERSION, token: TOKEN, role: 'observer', rank: -1, workers: 2, size: P }));
    const push = encodeFrame({ type: 'push', id: 1, step: 0, lo, rows: 1, batchRows: 1 }, new Float32Array(hi - lo));
    const bad = [
      push.subarray(0, 7), push.subarray(0, push.length - 2), Buffer.alloc(300, 0xab),
      encodeFrame({ type: 'push', id: 2, step: 0, lo, rows: 1, batchRows: 1 }, new Float32Array(hi - lo).fill(NaN)),
      encodeFrame({ type: 'pull', id: 3, step: 0, lo: 0, hi: P }), encodeFrame({ type: 'nope', id: 4 }),
    ];
    for (const b of bad) ws.send(b);
    await new Promise((r) => setTimeout(r, 300));
    ws.close();

    expect((await Promise.all(noise)).every((c) => c === 1008)).toBe(true);
    const done = await training;
    for (const w of done) expect(w.code, w.stderr).toBe(0);
    expect(replies[0]!.type).toBe('welcome');
    expect(replies.slice(1).map((r) => r.code)).toEqual(['bad-frame', 'bad-frame', 'bad-frame', 'not-worker', 'not-owner', 'unknown-type']);

    const observer = await PsClient.connect(urls, { token: TOKEN, role: 'observer', workers: 2, size: P });
    const trained = new Float32Array(P);
    await observer.pull(0, trained);
    const stats = await observer.stats();
    await observer.shutdown(true);
    await observer.close();
    expect(stats[0]!.errors.auth).toBe(5);
    expect(stats[0]!.errors['bad-frame']).toBe(3);
    const r = loom('train', ...TRAIN, '--workers', '2', '--out', 'beside');
    expect(r.code, r.stderr).toBe(0);
    expect(trained).toEqual(params('beside'));
  });
});

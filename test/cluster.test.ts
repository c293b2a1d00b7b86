// Parameter servers and workers as real processes of the built CLI (apps/cli/dist), over real
// sockets on 127.0.0.1: sync across processes equals local training; the token is required; a
// client sending garbage does not disturb a training run beside it.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, statSync, writeFileSync, existsSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { randomBytes } from 'node:crypto';
import WebSocket from 'ws';
import { flattenParameters, loadModel, mlp, Random } from '@loom/tensor-core';
import { PROTOCOL_VERSION, PsClient, decodeFrame, encodeFrame, shardRange } from '@loom/parameter-server';

const MAIN = fileURLToPath(new URL('../apps/cli/dist/main.js', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'loom-cluster-'));
const TOKEN = randomBytes(24).toString('base64url');
const env = { ...process.env, LOOM_TOKEN: TOKEN, HOME: dir };
const children: ChildProcess[] = [];
afterAll(() => {
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
});

/** A CSV of 3000 rows (47 steps of 64 per epoch): 5 features after one-hot, 3 classes. */
const CSV = join(dir, 'data.csv');
const SIZES = [5, 16, 3];
const TRAIN = ['--dataset', `csv:${CSV}`, '--label', 'label', '--model', 'mlp:5,16,3', '--epochs', '2', '--seed', '5', '--batch-size', '64'];
const P = flattenParameters(mlp(SIZES, { init: 'xavier', rng: new Random(5) })).size;
beforeAll(() => {
  const lines = ['age,minutes,device,label'];
  for (let i = 0; i < 3000; i++) {
    const [age, minutes, device] = [18 + ((i * 37) % 50), (i * 13) % 90, ['mobile', 'desktop', 'tablet'][i % 3]!];
    lines.push(`${age},${minutes},${device},${minutes > 45 ? (device === 'mobile' ? 'video' : 'longread') : 'brief'}`);
  }
  writeFileSync(CSV, lines.join('\n') + '\n');
});

function loom(...args: string[]) {
  const r = spawnSync(process.execPath, [MAIN, ...args], { encoding: 'utf8', cwd: dir, env, timeout: 120_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function params(run: string): Float32Array {
  const model = mlp(SIZES, { init: 'xavier', rng: new Random(0) });
  loadModel(join(dir, run, 'model.safetensors'), model);
  return flattenParameters(model).params;
}

function maxRelDiff(a: Float32Array, b: Float32Array): number {
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i]! - b[i]!) / Math.max(1e-2, Math.abs(b[i]!)));
  return d;
}

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
    expect(log).toMatch(/refused 127\.0\.0\.1:\d+: authentication required/);
    expect(log).toMatch(/refused 127\.0\.0\.1:\d+: bad token/);
    expect(log).not.toContain(guess);
    expect(log).not.toContain(TOKEN);
    proc.kill();
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

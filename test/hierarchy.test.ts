// Hierarchical aggregation with real processes of the built CLI (apps/cli/dist) on 127.0.0.1: one
// `loom worker --threads 2` against one `loom serve` trains what 2 local sync threads train.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { PsClient } from '@loom/parameter-server';
import { MAIN, P, maxRelDiff, runParams, sandbox, writeCsv } from './harness.js';

const { dir, token: TOKEN, env } = sandbox('hierarchy');
const children: ChildProcess[] = [];
afterAll(() => {
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
});

/** 450 distinct rows (a few steps of 64 after the split). */
const CSV = join(dir, 'data.csv');
const MODEL = ['--model', 'mlp:5,16,3', '--seed', '5'];
const TRAIN = ['--dataset', `csv:${CSV}`, '--label', 'label', ...MODEL, '--epochs', '1', '--batch-size', '64'];
beforeAll(() => writeCsv(CSV, 450));

function run(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const proc = spawn(process.execPath, [MAIN, ...args], { cwd: dir, env });
  children.push(proc);
  let stdout = '';
  let stderr = '';
  proc.stdout!.on('data', (d) => (stdout += d));
  proc.stderr!.on('data', (d) => (stderr += d));
  return new Promise((r) => proc.once('exit', (code) => r({ code, stdout, stderr })));
}

function serve(args: string[]): Promise<string> {
  const proc = spawn(process.execPath, [MAIN, 'serve', '--port', '0', ...args], { cwd: dir, env });
  children.push(proc);
  let stderr = '';
  proc.stderr!.on('data', (d) => (stderr += d));
  return new Promise((resolve, reject) => {
    createInterface({ input: proc.stdout! }).on('line', (l) => {
      const m = / listening on (ws:\/\/\S+)$/.exec(l);
      if (m) resolve(m[1]!);
    });
    proc.once('exit', (code) => reject(new Error(`loom serve exited with ${code}: ${stderr}`)));
  });
}

describe('loom worker --threads: hierarchical aggregation', () => {
  it('1 server and 1 worker process with 2 threads train what 2 local sync threads train', async () => {
    const url = await serve(['--workers', '1', ...MODEL]);
    const [worker, local] = await Promise.all([
      run(['worker', '--connect', url, '--rank', '0', '--workers', '1', '--threads', '2', '--json', ...TRAIN]),
      run(['train', ...TRAIN, '--workers', '2', '--out', 'threads', '--json']),
    ]);
    expect(worker.code, worker.stderr).toBe(0);
    expect(local.code, local.stderr).toBe(0);
    const epoch = JSON.parse(worker.stdout.split('\n').find((l) => l.includes('"event":"epoch"'))!);
    expect(epoch).toMatchObject({ epoch: 1, rank: 0, steps: Math.ceil(epoch.rows / 64) }); // every training row, once

    const observer = await PsClient.connect([url], { token: TOKEN, role: 'observer', workers: 1, size: P });
    const trained = new Float32Array(P);
    await observer.pull(0, trained);
    await observer.shutdown(true);
    await observer.close();
    const expected = runParams(dir, 'threads');
    expect(maxRelDiff(trained, expected)).toBeLessThan(1e-4);
    // One process: the threads reduce as local threads do and the server weighs the push by 1, so
    // the two are in fact bitwise equal.
    expect(trained).toEqual(expected);
  });
});

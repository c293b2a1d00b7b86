// Hierarchical aggregation with real processes of the built CLI (apps/cli/dist) on 127.0.0.1: one
// `loom worker --threads 2` against one `loom serve` trains what 2 local sync threads train.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { randomBytes } from 'node:crypto';
import { flattenParameters, loadModel, mlp, Random } from '@loom/tensor-core';
import { PsClient } from '@loom/parameter-server';

const MAIN = fileURLToPath(new URL('../apps/cli/dist/main.js', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'loom-hierarchy-'));
const TOKEN = randomBytes(24).toString('base64url');
const env = { ...process.env, LOOM_TOKEN: TOKEN, HOME: dir };
const children: ChildProcess[] = [];
afterAll(() => {
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
});

/** A CSV of 1000 rows (a few steps of 64 after the split): 5 features after one-hot, 3 classes. */
const CSV = join(dir, 'data.csv');
const SIZES = [5, 16, 3];
const MODEL = ['--model', 'mlp:5,16,3', '--seed', '5'];
const TRAIN = ['--dataset', `csv:${CSV}`, '--label', 'label', ...MODEL, '--epochs', '1', '--batch-size', '64'];
const P = flattenParameters(mlp(SIZES, { init: 'xavier', rng: new Random(5) })).size;
beforeAll(() => {
  const lines = ['age,minutes,device,label'];
  for (let i = 0; i < 1000; i++) {
    const [age, minutes, device] = [18 + ((i * 37) % 50), (i * 13) % 90, ['mobile', 'desktop', 'tablet'][i % 3]!];
    lines.push(`${age},${minutes},${device},${minutes > 45 ? (device === 'mobile' ? 'video' : 'longread') : 'brief'}`);
  }
  writeFileSync(CSV, lines.join('\n') + '\n');
});

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

function maxRelDiff(a: Float32Array, b: Float32Array): number {
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i]! - b[i]!) / Math.max(1e-2, Math.abs(b[i]!)));
  return d;
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
    const model = mlp(SIZES, { init: 'xavier', rng: new Random(0) });
    loadModel(join(dir, 'threads', 'model.safetensors'), model);
    const expected = flattenParameters(model).params;
    expect(maxRelDiff(trained, expected)).toBeLessThan(1e-4);
    // One process: the threads reduce as local threads do and the server weighs the push by 1, so
    // the two are in fact bitwise equal.
    expect(trained).toEqual(expected);
  });
});

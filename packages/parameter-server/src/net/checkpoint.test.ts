// Checkpoints: saved every K updates and on close, atomically; "latest complete" needs every
// shard's JSON; a resume restores parameters and optimizer state exactly; another model's
// checkpoint is refused naming the file and the field.
import { describe, expect, it } from 'vitest';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ShardStore, type StoreOptions } from './store.js';
import { ParameterServer } from './server.js';
import { latestCheckpoint, loadCheckpoint, saveCheckpoint } from './checkpoint.js';

const base: StoreOptions = { sizes: [3, 4, 2], seed: 1, optimizer: 'adam', lr: 0.01, mode: 'sync', staleness: 0, workers: 1, shard: 0, shards: 1, nonFinite: 'reject' };
const grad = (n: number, v: number) => Float32Array.from({ length: n }, (_, i) => Math.sin(v + i));

describe('checkpoints', () => {
  it('a resumed store continues bitwise as if it had never stopped', () => {
    const dir = mkdtempSync(join(tmpdir(), 'loom-ckpt-'));
    const a = new ShardStore(base);
    const n = a.hi - a.lo;
    for (let t = 0; t < 3; t++) a.push(0, t, 8, 8, grad(n, t));
    const path = saveCheckpoint(dir, a, { stepsPerEpoch: 2 });
    expect(path).toBe(join(dir, 'checkpoints', 'step-000000003', 'shard-0-of-1.json'));
    const meta = JSON.parse(readFileSync(path, 'utf8'));
    expect(meta).toMatchObject({ format: 'loom-checkpoint', step: 3, shard: 0, shards: 1, lo: 0, hi: n, optimizer: { name: 'adam', stateKeys: ['expAvg', 'expAvgSq'] }, data: { step: 3, stepsPerEpoch: 2, epoch: 1, batch: 1 } });
    expect(meta.layout.map((e: { name: string }) => e.name)).toEqual(['0.weight', '0.bias', '2.weight', '2.bias']);
    expect(readdirSync(join(dir, 'checkpoints', 'step-000000003')).sort()).toEqual(['shard-0-of-1.json', 'shard-0-of-1.safetensors']); // no temporary files left
    const b = new ShardStore(base);
    loadCheckpoint(dir, b);
    expect(b.applied).toBe(3);
    for (let t = 3; t < 6; t++) {
      a.push(0, t, 8, 8, grad(n, t));
      b.push(0, t, 8, 8, grad(n, t));
    }
    expect(b.params).toEqual(a.params);
    expect(b.optimizerState.expAvgSq).toEqual(a.optimizerState.expAvgSq);
  });

  it('the latest complete checkpoint is the newest with every shard\'s JSON; older ones are pruned', () => {
    const dir = mkdtempSync(join(tmpdir(), 'loom-ckpt-'));
    const s0 = new ShardStore({ ...base, shards: 2, shard: 0 });
    const s1 = new ShardStore({ ...base, shards: 2, shard: 1 });
    // Each store takes one push per step, so that `applied` is t at its t-th checkpoint.
    const step = (t: number) => [s0, s1].forEach((s) => s.push(0, t - 1, 1, 1, new Float32Array(s.hi - s.lo)));
    for (const t of [1, 2, 3, 4, 5]) {
      step(t);
      saveCheckpoint(dir, s0, {}, 2);
      if (t < 5) saveCheckpoint(dir, s1, {}, 2); // shard 1 "crashed" before saving step 5
    }
    expect(latestCheckpoint(dir, 2)).toBe(4);
    expect(readdirSync(join(dir, 'checkpoints')).sort()).toEqual(['step-000000003', 'step-000000004', 'step-000000005']);
    // Shard 1 crashed between its two renames at step 6: tensors there, JSON not: step 6 does not count.
    step(6);
    saveCheckpoint(dir, s0, {}, 2);
    saveCheckpoint(dir, s1, {}, 2);
    rmSync(join(dir, 'checkpoints', 'step-000000006', 'shard-1-of-2.json'));
    expect(latestCheckpoint(dir, 2)).toBe(4);
  });

  it('refuses the checkpoint of another model, another sharding, or no checkpoint at all, naming the file and the field', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'loom-ckpt-'));
    saveCheckpoint(dir, new ShardStore(base));
    const path = join(dir, 'checkpoints', 'step-000000000', 'shard-0-of-1.json');
    expect(() => loadCheckpoint(dir, new ShardStore({ ...base, sizes: [3, 5, 2] }))).toThrow(`${path}: size is 26, but this server has 32 (a checkpoint of another model, shard or optimizer)`);
    expect(() => loadCheckpoint(dir, new ShardStore({ ...base, optimizer: 'sgd' }))).toThrow(`${path}: optimizer.name is "adam", but this server has "sgd"`);
    expect(() => loadCheckpoint(dir, new ShardStore({ ...base, shards: 2 }))).toThrow(`${join(dir, 'checkpoints')}: shards: the checkpoints are of 1 shards; this server is shard 0 of 2`);
    const empty = mkdtempSync(join(tmpdir(), 'loom-ckpt-'));
    await expect(ParameterServer.start({ ...base, token: 't', resume: empty })).rejects.toThrow(`${join(empty, 'checkpoints')}: no such directory: nothing to resume`);
  });

  it('a server saves every K updates and when it closes', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'loom-ckpt-'));
    const log: string[] = [];
    const server = await ParameterServer.start({ ...base, token: 't', checkpoint: { dir, every: 2 }, log: (l) => log.push(l) });
    const n = server.store.hi - server.store.lo;
    for (let t = 0; t < 5; t++) server.store.push(0, t, 8, 8, grad(n, t));
    await server.close();
    expect(readdirSync(join(dir, 'checkpoints')).sort()).toEqual(['step-000000002', 'step-000000004', 'step-000000005'].slice(-3));
    expect(existsSync(join(dir, 'checkpoints', 'step-000000005', 'shard-0-of-1.safetensors'))).toBe(true);
    const resumed = await ParameterServer.start({ ...base, token: 't', resume: dir, log: (l) => log.push(l) });
    expect(resumed.store.applied).toBe(5);
    expect(resumed.store.params).toEqual(server.store.params);
    expect(resumed.stats().checkpoint).toBe(5);
    await resumed.close();
    expect(log.at(-1)).toMatch(/^resumed from .*step-000000005\/shard-0-of-1\.json: 5 updates applied$/);
  });
});

// Row-keyed tables over the network (protocol 3), with real servers on 127.0.0.1 in this process:
// placement by hash, deterministic new rows, sync over 2 workers against one process on the same
// global batches, async (Hogwild) training, bytes per step against the formula, huge ids, and bad
// input refused by name with the server alive and nothing stored changed.
// (test/cluster-ctr.test.ts runs `loom serve`/`loom worker` processes.)
import { afterAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { generateClickLog } from '@loom/data';
import { Optimizer, namedOptimizer } from '@loom/optimizer';
import { Random, flattenParameters } from '@loom/tensor-core';
import { CtrModel, CtrSchedule, ctrTask, inProcessTransport, runEpoch, type CtrShape } from '@loom/worker';
import { RowTable } from '../tables/row-table.js';
import { rowInit } from '../tables/row-init.js';
import { shardOfId } from '../tables/placement.js';
import { namedSparseOptimizer } from '@loom/optimizer';
import type { Mode } from '../mode.js';
import { PsClient } from './client.js';
import { trainCtrRemote } from './ctr-worker.js';
import { decodeFrame, encodeFrame, encodeKeyedFrame } from './frame.js';
import { PROTOCOL_VERSION } from './protocol.js';
import type { RowTableSpec } from './row-store.js';
import { ParameterServer } from './server.js';

const TOKEN = 'rows-test-token-0123456789';
const SEED = 5;
const log = generateClickLog({ seed: SEED, scale: 1 });
const columns = log.materialize();
const shape: CtrShape = { historyLength: log.historyLength, denseWidth: log.denseWidth };
const RANGE = [0, 2048] as const; // 8 global batches of 256
const BATCH = 256;
const P = flattenParameters(new CtrModel(shape, { rng: new Random(SEED) })).size;
const ctrTables = (optimizer = 'sparse-adam', lr = 1e-2): RowTableSpec[] => ['user', 'article', 'category', 'subcategory'].map((name) => ({ name, dim: 32, optimizer, lr }));

const servers: ParameterServer[] = [];
afterAll(async () => {
  await Promise.all(servers.map((s) => s.close()));
});

async function cluster(shards: number, workers: number, mode: Mode, rowTables: RowTableSpec[] = ctrTables()): Promise<ParameterServer[]> {
  const started = await Promise.all(Array.from({ length: shards }, (_, shard) =>
    ParameterServer.start({ sizes: [], model: (rng) => new CtrModel(shape, { rng }), seed: SEED, optimizer: 'adam', lr: 1e-3, mode, workers, shard, shards, token: TOKEN, rowTables })));
  servers.push(...started);
  return started;
}

async function trainCluster(ss: ParameterServer[], workers: number, epochs = 1) {
  const urls = ss.map((s) => s.url);
  const losses: number[] = [];
  const bytes: Array<Record<string, number>> = [];
  await Promise.all(Array.from({ length: workers }, (_, rank) =>
    trainCtrRemote({ urls, token: TOKEN, rank, workers, seed: SEED, batchSize: BATCH, epochs, columns, shape, range: RANGE, heartbeatMs: 0,
      onEpoch: (r) => {
        losses.push(r.lossSum / r.rows);
        bytes.push(r.tableBytes);
      } })));
  return { losses, bytes };
}

/** One process, one thread: the same model and global batches, tables as RowTables, dense Adam. */
async function trainOneProcess(epochs = 1) {
  const model = new CtrModel(shape, { rng: new Random(SEED) });
  const flat = flattenParameters(model);
  const { algorithm, options } = namedSparseOptimizer('sparse-adam', { lr: 1e-2 });
  const tables = Object.fromEntries(['user', 'article', 'category', 'subcategory'].map((name) => [name, new RowTable({ name, dim: 32, seed: SEED, algorithm, options })]));
  const dense = namedOptimizer('adam', { lr: 1e-3 });
  const transport = inProcessTransport(new Optimizer(dense.algorithm, model.parameters(), dense.options), { tables, yieldEveryMs: Infinity });
  const schedule = new CtrSchedule(columns, shape, RANGE, BATCH);
  for (let e = 0; e < epochs; e++) await runEpoch({ model, flat, transport, schedule, task: ctrTask(model), epoch: e, firstStep: e * schedule.batchesPerEpoch });
  return { params: flat.params, tables };
}

const rowsOf = async (urls: string[], table: string, ids: number[], dim = 32, workers = 2) => {
  const observer = await PsClient.connect(urls, { token: TOKEN, role: 'observer', workers, size: P });
  const out = new Float32Array(ids.length * dim);
  await observer.pullRows(table, 0, ids, out);
  const dense = new Float32Array(P);
  await observer.pull(0, dense);
  await observer.close();
  return { rows: out, dense };
};

describe('row tables over the network', () => {
  it('new rows are the same on every server, from (seed, table, id) alone, and ids are placed by hash', async () => {
    const [a] = await cluster(1, 1, 'sync');
    const [b] = await cluster(1, 1, 'sync');
    const pair = await cluster(2, 1, 'sync');
    const ids = Array.from({ length: 400 }, (_, i) => i * 7919 + (i % 3) * 2 ** 40);
    const pulled: Float32Array[] = [];
    for (const urls of [[a!.url], [b!.url], pair.map((s) => s.url)]) {
      const c = await PsClient.connect(urls, { token: TOKEN, rank: 0, workers: 1, size: P, heartbeatMs: 0 });
      const out = new Float32Array(ids.length * 32);
      await c.pullRows('user', 0, ids, out);
      pulled.push(out);
      await c.close();
    }
    const expected = new Float32Array(ids.length * 32);
    const init = rowInit(SEED, 'user', 32);
    ids.forEach((id, k) => init(id, expected, k * 32));
    for (const p of pulled) expect(p).toEqual(expected);
    // Each of the two servers created exactly the ids that hash to it, and both got some.
    const held = pair.map((s) => s.rowTables.user!.table);
    for (const id of ids) expect(held.map((t) => t.has(id))).toEqual([shardOfId(id, 2) === 0, shardOfId(id, 2) === 1]);
    expect(held[0]!.size + held[1]!.size).toBe(ids.length);
    expect(Math.min(held[0]!.size, held[1]!.size)).toBeGreaterThan(150);
  });

  it('sync over 2 workers and 2 servers trains what one process trains on the same global batches (float32 rounding)', async () => {
    const ss = await cluster(2, 2, 'sync');
    await trainCluster(ss, 2);
    const one = await trainOneProcess();
    const ids = Array.from(new Set(columns.user.subarray(...RANGE)));
    const { rows, dense } = await rowsOf(ss.map((s) => s.url), 'user', ids);
    const ref = new Float32Array(ids.length * 32);
    one.tables.user!.read(ids, ref);
    let worst = 0;
    for (let i = 0; i < ref.length; i++) worst = Math.max(worst, Math.abs(rows[i]! - ref[i]!));
    let worstDense = 0;
    for (let i = 0; i < P; i++) worstDense = Math.max(worstDense, Math.abs(dense[i]! - one.params[i]!));
    // Rows moved (Adam, lr 1e-2, 8 steps: up to 0.08) and agree far below that.
    expect(worst).toBeLessThan(2e-4);
    expect(worstDense).toBeLessThan(2e-4);
    let moved = 0;
    const init = new Float32Array(32);
    rowInit(SEED, 'user', 32)(ids[0]!, init);
    for (let d = 0; d < 32; d++) moved = Math.max(moved, Math.abs(rows[d]! - init[d]!));
    expect(moved).toBeGreaterThan(1e-3);
    // Every shard's table counts every step, rows or none.
    for (const s of ss) for (const t of Object.values(s.rowTables)) expect(t.applied).toBe(8);
  });

  it('async (Hogwild) trains: the loss falls; bytes per step are within 1.2× of unique rows × dim × 4 × 2 + dense', async () => {
    const ss = await cluster(2, 2, 'async', ctrTables('sparse-adam', 3e-2));
    const { losses } = await trainCluster(ss, 2, 3);
    const byEpoch = [0, 1, 2].map((e) => (losses[2 * e]! + losses[2 * e + 1]!) / 2);
    expect(byEpoch[2]!).toBeLessThan(byEpoch[0]!);
    // The formula: per worker and step, its unique rows of each table down and up, and the dense vector down and up.
    const stats = ss.map((s) => s.stats());
    let unique = 0;
    const steps = 3 * 8;
    const model = new CtrModel(shape, { rng: new Random(0) });
    const task = ctrTask(model);
    for (let w = 0; w < 2; w++) {
      for (const b of new CtrSchedule(columns, shape, RANGE, BATCH, w, 2).epoch(0)) {
        task.tables.prepare(task.keys(b));
        for (const t of task.tables) unique += t.ids.length;
      }
    }
    unique *= 3;
    const rowBytes = stats.reduce((n, s) => n + Object.values(s.tables!).reduce((m, t) => m + t.bytesIn + t.bytesOut, 0), 0);
    const denseBytes = 2 * 2 * steps * P * 4; // each worker's pushpull: P floats up, P floats down
    const formula = unique * 32 * 4 * 2 + denseBytes;
    const total = stats.reduce((n, s) => n + s.bytesIn + s.bytesOut, 0);
    console.log(`bytes per step: rows ${Math.round(rowBytes / steps)} (formula ${Math.round((unique * 32 * 8) / steps)}), all ${Math.round(total / steps)} (formula ${Math.round(formula / steps)}): ratio ${(total / formula).toFixed(3)}`);
    expect(rowBytes).toBeGreaterThanOrEqual(unique * 32 * 8);
    expect(total).toBeLessThan(1.2 * formula);
    expect(total).toBeGreaterThan(formula);
  });

  it('ids up to 2^50: rows made on demand, nothing table-sized anywhere', async () => {
    const [s] = await cluster(1, 1, 'async', [{ name: 'huge', dim: 8, optimizer: 'sgd', lr: 0.5 }]);
    const c = await PsClient.connect([s!.url], { token: TOKEN, rank: 0, workers: 1, size: P, heartbeatMs: 0 });
    const ids = [2 ** 50, 2 ** 50 - 1, 3, 2 ** 49 + 12345];
    const rows = new Float32Array(ids.length * 8);
    await c.pullRows('huge', 0, ids, rows);
    const before = rows.slice();
    await c.pushRows('huge', 0, ids, new Float32Array(ids.length * 8).fill(1), { rows: 1, batchRows: 1 });
    await c.pullRows('huge', 1, ids, rows);
    for (let i = 0; i < rows.length; i++) expect(rows[i]).toBeCloseTo(before[i]! - 0.5, 5);
    expect(s!.rowTables.huge!.table.size).toBe(4); // a dense (2^50, 8) table would be 32 PiB
    await c.close();
  });
});

describe('bad row messages', () => {
  /** A raw socket, past the hello, that reads replies one by one. */
  async function raw(url: string) {
    const ws = new WebSocket(url);
    const queue: Array<{ header: any; payload: Float32Array }> = [];
    const waiting: Array<(r: { header: any; payload: Float32Array }) => void> = [];
    ws.on('message', (d) => {
      const r = decodeFrame(d as Buffer);
      const w = waiting.shift();
      if (w) w(r);
      else queue.push(r);
    });
    await new Promise((r) => ws.once('open', r));
    const next = () => new Promise<{ header: any; payload: Float32Array }>((r) => (queue.length > 0 ? r(queue.shift()!) : waiting.push(r)));
    ws.send(encodeFrame({ type: 'hello', v: PROTOCOL_VERSION, token: TOKEN, role: 'worker', rank: 0, workers: 1, size: P }));
    expect((await next()).header.type).toBe('welcome');
    return { ws, next };
  }

  it('bad ids, a push for rows never pulled, wrong lengths and unknown tables get errors naming the problem; the server goes on and nothing stored changes', async () => {
    const [s] = await cluster(1, 1, 'async', [{ name: 'user', dim: 4, optimizer: 'sgd', lr: 0.1 }]);
    const { ws, next } = await raw(s!.url);
    ws.send(encodeKeyedFrame({ type: 'pullrows', id: 1, table: 'user', step: 0 }, [1, 2, 3]));
    const good = await next();
    expect(good.header).toMatchObject({ type: 'rows', id: 1 });
    const snapshot = s!.rowTables.user!.table.snapshot();
    const cases: Array<[Buffer, string, RegExp]> = [
      [encodeKeyedFrame({ type: 'pullrows', id: 2, table: 'user', step: 0 }, [1, -4]), 'bad-id', /id at position 1 is -4, negative/],
      [encodeKeyedFrame({ type: 'pullrows', id: 3, table: 'user', step: 0 }, [2.5]), 'bad-id', /2\.5, not an integer/],
      [encodeKeyedFrame({ type: 'pullrows', id: 4, table: 'user', step: 0 }, [2 ** 53]), 'bad-id', /beyond 2\^53/],
      [encodeKeyedFrame({ type: 'pushrows', id: 5, table: 'user', step: 0, rows: 1, batchRows: 1 }, [1, 77], new Float32Array(8)), 'not-pulled', /id 77 \(position 1\).*never pulled/],
      [encodeKeyedFrame({ type: 'pushrows', id: 6, table: 'user', step: 0, rows: 1, batchRows: 1 }, [1, 2], new Float32Array(7)), 'bad-length', /2 ids need 2 × 4 = 8 gradient floats \(dim 4\), got 7/],
      [encodeKeyedFrame({ type: 'pushrows', id: 7, table: 'item', step: 0, rows: 1, batchRows: 1 }, [1], new Float32Array(4)), 'unknown-table', /no row table "item" on this server \(it hosts 'user'\)/],
      [encodeKeyedFrame({ type: 'pushrows', id: 8, table: 'user', step: 0, rows: 1, batchRows: 1 }, [1], new Float32Array([1, NaN, 0, 0])), 'non-finite', /NaN or Inf/],
      [encodeFrame({ type: 'pullrows', id: 9, table: 'user', step: 0 }), 'bad-request', /key section/],
    ];
    for (const [frame, code, message] of cases) {
      ws.send(frame);
      const r = await next();
      expect(r.header.type).toBe('error');
      expect(r.header.code).toBe(code);
      expect(r.header.message).toMatch(message);
    }
    const after = s!.rowTables.user!.table.snapshot();
    expect(after.ids).toEqual(snapshot.ids);
    expect(after.records).toEqual(snapshot.records);
    // Still serving: a good push and pull.
    ws.send(encodeKeyedFrame({ type: 'pushrows', id: 10, table: 'user', step: 0, rows: 1, batchRows: 1 }, [3], new Float32Array(4).fill(1)));
    expect((await next()).header).toMatchObject({ type: 'ack', id: 10 });
    ws.send(encodeKeyedFrame({ type: 'pullrows', id: 11, table: 'user', step: 1 }, [3]));
    const r = await next();
    expect(r.payload[0]).toBeCloseTo(good.payload[8]! - 0.1, 6);
    expect(s!.stats().errors).toMatchObject({ 'bad-id': 3, 'not-pulled': 1, 'bad-length': 1, 'unknown-table': 1, 'non-finite': 1, 'bad-request': 1 });
    ws.close();
  });

  it('a protocol 2 peer is refused at hello with the version error', async () => {
    const [s] = await cluster(1, 1, 'sync');
    const ws = new WebSocket(s!.url);
    await new Promise((r) => ws.once('open', r));
    const reply = new Promise<any>((r) => ws.once('message', (d) => r(decodeFrame(d as Buffer).header)));
    ws.send(encodeFrame({ type: 'hello', v: 2, token: TOKEN, role: 'worker', rank: 0, workers: 1, size: P }));
    expect(await reply).toMatchObject({ type: 'error', code: 'version', message: 'protocol version 2 is not supported (this server speaks 4)' });
  });
});

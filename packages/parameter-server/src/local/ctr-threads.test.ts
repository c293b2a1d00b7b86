// The CTR model on real worker threads (the compiled entry in dist/, which `pnpm test` builds
// first): dense part sync in shared memory, tables in one SharedArrayBuffer, sync or Hogwild!.
// The oracle is one thread: runEpoch over an in-process transport with RowTables, as `loom train
// --task ctr --workers 1` trains.
import { describe, expect, it } from 'vitest';
import { auc, clickBaselines, generateClickLog } from '@loom/data';
import { Optimizer, namedOptimizer, namedSparseOptimizer } from '@loom/optimizer';
import { Random, flattenParameters, noGrad } from '@loom/tensor-core';
import { CTR_TABLES, CtrModel, CtrSchedule, ctrTask, inProcessTransport, runEpoch } from '@loom/worker';
import { RowTable } from '../tables/row-table.js';
import { rowInit } from '../tables/row-init.js';
import { allocateSharedTables, sharedTables, type SharedTable } from '../tables/shared-tables.js';
import { trainCtrThreads, type CtrThreadOptions } from './ctr-coordinator.js';
import type { ThreadEpochMetrics } from './coordinator.js';

const SEED = 5;
const log = generateClickLog({ seed: SEED, scale: 0.3 });
const columns = log.materialize();
const shape = { historyLength: log.historyLength, denseWidth: log.denseWidth };
const tableRows = { user: log.numUsers, article: log.numArticles, category: 18, subcategory: 270 };
const base = { range: [0, 2048] as const, tableRows, seed: SEED, optimizer: 'adam', lr: 1e-3, sparseOptimizer: 'sparse-adam', sparseLr: 1e-2, batchSize: 128, epochs: 2 };
const newModel = () => new CtrModel(shape, { rng: new Random(SEED) });

/** The oracle: one thread, RowTables, the dense optimizer's class API. */
async function oneThread(o: typeof base) {
  const model = newModel();
  const flat = flattenParameters(model);
  const { algorithm, options } = namedOptimizer(o.optimizer, { lr: o.lr });
  const sparse = namedSparseOptimizer(o.sparseOptimizer, { lr: o.sparseLr });
  const tables = Object.fromEntries(CTR_TABLES.map((name) => [name, new RowTable({ name, dim: 32, seed: o.seed, ...sparse })]));
  const transport = inProcessTransport(new Optimizer(algorithm, model.parameters(), options), { tables, yieldEveryMs: Infinity });
  const schedule = new CtrSchedule(columns, shape, o.range, o.batchSize);
  for (let e = 0; e < o.epochs; e++) await runEpoch({ model, flat, transport, schedule, task: ctrTask(model), epoch: e, firstStep: e * schedule.batchesPerEpoch });
  return { params: flat.params, tables };
}

/** Table `name`'s rows 0 … V−1 as a RowTable or a SharedTable holds them. */
function rows(t: { read(ids: ArrayLike<number>, out: Float32Array): void }, V: number): Float32Array {
  const out = new Float32Array(V * 32);
  t.read(Float64Array.from({ length: V }, (_, i) => i), out);
  return out;
}

function maxRelDiff(a: Float32Array, b: Float32Array): number {
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i]! - b[i]!) / Math.max(1e-2, Math.abs(b[i]!)));
  return d;
}

async function threads(o: Partial<CtrThreadOptions>, onEpoch?: CtrThreadOptions['onEpoch'], model = newModel()) {
  const r = await trainCtrThreads({ ...base, model, columns, ...o, onEpoch });
  return { params: flattenParameters(model).params, tables: r.tables, model };
}

describe('shared tables', () => {
  it('start every row where RowTable starts it, for the same (seed, table, id)', () => {
    const spec = allocateSharedTables({ tables: [{ name: 'article', rows: 500, dim: 32 }], seed: SEED, sparseOptimizer: 'sparse-adam', sparseLr: 1e-3 });
    const row = new RowTable({ name: 'article', dim: 32, seed: SEED, ...namedSparseOptimizer('sparse-adam', { lr: 1e-3 }) });
    expect(rows(sharedTables(spec).article!, 500)).toEqual(rows(row, 500));
  });

  it('a push reads and writes only the rows it names, weights and state; bad ids are named', () => {
    const spec = allocateSharedTables({ tables: [{ name: 'user', rows: 100, dim: 32 }], seed: 1, sparseOptimizer: 'sparse-adam', sparseLr: 0.1 });
    const user = sharedTables(spec).user!;
    const arrays = [user.weights, user.state.expAvg!, user.state.expAvgSq!];
    const before = arrays.map((a) => a.slice());
    user.push(Int32Array.of(3, 40, 99), new Float32Array(3 * 32).fill(1), 1);
    arrays.forEach((a, k) => {
      const changed = new Set<number>();
      for (let i = 0; i < a.length; i++) if (a[i] !== before[k]![i]) changed.add(Math.floor(i / 32));
      expect([...changed]).toEqual([3, 40, 99]);
    });
    expect(() => user.push(Int32Array.of(100), new Float32Array(32), 1)).toThrow(/table 'user': id 100 at position 0 is not a row of this table: thread tables are indexed by dense ids in \[0, 100\)/);
    expect(() => user.read([-1], new Float32Array(32))).toThrow(/id -1 at position 0/);
  });
});

describe('sync tables (averaged) equal one-thread training', () => {
  it('1 worker, sync and async: bitwise, dense part and every table', async () => {
    const ref = await oneThread(base);
    for (const tableMode of ['sync', 'async'] as const) {
      const t = await threads({ workers: 1, tableMode });
      expect(t.params).toEqual(ref.params);
      for (const name of CTR_TABLES) expect(rows(t.tables[name]!, tableRows[name])).toEqual(rows(ref.tables[name]!, tableRows[name]));
    }
  });

  it('2 workers: within float32 rounding of the reductions (rel. 1e-4 after 32 steps)', async () => {
    const ref = await oneThread(base);
    const t = await threads({ workers: 2, tableMode: 'sync' });
    expect(t.params).not.toEqual(ref.params); // each worker's mean, weighted, is not the one-thread mean bit for bit …
    expect(maxRelDiff(t.params, ref.params)).toBeLessThan(1e-4); // … but within float32 tolerance
    for (const name of CTR_TABLES) expect(maxRelDiff(rows(t.tables[name]!, tableRows[name]), rows(ref.tables[name]!, tableRows[name]))).toBeLessThan(1e-4);
  });
});

describe('async tables (Hogwild!) with a sync dense part', () => {
  it('trains: loss falls, valid AUC beats popularity; every worker reports its throughput', async () => {
    const epochs: ThreadEpochMetrics[] = [];
    const aucs: number[] = [];
    const valid: [number, number] = [log.validStart, log.numImpressions];
    const model = newModel();
    const validAuc = (tables: Readonly<Record<string, SharedTable>>): number => {
      const task = ctrTask(model);
      const schedule = new CtrSchedule(columns, shape, valid, 4096);
      const p = new Float32Array(valid[1] - valid[0]);
      noGrad(() => {
        for (const b of schedule.epoch(0)) {
          task.tables.prepare(task.keys(b));
          for (const t of task.tables) tables[t.name]!.read(t.ids, t.rows);
          p.set(model.forward({ tables: task.tables, batch: b }).data, b.index * 4096);
        }
      });
      return auc(p, columns.label.subarray(valid[0], valid[1]));
    };
    await threads({ workers: 2, range: [0, log.validStart], batchSize: 256, epochs: 3 }, (m, tables) => {
      epochs.push(m);
      aucs.push(validAuc(tables));
    }, model);
    expect(epochs.map((m) => m.trainLoss)).toEqual([...epochs.map((m) => m.trainLoss)].sort((a, b) => b - a));
    expect(aucs[aucs.length - 1]).toBeGreaterThan(clickBaselines(log).popularityAuc + 0.01);
    for (const m of epochs) {
      expect(m.workers.map((w) => w.rank)).toEqual([0, 1]);
      expect(m.workers.reduce((s, w) => s + w.rows, 0)).toBe(log.validStart);
      for (const w of m.workers) expect(w.samplesPerSec).toBeGreaterThan(0);
    }
  });

  it('rows no training batch names keep their initial bits, in both modes', async () => {
    const range = [0, 1024] as const;
    const named: Record<string, Set<number>> = Object.fromEntries(CTR_TABLES.map((n) => [n, new Set<number>()]));
    const task = ctrTask(newModel());
    for (const b of new CtrSchedule(columns, shape, range, 128).epoch(0)) for (const [n, ids] of Object.entries(task.keys(b))) for (const id of ids) named[n]!.add(id);
    for (const tableMode of ['sync', 'async'] as const) {
      const { tables } = await threads({ workers: 2, tableMode, range, epochs: 1 });
      for (const name of ['user', 'article'] as const) {
        const t = tables[name]!, init = rowInit(SEED, name, 32), row = new Float32Array(32);
        let untouched = 0;
        for (let id = 0; id < t.rows; id++) {
          if (named[name]!.has(id)) continue;
          init(id, row);
          expect(t.weights.subarray(id * 32, (id + 1) * 32)).toEqual(row);
          expect(t.state.expAvg!.subarray(id * 32, (id + 1) * 32).every((x) => x === 0)).toBe(true);
          untouched++;
        }
        expect(untouched).toBeGreaterThan(0);
      }
    }
  });

  it('bad options are named before any thread starts', async () => {
    await expect(threads({ workers: 0 })).rejects.toThrow(/workers must be a positive integer, got 0/);
    await expect(threads({ tableMode: 'ssp' as never })).rejects.toThrow(/tableMode must be one of sync, async, got 'ssp'/);
    await expect(threads({ tableRows: { ...tableRows, user: 0 } })).rejects.toThrow(/tableRows.user/);
  });
});

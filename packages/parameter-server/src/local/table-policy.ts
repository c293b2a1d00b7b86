/**
 * How a local run's workers turn their row gradients into updates of the shared embedding tables
 * (../tables/shared-tables.ts). The dense part always trains sync (policies.ts); the tables follow
 * one of two policies, each hooked into that sync step:
 *
 * async (Hogwild!, Persia's "sync dense, async embeddings"): in its push, before the dense barrier,
 *   each worker steps ITS rows in place with its own gradient, scaled by rows / batchRows as the
 *   dense reduction weights it (so for SGD the updates of a step add up to the averaged one). No
 *   locks: two workers stepping the same row at once race on it, the accepted Hogwild! semantics.
 *   Staleness is bounded by the dense barrier: a row read at step t holds every update of steps
 *   < t, and possibly some of step t's from workers that pushed early.
 *
 * sync (averaged): each worker copies its unique ids and row gradients into its slot of the
 *   exchange; between the dense barriers (every slot written, no one yet past the step) worker r
 *   merges the slots' ids of its partition (id mod N = r), sums each row's gradients weighted by
 *   rows / batchRows in worker order — float64, rounded once, as the dense reduction sums — and
 *   steps those rows once. One worker is then one-thread training, bit for bit; N workers are it
 *   up to the float32 rounding of the reduction (and of the dense part's).
 *
 * Either way the table's optimizer step is the global step (StepInfo.step + 1), as one thread counts.
 *
 * The exchange (sync only): per worker and table, a count, ids (cap) and grads (cap, D) in shared
 * memory, cap = the most unique ids a worker's part of a batch can name (allocateExchange).
 *
 *   U  unique ids of one worker's step in one table;  R  rows one worker steps in the reduction
 */
import type { StepInfo, StepTables } from '@loom/worker';
import type { SharedTable } from '../tables/shared-tables.js';

/** What the tables do under a local run: 'async' (Hogwild!) or 'sync' (averaged). The dense part is sync in both. */
export type TableMode = 'sync' | 'async';
export const TABLE_MODES: readonly TableMode[] = ['sync', 'async'];

/** Shared slots for sync tables, as plain data: counts (workers · tables) and per slot ids and grads. */
export interface TableExchange {
  tables: { name: string; dim: number; cap: number }[];
  workers: number;
  /** i32 (workers · tables): unique ids each worker put in its slot this step. */
  counts: SharedArrayBuffer;
  /** f64 (workers): each worker's rows / batchRows this step. */
  weights: SharedArrayBuffer;
  /** Slot (worker w, table t) at w · tables + t: ids (cap) i32, grads (cap · dim) f32. */
  slots: { ids: SharedArrayBuffer; grads: SharedArrayBuffer }[];
}

/** Allocates the exchange; `caps[name]` bounds the unique ids one worker's part of a step names in that table. */
export function allocateExchange(tables: readonly { name: string; dim: number }[], caps: Readonly<Record<string, number>>, workers: number): TableExchange {
  const specs = tables.map(({ name, dim }) => ({ name, dim, cap: caps[name]! }));
  return {
    tables: specs,
    workers,
    counts: new SharedArrayBuffer(4 * workers * specs.length),
    weights: new SharedArrayBuffer(8 * workers),
    slots: Array.from({ length: workers }, () => specs.map((t) => ({ ids: new SharedArrayBuffer(4 * t.cap), grads: new SharedArrayBuffer(4 * t.cap * t.dim) }))).flat(),
  };
}

/** The table side of a worker's transport: called by the composed transport around the dense sync step. */
export interface TablePolicy {
  /** After the dense pull: copy this step's rows into the step's local tables. */
  pull(local: StepTables): void;
  /** Before the dense barrier: hand on this worker's row gradients. */
  push(local: StepTables, info: StepInfo): void;
  /** Between the dense barriers (every worker has pushed; none has begun the next step). */
  betweenBarriers(info: StepInfo): void;
}

function pullRows(tables: Readonly<Record<string, SharedTable>>, local: StepTables): void {
  for (const t of local) tables[t.name]!.pull(t.ids, t.rows);
}

class AsyncTables implements TablePolicy {
  constructor(private readonly tables: Readonly<Record<string, SharedTable>>) {}

  pull(local: StepTables): void {
    pullRows(this.tables, local);
  }

  push(local: StepTables, info: StepInfo): void {
    if (info.rows === 0) return;
    const w = info.rows / info.batchRows;
    for (const t of local) {
      if (w !== 1) for (let i = 0; i < t.grads.length; i++) t.grads[i] = w * t.grads[i]!;
      this.tables[t.name]!.push(t.ids, t.grads, info.step + 1);
    }
  }

  betweenBarriers(): void {}
}

class SyncTables implements TablePolicy {
  private readonly counts: Int32Array;
  private readonly weights: Float64Array;
  /** Per table, per worker: its slot's ids and grads. */
  private readonly ids: Int32Array[][];
  private readonly grads: Float32Array[][];
  /** This worker's merged rows and summed gradients: (R), (R, D), reused every step. */
  private readonly rows: Int32Array[];
  private readonly sums: Float32Array[];
  private readonly heads: Int32Array;
  private readonly acc: Float64Array;

  constructor(
    private readonly tables: Readonly<Record<string, SharedTable>>,
    private readonly x: TableExchange,
    private readonly rank: number,
  ) {
    const T = x.tables.length, N = x.workers;
    this.counts = new Int32Array(x.counts);
    this.weights = new Float64Array(x.weights);
    this.ids = x.tables.map((_, t) => Array.from({ length: N }, (_, w) => new Int32Array(x.slots[w * T + t]!.ids)));
    this.grads = x.tables.map((_, t) => Array.from({ length: N }, (_, w) => new Float32Array(x.slots[w * T + t]!.grads)));
    // A worker's partition of a table holds at most every worker's ids of it.
    this.rows = x.tables.map((t) => new Int32Array(Math.min(N * t.cap, tables[t.name]!.rows)));
    this.sums = x.tables.map((t, i) => new Float32Array(this.rows[i]!.length * t.dim));
    this.heads = new Int32Array(N);
    this.acc = new Float64Array(Math.max(...x.tables.map((t) => t.dim)));
  }

  pull(local: StepTables): void {
    pullRows(this.tables, local);
  }

  push(local: StepTables, info: StepInfo): void {
    const { x, rank } = this;
    const T = x.tables.length;
    this.weights[rank] = info.batchRows > 0 ? info.rows / info.batchRows : 0;
    for (let t = 0; t < T; t++) {
      const spec = x.tables[t]!, mine = local.get(spec.name);
      const U = mine.ids.length; // 0 when the worker's part is empty: it named no keys
      if (U > spec.cap) throw new Error(`sync tables: table '${spec.name}': ${U} unique ids in worker ${rank}'s part of step ${info.step}, more than the exchange holds (${spec.cap})`);
      this.ids[t]![rank]!.set(mine.ids);
      this.grads[t]![rank]!.set(mine.grads);
      this.counts[rank * T + t] = U;
    }
  }

  betweenBarriers(info: StepInfo): void {
    const { x, rank, heads, acc } = this;
    const N = x.workers, T = x.tables.length;
    for (let t = 0; t < T; t++) {
      const spec = x.tables[t]!, D = spec.dim, ids = this.ids[t]!, grads = this.grads[t]!, rows = this.rows[t]!, sums = this.sums[t]!;
      heads.fill(0);
      let R = 0;
      for (;;) {
        // The smallest id of this worker's partition at the head of any slot (each slot is ascending).
        let next = -1;
        for (let w = 0; w < N; w++) {
          const n = this.counts[w * T + t]!, a = ids[w]!;
          let h = heads[w]!;
          while (h < n && a[h]! % N !== rank) h++;
          heads[w] = h;
          if (h < n && (next < 0 || a[h]! < next)) next = a[h]!;
        }
        if (next < 0) break;
        acc.fill(0, 0, D);
        for (let w = 0; w < N; w++) {
          const h = heads[w]!;
          if (h >= this.counts[w * T + t]! || ids[w]![h] !== next) continue;
          const wt = this.weights[w]!, g = grads[w]!, at = h * D;
          for (let d = 0; d < D; d++) acc[d] += wt * g[at + d]!;
          heads[w] = h + 1;
        }
        rows[R] = next;
        for (let d = 0; d < D; d++) sums[R * D + d] = acc[d]!;
        R++;
      }
      if (R > 0) this.tables[spec.name]!.push(rows.subarray(0, R), sums.subarray(0, R * D), info.step + 1);
    }
  }
}

/** The table policy of worker `rank`: Hogwild! for 'async'; averaged through `exchange` for 'sync'. */
export function tablePolicy(mode: TableMode, tables: Readonly<Record<string, SharedTable>>, exchange: TableExchange | null, rank: number): TablePolicy {
  if (mode === 'async') return new AsyncTables(tables);
  if (exchange === null) throw new Error('tablePolicy: sync tables need an exchange (allocateExchange)');
  return new SyncTables(tables, exchange, rank);
}

/**
 * A row-keyed embedding table as a parameter server holds its share of it (protocol 3's
 * pullrows/pushrows): a RowTable (../tables/row-table.ts: rows created on first pull from
 * (seed, name, id), stepped by a sparse optimizer) behind the same NetPolicy as the dense range
 * (./policy.ts), with G = the rows' ids and gradients. Ids are placed on servers by
 * shardOfId(id, S); this store holds the ids that hash to its shard and never checks that (the
 * client splits), so a test may send any id to any shard.
 *
 * sync, ssp  clock t's pushes — each worker's (ids, gradients) for the rows of its part of the
 *            batch that live here — are gathered IN RANK ORDER, each gradient scaled by
 *            rows/batchRows (the dense path's weights), into one list of (id, gradient) rows;
 *            RowTable.push then sums repeated ids (coalesce, as PyTorch merges duplicates) and
 *            steps each row once, at step count t + 1: one optimizer step per update.
 * async      Hogwild!: each push is stepped as it arrives, at the table's update count.
 *
 * The step count is the table's update count on this shard, which is the same on every shard:
 * every worker pushes every table to every server each step, with no rows when none of its ids
 * live there (PyTorch counts a step for a table on every training step, touched or not).
 *
 * Admission and eviction (RowTableSpec.admitAfter, evictAfter, capacity; ../tables/row-table.ts):
 * the store keeps a clock of the highest worker step it has seen in a pull or push, and calls
 * RowTable.evict(clock) each time the clock reaches a multiple of ⌈evictAfter / 8⌉ — so a row not
 * touched for evictAfter steps is gone within evictAfter/8 more, and a scan of the table costs
 * 1/⌈evictAfter / 8⌉ of a pass per step. (In async, a push marks its rows with the update count,
 * which runs ahead of the step: pushed rows are kept longer, never evicted early.) With admission or
 * eviction, a pushed id that has no row (not admitted yet, or evicted since the worker pulled it)
 * is dropped and counted in `dropped`, not refused.
 *
 * Memory: a push is kept as views of its received frame until its clock is applied; the gathered
 * rows of an update go into scratch buffers that grow to the largest update and are reused.
 * Nothing table-sized exists anywhere: a table of ids up to 2^53 holds only the rows it was asked for.
 */
import { allFinite, namedSparseOptimizer } from '@loom/optimizer';
import type { Mode } from '../mode.js';
import { RowTable, type RowTableOptions } from '../tables/row-table.js';
import { PsError } from './errors.js';
import { netPolicy, type NetPolicy, type PushOutcome } from './policy.js';
import type { RowTableStatsLine } from './protocol.js';
import type { Table } from './table.js';

/** What a server needs to host one row table (every server of the run is given the same). */
export interface RowTableSpec {
  name: string;
  dim: number;
  /** A sparse optimizer of @loom/optimizer's namedSparseOptimizer: 'sparse-adam', 'adagrad', 'rowwise-adagrad', 'sgd'. */
  optimizer: string;
  lr: number;
  initStd?: number;
  admitAfter?: number;
  evictAfter?: number;
  capacity?: number;
}

/** One push's rows: ids (N) and gradients (N, D), views of the received frame. */
export interface RowGrad {
  ids: Float64Array;
  grads: Float32Array;
}

export interface RowStoreOptions {
  spec: RowTableSpec;
  seed: number;
  mode: Mode;
  staleness: number;
  workers: number;
  nonFinite: 'reject' | 'skip';
}

export class RowStore implements Table {
  readonly kind = 'rows';
  readonly name: string;
  readonly dim: number;
  readonly table: RowTable;
  readonly policy: NetPolicy<RowGrad>;
  beforeUpdate: (() => void) | null = null;
  onApply: ((applied: number) => void) | null = null;
  skippedNonFinite = 0;
  /** What stats reports besides the RowTable's own counters. */
  readonly traffic = { pulls: 0, pushes: 0, rowsPulled: 0, rowsPushed: 0, bytesIn: 0, bytesOut: 0 };
  /** The gathered rows of one sync update: (R) ids and (R, D) weighted gradients. */
  private ids = new Float64Array(0);
  private grads = new Float32Array(0);
  /** The highest worker step seen in a pull or push (the eviction clock), and the last step it evicted at. */
  private clock = 0;
  private evictedAt = 0;
  private readonly evictEvery: number;
  /** Gradient rows dropped here because their id had no row (evicted since its pull, or awaiting admission). */
  private dropped = 0;
  /** Per worker rank, the last step it pushed: when a checkpoint may take the rows of a step (server.ts). */
  readonly pushedThrough = new Map<number, number>();

  constructor(readonly o: RowStoreOptions) {
    const s = o.spec;
    this.name = s.name;
    this.dim = s.dim;
    const { algorithm, options } = namedSparseOptimizer(s.optimizer as never, { lr: s.lr });
    const t: RowTableOptions = { name: s.name, dim: s.dim, seed: o.seed, algorithm, options };
    for (const k of ['initStd', 'admitAfter', 'evictAfter', 'capacity'] as const) if (s[k] !== undefined) t[k] = s[k];
    this.table = new RowTable(t);
    this.evictEvery = Math.max(1, Math.ceil((s.evictAfter ?? 0) / 8));
    this.policy = netPolicy<RowGrad>(o, {
      begin: () => this.beforeUpdate?.(),
      sum: (t, pushes, weights) => this.stepSum(t, pushes, weights),
      own: (t, g) => {
        if (g !== null && g.ids.length > 0) this.pushKnown(g.ids, g.grads, t);
        this.applied_(t);
      },
    });
  }

  get applied(): number {
    return this.policy.applied;
  }

  /** Whether ids may lose (or not yet have) their rows: admission, an eviction age or a capacity. */
  get forgets(): boolean {
    const s = this.o.spec;
    return (s.admitAfter ?? 1) > 1 || (s.evictAfter ?? 0) > 0 || (s.capacity ?? 0) > 0;
  }

  /**
   * Continues from the checkpoint of step `step`, with `applied` updates of this table (the rows
   * were restored into `table`); only before any push. Its eviction clock is where it was then:
   * at step − 1, the last step whose pulls and pushes the checkpoint holds.
   */
  restore(applied: number, step: number): void {
    this.policy.restore(applied);
    this.clock = this.evictedAt = Math.max(0, step - 1);
  }

  /**
   * Checks a push's rows before the policy keeps them, so that a bad one is refused whole and
   * nothing stored changes: ids are integers in [0, 2^53), the payload is N × D floats, every id
   * has a row here (was pulled), and the gradient is finite. Throws PsError naming the problem.
   */
  check(ids: Float64Array, grads: Float32Array): boolean {
    checkIds(this.name, ids);
    const D = this.dim;
    if (grads.length !== ids.length * D) {
      throw new PsError('bad-length', `pushrows '${this.name}': ${ids.length} ids need ${ids.length} × ${D} = ${ids.length * D} gradient floats (dim ${D}), got ${grads.length}`);
    }
    for (let k = 0; k < ids.length; k++) {
      // An id awaiting admission (admitAfter > 1) has no row yet; the table drops its gradient.
      if (!this.table.has(ids[k]!) && !this.forgets) {
        throw new PsError('not-pulled', `pushrows '${this.name}': id ${ids[k]} (position ${k}) has no row on this server: it was never pulled here (pull a row before pushing its gradient)`);
      }
    }
    const finite = allFinite(grads);
    if (!finite && this.o.nonFinite === 'reject') throw new PsError('non-finite', `pushrows '${this.name}': the gradient holds NaN or Inf; refused`);
    return finite;
  }

  /** Worker `rank`'s rows of `step` (checked first with `check`); kept as views until its clock is applied. */
  push(rank: number, step: number, rows: number, batchRows: number, g: RowGrad, finite: boolean, live?: readonly number[]): PushOutcome {
    if (!finite) this.skippedNonFinite++;
    this.pushedThrough.set(rank, Math.max(step, this.pushedThrough.get(rank) ?? -1));
    this.tick(step);
    return this.policy.push(rank, step, g, rows, batchRows, finite, live);
  }

  /** A worker's pull: each id's row into `out` (N, D), creating rows never seen. */
  pull(ids: Float64Array, out: Float32Array, step: number): void {
    this.tick(step);
    this.table.pull(ids, out, step);
  }

  /** Advances the eviction clock to worker step `step`, evicting each time it passes a multiple of ⌈evictAfter / 8⌉. */
  private tick(step: number): void {
    if (step <= this.clock) return;
    this.clock = step;
    if ((this.o.spec.evictAfter ?? 0) > 0 && Math.floor(this.clock / this.evictEvery) > Math.floor(this.evictedAt / this.evictEvery)) {
      this.evictedAt = this.clock;
      this.table.evict(this.clock);
    }
  }

  /** An observer's pull: rows read without creating, admitting or touching anything. */
  read(ids: Float64Array, out: Float32Array): void {
    this.table.read(ids, out);
  }

  stats(): RowTableStatsLine {
    const s = this.table.stats();
    return { dim: this.dim, applied: this.applied, rows: s.rows, created: s.created, evicted: s.evicted, admitted: s.admitted, pending: s.pending, dropped: s.dropped + this.dropped, ...this.traffic };
  }

  // ---- Table: rows never travel in parts, and every update is stepped whole at once ----

  settle(): void {}
  receive(): Float32Array {
    throw new PsError('bad-frame', `table '${this.name}': row messages travel in one frame, never in parts`);
  }
  release(): void {}
  holdUntil(): void {}
  dispose(): void {}

  private stepSum(t: number, pushes: RowGrad[], weights: number[]): void {
    const D = this.dim;
    let n = 0;
    let all = 0;
    for (const g of pushes) for (let k = 0; k < g.ids.length; k++, all++) if (this.table.has(g.ids[k]!)) n++;
    this.dropped += all - n;
    if (n > 0) {
      if (this.ids.length < n) {
        this.ids = new Float64Array(Math.max(n, 2 * this.ids.length));
        this.grads = new Float32Array(this.ids.length * D);
      }
      let r = 0;
      pushes.forEach((g, i) => {
        const w = weights[i]!;
        for (let k = 0; k < g.ids.length; k++) {
          // A row evicted (or not yet admitted) since its push was checked: its gradient is dropped.
          if (!this.table.has(g.ids[k]!)) continue;
          this.ids[r] = g.ids[k]!;
          for (let d = 0; d < D; d++) this.grads[r * D + d] = w * g.grads[k * D + d]!;
          r++;
        }
      });
      this.table.push(this.ids.subarray(0, n), this.grads.subarray(0, n * D), t);
    }
    this.applied_(t);
  }

  /** RowTable.push of the ids that have rows (with eviction, a pushed row may have gone since its pull; the table drops ids awaiting admission). */
  private pushKnown(ids: Float64Array, grads: Float32Array, t: number): void {
    if (!this.forgets) return this.table.push(ids, grads, t);
    const D = this.dim;
    let n = 0;
    for (let k = 0; k < ids.length; k++) if (this.table.has(ids[k]!)) n++;
    if (n === ids.length) return this.table.push(ids, grads, t);
    this.dropped += ids.length - n;
    if (this.ids.length < n) {
      this.ids = new Float64Array(Math.max(n, 2 * this.ids.length));
      this.grads = new Float32Array(this.ids.length * D);
    }
    let r = 0;
    for (let k = 0; k < ids.length; k++) {
      if (!this.table.has(ids[k]!)) continue;
      this.ids[r] = ids[k]!;
      this.grads.set(grads.subarray(k * D, (k + 1) * D), r * D);
      r++;
    }
    if (n > 0) this.table.push(this.ids.subarray(0, n), this.grads.subarray(0, n * D), t);
  }

  private applied_(t: number): void {
    this.onApply?.(t);
  }
}

/** Throws PsError('bad-id') unless every id is an integer in [0, 2^53), naming the first that is not. */
export function checkIds(table: string, ids: ArrayLike<number>): void {
  for (let k = 0; k < ids.length; k++) {
    const id = ids[k]!;
    if (Number.isSafeInteger(id) && id >= 0) continue;
    const what = !Number.isFinite(id) ? String(id) : !Number.isInteger(id) ? `${id}, not an integer` : id < 0 ? `${id}, negative` : `${id}, beyond 2^53 − 1`;
    throw new PsError('bad-id', `table '${table}': id at position ${k} is ${what}: ids are integers in [0, 2^53)`);
  }
}

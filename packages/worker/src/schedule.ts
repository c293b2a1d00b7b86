/**
 * Which rows a worker trains on at each step. Every worker walks the same sequence of global
 * batches — the batches single-process training would use with the same seed and batch size — and
 * takes its contiguous part of each: worker w of N gets rows [⌊w·B/N⌋, ⌊(w+1)·B/N⌋) of a batch of B.
 * So N workers averaging their gradients (weighted by rows) compute the single-process gradient,
 * and no two workers ever train on the same row in the same step.
 *
 * When workers come and go (a sync or ssp run over parameter servers), the servers fix a StepPlan
 * for every step (./plan.ts) and a PlannedSchedule cuts the step's work — its batch, then the rows
 * of earlier steps a dead worker never trained — among the live ranks instead: `share`.
 */
import { Random, hashSeed, shuffleInPlace, type Examples } from '@loom/data';
import { WorkerError } from './errors.js';
import { rowsOf, shareOf, type StepPlan } from './plan.js';

/**
 * What the loop needs of any batch, whatever else it holds: this worker's part of one global
 * batch. A Task reads the rest (features, labels, embedding ids…).
 */
export interface StepBatch {
  /** Rows in this worker's part (may be 0 when a batch has fewer rows than workers). */
  rows: number;
  /** Rows in the whole global batch (under a StepPlan: the step's whole work, carried rows included). */
  batchRows: number;
  /** The batch's position in its epoch, from 0. */
  index: number;
}

/** Where the loop's batches come from: this worker's part of each batch of an epoch, in order. */
export interface BatchSchedule<B extends StepBatch> {
  /** Epoch `e`'s batches (from 0). They may be one object refilled every step, valid until the next. */
  epoch(e: number): Iterable<B>;
}

/**
 * A schedule that can follow the servers' StepPlans: step e·batchesPerEpoch + i is batch i of
 * epoch e, and a carried segment of step s is rows of batch s mod batchesPerEpoch of epoch
 * ⌊s / batchesPerEpoch⌋.
 */
export interface PlannedSchedule<B extends StepBatch> extends BatchSchedule<B> {
  readonly batchesPerEpoch: number;
  /**
   * This worker's part of batch `index` of epoch `e` under `plan` (./plan.ts shareOf; none: the
   * fixed split of the constructor's rank and world size). The same object every step.
   */
  share(e: number, index: number, plan: StepPlan | undefined): B;
}

/** Whether `s` can follow StepPlans. */
export function isPlanned<B extends StepBatch>(s: BatchSchedule<B>): s is PlannedSchedule<B> {
  return typeof (s as Partial<PlannedSchedule<B>>).share === 'function' && typeof (s as Partial<PlannedSchedule<B>>).batchesPerEpoch === 'number';
}

/** A batch of dense features and class labels, as GlobalBatchSchedule yields it. */
export interface WorkerBatch extends StepBatch {
  /** This worker's rows of the batch, (rows, width) — a view into the schedule's buffer. */
  x: Float32Array;
  /** (rows) */
  y: Int32Array;
}

interface EpochOrder {
  epoch: number;
  order: Int32Array;
}

/**
 * From this many values a row is copied with one memcpy (through a view object) instead of a loop
 * (as @loom/data's BatchIterator, which measured it).
 */
const MEMCPY_WIDTH = 48;

/**
 * The batches of a shuffling BatchIterator (@loom/data) with the same rows, batch size and seed —
 * epoch e's order is the rows shuffled with hashSeed(seed, e) — each cut among workers.
 */
export class GlobalBatchSchedule implements PlannedSchedule<WorkerBatch> {
  readonly batchesPerEpoch: number;
  /** Features per row. */
  readonly width: number;
  private readonly rng = new Random(0);
  /** Two epochs' orders: the current one and the one before (carried rows may come from it). */
  private readonly orders: [EpochOrder, EpochOrder];
  private x: Float32Array;
  private y: Int32Array;
  /** Views of x and y for the last row count, so that a run of equal parts allocates nothing. */
  private views: { rows: number; x: Float32Array; y: Int32Array } = { rows: -1, x: new Float32Array(0), y: new Int32Array(0) };
  private readonly part: WorkerBatch;

  constructor(
    private readonly source: Examples,
    private readonly rows: Int32Array,
    readonly batchSize: number,
    private readonly seed: number,
    readonly rank: number,
    readonly worldSize: number,
  ) {
    if (!(Number.isInteger(worldSize) && worldSize >= 1 && Number.isInteger(rank) && rank >= 0 && rank < worldSize)) {
      throw new WorkerError('GlobalBatchSchedule', `rank ${rank} is not in [0, ${worldSize})`);
    }
    if (!(Number.isInteger(batchSize) && batchSize >= 1)) throw new WorkerError('GlobalBatchSchedule', `batchSize must be a positive integer, got ${batchSize}`);
    const n = source.labels.length;
    for (let i = 0; i < rows.length; i++) {
      if (!(rows[i]! >= 0 && rows[i]! < n)) throw new WorkerError('GlobalBatchSchedule', `rows[${i}] = ${rows[i]} is not a row of the ${n} examples`);
    }
    this.batchesPerEpoch = Math.ceil(rows.length / batchSize);
    this.width = source.width;
    this.orders = [{ epoch: -1, order: new Int32Array(rows.length) }, { epoch: -1, order: new Int32Array(rows.length) }];
    const most = Math.floor(((rank + 1) * batchSize) / worldSize) - Math.floor((rank * batchSize) / worldSize);
    this.x = new Float32Array(most * this.width);
    this.y = new Int32Array(most);
    this.part = { x: this.x, y: this.y, rows: 0, batchRows: 0, index: 0 };
  }

  /** This worker's part of each batch of epoch `e`, in order (only its rows are copied); the same object every step. */
  *epoch(e: number): Generator<WorkerBatch> {
    for (let i = 0; i < this.batchesPerEpoch; i++) yield this.share(e, i, undefined);
  }

  share(e: number, index: number, plan: StepPlan | undefined): WorkerBatch {
    const B = this.batchSize, P = this.batchesPerEpoch;
    const fresh = Math.min(B, this.rows.length - index * B);
    const p = this.part;
    if (plan === undefined) {
      // The fixed split, without building segments: what every step of a run without failures does.
      const lo = Math.floor((this.rank * fresh) / this.worldSize), hi = Math.floor(((this.rank + 1) * fresh) / this.worldSize);
      this.fit(hi - lo);
      this.gather(this.orderOf(e), index * B + lo, hi - lo, 0);
      p.batchRows = fresh;
    } else {
      const segments = shareOf(e * P + index, fresh, plan, plan.live.indexOf(this.rank));
      this.fit(rowsOf(segments));
      let at = 0;
      for (const s of segments) {
        this.gather(this.orderOf(Math.floor(s.step / P)), (s.step % P) * B + s.lo, s.hi - s.lo, at);
        at += s.hi - s.lo;
      }
      p.batchRows = fresh + rowsOf(plan.carry);
    }
    p.index = index;
    return p;
  }

  /** Points the part at `rows` rows of the buffers, growing them when a share is larger than any before. */
  private fit(rows: number): void {
    const w = this.width;
    if (rows > this.y.length) {
      this.x = new Float32Array(rows * w);
      this.y = new Int32Array(rows);
      this.views.rows = -1;
    }
    if (this.views.rows !== rows) this.views = { rows, x: this.x.subarray(0, rows * w), y: this.y.subarray(0, rows) };
    this.part.x = this.views.x;
    this.part.y = this.views.y;
    this.part.rows = rows;
  }

  /** Copies the examples at positions [from, from + count) of `order` to rows [to, to + count) of the part. */
  private gather(order: Int32Array, from: number, count: number, to: number): void {
    const { features, labels } = this.source;
    const w = this.width, x = this.x, y = this.y;
    for (let i = 0; i < count; i++) {
      const row = order[from + i]!;
      const d = (to + i) * w;
      y[to + i] = labels[row]!;
      if (w >= MEMCPY_WIDTH) x.set(features.subarray(row * w, row * w + w), d);
      else for (let j = 0, o = row * w; j < w; j++) x[d + j] = features[o + j]!;
    }
  }

  /** Epoch e's order of the rows: BatchIterator's shuffle with (seed, e). Kept for two epochs. */
  private orderOf(e: number): Int32Array {
    const [a, b] = this.orders;
    if (a.epoch === e) return a.order;
    if (b.epoch === e) return b.order;
    // Replace the older of the two: epochs are walked forward, carried rows come from just before.
    const slot = a.epoch < b.epoch ? a : b;
    slot.order.set(this.rows);
    this.rng.reseed(hashSeed(this.seed, e));
    shuffleInPlace(slot.order, this.rng);
    slot.epoch = e;
    return slot.order;
  }
}


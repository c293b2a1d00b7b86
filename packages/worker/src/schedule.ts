/**
 * Which rows a worker trains on at each step. Every worker walks the same sequence of global
 * batches — the batches single-process training would use with the same seed and batch size — and
 * takes its contiguous part of each: worker w of N gets rows [⌊w·B/N⌋, ⌊(w+1)·B/N⌋) of a batch of B.
 * So N workers averaging their gradients (weighted by rows) compute the single-process gradient,
 * and no two workers ever train on the same row in the same step.
 */
import { BatchIterator, type Examples } from '@loom/data';
import { WorkerError } from './errors.js';

/**
 * What the loop needs of any batch, whatever else it holds: this worker's part of one global
 * batch. A Task reads the rest (features, labels, embedding ids…).
 */
export interface StepBatch {
  /** Rows in this worker's part (may be 0 when a batch has fewer rows than workers). */
  rows: number;
  /** Rows in the whole global batch. */
  batchRows: number;
  /** The batch's position in its epoch, from 0. */
  index: number;
}

/** Where the loop's batches come from: this worker's part of each batch of an epoch, in order. */
export interface BatchSchedule<B extends StepBatch> {
  /** Epoch `e`'s batches (from 0). They may be one object refilled every step, valid until the next. */
  epoch(e: number): Iterable<B>;
}

/** A batch of dense features and class labels, as GlobalBatchSchedule yields it. */
export interface WorkerBatch extends StepBatch {
  /** This worker's rows of the batch, (rows, width) — a view into the iterator's buffer. */
  x: Float32Array;
  /** (rows) */
  y: Int32Array;
}

export class GlobalBatchSchedule implements BatchSchedule<WorkerBatch> {
  readonly batchesPerEpoch: number;
  /** Features per row. */
  readonly width: number;
  private readonly batches: BatchIterator;
  private readonly part: WorkerBatch;

  constructor(
    source: Examples,
    rows: Int32Array,
    batchSize: number,
    seed: number,
    readonly rank: number,
    readonly worldSize: number,
  ) {
    if (!(Number.isInteger(worldSize) && worldSize >= 1 && Number.isInteger(rank) && rank >= 0 && rank < worldSize)) {
      throw new WorkerError('GlobalBatchSchedule', `rank ${rank} is not in [0, ${worldSize})`);
    }
    this.batches = new BatchIterator(source, { batchSize, rows, shuffle: true, seed, part: [rank, worldSize] });
    this.batchesPerEpoch = this.batches.batchesPerEpoch;
    this.width = source.width;
    this.part = { x: new Float32Array(0), y: new Int32Array(0), rows: 0, batchRows: 0, index: 0 };
  }

  /** This worker's part of each batch of epoch `e`, in order (only its rows are copied); the same object every step. */
  *epoch(e: number): Generator<WorkerBatch> {
    for (const b of this.batches.epoch(e)) {
      const p = this.part;
      p.x = b.x;
      p.y = b.y;
      p.rows = b.size;
      p.batchRows = b.globalSize;
      p.index = b.index;
      yield p;
    }
  }
}

/**
 * The three ways a local run turns workers' gradients into updates, each a Transport over the
 * run's shared memory (see shared.ts). The worker loop is the same under all three.
 *
 * sync (bulk-synchronous): every worker pushes the gradient of its part of step t's global batch;
 *   after a barrier each worker reduces ITS OWN cache-aligned slice of the parameters — the
 *   row-weighted sum of all workers' gradients, in worker order — and steps that slice with the
 *   optimizer's functional core, both in one pass (stepWithSum); a second barrier publishes the new
 *   parameters. The result is the single-process step on the same global batch, up to float32
 *   rounding of the reduction.
 *
 * ssp (stale synchronous parallel, bound S): the update of clock t is the same row-weighted average
 *   of all workers' step-t gradients, applied in clock order by the last worker to push it; a worker
 *   may start step t once updates 0 … t−S−1 are applied, i.e. compute on parameters at most S
 *   updates old. S = 0 is therefore the sync computation, with one thread applying each update.
 *
 * async (Hogwild!): each worker applies its own gradient to the shared parameters as soon as it
 *   has it, without locks, counting updates in one shared word for the optimizer's step count.
 */
import { stepWithSum, type Algorithm } from '@loom/optimizer';
import { Staleness, type StepInfo, type Transport } from '@loom/worker';
import { Word, sliceOf, views, type SharedRun } from './shared.js';
import { at, barrier, waitAtLeast } from './sync-point.js';

export interface PolicyOptions {
  run: SharedRun;
  rank: number;
  algorithm: Algorithm<any>;
  options: object;
  /**
   * Sync only: run by every worker after it stepped its slice and before the barrier that ends
   * the step — when every worker's push of the step is in and none has begun the next one. A run
   * with embedding tables reduces and steps their rows there (table-policy.ts).
   */
  betweenBarriers?: (info: StepInfo) => void;
}

/** A shared-memory transport, plus the staleness it observed. */
export interface LocalTransport extends Transport {
  readonly staleness: Staleness;
  /** The array the worker's model should accumulate gradients into. */
  readonly gradBuffer: Float32Array;
}

class SyncPolicy implements LocalTransport {
  readonly staleness = new Staleness();
  readonly gradBuffer: Float32Array;
  private readonly v;
  private readonly slots: Float32Array[];
  private readonly lo: number;
  private readonly hi: number;

  constructor(private readonly o: PolicyOptions) {
    this.v = views(o.run);
    this.slots = Array.from({ length: o.run.workers }, (_, i) => this.v.slot(i));
    this.gradBuffer = this.slots[o.rank]!;
    [this.lo, this.hi] = sliceOf(o.run, o.rank);
  }

  pull(): boolean {
    return Atomics.load(this.v.ctrl, at(Word.StopDecided)) === 0;
  }

  push(_grads: Float32Array, info: StepInfo): void {
    const { run, rank, algorithm, options } = this.o;
    this.v.weights[rank] = info.batchRows > 0 ? info.rows / info.batchRows : 0;
    barrier(this.v.ctrl, run.workers); // every gradient is in its slot
    // The reduction is fused into the optimizer's kernel (see @loom/optimizer's stepWithSum); slot
    // 0's slice is scratch afterwards.
    if (this.hi > this.lo) stepWithSum(algorithm, this.v.params, this.slots, this.v.weights, this.v.state, options, info.step + 1, this.lo, this.hi);
    this.o.betweenBarriers?.(info);
    barrier(this.v.ctrl, run.workers); // every slice is stepped: the parameters are step t's result
    this.staleness.observe(0);
  }
}

class SspPolicy implements LocalTransport {
  readonly staleness = new Staleness();
  readonly gradBuffer: Float32Array;
  private readonly v;
  /** Per ring position: its workers' slots and their weights. */
  private readonly slots: Float32Array[][];
  private readonly weights: Float64Array[];

  constructor(private readonly o: PolicyOptions) {
    this.v = views(o.run);
    const W = o.run.workers;
    this.slots = Array.from({ length: o.run.ring }, (_, c) => Array.from({ length: W }, (_, r) => this.v.slot(c * W + r)));
    this.weights = Array.from({ length: o.run.ring }, (_, c) => this.v.weights.subarray(c * W, (c + 1) * W));
    this.gradBuffer = new Float32Array(o.run.size); // copied into the clock's slot on push
  }

  private stopping = () => Atomics.load(this.v.ctrl, at(Word.StopRequested)) !== 0;

  pull(_params: Float32Array, info: StepInfo): boolean {
    if (this.stopping()) return false;
    const applied = waitAtLeast(this.v.ctrl, Word.Applied, info.step - this.o.run.staleness, this.stopping);
    if (applied < 0) return false;
    this.staleness.observe(info.step - applied);
    return true;
  }

  push(grads: Float32Array, info: StepInfo): void {
    const { run, rank, algorithm, options } = this.o;
    const ctrl = this.v.ctrl;
    const clock = info.step;
    const slots = this.slots[clock % run.ring]!, weights = this.weights[clock % run.ring]!;
    slots[rank]!.set(grads);
    weights[rank] = info.batchRows > 0 ? info.rows / info.batchRows : 0;
    const pushedWord = Word.Pushed + (clock % run.ring);
    if (Atomics.add(ctrl, at(pushedWord), 1) !== run.workers - 1) return;
    // The last to push clock t applies its update, after update t−1 (updates apply in clock order).
    waitAtLeast(ctrl, Word.Applied, clock);
    stepWithSum(algorithm, this.v.params, slots, weights, this.v.state, options, clock + 1, 0, run.size);
    Atomics.store(ctrl, at(pushedWord), 0);
    Atomics.store(ctrl, at(Word.Applied), clock + 1);
    Atomics.notify(ctrl, at(Word.Applied));
  }
}

class AsyncPolicy implements LocalTransport {
  readonly staleness = new Staleness();
  readonly gradBuffer: Float32Array;
  private readonly v;
  private readAt = 0;

  constructor(private readonly o: PolicyOptions) {
    this.v = views(o.run);
    this.gradBuffer = this.v.slot(o.rank);
  }

  pull(): boolean {
    if (Atomics.load(this.v.ctrl, at(Word.StopRequested)) !== 0) return false;
    this.readAt = Atomics.load(this.v.ctrl, at(Word.Updates));
    return true;
  }

  push(grads: Float32Array): void {
    const { run, algorithm, options } = this.o;
    const step = Atomics.add(this.v.ctrl, at(Word.Updates), 1) + 1;
    // Updates other workers applied between this worker's read of the parameters and its own.
    this.staleness.observe(step - 1 - this.readAt);
    algorithm.step(this.v.params, grads, this.v.state, options, step, 0, run.size);
  }
}

/** The transport for `run.mode`. */
export function localTransport(o: PolicyOptions): LocalTransport {
  switch (o.run.mode) {
    case 'sync':
      return new SyncPolicy(o);
    case 'ssp':
      return new SspPolicy(o);
    case 'async':
      return new AsyncPolicy(o);
  }
}

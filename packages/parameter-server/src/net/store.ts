/**
 * One shard's parameters, optimizer state and policy, without sockets: what a server does with a
 * push and when it may answer a pull. The semantics are the local coordinator's (../local/policies.ts),
 * with a server process in the place of the threads that reduce and step:
 *
 * sync   every worker pushes its gradient of step t (the mean over its `rows` of a global batch of
 *        `batchRows`); when all W have, the server reduces them weighted by rows/batchRows IN RANK
 *        ORDER with float64 accumulation, steps its range with the optimizer's functional core at
 *        step count t + 1, and answers the pulls for step t + 1. One worker is bitwise
 *        single-process training; W workers equal W local threads bitwise (same reduction).
 * ssp    the same update per clock, applied in clock order once all W pushed it; a worker's pull
 *        for step t is answered once updates 0 … t−S−1 are applied. S = 0 is sync.
 * async  each push is applied on arrival, weighted 1 (the worker's own mean gradient), with the
 *        server's update counter as the optimizer's step count; pulls answer at once.
 *
 * Membership (sync and ssp). Clock t waits for the pushes of the workers that are *members* at t:
 * worker r is one from clock memberFrom[r] on. At the start every rank is a member from 0 (so a
 * run without failures is exactly the computation above). `drop(r)` — the worker disconnected or
 * stopped answering — ends its membership and discards its pushes not yet applied, so the clocks
 * go on with the rest; `join(r, t)` makes it a member again from clock t ≥ applied. A clock that
 * is missing a rank's push because that rank is not a member is reduced with the weights of the
 * pushes it has, renormalised to sum to 1: w_r = (rows_r/batchRows) / Σ_received (rows/batchRows).
 */
import { Random, flattenParameters, mlp } from '@loom/tensor-core';
import { allFinite, namedOptimizer, optimizerMemory, weightedSum, type Algorithm } from '@loom/optimizer';
import type { Mode } from '../mode.js';
import { PsError } from './errors.js';
import { shardRange } from './shards.js';

export interface StoreOptions {
  /** MLP layer sizes; every server and worker builds the model from `seed` (Xavier, zero biases). */
  sizes: number[];
  seed: number;
  optimizer: string;
  lr: number;
  mode: Mode;
  /** ssp only: how many updates a worker may run ahead of the applied ones. */
  staleness: number;
  workers: number;
  shard: number;
  shards: number;
  /** What a gradient with NaN or ±Inf does: refused with an error (default), or skipped (counted as zero). */
  nonFinite: 'reject' | 'skip';
}

/** The gradients of one clock, as they arrive: views of the received frames, not copies. */
interface Clock {
  grads: (Float32Array | undefined)[];
  weights: Float64Array;
  count: number;
}

export class ShardStore {
  readonly lo: number;
  readonly hi: number;
  /** P: the whole model's parameter count. */
  readonly size: number;
  /** Updates applied so far: the parameters are the result of updates 0 … applied − 1. */
  applied = 0;
  skippedNonFinite = 0;
  private readonly state: Record<string, Float32Array>;
  private readonly algorithm: Algorithm<any>;
  private readonly options: object;
  private readonly reduced: Float32Array;
  private readonly pending = new Map<number, Clock>();
  /** async: the update counter at each worker's last pull, for its staleness. */
  private readonly pulledAt: number[];
  /** sync/ssp: the first clock that waits for worker r's push; Infinity while r is not a member. */
  private readonly memberFrom: number[];
  /** Called after every update is applied, with the new count (a checkpointer listens here). */
  onApply: ((applied: number) => void) | null = null;
  /**
   * Called before an update starts to change the parameters: a server that is still copying the
   * current ones into replies, part by part, finishes those copies here.
   */
  beforeUpdate: (() => void) | null = null;
  /** This shard's parameters, keys [lo, hi), at index key − lo (read them through `params` or `paramsThrough`). */
  private readonly values: Float32Array;
  /**
   * The last update, while a push that asked to `defer` it is being answered: counted in `applied`,
   * stepped on keys [0, done) so far. `run(a, b)` steps [a, b); any order of slices gives the same
   * bits as one step over the range (the optimizers are elementwise).
   */
  private unsettled: { run: (a: number, b: number) => void; done: number; applied: number } | null = null;
  private deferring = false;

  constructor(readonly o: StoreOptions) {
    const model = mlp(o.sizes, { init: 'xavier', rng: new Random(o.seed) });
    const all = flattenParameters(model).params;
    this.size = all.length;
    [this.lo, this.hi] = shardRange(this.size, o.shards, o.shard);
    const n = this.hi - this.lo;
    // The range, its optimizer state and the reduced gradient live in the optimizer's WebAssembly
    // memory, so every update is stepped in place by the SIMD kernel instead of being copied into
    // it and back (4x faster for SGD at 10M floats); only the received gradient is copied in.
    this.values = optimizerMemory.alloc(n);
    this.values.set(all.subarray(this.lo, this.hi));
    ({ algorithm: this.algorithm, options: this.options } = namedOptimizer(o.optimizer, { lr: o.lr }));
    this.state = Object.fromEntries(this.algorithm.stateKeys(this.options).map((k) => [k, optimizerMemory.alloc(n).fill(this.algorithm.initialValue(k, this.options))]));
    this.reduced = optimizerMemory.alloc(n);
    this.pulledAt = new Array<number>(o.workers).fill(0);
    this.memberFrom = new Array<number>(o.workers).fill(0);
  }

  /** Updates stepped whole: `applied`, or one fewer while the last one is still being stepped part by part. */
  get stepped(): number {
    return this.applied - (this.unsettled === null ? 0 : 1);
  }

  /** This shard's parameters, keys [lo, hi), at index key − lo (live, with every update applied). */
  get params(): Float32Array {
    this.settle();
    return this.values;
  }

  /**
   * The live parameters with the update in progress (see `push`'s `defer`) applied to at least
   * indices [0, upTo): a sender copies [a, upTo) of them while the rest is still being stepped.
   */
  paramsThrough(upTo: number): Float32Array {
    this.settle(upTo);
    return this.values;
  }

  /**
   * Steps the update in progress on indices up to `upTo` (default: all of them); once it covers the
   * whole range, the update is complete and `onApply` is called. A no-op when nothing is pending.
   */
  settle(upTo = this.hi - this.lo): void {
    const u = this.unsettled;
    if (u === null) return;
    const n = this.hi - this.lo;
    const to = Math.min(n, upTo);
    if (to > u.done) {
      u.run(u.done, to);
      u.done = to;
    }
    if (u.done < n) return;
    this.unsettled = null;
    this.onApply?.(u.applied);
  }

  /** The optimizer's hyperparameters and the names of its state vectors (for checkpoints). */
  get optimizerOptions(): Readonly<Record<string, unknown>> {
    return this.options as Record<string, unknown>;
  }

  /** The optimizer state of this range, by key: each a Float32Array of hi − lo values (live, not copies). */
  get optimizerState(): Readonly<Record<string, Float32Array>> {
    this.settle();
    return this.state;
  }

  /**
   * Restores a checkpoint: `applied` updates, the parameters and the optimizer state of this range
   * (copied in; each must have hi − lo values and `state` every key). Only before any push.
   */
  restore(applied: number, params: Float32Array, state: Record<string, Float32Array>): void {
    this.settle();
    if (this.applied !== 0 || this.pending.size > 0) throw new Error('ShardStore.restore: the store has already taken pushes');
    this.values.set(params);
    for (const k of Object.keys(this.state)) this.state[k]!.set(state[k]!);
    this.applied = applied;
    this.pulledAt.fill(applied);
  }

  /** The worker ranks clock `applied` (the next update) waits for. */
  members(): number[] {
    return this.memberFrom.flatMap((from, r) => (from <= this.applied ? [r] : []));
  }

  /** Whether worker `rank` is a member (counted by some clock from now on). */
  isMember(rank: number): boolean {
    return this.memberFrom[rank] !== Infinity;
  }

  /**
   * Stops waiting for worker `rank`: its pushes not yet applied are discarded (its rows of those
   * steps are skipped) and every clock the others have completed is applied. Returns the number of
   * updates applied. Async: only bookkeeping.
   */
  drop(rank: number): number {
    if (this.memberFrom[rank] === Infinity) return 0;
    this.memberFrom[rank] = Infinity;
    for (const c of this.pending.values()) {
      if (c.grads[rank] === undefined) continue;
      c.grads[rank] = undefined;
      c.weights[rank] = 0;
      c.count--;
    }
    return this.applyReady();
  }

  /**
   * Makes worker `rank` a member from clock `step` on: clocks before it no longer wait for it (its
   * pushes to them are discarded), clocks from it do. `step` must not be applied yet (sync/ssp) and
   * at most 64 ahead. Returns the number of updates this applied. Throws PsError('bad-step').
   */
  join(rank: number, step: number): number {
    if (this.o.mode === 'async') {
      this.memberFrom[rank] = 0;
      return 0;
    }
    if (step < this.applied) throw new PsError('bad-step', `join at step ${step}: ${this.applied} updates are already applied (join at ${this.applied} or later)`);
    if (step > this.applied + 64) throw new PsError('bad-step', `join at step ${step}: more than 64 ahead of the ${this.applied} updates applied`);
    this.memberFrom[rank] = step;
    for (const [t, c] of this.pending) {
      if (t >= step || c.grads[rank] === undefined) continue;
      c.grads[rank] = undefined;
      c.weights[rank] = 0;
      c.count--;
    }
    return this.applyReady();
  }

  /** The update count a worker's pull for `step` waits for. */
  needFor(step: number): number {
    if (this.o.mode === 'async') return 0;
    return step - (this.o.mode === 'ssp' ? this.o.staleness : 0);
  }

  /** Notes that worker `rank` read the parameters now (async staleness). */
  notePull(rank: number): void {
    this.pulledAt[rank] = this.applied;
  }

  /**
   * Takes worker `rank`'s gradient of `step` (a view: kept, not copied, until its clock is applied).
   * Returns the number of updates that were applied (0 or more) and, in async mode, the push's
   * staleness. Throws PsError('bad-step' | 'non-finite').
   *
   * `finite`: whether the gradient is free of NaN and ±Inf, when the caller already scanned it (a
   * server scans each part as it arrives). `defer`: the last update this push completes is counted
   * in `applied` but stepped only as `paramsThrough`/`settle` ask for it, so that a server can send
   * each part of its reply as soon as that part is stepped. Reading `params` or
   * `optimizerState`, and the next update, settle it first, so nobody sees a half-stepped range;
   * `onApply` is called once it is settled, so the caller should `settle()` when its replies are out.
   */
  push(rank: number, step: number, rows: number, batchRows: number, grad: Float32Array, o: { finite?: boolean; defer?: boolean } = {}): { appliedNow: number; stale: number } {
    this.settle();
    this.deferring = o.defer === true;
    try {
      return this.take(rank, step, rows, batchRows, grad, o.finite ?? allFinite(grad));
    } finally {
      this.deferring = false;
    }
  }

  private take(rank: number, step: number, rows: number, batchRows: number, grad: Float32Array, finite: boolean): { appliedNow: number; stale: number } {
    const { mode, workers, staleness } = this.o;
    if (!finite && this.o.nonFinite === 'reject') throw new PsError('non-finite', `the gradient of step ${step} from worker ${rank} holds NaN or Inf; refused`);
    if (!finite) this.skippedNonFinite++;
    if (mode === 'async') {
      const stale = this.applied - this.pulledAt[rank]!;
      this.update(finite && grad.length > 0 ? (t, a, b) => this.algorithm.step(this.values, grad, this.state, this.options, t, a, b) : null);
      return { appliedNow: 1, stale };
    }
    const ahead = mode === 'ssp' ? staleness : 0;
    if (step < this.applied) throw new PsError('bad-step', `step ${step} from worker ${rank} is already applied (${this.applied} updates applied)`);
    if (step > this.applied + ahead) {
      throw new PsError('bad-step', `step ${step} from worker ${rank} is more than ${ahead} ahead of the ${this.applied} updates applied`);
    }
    let clock = this.pending.get(step);
    if (clock === undefined) {
      clock = { grads: new Array(workers), weights: new Float64Array(workers), count: 0 };
      this.pending.set(step, clock);
    }
    if (clock.grads[rank] !== undefined) throw new PsError('bad-step', `worker ${rank} already pushed step ${step}`);
    if (this.memberFrom[rank]! > step) {
      const from = this.memberFrom[rank]!;
      throw new PsError('bad-step', from === Infinity ? `worker ${rank} is not a member of the run (it was dropped): join first` : `worker ${rank} joins at step ${from}, not ${step}`);
    }
    clock.grads[rank] = grad;
    clock.weights[rank] = finite && batchRows > 0 ? rows / batchRows : 0;
    clock.count++;
    return { appliedNow: this.applyReady(), stale: 0 };
  }

  /** Applies every clock, in order from the next one, whose member workers have all pushed. */
  private applyReady(): number {
    const workers = this.o.workers;
    let appliedNow = 0;
    for (let c = this.pending.get(this.applied); c !== undefined && this.complete(this.applied, c); c = this.pending.get(this.applied)) {
      this.pending.delete(this.applied);
      if (c.count < workers) {
        // Some rank is not a member at this clock: renormalise the weights of the pushes received.
        let sum = 0;
        for (let r = 0; r < workers; r++) sum += c.weights[r]!;
        if (sum > 0) for (let r = 0; r < workers; r++) c.weights[r] = c.weights[r]! / sum;
      }
      this.apply(c);
      appliedNow++;
    }
    return appliedNow;
  }

  /** Clock t is complete when it has a push from every member at t (and at least one push). */
  private complete(t: number, c: Clock): boolean {
    if (c.count === 0) return false;
    for (let r = 0; r < this.o.workers; r++) if (this.memberFrom[r]! <= t && c.grads[r] === undefined) return false;
    return true;
  }

  /** Reduces a complete clock in rank order (float64 accumulation) and steps the range. */
  private apply(c: Clock): void {
    const g = this.reduced;
    // Ranks with weight 0 (no rows, or a skipped non-finite gradient) are left out: for finite
    // gradients adding 0·g changes no bit, and a skipped gradient's NaN must not reach the sum.
    const ranks = c.grads.flatMap((grad, r) => (c.weights[r] !== 0 ? [r] : []));
    const w = ranks.map((r) => c.weights[r]!);
    const grads = ranks.map((r) => c.grads[r]!);
    this.update(this.hi > this.lo ? (t, a, b) => {
      if (grads.length > 0) weightedSum(g, grads, w, a, b); // the same bits as local sync's reduction
      else g.fill(0, a, b);
      this.algorithm.step(this.values, g, this.state, this.options, t, a, b);
    } : null);
  }

  /**
   * Counts one update and steps it (`run(t, a, b)`: step count t on [a, b)) — at once, or, while a
   * push defers it, slice by slice through `settle`. The previous update is always complete first.
   */
  private update(run: ((t: number, a: number, b: number) => void) | null): void {
    this.beforeUpdate?.();
    this.settle();
    const t = ++this.applied;
    this.unsettled = { run: run === null ? () => {} : (a, b) => run(t, a, b), done: 0, applied: t };
    if (!this.deferring) this.settle();
  }
}

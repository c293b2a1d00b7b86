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
 */
import { Random, flattenParameters, mlp } from '@loom/tensor-core';
import { namedOptimizer, type Algorithm } from '@loom/optimizer';
import type { Mode } from '../local/shared.js';
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
  /** This shard's parameters, keys [lo, hi), at index key − lo. */
  readonly params: Float32Array;
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

  constructor(readonly o: StoreOptions) {
    const model = mlp(o.sizes, { init: 'xavier', rng: new Random(o.seed) });
    const all = flattenParameters(model).params;
    this.size = all.length;
    [this.lo, this.hi] = shardRange(this.size, o.shards, o.shard);
    this.params = all.slice(this.lo, this.hi);
    const n = this.hi - this.lo;
    ({ algorithm: this.algorithm, options: this.options } = namedOptimizer(o.optimizer, { lr: o.lr }));
    this.state = Object.fromEntries(this.algorithm.stateKeys(this.options).map((k) => [k, new Float32Array(n).fill(this.algorithm.initialValue(k, this.options))]));
    this.reduced = new Float32Array(n);
    this.pulledAt = new Array<number>(o.workers).fill(0);
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
   */
  push(rank: number, step: number, rows: number, batchRows: number, grad: Float32Array): { appliedNow: number; stale: number } {
    const { mode, workers, staleness } = this.o;
    const finite = allFinite(grad);
    if (!finite && this.o.nonFinite === 'reject') throw new PsError('non-finite', `the gradient of step ${step} from worker ${rank} holds NaN or Inf; refused`);
    if (!finite) this.skippedNonFinite++;
    if (mode === 'async') {
      const stale = this.applied - this.pulledAt[rank]!;
      this.applied++;
      if (finite && grad.length > 0) this.algorithm.step(this.params, grad, this.state, this.options, this.applied);
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
    clock.grads[rank] = grad;
    clock.weights[rank] = finite && batchRows > 0 ? rows / batchRows : 0;
    clock.count++;
    let appliedNow = 0;
    for (let c = this.pending.get(this.applied); c !== undefined && c.count === workers; c = this.pending.get(this.applied)) {
      this.pending.delete(this.applied);
      this.apply(c);
      appliedNow++;
    }
    return { appliedNow, stale: 0 };
  }

  /** Reduces a complete clock in rank order (float64 accumulation) and steps the range. */
  private apply(c: Clock): void {
    const n = this.hi - this.lo;
    const g = this.reduced;
    // Ranks with weight 0 (no rows, or a skipped non-finite gradient) are left out: for finite
    // gradients adding 0·g changes no bit, and a skipped gradient's NaN must not reach the sum.
    const ranks = c.grads.flatMap((grad, r) => (c.weights[r] !== 0 ? [r] : []));
    const w = ranks.map((r) => c.weights[r]!);
    const grads = ranks.map((r) => c.grads[r]!);
    for (let j = 0; j < n; j++) {
      let acc = 0;
      for (let k = 0; k < grads.length; k++) acc += w[k]! * grads[k]![j]!;
      g[j] = acc;
    }
    this.applied++;
    if (n > 0) this.algorithm.step(this.params, g, this.state, this.options, this.applied);
  }
}

function allFinite(a: Float32Array): boolean {
  // x − x is 0 for every finite x and NaN for NaN and ±Inf; summing keeps any NaN.
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]! - a[i]!;
  return s === 0;
}

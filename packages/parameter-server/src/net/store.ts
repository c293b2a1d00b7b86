/**
 * One shard's parameters and optimizer state: a contiguous key range [lo, hi) of the flat
 * parameter vector, without sockets. When a push becomes an update is its policy's decision
 * (./policy.ts: sync, ssp, async and membership, as in ../local/policies.ts); the store steps the
 * updates the policy hands it, with a server process in the place of the threads that reduce and
 * step:
 *
 * sync, ssp  update t + 1 is the pushes of clock t reduced weighted by rows/batchRows IN RANK ORDER
 *            with float64 accumulation (@loom/optimizer's weightedSum, as local sync reduces), then
 *            stepped with the optimizer's functional core at step count t + 1. One worker is bitwise
 *            single-process training; W workers equal W local threads bitwise.
 * async      each push is stepped as it is, weighted 1, at the policy's update count.
 *
 * It also owns the memory gradients sent in parts land in (a PayloadPool), since how long a push is
 * read is counted on its clock.
 */
import { Random, flattenParameters, mlp, type Module } from '@loom/tensor-core';
import { allFinite, namedOptimizer, optimizerMemory, weightedSum, type Algorithm } from '@loom/optimizer';
import type { Mode } from '../mode.js';
import { PsError } from './errors.js';
import { PayloadPool } from './payload-pool.js';
import { netPolicy, type NetPolicy, type PushOutcome } from './policy.js';
import { shardRange } from './shards.js';
import type { DenseTable } from './table.js';

export interface StoreOptions {
  /** MLP layer sizes; every server and worker builds the model from `seed` (Xavier, zero biases). */
  sizes: number[];
  /**
   * The dense model when it is not an MLP of `sizes` (the CTR model's dense part): built from
   * `new Random(seed)` by every server and worker alike, so nothing is broadcast.
   */
  model?: (rng: Random) => Module<any>;
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

/** The dense model of a store's options, its weights drawn from `seed`. */
export function denseModel(o: Pick<StoreOptions, 'sizes' | 'model'>, seed: number): Module<any> {
  return o.model !== undefined ? o.model(new Random(seed)) : mlp(o.sizes, { init: 'xavier', rng: new Random(seed) });
}

export class ShardStore implements DenseTable {
  readonly kind = 'dense';
  readonly lo: number;
  readonly hi: number;
  /** P: the whole model's parameter count. */
  readonly size: number;
  skippedNonFinite = 0;
  /** When a push becomes an update, and which workers each update waits for. */
  readonly policy: NetPolicy<Float32Array>;
  private readonly state: Record<string, Float32Array>;
  private readonly algorithm: Algorithm<any>;
  private readonly options: object;
  private readonly reduced: Float32Array;
  /**
   * Gradients received in parts. async steps each push where it landed — in the optimizer's memory,
   * so in place, with no staging copy; sync and ssp reduce pushes into `reduced` first, so ordinary
   * arrays do for them.
   */
  private readonly payloads: PayloadPool;
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
    const all = flattenParameters(denseModel(o, o.seed)).params;
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
    this.payloads = new PayloadPool(8, o.mode === 'async' && optimizerMemory.available ? optimizerMemory : undefined);
    this.policy = netPolicy<Float32Array>(o, {
      begin: () => {
        this.beforeUpdate?.();
        this.settle();
      },
      sum: (t, grads, weights) =>
        this.schedule(t, n > 0 ? (a, b) => {
          if (grads.length > 0) weightedSum(this.reduced, grads, weights, a, b); // the same bits as local sync's reduction
          else this.reduced.fill(0, a, b);
          this.algorithm.step(this.values, this.reduced, this.state, this.options, t, a, b);
        } : null),
      own: (t, grad) => this.schedule(t, grad !== null && grad.length > 0 ? (a, b) => this.algorithm.step(this.values, grad, this.state, this.options, t, a, b) : null),
    });
  }

  /** Updates applied so far: the parameters are the result of updates 0 … applied − 1. */
  get applied(): number {
    return this.policy.applied;
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
    this.policy.restore(applied);
    this.values.set(params);
    for (const k of Object.keys(this.state)) this.state[k]!.set(state[k]!);
  }

  /** The worker ranks clock `applied` (the next update) waits for (see NetPolicy). */
  members(): number[] {
    return this.policy.members();
  }

  /** Whether worker `rank` is a member (counted by some clock from now on). */
  isMember(rank: number): boolean {
    return this.policy.isMember(rank);
  }

  /**
   * Stops waiting for worker `rank` (its pushes so far are kept) and applies every clock the others
   * have completed. Returns the number of updates applied. Async: only bookkeeping.
   */
  drop(rank: number): number {
    return this.policy.drop(rank);
  }

  /**
   * Makes worker `rank` a member from clock `step` on: clocks before it no longer wait for it, clocks
   * from it do (its earlier pushes to them are discarded: it computes those steps again). `step` must not be applied yet (sync/ssp) and
   * at most 64 ahead. Returns the number of updates this applied. Throws PsError('bad-step').
   */
  join(rank: number, step: number): number {
    return this.policy.join(rank, step);
  }

  /** The update count a worker's pull for `step` waits for. */
  needFor(step: number): number {
    return this.policy.needFor(step);
  }

  /** Notes that worker `rank` read the parameters now (async staleness). */
  notePull(rank: number): void {
    this.policy.notePull(rank);
  }

  /**
   * Takes worker `rank`'s gradient of `step` (a view: kept, not copied, until its clock is applied).
   * Returns the number of updates that were applied (0 or more), in async mode the push's
   * staleness, and until which update `grad` is read. Throws PsError('bad-step' | 'non-finite').
   *
   * `finite`: whether the gradient is free of NaN and ±Inf, when the caller already scanned it (a
   * server scans each part as it arrives). `defer`: the last update this push completes is counted
   * in `applied` but stepped only as `paramsThrough`/`settle` ask for it, so that a server can send
   * each part of its reply as soon as that part is stepped. Reading `params` or
   * `optimizerState`, and the next update, settle it first, so nobody sees a half-stepped range;
   * `onApply` is called once it is settled, so the caller should `settle()` when its replies are out.
   */
  push(rank: number, step: number, rows: number, batchRows: number, grad: Float32Array, o: { finite?: boolean; defer?: boolean; live?: readonly number[] } = {}): PushOutcome {
    this.settle();
    this.deferring = o.defer === true;
    try {
      return this.take(rank, step, rows, batchRows, grad, o.finite ?? allFinite(grad), o.live);
    } finally {
      this.deferring = false;
    }
  }

  private take(rank: number, step: number, rows: number, batchRows: number, grad: Float32Array, finite: boolean, live: readonly number[] | undefined): PushOutcome {
    if (!finite && this.o.nonFinite === 'reject') throw new PsError('non-finite', `the gradient of step ${step} from worker ${rank} holds NaN or Inf; refused`);
    if (!finite) this.skippedNonFinite++;
    return this.policy.push(rank, step, grad, rows, batchRows, finite, live);
  }

  /**
   * Memory for a gradient of `floats` values that arrives in parts, reused from earlier pushes whose
   * updates are stepped. Give it back with `release` (refused) or `holdUntil` (taken).
   */
  receive(floats: number): Float32Array {
    return this.payloads.take(floats, this.stepped);
  }

  /** A received gradient the store did not take: its memory is free at once. */
  release(payload: Float32Array): void {
    this.payloads.release(payload);
  }

  /** A received gradient the store took: its memory is free once `readUntil` updates are stepped (PushOutcome.readUntil). */
  holdUntil(payload: Float32Array, readUntil: number): void {
    this.payloads.holdUntil(payload, readUntil);
  }

  /** Steps what is left of the last update and frees the received gradients' memory (the server is closing). */
  dispose(): void {
    this.settle();
    this.payloads.dispose();
  }

  /**
   * Update t, stepped (`run(a, b)`: step count t on [a, b)) at once, or — while a push defers it —
   * slice by slice through `settle`. The previous update is complete first (the policy's `begin`).
   */
  private schedule(t: number, run: ((a: number, b: number) => void) | null): void {
    this.unsettled = { run: run ?? (() => {}), done: 0, applied: t };
    if (!this.deferring) this.settle();
  }
}

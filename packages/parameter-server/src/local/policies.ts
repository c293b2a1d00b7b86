/**
 * The three ways a local run turns workers' gradients into updates, each a Transport over the
 * run's shared memory (see shared.ts). The worker loop is the same under all three.
 *
 * sync (bulk-synchronous): every worker pushes the gradient of its part of step t's global batch;
 *   after a barrier each worker reduces ITS OWN cache-aligned slice of the parameters — the
 *   row-weighted sum of all workers' gradients, in worker order — and steps that slice with the
 *   optimizer's functional core; a second barrier publishes the new parameters. The result is the
 *   single-process step on the same global batch, up to float32 rounding of the reduction.
 *
 * ssp (stale synchronous parallel, bound S): the update of clock t is the same row-weighted average
 *   of all workers' step-t gradients, applied in clock order by the last worker to push it; a worker
 *   may start step t once updates 0 … t−S−1 are applied, i.e. compute on parameters at most S
 *   updates old. S = 0 is therefore the sync computation, with one thread applying each update.
 *
 * async (Hogwild!): each worker applies its own gradient to the shared parameters as soon as it
 *   has it, without locks, counting updates in one shared word for the optimizer's step count.
 */
import type { Algorithm } from '@loom/optimizer';
import type { StepInfo, Transport } from '@loom/worker';
import { Word, sliceOf, views, type SharedRun } from './shared.js';
import { at, barrier, waitAtLeast } from './sync-point.js';

/** Staleness observed by one worker: how many updates older than the newest its parameters were. */
export interface StalenessStats {
  max: number;
  sum: number;
  count: number;
}

function observe(s: StalenessStats, stale: number): void {
  s.max = Math.max(s.max, stale);
  s.sum += stale;
  s.count++;
}

export interface PolicyOptions {
  run: SharedRun;
  rank: number;
  algorithm: Algorithm<any>;
  options: object;
}

/** A shared-memory transport, plus the staleness it observed. */
export interface LocalTransport extends Transport {
  readonly staleness: StalenessStats;
  /** The array the worker's model should accumulate gradients into. */
  readonly gradBuffer: Float32Array;
}

/**
 * The obviously-correct reduction, kept as the oracle of `reduceSlots`: out[j] = Σ_v w[first+v] ·
 * slot(first+v)[j] over [lo, hi), summed in slot order in float64, rounded once into slot(first).
 */
export function reduceSlotsReference(slots: Float32Array[], weights: Float64Array, first: number, n: number, lo: number, hi: number): Float32Array {
  const out = slots[first]!;
  for (let j = lo; j < hi; j++) {
    let acc = 0;
    for (let v = 0; v < n; v++) acc += weights[first + v]! * slots[first + v]![j]!;
    out[j] = acc;
  }
  return out;
}

/**
 * The same sums, bit for bit, fast: indexing an array of typed arrays in the inner loop costs
 * ~6 ns per element, so two slots (the case on two cores) get one fused loop, and more slots walk
 * slot by slot through a float64 scratch row. `scratch` must hold at least hi − lo values.
 */
export function reduceSlots(slots: Float32Array[], weights: Float64Array, first: number, n: number, lo: number, hi: number, scratch: Float64Array): Float32Array {
  const out = slots[first]!;
  const w0 = weights[first]!;
  if (n === 1) {
    if (w0 !== 1) for (let j = lo; j < hi; j++) out[j] = 0 + w0 * out[j]!;
    return out;
  }
  if (n === 2) {
    const b = slots[first + 1]!;
    const w1 = weights[first + 1]!;
    for (let j = lo; j < hi; j++) out[j] = 0 + w0 * out[j]! + w1 * b[j]!;
    return out;
  }
  for (let j = lo; j < hi; j++) scratch[j - lo] = 0 + w0 * out[j]!;
  for (let v = 1; v < n; v++) {
    const s = slots[first + v]!;
    const w = weights[first + v]!;
    for (let j = lo; j < hi; j++) scratch[j - lo]! += w * s[j]!;
  }
  for (let j = lo; j < hi; j++) out[j] = scratch[j - lo]!;
  return out;
}

class SyncPolicy implements LocalTransport {
  readonly staleness = { max: 0, sum: 0, count: 0 };
  readonly gradBuffer: Float32Array;
  private readonly v;
  private readonly slots: Float32Array[];
  private readonly lo: number;
  private readonly hi: number;
  private readonly scratch: Float64Array;

  constructor(private readonly o: PolicyOptions) {
    this.v = views(o.run);
    this.slots = Array.from({ length: o.run.workers }, (_, i) => this.v.slot(i));
    this.gradBuffer = this.slots[o.rank]!;
    [this.lo, this.hi] = sliceOf(o.run, o.rank);
    this.scratch = new Float64Array(o.run.workers > 2 ? this.hi - this.lo : 0);
  }

  pull(): boolean {
    return Atomics.load(this.v.ctrl, at(Word.StopDecided)) === 0;
  }

  push(_grads: Float32Array, info: StepInfo): void {
    const { run, rank, algorithm, options } = this.o;
    this.v.weights[rank] = info.batchRows > 0 ? info.rows / info.batchRows : 0;
    barrier(this.v.ctrl, run.workers); // every gradient is in its slot
    const g = reduceSlots(this.slots, this.v.weights, 0, run.workers, this.lo, this.hi, this.scratch);
    if (this.hi > this.lo) algorithm.step(this.v.params, g, this.v.state, options, info.step + 1, this.lo, this.hi);
    barrier(this.v.ctrl, run.workers); // every slice is stepped: the parameters are step t's result
    observe(this.staleness, 0);
  }
}

class SspPolicy implements LocalTransport {
  readonly staleness = { max: 0, sum: 0, count: 0 };
  readonly gradBuffer: Float32Array;
  private readonly v;
  private readonly slots: Float32Array[];
  private readonly scratch: Float64Array;

  constructor(private readonly o: PolicyOptions) {
    this.v = views(o.run);
    this.slots = Array.from({ length: o.run.ring * o.run.workers }, (_, i) => this.v.slot(i));
    this.gradBuffer = new Float32Array(o.run.size); // copied into the clock's slot on push
    this.scratch = new Float64Array(o.run.workers > 2 ? o.run.size : 0);
  }

  private stopping = () => Atomics.load(this.v.ctrl, at(Word.StopRequested)) !== 0;

  pull(_params: Float32Array, info: StepInfo): boolean {
    if (this.stopping()) return false;
    const applied = waitAtLeast(this.v.ctrl, Word.Applied, info.step - this.o.run.staleness, this.stopping);
    if (applied < 0) return false;
    observe(this.staleness, info.step - applied);
    return true;
  }

  push(grads: Float32Array, info: StepInfo): void {
    const { run, rank, algorithm, options } = this.o;
    const ctrl = this.v.ctrl;
    const clock = info.step;
    const first = (clock % run.ring) * run.workers;
    this.slots[first + rank]!.set(grads);
    this.v.weights[first + rank] = info.batchRows > 0 ? info.rows / info.batchRows : 0;
    const pushedWord = Word.Pushed + (clock % run.ring);
    if (Atomics.add(ctrl, at(pushedWord), 1) !== run.workers - 1) return;
    // The last to push clock t applies its update, after update t−1 (updates apply in clock order).
    waitAtLeast(ctrl, Word.Applied, clock);
    const g = reduceSlots(this.slots, this.v.weights, first, run.workers, 0, run.size, this.scratch);
    algorithm.step(this.v.params, g, this.v.state, options, clock + 1, 0, run.size);
    Atomics.store(ctrl, at(pushedWord), 0);
    Atomics.store(ctrl, at(Word.Applied), clock + 1);
    Atomics.notify(ctrl, at(Word.Applied));
  }
}

class AsyncPolicy implements LocalTransport {
  readonly staleness = { max: 0, sum: 0, count: 0 };
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
    observe(this.staleness, step - 1 - this.readAt);
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

/**
 * The shared memory of a local (multi-thread) run, as plain data that can be posted to threads:
 * SharedArrayBuffers for parameters, gradient slots, optimizer state and control words.
 *
 * Layout (f32 unless noted; P parameters, stride = P rounded up to a 64-byte cache line):
 *   params      (stride)               the one copy of the model's parameters
 *   grads       (slots, stride)        gradient slots: one per worker (sync, async), or one per
 *                                      worker per in-flight clock (ssp: (S + 1) · N)
 *   weights     (slots) f64            each slot's share of its global batch (rows / batchRows)
 *   state[key]  (stride)               optimizer state (Adam's expAvg, …)
 *   ctrl        (words, 16) i32        control words, one per 64-byte line so that threads
 *                                      spinning on one never invalidate another's line
 * Slices that different threads write (sync mode's reduce-and-step) start on cache-line
 * boundaries too, so no two threads ever write the same line.
 */
export type Mode = 'sync' | 'async' | 'ssp';
export const MODES: readonly Mode[] = ['sync', 'async', 'ssp'];

/** Floats per 64-byte cache line. */
export const LINE = 16;

/** Control words (each at index word · LINE of ctrl). */
export const enum Word {
  /** Threads arrived at the current barrier. */
  Count = 0,
  /** Barrier generation: bumped by the last thread to arrive, which releases the others. */
  Generation = 1,
  /** Set by the coordinator when a worker failed: every waiting thread throws. */
  Abort = 2,
  /** Set by the coordinator on SIGINT: stop after the current step. */
  StopRequested = 3,
  /** Sync mode: StopRequested as seen by the last barrier, so every worker stops at the same step. */
  StopDecided = 4,
  /** Ssp mode: aggregated updates applied so far (the clock every worker's staleness is measured against). */
  Applied = 5,
  /** Async mode: updates applied so far by any worker. */
  Updates = 6,
  /** Ssp mode: pushes received for clock c live at Pushed + (c mod ring). */
  Pushed = 7,
}

export interface SharedRun {
  mode: Mode;
  staleness: number;
  workers: number;
  /** Number of parameters. */
  size: number;
  /** size rounded up to a cache line. */
  stride: number;
  /** Gradient slots in flight per worker: 1, or S + 1 in ssp mode. */
  ring: number;
  params: SharedArrayBuffer;
  grads: SharedArrayBuffer;
  weights: SharedArrayBuffer;
  state: Record<string, SharedArrayBuffer>;
  ctrl: SharedArrayBuffer;
}

export const roundToLine = (n: number): number => Math.ceil(n / LINE) * LINE;

/** Allocates the shared memory of a run; state arrays are filled with their initial values. */
export function allocateRun(
  mode: Mode,
  workers: number,
  staleness: number,
  size: number,
  stateInit: Record<string, number>,
): SharedRun {
  const stride = roundToLine(size);
  const ring = mode === 'ssp' ? staleness + 1 : 1;
  const slots = ring * workers;
  const f32 = (n: number) => new SharedArrayBuffer(4 * n);
  const state: Record<string, SharedArrayBuffer> = {};
  for (const [key, value] of Object.entries(stateInit)) {
    state[key] = f32(stride);
    if (value !== 0) new Float32Array(state[key]).fill(value, 0, size);
  }
  return {
    mode, staleness, workers, size, stride, ring,
    params: f32(stride),
    grads: f32(slots * stride),
    weights: new SharedArrayBuffer(8 * slots),
    state,
    ctrl: new SharedArrayBuffer(4 * LINE * (Word.Pushed + ring)),
  };
}

/** The [start, end) of the parameters that worker `rank` reduces and steps in sync mode. */
export function sliceOf(run: Pick<SharedRun, 'size' | 'workers'>, rank: number): [number, number] {
  const lines = Math.ceil(run.size / LINE);
  const lo = Math.floor((rank * lines) / run.workers) * LINE;
  const hi = Math.floor(((rank + 1) * lines) / run.workers) * LINE;
  return [Math.min(lo, run.size), Math.min(hi, run.size)];
}

/** Typed views of a run's buffers. */
export function views(run: SharedRun) {
  const state: Record<string, Float32Array> = {};
  for (const [k, b] of Object.entries(run.state)) state[k] = new Float32Array(b, 0, run.size);
  return {
    params: new Float32Array(run.params, 0, run.size),
    /** Gradient slot i (of ring · workers), P floats. */
    slot: (i: number) => new Float32Array(run.grads, 4 * i * run.stride, run.size),
    weights: new Float64Array(run.weights),
    state,
    ctrl: new Int32Array(run.ctrl),
  };
}

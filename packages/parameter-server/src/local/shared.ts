/**
 * The shared memory of a local (multi-thread) run, as plain data that can be posted to threads.
 *
 * Parameters, gradient slots and optimizer state live in @loom/optimizer's shared WebAssembly
 * memory (`optimizerMemory`), which every worker thread adopts: the optimizer kernels then step a
 * thread's slice in place, and the weighted reduction runs in place beside it, with no copy into or
 * out of WebAssembly. (Where the runtime has no shared WebAssembly memory they live in one plain
 * SharedArrayBuffer instead; the kernels then copy through their staging areas — same bits.)
 *
 * Layout of that block (f32, P parameters, stride = P rounded up to a 64-byte cache line):
 *   params      (stride)               the one copy of the model's parameters
 *   grads       (slots, stride)        gradient slots: one per worker (sync, async), or one per
 *                                      worker per in-flight clock (ssp: (S + 1) · N)
 *   state[key]  (stride)               optimizer state (Adam's expAvg, …)
 * and beside it, SharedArrayBuffers:
 *   weights     (slots) f64            each slot's share of its global batch (rows / batchRows)
 *   ctrl        (words, 16) i32        control words, one per 64-byte line so that threads
 *                                      spinning on one never invalidate another's line
 * Slices that different threads write (sync mode's reduce-and-step) start on cache-line
 * boundaries too, so no two threads ever write the same line.
 */
import { optimizerMemory, type ThreadMemoryHandle } from '@loom/optimizer';
import { useSharedMemory } from '@loom/tensor-core';
import type { Mode } from '../mode.js';

/**
 * Bytes of each thread's scratch region for its matrix products (operands that are not in the run's
 * memory, and the GEMM's packing workspace): a few batch-by-layer activations; a product that does
 * not fit takes tensor-core's copying path, with the same result.
 */
const SCRATCH_BYTES = 8 << 20;

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

/**
 * The words of a remote worker process's compute threads (../net/hierarchy.ts): a sync run of T
 * threads (ring 1, so its own words end at Pushed) with three words after its own, asked for with
 * allocateRun's `extraWords`.
 */
export const enum HierarchyWord {
  /** Set by the main thread: the parameters for step Ready − 1 are in params. */
  Ready = Word.Pushed + 1,
  /** Set by thread 0: slot 0 holds the threads' reduced gradient of step Reduced − 1. */
  Reduced = Word.Pushed + 2,
  /** Set by thread 0 with Reduced: that step's batchRows. */
  Batch = Word.Pushed + 3,
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
  /** Where params, grads and state are: the optimizer's memory (`threads` set), or a plain SharedArrayBuffer. */
  heap: { memory: ThreadMemoryHandle['memory']; threads: ThreadMemoryHandle[]; scratch: number[] } | { buffer: SharedArrayBuffer };
  /** Byte offsets in the heap (params first: the block allocateRun took starts there). */
  at: { params: number; grads: number; state: Record<string, number> };
  weights: SharedArrayBuffer;
  ctrl: SharedArrayBuffer;
}

export const roundToLine = (n: number): number => Math.ceil(n / LINE) * LINE;

/**
 * Allocates the shared memory of a run (on the thread that owns the optimizer memory, before any
 * worker starts); state arrays are filled with their initial values. `releaseRun` frees it.
 */
export function allocateRun(
  mode: Mode,
  workers: number,
  staleness: number,
  size: number,
  stateInit: Record<string, number>,
  /** Control words after the run's own, for its owner's use (HierarchyWord). */
  extraWords = 0,
): SharedRun {
  const stride = roundToLine(size);
  const ring = mode === 'ssp' ? staleness + 1 : 1;
  const slots = ring * workers;
  const keys = Object.keys(stateInit);
  const floats = (1 + slots + keys.length) * stride;
  let heap: SharedRun['heap'], block: Float32Array;
  if (optimizerMemory.available) {
    block = optimizerMemory.alloc(floats);
    heap = {
      memory: optimizerMemory.memory!,
      threads: Array.from({ length: workers }, () => optimizerMemory.forThread()),
      scratch: Array.from({ length: workers }, () => optimizerMemory.alloc(SCRATCH_BYTES / 4).byteOffset),
    };
  } else {
    block = new Float32Array(new SharedArrayBuffer(4 * floats));
    heap = { buffer: block.buffer as SharedArrayBuffer };
  }
  const base = block.byteOffset;
  const state: Record<string, number> = {};
  keys.forEach((key, i) => {
    state[key] = base + 4 * (1 + slots + i) * stride;
    if (stateInit[key] !== 0) block.fill(stateInit[key]!, (1 + slots + i) * stride, (1 + slots + i) * stride + size);
  });
  return {
    mode, staleness, workers, size, stride, ring, heap,
    at: { params: base, grads: base + 4 * stride, state },
    weights: new SharedArrayBuffer(8 * slots),
    ctrl: new SharedArrayBuffer(4 * LINE * (Word.Pushed + ring + extraWords)),
  };
}

/** Frees what allocateRun took from the optimizer memory (on the owning thread, after every worker is done). */
export function releaseRun(run: SharedRun): void {
  if (!('threads' in run.heap)) return;
  for (const t of run.heap.threads) optimizerMemory.releaseThread(t);
  for (const at of run.heap.scratch) optimizerMemory.free(new Float32Array(optimizerMemory.memory!.buffer, at, SCRATCH_BYTES / 4));
  const floats = (1 + run.ring * run.workers + Object.keys(run.at.state).length) * run.stride;
  optimizerMemory.free(new Float32Array(optimizerMemory.memory!.buffer, run.at.params, floats));
}

/**
 * In worker thread `rank`, before its first step: adopt the run's optimizer memory, so that the
 * thread's optimizer steps and reductions over the run's arrays run in place, and let its matrix
 * products read the weights and write their gradients there in place too.
 */
export function bindThread(run: SharedRun, rank: number): void {
  if (!('threads' in run.heap)) return;
  optimizerMemory.adopt(run.heap.threads[rank]!);
  useSharedMemory({ memory: run.heap.memory, scratchAt: run.heap.scratch[rank]!, scratchBytes: SCRATCH_BYTES });
}

/** The [start, end) of the parameters that worker `rank` reduces and steps in sync mode. */
export function sliceOf(run: Pick<SharedRun, 'size' | 'workers'>, rank: number): [number, number] {
  const lines = Math.ceil(run.size / LINE);
  const lo = Math.floor((rank * lines) / run.workers) * LINE;
  const hi = Math.floor(((rank + 1) * lines) / run.workers) * LINE;
  return [Math.min(lo, run.size), Math.min(hi, run.size)];
}

/** Typed views of a run's buffers (made from this thread's view of the memory, so kernels recognise them). */
export function views(run: SharedRun) {
  const buffer = 'memory' in run.heap ? run.heap.memory.buffer : run.heap.buffer;
  const f32 = (at: number) => new Float32Array(buffer, at, run.size);
  const state: Record<string, Float32Array> = {};
  for (const [k, at] of Object.entries(run.at.state)) state[k] = f32(at);
  return {
    params: f32(run.at.params),
    /** Gradient slot i (of ring · workers), P floats. */
    slot: (i: number) => f32(run.at.grads + 4 * i * run.stride),
    weights: new Float64Array(run.weights),
    state,
    ctrl: new Int32Array(run.ctrl),
  };
}

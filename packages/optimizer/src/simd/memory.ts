/**
 * The one WebAssembly memory every optimizer kernel runs on, and a small allocator of Float32Arrays
 * inside it. A step over arrays that live here runs in place: the kernel gets their byte offsets
 * and touches each element once, with no copy in or out (see kernel.ts).
 *
 * Why shared memory: `memory.grow()` detaches every view of a non-shared memory's ArrayBuffer, so
 * arrays handed out before a growth would silently become empty. A shared memory reserves its
 * maximum address range up front (virtual address space only: pages are committed when touched),
 * grows in place, and its buffer is a SharedArrayBuffer that growth never detaches — old views keep
 * working and alias the same bytes as new ones. Each growth gives `memory.buffer` a new
 * SharedArrayBuffer object (a longer view of the same bytes), so "is this array in the memory" is
 * "is its buffer one of the buffer objects this memory has had", which `contains` tracks.
 *
 * Where a runtime has no shared WebAssembly memory, kernels get a small private memory for staging
 * chunks, and `alloc` returns ordinary Float32Arrays: every step then takes the copying path.
 *
 * Layout (byte offsets):
 *   [0, STAGING_BYTES)   the copying path's staging area: MAX_ARRAYS arrays of CHUNK f32
 *   [STAGING_BYTES, …)   blocks handed out by alloc, each 16-byte aligned
 *
 * Worker threads can step arrays of this memory in place too: the owning thread hands a thread a
 * handle (`forThread`: the memory and a staging area of the thread's own, allocated here) and the
 * thread `adopt`s it before its first step. An adopting thread never allocates — the allocator's
 * bookkeeping lives in the owning thread's JavaScript — so the owner allocates everything a run
 * needs before it starts the threads.
 */
import { argError, OptimizerError } from '../errors.js';

/** Elements per chunk copied through the staging area. 4096 f32 = 16 KiB per array. */
export const CHUNK = 4096;
/** The most arrays one kernel may use. */
export const MAX_ARRAYS = 8;
export const STAGING_BYTES = MAX_ARRAYS * CHUNK * 4;

const PAGE = 65536;
/** WebAssembly's 32-bit address space, 4 GiB: reserved, not committed. */
export const MAX_PAGES = 65536;
const ALIGN = 16;

/** The part of the WebAssembly API used here (typed locally: the build's lib has no DOM types). */
export interface WasmMemory {
  readonly buffer: ArrayBuffer | SharedArrayBuffer;
  grow(pages: number): number;
}
interface MemoryApi {
  Memory: new (d: { initial: number; maximum?: number; shared?: boolean }) => WasmMemory;
}

interface Heap {
  readonly memory: WasmMemory;
  /** Byte offset of this thread's staging area: 0 in the owning thread, an allocated block in an adopting one. */
  readonly stagingAt: number;
  /** True in a thread that adopted another thread's memory: alloc and free are the owner's. */
  readonly adopted: boolean;
  /** True when the memory is shared, so alloc hands out views into it. */
  readonly shared: boolean;
  /** Every buffer object `memory.buffer` has returned. */
  readonly buffers: WeakSet<object>;
  buffer: ArrayBuffer | SharedArrayBuffer;
  /** End of the highest block in use; everything above is free. */
  top: number;
  /** Free blocks below `top`, sorted by offset, never adjacent to each other. */
  readonly free: { at: number; bytes: number }[];
  /** Blocks in use: byte offset → [bytes, elements]. */
  readonly live: Map<number, [number, number]>;
}

let heap: Heap | null | undefined;

/** The kernels' memory, created on first use; null when this runtime has no WebAssembly. */
export function kernelHeap(): Heap | null {
  if (heap !== undefined) return heap;
  const api = (globalThis as { WebAssembly?: MemoryApi }).WebAssembly;
  const initial = Math.ceil(STAGING_BYTES / PAGE);
  let memory: WasmMemory | null = null, shared = false;
  try {
    memory = new api!.Memory({ initial, maximum: MAX_PAGES, shared: true });
    shared = true;
  } catch {
    try {
      memory = new api!.Memory({ initial });
    } catch {
      memory = null;
    }
  }
  heap = memory && { memory, shared, stagingAt: 0, adopted: false, buffers: new WeakSet([memory.buffer]), buffer: memory.buffer, top: STAGING_BYTES, free: [], live: new Map() };
  return heap;
}

/**
 * What a worker thread needs to step arrays of this memory in place: the memory (a shared
 * WebAssembly.Memory, which postMessage shares rather than copies) and the byte offset of a staging
 * area of the thread's own. Plain data: post it to the thread, which passes it to `adopt`.
 */
export interface ThreadMemoryHandle {
  readonly memory: WasmMemory;
  readonly stagingAt: number;
}

function forThread(): ThreadMemoryHandle {
  const h = kernelHeap();
  if (!h || !h.shared) throw new OptimizerError('optimizerMemory.forThread: this runtime has no shared WebAssembly memory to share with a thread');
  if (h.adopted) throw new OptimizerError('optimizerMemory.forThread: call it on the thread that owns the memory, not on one that adopted it');
  return { memory: h.memory, stagingAt: alloc(STAGING_BYTES / 4).byteOffset };
}

/** Frees the staging area of a handle from `forThread`, once its thread is done. */
function releaseThread(handle: ThreadMemoryHandle): void {
  const h = heap;
  if (!h || h.memory !== handle.memory || !h.live.has(handle.stagingAt)) {
    throw argError('optimizerMemory.releaseThread', 'expected a handle returned by forThread on this thread and not yet released');
  }
  free(new Float32Array(currentBuffer(h), handle.stagingAt, STAGING_BYTES / 4));
}

function adopt(handle: ThreadMemoryHandle): void {
  const memory = handle?.memory;
  if (!memory || !(memory.buffer instanceof SharedArrayBuffer) || !Number.isInteger(handle.stagingAt) || handle.stagingAt % ALIGN !== 0) {
    throw argError('optimizerMemory.adopt', 'expected a handle from optimizerMemory.forThread (a shared memory and an aligned staging offset)');
  }
  if (heap?.memory === memory) return;
  if (heap !== undefined) {
    throw new OptimizerError('optimizerMemory.adopt: this thread already has its own optimizer memory (adopt before the first optimizer step or allocation on the thread)');
  }
  const buffer = memory.buffer;
  heap = { memory, shared: true, stagingAt: handle.stagingAt, adopted: true, buffers: new WeakSet([buffer]), buffer, top: 0, free: [], live: new Map() };
}

/** The memory's current buffer, remembering each buffer object it has had. */
function currentBuffer(h: Heap): ArrayBuffer | SharedArrayBuffer {
  const b = h.memory.buffer;
  if (b !== h.buffer) {
    h.buffers.add(b);
    h.buffer = b;
  }
  return b;
}

/** Whether `a` is a view into the kernels' shared memory (so a kernel can run on it in place). */
export function inKernelMemory(a: Float32Array | undefined): boolean {
  const h = heap;
  if (!h || !h.shared || a === undefined) return false;
  return a.buffer === h.buffer || h.buffers.has(a.buffer) || a.buffer === currentBuffer(h);
}

function alloc(n: number): Float32Array {
  if (!Number.isInteger(n) || n < 0) throw argError('optimizerMemory.alloc', `expected a whole number of elements ≥ 0, got ${n}`);
  const h = kernelHeap();
  if (!h || !h.shared) return new Float32Array(n);
  if (h.adopted) throw new OptimizerError('optimizerMemory.alloc: this thread adopted another thread\'s memory; allocate on the owning thread');
  const bytes = Math.max(ALIGN, Math.ceil((n * 4) / ALIGN) * ALIGN);
  let at = -1;
  const i = h.free.findIndex((b) => b.bytes >= bytes); // first fit
  if (i >= 0) {
    const block = h.free[i]!;
    at = block.at;
    if (block.bytes === bytes) h.free.splice(i, 1);
    else Object.assign(block, { at: block.at + bytes, bytes: block.bytes - bytes });
  } else {
    at = h.top;
    const length = currentBuffer(h).byteLength;
    if (at + bytes > length) {
      try {
        h.memory.grow(Math.ceil((at + bytes - length) / PAGE));
      } catch {
        throw new OptimizerError(`optimizerMemory.alloc: cannot allocate ${n} elements (${bytes} bytes): WebAssembly memory is limited to ${MAX_PAGES * PAGE} bytes and ${at} are in use or reserved`);
      }
    }
    h.top = at + bytes;
  }
  h.live.set(at, [bytes, n]);
  // A block may have been used before; fresh pages are zero, but one pass is cheaper than tracking which.
  return new Float32Array(currentBuffer(h), at, n).fill(0);
}

function free(a: Float32Array): void {
  const h = heap;
  if (h?.adopted) throw new OptimizerError('optimizerMemory.free: this thread adopted another thread\'s memory; free on the owning thread');
  const block = h && a instanceof Float32Array && inKernelMemory(a) ? h.live.get(a.byteOffset) : undefined;
  if (!h || !block || block[1] !== a.length) {
    const what = a instanceof Float32Array ? `Float32Array(${a.length}) ${inKernelMemory(a) ? `at byte ${a.byteOffset}` : 'outside the optimizer memory'}` : typeof a;
    throw argError('optimizerMemory.free', `expected an array returned by optimizerMemory.alloc and not yet freed, got ${what}`);
  }
  h.live.delete(a.byteOffset);
  let at = a.byteOffset, bytes = block[0];
  // Merge with the free neighbours, then either lower `top` or keep the block in the free list.
  const list = h.free;
  let i = list.findIndex((b) => b.at > at);
  if (i < 0) i = list.length;
  const before = list[i - 1], after = list[i];
  if (after && at + bytes === after.at) {
    bytes += after.bytes;
    list.splice(i, 1);
  }
  if (before && before.at + before.bytes === at) {
    at = before.at;
    bytes += before.bytes;
    list.splice(--i, 1);
  }
  if (at + bytes === h.top) h.top = at;
  else list.splice(i, 0, { at, bytes });
}

/**
 * Float32Arrays inside the WebAssembly memory the optimizer kernels run on. A step whose parameters,
 * gradients and state arrays all live here runs in place — no copy into and out of WebAssembly —
 * which is what makes cheap updates (SGD, momentum) run at memory speed. Arrays anywhere else still
 * work, through a copying path; the results are the same bits either way.
 *
 * The memory is a shared WebAssembly.Memory that reserves the 4 GiB address space up front and
 * commits pages as they are used. Growing it never invalidates arrays already handed out.
 *
 * Arrays are not garbage collected: `free` them when done (the class API frees the state arrays it
 * allocated here in `dispose()`). Not thread-safe: allocate on one thread; other threads step the
 * arrays in place after adopting the memory (`forThread`, `adopt`).
 *
 * @example
 * import { SGD, optimizerMemory } from '@loom/optimizer';
 * const n = 1_000_000;
 * const param = { data: optimizerMemory.alloc(n), grad: { data: optimizerMemory.alloc(n) } };
 * const opt = new SGD([param], { lr: 0.1, momentum: 0.9 }); // its momentum buffer is allocated here too
 * param.grad.data.fill(1);
 * opt.step(); // in place: param.data is now -0.1 everywhere
 * opt.dispose();
 * optimizerMemory.free(param.data);
 * optimizerMemory.free(param.grad.data);
 */
export const optimizerMemory = {
  /**
   * A zeroed Float32Array of `n` elements inside the kernels' memory, starting on a 16-byte
   * boundary. Where the runtime has no shared WebAssembly memory it is an ordinary Float32Array.
   */
  alloc,
  /** Returns an array from `alloc` to the allocator. The array must not be used afterwards. */
  free,
  /** Whether `a` is a view into the kernels' memory (steps over such arrays run in place). */
  contains: (a: Float32Array): boolean => inKernelMemory(a),
  /** Whether `alloc` hands out views into WebAssembly memory (false: ordinary arrays, copying path). */
  get available(): boolean {
    return kernelHeap()?.shared ?? false;
  },
  /** Bytes handed out by `alloc` and not yet freed. */
  get bytesInUse(): number {
    let total = 0;
    for (const [bytes] of heap?.live.values() ?? []) total += bytes;
    return total;
  },
  /**
   * On the owning thread: a handle for one worker thread (the memory and a staging area allocated
   * for that thread), to post to it; `releaseThread` it when the thread is done.
   */
  forThread,
  releaseThread,
  /**
   * On a worker thread, before its first optimizer step: make the memory of `forThread`'s handle
   * this thread's kernel memory, so its steps over arrays in it (views of `handle.memory.buffer`)
   * run in place. The thread cannot allocate or free; the owner does.
   *
   * @example
   * // owner:  worker.postMessage({ handle: optimizerMemory.forThread(), offset: params.byteOffset, n });
   * // thread: optimizerMemory.adopt(handle);
   * //         const params = new Float32Array(handle.memory.buffer, offset, n); // stepped in place
   */
  adopt,
  /** The WebAssembly.Memory itself (for example to share with a worker); grow it only through `alloc`. */
  get memory(): WasmMemory | null {
    return kernelHeap()?.memory ?? null;
  },
};

/**
 * A model's flat parameter and gradient arrays inside the kernels' memory, zeroed: pass them to
 * @loom/tensor-core's `flattenParameters` so that an optimizer steps the model in place.
 * `flattenParameters` adopts the values of a `params` array it is given, so copy the model's
 * initial values in first:
 *
 * @example
 * import { flattenParameters } from '@loom/tensor-core';
 * import { Adam, allocateFlat } from '@loom/optimizer';
 * const initial = flattenParameters(model);        // ordinary arrays, holding the initial values
 * const flat = allocateFlat(initial.size);
 * flat.params.set(initial.params);
 * flattenParameters(model, flat);                  // every parameter is now a view into flat.params
 * const opt = new Adam(model.parameters(), { lr: 1e-3 }); // its state is allocated beside them
 */
export function allocateFlat(size: number): { params: Float32Array; grads: Float32Array } {
  return { params: alloc(size), grads: alloc(size) };
}

/**
 * The WebAssembly SIMD backends: a packed, cache-blocked f32x4 GEMM compiled from
 * assembly/gemm.ts by scripts/build-wasm.js (the package's `build` script) into two modules:
 *
 *   wasm/gemm.wasm          'wasm-simd'          f32x4 multiply, then add
 *   wasm/gemm-relaxed.wasm  'wasm-relaxed-simd'  f32x4.relaxed_madd: a fused multiply-add where the
 *                                                CPU has FMA, ~25% faster (40 → 50 GFLOP/s at
 *                                                128×784×256 on the development machine)
 *
 * Relaxed SIMD is on by default from V8 11.4 (Node 22); Node 20's V8 11.3 has it behind
 * --experimental-wasm-relaxed-simd, which loadRelaxedWasmBackend() turns on when the module does not
 * validate without it. A fused multiply-add rounds once instead of twice, so the relaxed backend's
 * products differ from the plain one's in the last bits (and from a machine without FMA's).
 *
 * Operands live in JavaScript memory and the GEMM works in the module's linear memory, so each call
 * copies a and b (and out when accumulating) in and out back: O(MK + KN + MN) copying against
 * O(MNK) arithmetic, about 5% of the time at (64×100)·(100×50) and less above. A worker thread
 * whose weights and gradients live in a shared WebAssembly memory (@loom/optimizer's, in a local
 * run) attaches a second instance, built to import a shared memory, to it (`attach`, through
 * select.ts's useSharedMemory): products with an operand there read and write it in place. That
 * matters for data-parallel threads, where the weight copy-in and gradient copy-out are a per-step
 * cost proportional to the parameters that does not shrink as each thread's share of the batch does.
 *
 * Linear memory layout, from the module's heap base, each region 16-byte aligned:
 *
 *   out (M, N) | a (M, K) | b (K, N) | workspace (packed panels of a and b, an edge tile)
 *
 * `out` comes first so that its address is the same for every call, which lets the view used to
 * copy it back be cached per size instead of allocated per call. Memory grows to the largest
 * problem seen and stays there.
 */
import { existsSync, readFileSync } from 'node:fs';
import { setFlagsFromString } from 'node:v8';
import type { KernelBackend } from './backend.js';

/** Where the build puts the module; the same relative path works from src/kernels and dist/kernels. */
export const wasmPath: URL = new URL('../../wasm/gemm.wasm', import.meta.url);
/** The same GEMM built with relaxed SIMD (fused multiply-add). */
export const relaxedWasmPath: URL = new URL('../../wasm/gemm-relaxed.wasm', import.meta.url);
/**
 * The build of the same GEMM that imports a shared memory instead of owning one (see
 * useSharedMemory), for the two modules this package builds; null for any other module.
 */
const sharedPath = (path: URL | string): URL | null =>
  path === wasmPath ? new URL('../../wasm/gemm-shared.wasm', import.meta.url) : path === relaxedWasmPath ? new URL('../../wasm/gemm-relaxed-shared.wasm', import.meta.url) : null;

/** The exports of assembly/gemm.ts. Addresses and sizes are bytes; booleans are 0 or 1. */
interface GemmExports {
  readonly memory: { readonly buffer: ArrayBuffer; grow(pages: number): number };
  heapBase(): number;
  workspaceBytes(m: number, k: number, n: number): number;
  gemm(a: number, b: number, c: number, m: number, k: number, n: number, transA: number, transB: number, accumulate: number, work: number): void;
}

/**
 * The part of the WebAssembly global this file uses. The package compiles against lib ES2022
 * without DOM, which is where TypeScript declares WebAssembly, so it is typed here.
 */
interface WebAssemblyApi {
  validate(bytes: Uint8Array): boolean;
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: object) => { readonly exports: object };
}
const wasmApi = (globalThis as { WebAssembly?: WebAssemblyApi }).WebAssembly;

const PAGE = 65536;
/** A model has a handful of output shapes; past this many distinct sizes the view cache restarts. */
const MAX_OUT_VIEWS = 64;
const align16 = (bytes: number): number => (bytes + 15) & ~15;

/**
 * Loads wasm/gemm.wasm (or `path`) synchronously and returns the 'wasm-simd' backend, or null when
 * the file is missing (the package was not built) or this engine cannot compile it (no WebAssembly
 * SIMD). Never throws. Each call instantiates a fresh module with its own memory.
 *
 * @example
 * const wasm = loadWasmBackend();
 * const out = new Float32Array(2 * 2);
 * wasm?.matmul(new Float32Array([1, 2, 3, 4]), new Float32Array([1, 0, 0, 1]), out, 2, 2, 2, false, false, false);
 * // out = [1, 2, 3, 4]
 */
export function loadWasmBackend(path: URL | string = wasmPath): KernelBackend | null {
  const bytes = readModule(path);
  // validate() is false when the engine lacks an instruction the module uses, i.e. SIMD.
  if (bytes === null || !wasmApi!.validate(bytes)) return null;
  return instantiate(bytes, 'wasm-simd', sharedPath(path));
}

/**
 * Loads wasm/gemm-relaxed.wasm (or `path`) and returns the 'wasm-relaxed-simd' backend, or null as
 * loadWasmBackend does. Never throws.
 *
 * When the module does not validate, this sets V8's --experimental-wasm-relaxed-simd (the only way
 * to get relaxed SIMD on Node 20; Node 22 has it on by default) and validates again. The flag is
 * process-wide and only makes more wasm instructions valid; LOOM_BACKEND=wasm-simd never loads this
 * module and so never sets it.
 *
 * @example
 * const wasm = loadRelaxedWasmBackend() ?? loadWasmBackend();
 */
export function loadRelaxedWasmBackend(path: URL | string = relaxedWasmPath): KernelBackend | null {
  const bytes = readModule(path);
  if (bytes === null) return null;
  if (!wasmApi!.validate(bytes)) {
    try {
      setFlagsFromString('--experimental-wasm-relaxed-simd');
    } catch {
      return null;
    }
    if (!wasmApi!.validate(bytes)) return null;
  }
  return instantiate(bytes, 'wasm-relaxed-simd', sharedPath(path));
}

/** The module's bytes, or null when the file is missing or unreadable or there is no WebAssembly. */
function readModule(path: URL | string): Uint8Array | null {
  if (wasmApi === undefined) return null;
  try {
    return existsSync(path) ? readFileSync(path) : null;
  } catch {
    return null;
  }
}

function instantiate(bytes: Uint8Array, name: string, sharedModule: URL | null): WasmBackend | null {
  try {
    const instance = new wasmApi!.Instance(new wasmApi!.Module(bytes), {});
    return new WasmBackend(instance.exports as unknown as GemmExports, name, sharedModule);
  } catch {
    return null;
  }
}

/**
 * A shared WebAssembly.Memory that another package owns (for example @loom/optimizer's, which holds
 * a worker thread's parameters and gradients), and a region of it this thread may overwrite.
 */
export interface SharedMemoryHandle {
  readonly memory: { readonly buffer: ArrayBuffer | SharedArrayBuffer };
  /** Byte offset of this thread's scratch region, 16-byte aligned. */
  readonly scratchAt: number;
  /** Its size in bytes: operands that live elsewhere are copied there, and the packing workspace. */
  readonly scratchBytes: number;
}

/** The GEMM instantiated on a shared memory, with what it needs to run there. */
interface SharedGemm {
  readonly wasm: GemmExports;
  readonly memory: SharedMemoryHandle['memory'];
  /** Every buffer object the memory has had in this thread (it grows in another). */
  readonly buffers: WeakSet<object>;
  /** All of the memory as f32, as it was when attached: it covers the scratch region. */
  readonly heap: Float32Array;
  readonly at: number;
  readonly end: number;
  readonly outViews: Map<number, Float32Array>;
}

export class WasmBackend implements KernelBackend {
  readonly name: string;
  readonly #wasm: GemmExports;
  readonly #sharedModule: URL | null;
  #shared: SharedGemm | null = null;
  /** Byte address of `out`: the first aligned byte after the module's static data. */
  readonly #outAt: number;
  /** All of linear memory as f32; replaced when memory grows (growing detaches the old buffer). */
  #heap: Float32Array;
  /** Views of exactly `length` floats at #outAt, one per output size seen, for copying out back. */
  #outViews = new Map<number, Float32Array>();

  constructor(wasm: GemmExports, name: string, sharedModule: URL | null) {
    this.name = name;
    this.#wasm = wasm;
    this.#sharedModule = sharedModule;
    this.#outAt = align16(wasm.heapBase());
    this.#heap = new Float32Array(wasm.memory.buffer);
  }

  matmul(
    a: Float32Array, // (M, K), or (K, M) when transA
    b: Float32Array, // (K, N), or (N, K) when transB
    out: Float32Array, // (M, N)
    m: number,
    k: number,
    n: number,
    transA: boolean,
    transB: boolean,
    accumulate: boolean,
  ): void {
    const mn = m * n, mk = m * k, kn = k * n;
    if (mn === 0) return;
    if (this.#shared !== null && this.#inShared(this.#shared, a, b, out, m, k, n, transA, transB, accumulate)) return;
    const outAt = this.#outAt;
    const aAt = align16(outAt + 4 * mn);
    const bAt = align16(aAt + 4 * mk);
    const workAt = align16(bAt + 4 * kn);
    const end = workAt + this.#wasm.workspaceBytes(m, k, n);
    if (end > this.#heap.byteLength) this.#grow(end);

    const heap = this.#heap;
    copyIn(heap, aAt >> 2, a, mk);
    copyIn(heap, bAt >> 2, b, kn);
    if (accumulate) copyIn(heap, outAt >> 2, out, mn);
    this.#wasm.gemm(aAt, bAt, outAt, m, k, n, +transA, +transB, +accumulate, workAt);
    let view = this.#outViews.get(mn);
    if (view === undefined) {
      if (this.#outViews.size >= MAX_OUT_VIEWS) this.#outViews.clear();
      view = heap.subarray(outAt >> 2, (outAt >> 2) + mn);
      this.#outViews.set(mn, view);
    }
    out.set(view); // into out[0 : mn]
  }

  /**
   * From now on, products with an operand in `handle.memory` run on a second instance of the GEMM
   * that imports that memory: operands there are read and written in place, the others are copied
   * through the scratch region. Returns false (and changes nothing) when the shared module is
   * missing or does not instantiate on that memory.
   */
  attach(handle: SharedMemoryHandle): boolean {
    const bytes = this.#sharedModule === null ? null : readModule(this.#sharedModule);
    const { memory, scratchAt, scratchBytes } = handle;
    if (bytes === null || !(memory.buffer instanceof SharedArrayBuffer) || scratchAt % 16 !== 0 || scratchAt + scratchBytes > memory.buffer.byteLength) return false;
    try {
      const instance = new wasmApi!.Instance(new wasmApi!.Module(bytes), { env: { memory } });
      const buffer = memory.buffer;
      this.#shared = {
        wasm: instance.exports as unknown as GemmExports, memory, buffers: new WeakSet([buffer]), heap: new Float32Array(buffer),
        at: scratchAt, end: scratchAt + scratchBytes, outViews: new Map(),
      };
      return true;
    } catch {
      return false;
    }
  }

  /** Back to copying every operand into this backend's own memory. */
  detach(): void {
    this.#shared = null;
  }

  /** Whether `x` is a view of the shared memory (of any buffer object it has had here). */
  #holds(s: SharedGemm, x: Float32Array): boolean {
    if (s.buffers.has(x.buffer)) return true;
    if (x.buffer !== s.memory.buffer) return false;
    s.buffers.add(x.buffer);
    return true;
  }

  /**
   * The product on the shared memory when an operand lives there and the others fit the scratch
   * region; false to take the copying path. Scratch layout: out's copy (first, so its address is the
   * same every call and its view can be cached), a's copy, b's copy, workspace — each only if needed.
   */
  #inShared(s: SharedGemm, a: Float32Array, b: Float32Array, out: Float32Array, m: number, k: number, n: number, transA: boolean, transB: boolean, accumulate: boolean): boolean {
    const aIn = this.#holds(s, a), bIn = this.#holds(s, b), outIn = this.#holds(s, out);
    if (!aIn && !bIn && !outIn) return false;
    const mn = m * n, mk = m * k, kn = k * n;
    const outAt = s.at;
    const aAt = align16(outAt + (outIn ? 0 : 4 * mn));
    const bAt = align16(aAt + (aIn ? 0 : 4 * mk));
    const workAt = align16(bAt + (bIn ? 0 : 4 * kn));
    if (workAt + s.wasm.workspaceBytes(m, k, n) > s.end) return false;
    if (!aIn) copyIn(s.heap, aAt >> 2, a, mk);
    if (!bIn) copyIn(s.heap, bAt >> 2, b, kn);
    if (!outIn && accumulate) copyIn(s.heap, outAt >> 2, out, mn);
    s.wasm.gemm(aIn ? a.byteOffset : aAt, bIn ? b.byteOffset : bAt, outIn ? out.byteOffset : outAt, m, k, n, +transA, +transB, +accumulate, workAt);
    if (!outIn) {
      let view = s.outViews.get(mn);
      if (view === undefined) {
        if (s.outViews.size >= MAX_OUT_VIEWS) s.outViews.clear();
        view = s.heap.subarray(outAt >> 2, (outAt >> 2) + mn);
        s.outViews.set(mn, view);
      }
      out.set(view);
    }
    return true;
  }

  /** Grows linear memory to at least `bytes` and re-creates the views over it. */
  #grow(bytes: number): void {
    const memory = this.#wasm.memory;
    memory.grow(Math.ceil((bytes - memory.buffer.byteLength) / PAGE));
    this.#heap = new Float32Array(memory.buffer);
    this.#outViews.clear();
  }
}

/**
 * heap[at : at+count] = src[0 : count]: a memcpy when src is exactly count long (the usual case), a
 * loop when it is longer (set() would copy all of it, and subarray() would allocate).
 */
function copyIn(heap: Float32Array, at: number, src: Float32Array, count: number): void {
  if (src.length === count) heap.set(src, at);
  else for (let i = 0; i < count; i++) heap[at + i] = src[i]!;
}

/**
 * Which matmul backend the kernel tier uses.
 *
 * By default: the native addon when it was built and loads (native-backend.ts: AVX-512, AVX2+FMA or
 * SSE by CPU), else WebAssembly relaxed SIMD (fused multiply-add) when wasm/gemm-relaxed.wasm loads,
 * else WebAssembly SIMD when wasm/gemm.wasm loads, else plain JS. The environment variable
 * LOOM_BACKEND forces one:
 *
 *   LOOM_BACKEND=js         always the portable TypeScript kernel
 *   LOOM_BACKEND=wasm       always the best WebAssembly kernel, even for tiny products; throws when
 *                           neither module loads
 *   LOOM_BACKEND=wasm-simd  always plain WebAssembly SIMD (no FMA: the same bits on every machine)
 *   LOOM_BACKEND=native     always the native addon's best path, even for tiny products; throws
 *                           (saying why) when the addon is missing or does not load
 *   LOOM_BACKEND=native-avx2, native-sse, ...   that path of the addon (for comparing paths)
 *   unset or 'auto'         native when it loads, else the best WebAssembly kernel, else js
 *                           (tiny products on js, see below)
 *
 * Tiny products go to js under 'auto'. A wasm call has a fixed cost of about 130 ns (crossing into
 * wasm, copying, packing) that js does not pay. On the development machine js was faster below
 * M·K·N = 128 multiply-adds (1×1×1: 33 vs 130 ns; 4×4×4: 80 vs 124 ns), the two were even at 128,
 * and wasm-simd was faster from 256 up (8×8×8: 180 vs 400 ns; the reference model's 64×100×50: 9×).
 * The native addon's call costs more than a wasm call (≈ 250 ns of N-API argument handling, ≈ 330 ns
 * for 1×1×1 against js's 20): js stayed faster up to 8×8×8 (390 vs 580 ns) and native was 3× faster
 * at 16×16×16 (960 vs 2900 ns), so TINY_NATIVE is 1024. The row kernels (ReLU, softmax + cross-
 * entropy, GELU) likewise stay in TypeScript under TINY_ROWS elements; see there.
 */
import { existsSync } from 'node:fs';
import { opError } from '../errors.js';
import type { KernelBackend } from './backend.js';
import { jsBackend } from './matmul.js';
import { relu, reluBackwardInto } from './unary.js';
import { gelu, geluBackward } from './gelu.js';
import { layerNorm, layerNormBackward } from './norm.js';
import { addRowSums, col2im, im2col, swap01, type Conv2dShape } from './conv.js';
import { maxPool2d, maxPool2dBackward, type Pool2dShape } from './pool.js';
import { softmaxCrossEntropy, softmaxCrossEntropyBackward } from './softmax.js';
import { NativeBackend, loadNativeBackend, nativeLoadError, nativePath } from './native-backend.js';
import { WasmBackend, loadRelaxedWasmBackend, loadWasmBackend, relaxedWasmPath, wasmPath, type SharedMemoryHandle } from './wasm-backend.js';

/**
 * The backend for a LOOM_BACKEND value ('js', 'wasm', 'wasm-simd', 'native', 'native-<isa>', or
 * 'auto'/undefined for the best available). `native` is where to load the addon from (tests point it
 * at a build that failed, to see the fallback).
 *
 * @example
 * defaultBackend('js').name; // 'js'
 * defaultBackend().name; // 'native-avx512' where the addon was built on an AVX-512 CPU, else 'wasm-relaxed-simd'
 */
export function defaultBackend(choice: string | undefined = readEnv(), native: URL | string = nativePath): KernelBackend {
  if (choice?.startsWith('native')) {
    const isa = choice === 'native' ? undefined : choice.slice('native-'.length);
    const loaded = loadNativeBackend({ path: native, isa });
    if (loaded === null) throw opError('LOOM_BACKEND', `'${choice}' expects the native addon to load, but ${nativeLoadError}`);
    return loaded;
  }
  switch (choice ?? 'auto') {
    case 'js':
      return jsBackend;
    case 'wasm':
    case 'wasm-simd': {
      const wasm = choice === 'wasm' ? bestWasm() : loadWasmBackend();
      if (wasm === null) {
        const tried = choice === 'wasm' ? `neither ${relaxedWasmPath.pathname} nor ${wasmPath.pathname} compiles` : `${wasmPath.pathname} does not compile`;
        const found = existsSync(wasmPath)
          ? `${tried} here (no WebAssembly SIMD?)`
          : `${wasmPath.pathname} is missing (build the package: node scripts/build-wasm.js)`;
        throw opError('LOOM_BACKEND', `'${choice}' expects a WebAssembly SIMD kernel to load, but ${found}`);
      }
      return wasm;
    }
    case 'auto':
    case '': {
      const fast = loadNativeBackend({ path: native });
      if (fast !== null) return routeTiny(fast, jsBackend, TINY_NATIVE);
      const wasm = bestWasm();
      return wasm === null ? jsBackend : routeTiny(wasm, jsBackend, TINY);
    }
    default:
      throw opError('LOOM_BACKEND', `expected 'js', 'wasm', 'wasm-simd', 'native', 'native-<isa>' or 'auto', got '${choice}'`);
  }
}

/** Relaxed SIMD (fused multiply-add) when it loads, else plain SIMD, else null. */
function bestWasm(): KernelBackend | null {
  return loadRelaxedWasmBackend() ?? loadWasmBackend();
}

/** Products with fewer multiply-adds (M·K·N) than this run on js under 'auto'; measured above. */
export const TINY = 128;
/** The same for the native addon, whose calls cost more; measured above. */
export const TINY_NATIVE = 1024;

/**
 * Row kernels over fewer elements than this (N·C) run in TypeScript under 'auto' even where the
 * backend has them: a call into the native addon costs ≈ 0.3 µs, what the TypeScript ReLU takes for
 * about 200 elements (1–2 ns each) and the softmax for about 50.
 */
export const TINY_ROWS = 256;

/**
 * A backend that runs products of fewer than `threshold` multiply-adds on `small` and the rest on
 * `large`, named after `large`, and `large`'s row kernels (if any) on TINY_ROWS elements or more.
 * Deterministic: a given shape always takes the same path.
 */
export function routeTiny(large: KernelBackend, small: KernelBackend, threshold: number): KernelBackend & { readonly large: KernelBackend } {
  const routed: KernelBackend & { readonly large: KernelBackend } = {
    name: large.name,
    large,
    matmul(a, b, out, m, k, n, transA, transB, accumulate) {
      const backend = m * k * n < threshold ? small : large;
      backend.matmul(a, b, out, m, k, n, transA, transB, accumulate);
    },
  };
  // Batches go to the large backend whole: one call for all the products is its reason to exist.
  if (large.matmulBatched !== undefined) routed.matmulBatched = large.matmulBatched.bind(large);
  if (large.causalAttention !== undefined) routed.causalAttention = large.causalAttention.bind(large);
  if (large.causalAttentionBackward !== undefined) routed.causalAttentionBackward = large.causalAttentionBackward.bind(large);
  if (large.conv2d !== undefined) routed.conv2d = large.conv2d.bind(large);
  if (large.conv2dBackward !== undefined) routed.conv2dBackward = large.conv2dBackward.bind(large);
  const fast = rowKernelsOf(large);
  if (large.relu !== undefined) routed.relu = (x, out, n) => (n < TINY_ROWS ? relu : fast.relu)(x, out, n);
  if (large.reluBackwardInto !== undefined) {
    routed.reluBackwardInto = (y, dy, dx, n) => (n < TINY_ROWS ? reluBackwardInto : fast.reluBackwardInto)(y, dy, dx, n);
  }
  if (large.gelu !== undefined) routed.gelu = (x, out, n) => (n < TINY_ROWS ? gelu : fast.gelu)(x, out, n);
  if (large.geluBackward !== undefined) routed.geluBackward = (x, dy, dx, n) => (n < TINY_ROWS ? geluBackward : fast.geluBackward)(x, dy, dx, n);
  if (large.layerNorm !== undefined) routed.layerNorm = fast.layerNorm;
  if (large.layerNormBackward !== undefined) routed.layerNormBackward = fast.layerNormBackward;
  // The plane kernels move whole activations (thousands of elements and up): no small-call route.
  if (large.im2col !== undefined) routed.im2col = fast.im2col;
  if (large.col2im !== undefined) routed.col2im = fast.col2im;
  if (large.swap01 !== undefined) routed.swap01 = fast.swap01;
  if (large.addRowSums !== undefined) routed.addRowSums = fast.addRowSums;
  if (large.maxPool2d !== undefined) routed.maxPool2d = fast.maxPool2d;
  if (large.maxPool2dBackward !== undefined) routed.maxPool2dBackward = fast.maxPool2dBackward;
  if (large.softmaxCrossEntropy !== undefined) {
    routed.softmaxCrossEntropy = (x, labels, probs, rows, cols) =>
      (rows * cols < TINY_ROWS ? softmaxCrossEntropy : fast.softmaxCrossEntropy)(x, labels, probs, rows, cols);
  }
  if (large.softmaxCrossEntropyBackward !== undefined) {
    routed.softmaxCrossEntropyBackward = (probs, labels, dx, rows, cols, g) =>
      (rows * cols < TINY_ROWS ? softmaxCrossEntropyBackward : fast.softmaxCrossEntropyBackward)(probs, labels, dx, rows, cols, g);
  }
  return routed;
}

/** The kernels besides the products that a backend may take over (see KernelBackend), as plain functions. */
export interface RowKernels {
  relu(x: Float32Array, out: Float32Array, n: number): void;
  reluBackwardInto(y: Float32Array, dy: Float32Array, dx: Float32Array, n: number): void;
  gelu(x: Float32Array, out: Float32Array, n: number): void;
  geluBackward(x: Float32Array, dy: Float32Array, dx: Float32Array, n: number): void;
  layerNorm: NonNullable<KernelBackend['layerNorm']>;
  layerNormBackward: NonNullable<KernelBackend['layerNormBackward']>;
  im2col(x: Float32Array, cols: Float32Array, s: Conv2dShape): void;
  col2im(dcols: Float32Array, dx: Float32Array, s: Conv2dShape): void;
  swap01(x: Float32Array, out: Float32Array, a: number, b: number, inner: number, accumulate: boolean): void;
  addRowSums(x: Float32Array, out: Float32Array, rows: number, cols: number): void;
  maxPool2d(x: Float32Array, out: Float32Array, argmax: Int32Array, s: Pool2dShape): void;
  maxPool2dBackward(dy: Float32Array, argmax: Int32Array, dx: Float32Array, s: Pool2dShape): void;
  softmaxCrossEntropy(x: Float32Array, labels: Int32Array, probs: Float32Array, rows: number, cols: number): number;
  softmaxCrossEntropyBackward(probs: Float32Array, labels: Int32Array, dx: Float32Array, rows: number, cols: number, g: number): void;
}

/**
 * `b`'s row kernels, and the TypeScript ones (unary.ts, softmax.ts) for those it lacks.
 * @example rowKernelsOf(jsBackend).relu === relu // the TypeScript kernel
 */
export function rowKernelsOf(b: KernelBackend): RowKernels {
  return {
    relu: b.relu?.bind(b) ?? relu,
    reluBackwardInto: b.reluBackwardInto?.bind(b) ?? reluBackwardInto,
    gelu: b.gelu?.bind(b) ?? gelu,
    geluBackward: b.geluBackward?.bind(b) ?? geluBackward,
    layerNorm: b.layerNorm?.bind(b) ?? layerNorm,
    layerNormBackward: b.layerNormBackward?.bind(b) ?? layerNormBackward,
    im2col: b.im2col?.bind(b) ?? im2col,
    col2im: b.col2im?.bind(b) ?? col2im,
    swap01: b.swap01?.bind(b) ?? swap01,
    addRowSums: b.addRowSums?.bind(b) ?? addRowSums,
    maxPool2d: b.maxPool2d?.bind(b) ?? maxPool2d,
    maxPool2dBackward: b.maxPool2dBackward?.bind(b) ?? maxPool2dBackward,
    softmaxCrossEntropy: b.softmaxCrossEntropy?.bind(b) ?? softmaxCrossEntropy,
    softmaxCrossEntropyBackward: b.softmaxCrossEntropyBackward?.bind(b) ?? softmaxCrossEntropyBackward,
  };
}

/** The backend every matmul in this process uses, chosen once at import. */
export const backend: KernelBackend = defaultBackend();

/** The row kernels every op in this process uses: the backend's, else TypeScript's. */
export const rowKernels: RowKernels = rowKernelsOf(backend);

/**
 * Makes this thread's products run in place on arrays that live in a shared WebAssembly memory
 * another package owns — typically a worker thread whose parameters and gradients are views of
 * @loom/optimizer's memory (see @loom/parameter-server's local runs): the weights are then read,
 * and their gradients written, where they are, instead of being copied into the GEMM's own memory
 * and back on every call (an O(parameters) cost per step that does not shrink with the batch).
 * Operands elsewhere are copied through `handle`'s scratch region. The results are the same bits.
 * Returns false, changing nothing, when the backend is js or a wasm backend that cannot use that
 * memory; `null` detaches. The native backend always reads and writes its operands in place, shared
 * memory or not, so for it this does nothing and returns true.
 *
 * @example
 * useSharedMemory({ memory, scratchAt: scratch.byteOffset, scratchBytes: scratch.byteLength });
 */
export function useSharedMemory(handle: SharedMemoryHandle | null): boolean {
  const large = (backend as { large?: KernelBackend }).large ?? backend;
  if (large instanceof NativeBackend) return true;
  const wasm = backend instanceof WasmBackend ? backend : (backend as { large?: KernelBackend }).large;
  if (!(wasm instanceof WasmBackend)) return false;
  if (handle === null) {
    wasm.detach();
    return true;
  }
  return wasm.attach(handle);
}

function readEnv(): string | undefined {
  return (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env?.LOOM_BACKEND;
}

/**
 * The native backend: a C GEMM built as an N-API addon (native/*.c → build/Release/loom_native.node,
 * by scripts/build-native.js at install and build time). Optional: where no compiler was present the
 * addon is missing, loadNativeBackend() returns null and select.ts falls back to WebAssembly.
 *
 * The addon is a packed, cache-blocked GEMM with its own micro-kernels for AVX-512 (8×32 tile),
 * AVX2+FMA (6×16) and SSE (4×8), one binary for any x86-64 that picks the best its CPU runs at load
 * (native/kernels.c), plus the row kernels (ReLU, GELU, layer norm, softmax + cross-entropy:
 * native/rows.c), the plane kernels (im2col, col2im, the layout swap, row sums, max pooling:
 * native/planes.c), the whole convolution (native/conv.c) and causal self-attention's core
 * (native/attention.c). Each `isa` it reports is
 * a backend here, 'native-avx512' and so on, so a test can run the lower paths on a machine that
 * has the higher ones.
 *
 * Operands are read and written in place: the addon takes the Float32Arrays' data pointers, whether
 * they view an ArrayBuffer, a SharedArrayBuffer or a shared WebAssembly memory, so unlike the wasm
 * backend there is nothing to copy and nothing to attach (useSharedMemory has nothing to do). The
 * addon is context-aware: each worker thread that loads it gets its own instance and workspace.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import type { KernelBackend } from './backend.js';
import type { Conv2dShape } from './conv.js';
import type { Pool2dShape } from './pool.js';

/** Where the build puts the addon; the same relative path works from src/kernels and dist/kernels. */
export const nativePath: URL = new URL('../../build/Release/loom_native.node', import.meta.url);

/** The addon's exports (native/addon.c). `isa` is an index into `isas`. */
interface NativeAddon {
  readonly isas: readonly string[];
  matmul(isa: number, a: Float32Array, b: Float32Array, out: Float32Array, m: number, k: number, n: number, transA: boolean, transB: boolean, accumulate: boolean): void;
  matmulBatched(
    isa: number, a: Float32Array, b: Float32Array, out: Float32Array, batch: number, m: number, k: number, n: number,
    transA: boolean, transB: boolean, accumulate: boolean, strideA: number, strideB: number, strideOut: number,
  ): void;
  causalAttention(isa: number, qkv: Float32Array, out: Float32Array, probs: Float32Array, b: number, t: number, h: number, d: number): void;
  causalAttentionBackward(isa: number, qkv: Float32Array, probs: Float32Array, dout: Float32Array, dqkv: Float32Array, b: number, t: number, h: number, d: number): void;
  relu(x: Float32Array, out: Float32Array, n: number): void;
  reluBackwardInto(y: Float32Array, dy: Float32Array, dx: Float32Array, n: number): void;
  gelu(x: Float32Array, out: Float32Array, n: number): void;
  geluBackward(x: Float32Array, dy: Float32Array, dx: Float32Array, n: number): void;
  layerNorm: NonNullable<KernelBackend['layerNorm']>;
  layerNormBackward: NonNullable<KernelBackend['layerNormBackward']>;
  // A Conv2dShape's numbers follow the arrays, in native/addon.c's order (then O, for conv2d).
  conv2d(
    isa: number, x: Float32Array, weight: Float32Array, bias: Float32Array | null, out: Float32Array,
    n: number, c: number, h: number, w: number, kh: number, kw: number, sh: number, sw: number, ph: number, pw: number, oh: number, ow: number, o: number,
  ): void;
  conv2dBackward(
    isa: number, x: Float32Array, weight: Float32Array, dy: Float32Array, dx: Float32Array | null, dweight: Float32Array | null, dbias: Float32Array | null,
    n: number, c: number, h: number, w: number, kh: number, kw: number, sh: number, sw: number, ph: number, pw: number, oh: number, ow: number, o: number,
  ): void;
  im2col(x: Float32Array, cols: Float32Array, n: number, c: number, h: number, w: number, kh: number, kw: number, sh: number, sw: number, ph: number, pw: number, oh: number, ow: number): void;
  col2im(dcols: Float32Array, dx: Float32Array, n: number, c: number, h: number, w: number, kh: number, kw: number, sh: number, sw: number, ph: number, pw: number, oh: number, ow: number): void;
  swap01(x: Float32Array, out: Float32Array, a: number, b: number, inner: number, accumulate: boolean): void;
  addRowSums(x: Float32Array, out: Float32Array, rows: number, cols: number): void;
  maxPool2d(x: Float32Array, out: Float32Array, argmax: Int32Array, planes: number, h: number, w: number, kh: number, kw: number, sh: number, sw: number, ph: number, pw: number, oh: number, ow: number): void;
  maxPool2dBackward(dy: Float32Array, argmax: Int32Array, dx: Float32Array, planes: number, h: number, w: number, oh: number, ow: number): void;
  softmaxCrossEntropy(x: Float32Array, labels: Int32Array, probs: Float32Array, rows: number, cols: number): number;
  softmaxCrossEntropyBackward(probs: Float32Array, labels: Int32Array, dx: Float32Array, rows: number, cols: number, g: number): void;
}

/** Why the last loadNativeBackend() call returned null, for error messages; null after a load. */
export let nativeLoadError: string | null = null;

/**
 * Loads the addon at `path` (default: this package's build) and returns the backend for `isa` (default:
 * the best this CPU runs), or null when the file is missing, does not load, or the CPU lacks that
 * isa; nativeLoadError then says which. Never throws.
 *
 * @example
 * const native = loadNativeBackend();            // 'native-avx512' on a CPU with AVX-512
 * const sse = loadNativeBackend({ isa: 'sse' }); // the baseline path, for testing
 * native?.matmul(new Float32Array([1, 2, 3, 4]), new Float32Array([1, 0, 0, 1]), new Float32Array(4), 2, 2, 2, false, false, false);
 */
export function loadNativeBackend(options: { path?: URL | string; isa?: string } = {}): NativeBackend | null {
  const path = options.path ?? nativePath;
  const file = typeof path === 'string' ? path : fileURLToPath(path);
  if (!existsSync(file)) {
    nativeLoadError = `${file} is missing (no C compiler at install? build it: node scripts/build-native.js in @loom/tensor-core)`;
    return null;
  }
  let addon: NativeAddon;
  try {
    addon = createRequire(import.meta.url)(file) as NativeAddon;
  } catch (e) {
    nativeLoadError = `${file} did not load: ${(e as Error).message}`;
    return null;
  }
  const index = options.isa === undefined ? 0 : addon.isas.indexOf(options.isa);
  if (index < 0) {
    nativeLoadError = `this CPU does not run the '${options.isa}' path (it runs: ${addon.isas.join(', ')})`;
    return null;
  }
  nativeLoadError = null;
  return new NativeBackend(addon, index);
}

/** The code paths the built addon offers on this CPU, best first ([] when it does not load). */
export function nativeIsas(path: URL | string = nativePath): readonly string[] {
  const file = typeof path === 'string' ? path : fileURLToPath(path);
  try {
    return existsSync(file) ? (createRequire(import.meta.url)(file) as NativeAddon).isas : [];
  } catch {
    return [];
  }
}

export class NativeBackend implements KernelBackend {
  /** 'native-avx512', 'native-avx2', 'native-sse' (x86-64) or 'native-generic'. */
  readonly name: string;
  readonly #addon: NativeAddon;
  readonly #isa: number;

  constructor(addon: NativeAddon, isa: number) {
    this.#addon = addon;
    this.#isa = isa;
    this.name = `native-${addon.isas[isa]}`;
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
    this.#addon.matmul(this.#isa, a, b, out, m, k, n, transA, transB, accumulate);
  }

  /** See KernelBackend.matmulBatched: one call into the addon for all `batch` products. */
  matmulBatched(
    a: Float32Array, // batch × (M, K) or (K, M), the i-th at a[i·strideA]
    b: Float32Array, // batch × (K, N) or (N, K), the i-th at b[i·strideB]
    out: Float32Array, // batch × (M, N), the i-th at out[i·strideOut]
    batch: number,
    m: number,
    k: number,
    n: number,
    transA: boolean,
    transB: boolean,
    accumulate: boolean,
    strideA: number,
    strideB: number,
    strideOut: number,
  ): void {
    this.#addon.matmulBatched(this.#isa, a, b, out, batch, m, k, n, transA, transB, accumulate, strideA, strideB, strideOut);
  }

  /** See KernelBackend.causalAttention: native/attention.c, its products on this isa's GEMM. */
  causalAttention(qkv: Float32Array, out: Float32Array, probs: Float32Array, b: number, t: number, h: number, d: number): void {
    this.#addon.causalAttention(this.#isa, qkv, out, probs, b, t, h, d);
  }

  causalAttentionBackward(qkv: Float32Array, probs: Float32Array, dout: Float32Array, dqkv: Float32Array, b: number, t: number, h: number, d: number): void {
    this.#addon.causalAttentionBackward(this.#isa, qkv, probs, dout, dqkv, b, t, h, d);
  }

  // The row kernels (native/rows.c): the same C for every isa (GELU's picks its own by CPU).

  relu(x: Float32Array, out: Float32Array, n: number): void {
    this.#addon.relu(x, out, n);
  }

  reluBackwardInto(y: Float32Array, dy: Float32Array, dx: Float32Array, n: number): void {
    this.#addon.reluBackwardInto(y, dy, dx, n);
  }

  gelu(x: Float32Array, out: Float32Array, n: number): void {
    this.#addon.gelu(x, out, n);
  }

  geluBackward(x: Float32Array, dy: Float32Array, dx: Float32Array, n: number): void {
    this.#addon.geluBackward(x, dy, dx, n);
  }

  layerNorm(x: Float32Array, weight: Float32Array | null, bias: Float32Array | null, out: Float32Array, mean: Float32Array, rstd: Float32Array, rows: number, d: number, eps: number): void {
    this.#addon.layerNorm(x, weight, bias, out, mean, rstd, rows, d, eps);
  }

  layerNormBackward(
    x: Float32Array, weight: Float32Array | null, mean: Float32Array, rstd: Float32Array, dy: Float32Array,
    dx: Float32Array | null, dweight: Float32Array | null, dbias: Float32Array | null, rows: number, d: number,
  ): void {
    this.#addon.layerNormBackward(x, weight, mean, rstd, dy, dx, dweight, dbias, rows, d);
  }

  // The whole convolution (native/conv.c): the plane kernels around the isa's GEMM.

  conv2d(x: Float32Array, weight: Float32Array, bias: Float32Array | null, out: Float32Array, s: Conv2dShape): void {
    this.#addon.conv2d(this.#isa, x, weight, bias, out, s.n, s.c, s.h, s.w, s.kh, s.kw, s.sh, s.sw, s.ph, s.pw, s.oh, s.ow, s.o);
  }

  conv2dBackward(
    x: Float32Array, weight: Float32Array, dy: Float32Array, dx: Float32Array | null, dweight: Float32Array | null, dbias: Float32Array | null, s: Conv2dShape,
  ): void {
    this.#addon.conv2dBackward(this.#isa, x, weight, dy, dx, dweight, dbias, s.n, s.c, s.h, s.w, s.kh, s.kw, s.sh, s.sw, s.ph, s.pw, s.oh, s.ow, s.o);
  }

  // The plane kernels (native/planes.c): the same C for every isa, compiled for the baseline.
  // conv2d above calls them itself; one by one they serve max pooling, a backend that composes
  // conv2d from them, and plane-kernels.test.ts, which checks each bit for bit against TypeScript.

  im2col(x: Float32Array, cols: Float32Array, s: Conv2dShape): void {
    this.#addon.im2col(x, cols, s.n, s.c, s.h, s.w, s.kh, s.kw, s.sh, s.sw, s.ph, s.pw, s.oh, s.ow);
  }

  col2im(dcols: Float32Array, dx: Float32Array, s: Conv2dShape): void {
    this.#addon.col2im(dcols, dx, s.n, s.c, s.h, s.w, s.kh, s.kw, s.sh, s.sw, s.ph, s.pw, s.oh, s.ow);
  }

  swap01(x: Float32Array, out: Float32Array, a: number, b: number, inner: number, accumulate: boolean): void {
    this.#addon.swap01(x, out, a, b, inner, accumulate);
  }

  addRowSums(x: Float32Array, out: Float32Array, rows: number, cols: number): void {
    this.#addon.addRowSums(x, out, rows, cols);
  }

  maxPool2d(x: Float32Array, out: Float32Array, argmax: Int32Array, s: Pool2dShape): void {
    this.#addon.maxPool2d(x, out, argmax, s.planes, s.h, s.w, s.kh, s.kw, s.sh, s.sw, s.ph, s.pw, s.oh, s.ow);
  }

  maxPool2dBackward(dy: Float32Array, argmax: Int32Array, dx: Float32Array, s: Pool2dShape): void {
    this.#addon.maxPool2dBackward(dy, argmax, dx, s.planes, s.h, s.w, s.oh, s.ow);
  }

  softmaxCrossEntropy(x: Float32Array, labels: Int32Array, probs: Float32Array, rows: number, cols: number): number {
    return this.#addon.softmaxCrossEntropy(x, labels, probs, rows, cols);
  }

  softmaxCrossEntropyBackward(probs: Float32Array, labels: Int32Array, dx: Float32Array, rows: number, cols: number, g: number): void {
    this.#addon.softmaxCrossEntropyBackward(probs, labels, dx, rows, cols, g);
  }
}

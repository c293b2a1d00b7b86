/**
 * The kernel tier's contract: what a faster backend (WebAssembly SIMD, native) must implement.
 *
 * Kernels are pure functions over row-major typed arrays and their dimensions. They write into an
 * output array the caller owns and allocate nothing per call (a backend may keep scratch space that
 * grows once and is reused). Shapes are given by dimension letters: M rows of the output, N columns
 * of the output, K the contracted dimension.
 *
 * matmul is what every backend implements: it is where a model spends its time. Products built on
 * matmul (convolution as im2col · weights, attention's Q·Kᵀ and P·V per head) call `matmul`, or
 * `batchedMatmul` below for many same-shaped products in one call, which a backend can run without
 * a call per product. A backend may also take over the row kernels a training step spends the rest
 * of its time in once its products are fast (ReLU, GELU, layer norm, softmax + cross-entropy,
 * forward and backward; convolution's im2col, col2im, layout swap and bias sums; max pooling): the
 * optional members below, with the arguments of the TypeScript kernels that stand in where it does
 * not (unary.ts, gelu.ts, norm.ts, softmax.ts, conv.ts, pool.ts; `rowKernels` in select.ts picks)
 * and stay their oracles. Causal attention's core has no TypeScript kernel: where a backend lacks
 * it, autograd/attention.ts composes it from the general ops.
 * Everything else in this tier is plain TypeScript that every backend shares.
 *
 * Backends: 'js' (matmul.ts), 'wasm-simd' / 'wasm-relaxed-simd' (wasm-backend.ts) and
 * 'native-avx512' / 'native-avx2' / 'native-sse' (native-backend.ts, an optional C addon).
 */
import type { Conv2dShape } from './conv.js';
import type { Pool2dShape } from './pool.js';

export interface KernelBackend {
  /** A short name for logs and benchmark tables, e.g. 'js' or 'wasm-simd'. */
  readonly name: string;
  /**
   * out = op(a) · op(b), or out += op(a) · op(b) when `accumulate` is true.
   *
   * - a: (M, K) row-major, or (K, M) when `transA` (so op(a) = aᵀ is (M, K))
   * - b: (K, N) row-major, or (N, K) when `transB`
   * - out: (M, N) row-major
   *
   * The transposed cases are read in place (or packed internally), never materialised by the
   * caller: a weight gradient is xᵀ·dy and an input gradient is dy·Wᵀ on every backward pass.
   */
  matmul(
    a: Float32Array,
    b: Float32Array,
    out: Float32Array,
    m: number,
    k: number,
    n: number,
    transA: boolean,
    transB: boolean,
    accumulate: boolean,
  ): void;
  /**
   * Optional: `batch` products of the same shape in one call, the i-th on a[i·strideA :],
   * b[i·strideB :] and out[i·strideOut :] (each laid out as in `matmul`); a stride of 0 reuses one
   * operand for every product (shared weights). For attention heads and per-image convolutions.
   * Call it through `batchedMatmul`, which loops over `matmul` when a backend lacks it.
   */
  matmulBatched?(
    a: Float32Array,
    b: Float32Array,
    out: Float32Array,
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
  ): void;
  /** Optional: out = max(x, 0) over n elements, NaN kept, as unary.ts's `relu`; out may be x. */
  relu?(x: Float32Array, out: Float32Array, n: number): void;
  /** Optional: dx = dy where y > 0, else 0, as unary.ts's `reluBackwardInto`; dx may be dy. */
  reluBackwardInto?(y: Float32Array, dy: Float32Array, dx: Float32Array, n: number): void;
  /**
   * Optional: causal self-attention's core, out (B, T, C) from qkv (B, T, 3C) with the (B, H, T, T)
   * softmax weights kept in probs, as autograd/attention.ts's `composedAttention` computes it
   * (native/attention.h says how); and its gradient, dqkv += through it from dout (B, T, C).
   */
  causalAttention?(qkv: Float32Array, out: Float32Array, probs: Float32Array, b: number, t: number, h: number, d: number): void;
  causalAttentionBackward?(qkv: Float32Array, probs: Float32Array, dout: Float32Array, dqkv: Float32Array, b: number, t: number, h: number, d: number): void;
  /** Optional: each row normalised, scaled and shifted, as norm.ts's `layerNorm`. */
  layerNorm?(x: Float32Array, weight: Float32Array | null, bias: Float32Array | null, out: Float32Array, mean: Float32Array, rstd: Float32Array, rows: number, d: number, eps: number): void;
  /** Optional: its gradients, each added into its array where given, as norm.ts's `layerNormBackward`. */
  layerNormBackward?(
    x: Float32Array, weight: Float32Array | null, mean: Float32Array, rstd: Float32Array, dy: Float32Array,
    dx: Float32Array | null, dweight: Float32Array | null, dbias: Float32Array | null, rows: number, d: number,
  ): void;
  /** Optional: out = x·Φ(x), the exact GELU, as gelu.ts's `gelu`; out may be x. */
  gelu?(x: Float32Array, out: Float32Array, n: number): void;
  /** Optional: dx += dy·(Φ(x) + x·φ(x)), as gelu.ts's `geluBackward`. */
  geluBackward?(x: Float32Array, dy: Float32Array, dx: Float32Array, n: number): void;
  /**
   * Optional: a whole convolution, out (N, O, OH, OW) = conv2d(x, weight) + bias, as conv.ts's
   * `conv2d` composes it from im2col, one product and swap01 (native/conv.h says how); and its
   * gradients, each added into its array where given, from x itself (no columns kept between the two).
   */
  conv2d?(x: Float32Array, weight: Float32Array, bias: Float32Array | null, out: Float32Array, s: Conv2dShape): void;
  conv2dBackward?(
    x: Float32Array, weight: Float32Array, dy: Float32Array, dx: Float32Array | null, dweight: Float32Array | null, dbias: Float32Array | null, s: Conv2dShape,
  ): void;
  /** Optional: cols = im2col(x), as conv.ts's `im2col`. */
  im2col?(x: Float32Array, cols: Float32Array, s: Conv2dShape): void;
  /** Optional: dx += col2im(dcols), as conv.ts's `col2im`. */
  col2im?(dcols: Float32Array, dx: Float32Array, s: Conv2dShape): void;
  /** Optional: out (B, A, inner) (=|+=) x (A, B, inner), as conv.ts's `swap01`. */
  swap01?(x: Float32Array, out: Float32Array, a: number, b: number, inner: number, accumulate: boolean): void;
  /** Optional: out (R) += the sum of each row of x (R, C), as conv.ts's `addRowSums`. */
  addRowSums?(x: Float32Array, out: Float32Array, rows: number, cols: number): void;
  /** Optional: each window's maximum and its position, as pool.ts's `maxPool2d`. */
  maxPool2d?(x: Float32Array, out: Float32Array, argmax: Int32Array, s: Pool2dShape): void;
  /** Optional: dx += dy routed to each window's argmax, as pool.ts's `maxPool2dBackward`. */
  maxPool2dBackward?(dy: Float32Array, argmax: Int32Array, dx: Float32Array, s: Pool2dShape): void;
  /**
   * Optional: probs (N, C) = softmax of each row of x (N, C), returning Σ_r −log softmax(x_r)[labels_r],
   * as softmax.ts's `softmaxCrossEntropy`. Labels lie in [0, C) (the caller checks them).
   */
  softmaxCrossEntropy?(x: Float32Array, labels: Int32Array, probs: Float32Array, rows: number, cols: number): number;
  /** Optional: dx (N, C) += (probs − onehot(labels)) · g, as softmax.ts's `softmaxCrossEntropyBackward`. */
  softmaxCrossEntropyBackward?(probs: Float32Array, labels: Int32Array, dx: Float32Array, rows: number, cols: number, g: number): void;
}

/**
 * `batch` products of one shape: backend.matmulBatched when it has one (the native backend: one
 * call), else one backend.matmul per product on subarray views (which allocates a view per product).
 *
 * @example
 * // two 2×2 products sharing b = I: out[0:4] = a[0:4], out[4:8] = a[4:8]
 * batchedMatmul(kernelBackend, a, eye, out, 2, 2, 2, 2, false, false, false, 4, 0, 4);
 */
export function batchedMatmul(
  backend: KernelBackend,
  a: Float32Array,
  b: Float32Array,
  out: Float32Array,
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
  if (backend.matmulBatched !== undefined) {
    backend.matmulBatched(a, b, out, batch, m, k, n, transA, transB, accumulate, strideA, strideB, strideOut);
    return;
  }
  for (let i = 0; i < batch; i++) {
    backend.matmul(
      a.subarray(i * strideA, i * strideA + m * k),
      b.subarray(i * strideB, i * strideB + k * n),
      out.subarray(i * strideOut, i * strideOut + m * n),
      m, k, n, transA, transB, accumulate,
    );
  }
}

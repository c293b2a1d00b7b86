/**
 * The kernel tier's contract: what a faster backend (WebAssembly SIMD, native) must implement.
 *
 * Kernels are pure functions over row-major typed arrays and their dimensions. They write into an
 * output array the caller owns and allocate nothing per call (a backend may keep scratch space that
 * grows once and is reused). Shapes are given by dimension letters: M rows of the output, N columns
 * of the output, K the contracted dimension.
 *
 * Only matmul is backend-specific today: it is where a model spends its time. Everything else in
 * this tier is plain TypeScript that every backend shares.
 */
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
}

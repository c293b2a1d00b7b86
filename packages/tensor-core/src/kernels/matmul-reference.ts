/**
 * The obviously-correct matmul: three loops and a float64 accumulator. It is the oracle every fast
 * matmul is tested against, and is never used for training.
 */
export function matmulReference(
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
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let sum = 0;
      for (let p = 0; p < k; p++) {
        const av = transA ? a[p * m + i]! : a[i * k + p]!;
        const bv = transB ? b[j * k + p]! : b[p * n + j]!;
        sum += av * bv;
      }
      out[i * n + j] = accumulate ? out[i * n + j]! + sum : sum;
    }
  }
}

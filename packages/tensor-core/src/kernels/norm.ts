/**
 * Normalisation kernels. Both normalise groups of values to zero mean and unit variance and then
 * scale and shift them; they differ in what a group is:
 *
 * - layer norm: each row of x (R, D), the trailing `normalized_shape` flattened to D;
 * - batch norm: each channel of x (N, C, P), over the N·P values of that channel in the batch.
 *
 * Statistics accumulate in float64. The variance used to normalise is the biased one (÷ count), as
 * PyTorch's; mean and rstd = 1/√(var + eps) are kept for backward.
 *
 * With x̂ = (x − mean)·rstd and g = dy·weight, the input gradient of either is
 *
 *   dx = rstd · (g − mean(g) − x̂ · mean(g · x̂))      means over the group
 *
 * and dweight += Σ dy·x̂, dbias += Σ dy, sums over everything but the normalised feature.
 */

/** out (R, D) = layerNorm of each row of x, · weight (D) + bias (D) when given; writes mean, rstd (R). */
export function layerNorm(
  x: Float32Array, // (R, D)
  weight: Float32Array | null, // (D)
  bias: Float32Array | null, // (D)
  out: Float32Array, // (R, D)
  mean: Float32Array, // (R)
  rstd: Float32Array, // (R)
  rows: number,
  d: number,
  eps: number,
): void {
  for (let r = 0; r < rows; r++) {
    const base = r * d;
    let s = 0;
    for (let i = 0; i < d; i++) s += x[base + i]!;
    const m = s / d;
    let v = 0;
    for (let i = 0; i < d; i++) {
      const c = x[base + i]! - m;
      v += c * c;
    }
    const rs = 1 / Math.sqrt(v / d + eps);
    mean[r] = m;
    rstd[r] = rs;
    for (let i = 0; i < d; i++) {
      let y = (x[base + i]! - m) * rs;
      if (weight !== null) y *= weight[i]!;
      if (bias !== null) y += bias[i]!;
      out[base + i] = y;
    }
  }
}

/** The gradients of layerNorm, each accumulated (+=) into its array when given. */
export function layerNormBackward(
  x: Float32Array, // (R, D)
  weight: Float32Array | null, // (D)
  mean: Float32Array, // (R)
  rstd: Float32Array, // (R)
  dy: Float32Array, // (R, D)
  dx: Float32Array | null, // (R, D)
  dweight: Float32Array | null, // (D)
  dbias: Float32Array | null, // (D)
  rows: number,
  d: number,
): void {
  for (let r = 0; r < rows; r++) {
    const base = r * d;
    const m = mean[r]!;
    const rs = rstd[r]!;
    let sg = 0;
    let sgx = 0;
    for (let i = 0; i < d; i++) {
      const xh = (x[base + i]! - m) * rs;
      const g = weight === null ? dy[base + i]! : dy[base + i]! * weight[i]!;
      sg += g;
      sgx += g * xh;
      if (dweight !== null) dweight[i]! += dy[base + i]! * xh;
      if (dbias !== null) dbias[i]! += dy[base + i]!;
    }
    if (dx === null) continue;
    sg /= d;
    sgx /= d;
    for (let i = 0; i < d; i++) {
      const xh = (x[base + i]! - m) * rs;
      const g = weight === null ? dy[base + i]! : dy[base + i]! * weight[i]!;
      dx[base + i]! += rs * (g - sg - xh * sgx);
    }
  }
}

/** mean (C) and biased var (C) of each channel of x (N, C, P) over its N·P values. */
export function channelStats(x: Float32Array, mean: Float32Array, variance: Float32Array, n: number, c: number, p: number): void {
  const count = n * p;
  for (let ch = 0; ch < c; ch++) {
    let s = 0;
    for (let img = 0; img < n; img++) {
      const base = (img * c + ch) * p;
      for (let q = 0; q < p; q++) s += x[base + q]!;
    }
    const m = s / count;
    let v = 0;
    for (let img = 0; img < n; img++) {
      const base = (img * c + ch) * p;
      for (let q = 0; q < p; q++) {
        const d = x[base + q]! - m;
        v += d * d;
      }
    }
    mean[ch] = m;
    variance[ch] = v / count;
  }
}

/** out (N, C, P) = (x − mean[c])·rstd[c]·weight[c] + bias[c], weight and bias optional. */
export function normalizeChannels(
  x: Float32Array,
  mean: Float32Array, // (C)
  rstd: Float32Array, // (C)
  weight: Float32Array | null,
  bias: Float32Array | null,
  out: Float32Array,
  n: number,
  c: number,
  p: number,
): void {
  for (let img = 0; img < n; img++) {
    for (let ch = 0; ch < c; ch++) {
      const scale = rstd[ch]! * (weight === null ? 1 : weight[ch]!);
      const shift = (bias === null ? 0 : bias[ch]!) - mean[ch]! * scale;
      const base = (img * c + ch) * p;
      for (let q = 0; q < p; q++) out[base + q] = x[base + q]! * scale + shift;
    }
  }
}

/**
 * The gradients of batch norm over x (N, C, P), each accumulated (+=) when given. `batchStats`:
 * mean and rstd were computed from this batch (training), so they carry gradient too; otherwise
 * they are constants (running statistics in eval mode) and dx = dy·weight·rstd.
 */
export function batchNormBackward(
  x: Float32Array,
  mean: Float32Array, // (C)
  rstd: Float32Array, // (C)
  weight: Float32Array | null, // (C)
  dy: Float32Array,
  dx: Float32Array | null,
  dweight: Float32Array | null,
  dbias: Float32Array | null,
  n: number,
  c: number,
  p: number,
  batchStats: boolean,
): void {
  const count = n * p;
  for (let ch = 0; ch < c; ch++) {
    const m = mean[ch]!;
    const rs = rstd[ch]!;
    const w = weight === null ? 1 : weight[ch]!;
    let sdy = 0;
    let sdyx = 0;
    for (let img = 0; img < n; img++) {
      const base = (img * c + ch) * p;
      for (let q = 0; q < p; q++) {
        sdy += dy[base + q]!;
        sdyx += dy[base + q]! * (x[base + q]! - m) * rs;
      }
    }
    if (dweight !== null) dweight[ch]! += sdyx;
    if (dbias !== null) dbias[ch]! += sdy;
    if (dx === null) continue;
    const mg = batchStats ? (sdy * w) / count : 0; // mean(g)
    const mgx = batchStats ? (sdyx * w) / count : 0; // mean(g·x̂)
    for (let img = 0; img < n; img++) {
      const base = (img * c + ch) * p;
      for (let q = 0; q < p; q++) {
        const xh = (x[base + q]! - m) * rs;
        dx[base + q]! += rs * (dy[base + q]! * w - mg - xh * mgx);
      }
    }
  }
}

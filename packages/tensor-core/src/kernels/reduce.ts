/**
 * Reductions. A tensor reduced over one axis is viewed as (outer, len, inner): the axis has `len`
 * elements, `outer` is the product of the dimensions before it and `inner` of those after it.
 * Sums accumulate in float64 so that a mean over a million elements is not dominated by rounding.
 */

/** The sum of the first n elements. */
export function sumAll(x: Float32Array, n: number): number {
  let s = 0;
  for (let i = 0; i < n; i++) s += x[i]!;
  return s;
}

/** out(outer, inner) = Σ_l x(outer, l, inner) · scale */
export function sumAxis(
  x: Float32Array, // (outer, len, inner)
  out: Float32Array, // (outer, inner)
  outer: number,
  len: number,
  inner: number,
  scale = 1,
): void {
  if (inner === 1) {
    // Reducing the last axis: each output is one contiguous run.
    for (let o = 0; o < outer; o++) {
      let s = 0;
      const base = o * len;
      for (let l = 0; l < len; l++) s += x[base + l]!;
      out[o] = s * scale;
    }
    return;
  }
  // Otherwise walk rows of `inner` contiguous elements and add them up (cache-friendly).
  out.fill(0, 0, outer * inner);
  for (let o = 0; o < outer; o++) {
    for (let l = 0; l < len; l++) {
      const src = (o * len + l) * inner;
      const dst = o * inner;
      for (let i = 0; i < inner; i++) out[dst + i]! += x[src + i]!;
    }
  }
  if (scale !== 1) for (let i = 0; i < outer * inner; i++) out[i]! *= scale;
}

/** dx(outer, l, inner) += dy(outer, inner) · scale for every l: the gradient of sumAxis. */
export function expandAxis(
  dy: Float32Array, // (outer, inner)
  dx: Float32Array, // (outer, len, inner)
  outer: number,
  len: number,
  inner: number,
  scale = 1,
): void {
  for (let o = 0; o < outer; o++) {
    for (let l = 0; l < len; l++) {
      const dst = (o * len + l) * inner;
      const src = o * inner;
      for (let i = 0; i < inner; i++) dx[dst + i]! += dy[src + i]! * scale;
    }
  }
}

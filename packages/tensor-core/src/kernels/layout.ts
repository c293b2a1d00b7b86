/**
 * Layout kernels: swapping two axes into a new contiguous array, copying blocks of an axis, and
 * filling masked positions. Tensors are contiguous, so a transpose is materialised here rather
 * than kept as strides.
 */

/**
 * out (outer, B, mid, A, inner) (=|+=) x (outer, A, mid, B, inner): axes A and B swapped. With
 * `accumulate` the gradient of a transpose: the same swap added into dx.
 */
export function swapAxes(
  x: Float32Array,
  out: Float32Array,
  outer: number,
  a: number,
  mid: number,
  b: number,
  inner: number,
  accumulate: boolean,
): void {
  for (let o = 0; o < outer; o++) {
    for (let i = 0; i < a; i++) {
      for (let m = 0; m < mid; m++) {
        for (let j = 0; j < b; j++) {
          const src = ((((o * a + i) * mid + m) * b + j) * inner);
          const dst = ((((o * b + j) * mid + m) * a + i) * inner);
          if (accumulate) for (let k = 0; k < inner; k++) out[dst + k]! += x[src + k]!;
          else for (let k = 0; k < inner; k++) out[dst + k] = x[src + k]!;
        }
      }
    }
  }
}

/**
 * out (outer, len, inner) (=|+=) x (outer, total, inner)[:, start : start + len, :]: one piece of a
 * split. With `reverse`, the other way round: x[:, start : start + len, :] += out, its gradient.
 */
export function copyBlock(
  x: Float32Array,
  out: Float32Array,
  outer: number,
  total: number,
  start: number,
  len: number,
  inner: number,
  reverse: boolean,
): void {
  const run = len * inner;
  for (let o = 0; o < outer; o++) {
    const src = (o * total + start) * inner;
    const dst = o * run;
    if (reverse) for (let k = 0; k < run; k++) x[src + k]! += out[dst + k]!;
    else for (let k = 0; k < run; k++) out[dst + k] = x[src + k]!;
  }
}

/**
 * out (B, R, S) = x (B, R, S) with `value` where mask (R, S) is non-zero, the mask broadcast over
 * the leading B.
 */
export function maskedFill(x: Float32Array, mask: Int32Array, out: Float32Array, batches: number, rs: number, value: number): void {
  for (let bt = 0; bt < batches; bt++) {
    const base = bt * rs;
    for (let i = 0; i < rs; i++) out[base + i] = mask[i] !== 0 ? value : x[base + i]!;
  }
}

/** dx (B, R, S) += dy where mask (R, S) is zero: the gradient of maskedFill. */
export function maskedFillBackward(dy: Float32Array, mask: Int32Array, dx: Float32Array, batches: number, rs: number): void {
  for (let bt = 0; bt < batches; bt++) {
    const base = bt * rs;
    for (let i = 0; i < rs; i++) if (mask[i] === 0) dx[base + i]! += dy[base + i]!;
  }
}

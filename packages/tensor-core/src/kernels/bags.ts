/**
 * Bags of rows: the forward and backward of an embedding bag (torch.nn.functional.embedding_bag
 * with offsets, include_last_offset = false). Indices and offsets must already be validated by the
 * caller (the op tier checks them once, with a message).
 *
 * Legend: V rows of the table, D its width, N indices in all bags together, B bags. Bag b is
 * idx[offsets[b] .. offsets[b+1]), the last bag runs to N; a bag may be empty.
 *
 * Rounding follows PyTorch 1.13's CPU kernels so that results are bit-for-bit the same: a bag's sum
 * adds its rows one at a time in index order in float32; a mean divides that sum by the bag size;
 * the mean's gradient multiplies by the float32 value of 1/size (PyTorch's apply_bag_size_backward).
 */

/** The end of bag b: the next bag's offset, or N for the last bag. */
function bagEnd(offsets: Int32Array, b: number, bags: number, n: number): number {
  return b + 1 < bags ? offsets[b + 1]! : n;
}

/** out(B, D) = Σ table(idx[k], :) over each bag, or its mean when `mean` (0 for an empty bag). */
export function bagRows(
  table: Float32Array, // (V, D)
  idx: Int32Array, // (N)
  offsets: Int32Array, // (B)
  out: Float32Array, // (B, D)
  bags: number,
  n: number,
  d: number,
  mean: boolean,
): void {
  for (let b = 0; b < bags; b++) {
    const o = b * d;
    const start = offsets[b]!;
    const end = bagEnd(offsets, b, bags, n);
    for (let j = 0; j < d; j++) out[o + j] = 0;
    for (let k = start; k < end; k++) {
      const src = idx[k]! * d;
      for (let j = 0; j < d; j++) out[o + j]! += table[src + j]!;
    }
    const size = end - start;
    if (mean && size > 1) for (let j = 0; j < d; j++) out[o + j]! /= size;
  }
}

/**
 * rows(N, D): the gradient of each index's row, dy(bag of k, :), times fround(1/size) for a mean.
 * These are the values of PyTorch's sparse gradient before coalescing, one row per index.
 */
export function bagRowsBackward(
  dy: Float32Array, // (B, D)
  offsets: Int32Array, // (B)
  rows: Float32Array, // (N, D)
  bags: number,
  n: number,
  d: number,
  mean: boolean,
): void {
  for (let b = 0; b < bags; b++) {
    const src = b * d;
    const start = offsets[b]!;
    const end = bagEnd(offsets, b, bags, n);
    const scale = mean ? Math.fround(1 / (end - start)) : 1;
    for (let k = start; k < end; k++) {
      const dst = k * d;
      if (scale === 1) for (let j = 0; j < d; j++) rows[dst + j] = dy[src + j]!;
      else for (let j = 0; j < d; j++) rows[dst + j] = dy[src + j]! * scale;
    }
  }
}

/** grad(idx[k], :) += dy(bag of k, :) · (fround(1/size) for a mean) — the dense gradient of bagRows. */
export function bagRowsScatterAdd(
  dy: Float32Array, // (B, D)
  idx: Int32Array, // (N)
  offsets: Int32Array, // (B)
  grad: Float32Array, // (V, D)
  bags: number,
  n: number,
  d: number,
  mean: boolean,
): void {
  for (let b = 0; b < bags; b++) {
    const src = b * d;
    const start = offsets[b]!;
    const end = bagEnd(offsets, b, bags, n);
    const scale = mean ? Math.fround(1 / (end - start)) : 1;
    for (let k = start; k < end; k++) {
      const dst = idx[k]! * d;
      for (let j = 0; j < d; j++) grad[dst + j]! += Math.fround(dy[src + j]! * scale);
    }
  }
}

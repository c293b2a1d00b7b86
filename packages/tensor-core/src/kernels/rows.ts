/**
 * Row gathers and scatters: an embedding lookup and its gradient, and concatenation along columns.
 * Indices must already be validated by the caller (the op tier checks them once, with a message).
 */

/** out(N, D) = table(idx[n], :) — an embedding lookup. */
export function gatherRows(
  table: Float32Array, // (V, D)
  idx: Int32Array, // (N)
  out: Float32Array, // (N, D)
  n: number,
  d: number,
): void {
  for (let i = 0; i < n; i++) {
    const src = idx[i]! * d;
    out.set(table.subarray(src, src + d), i * d);
  }
}

/** grad(idx[n], :) += dy(n, :) — the gradient of gatherRows; repeated indices accumulate. */
export function scatterAddRows(
  dy: Float32Array, // (N, D)
  idx: Int32Array, // (N)
  grad: Float32Array, // (V, D)
  n: number,
  d: number,
): void {
  for (let i = 0; i < n; i++) {
    const dst = idx[i]! * d;
    const src = i * d;
    for (let j = 0; j < d; j++) grad[dst + j]! += dy[src + j]!;
  }
}

/**
 * Copies x(N, W) into columns [offset, offset + W) of out(N, total), or, with `accumulate`, adds
 * those columns of out into x — the forward and backward of concatenation along columns.
 */
export function copyColumns(
  x: Float32Array, // (N, W)
  out: Float32Array, // (N, total)
  rows: number,
  width: number,
  total: number,
  offset: number,
  backward = false,
): void {
  for (let r = 0; r < rows; r++) {
    const xb = r * width;
    const ob = r * total + offset;
    if (backward) for (let c = 0; c < width; c++) x[xb + c]! += out[ob + c]!;
    else out.set(x.subarray(xb, xb + width), ob);
  }
}

/**
 * out(N, C) = row(C) in every row — a bias before a product is added to it. One copy of the row,
 * then doubling copies of the rows already written: log₂ N memmoves instead of N calls.
 */
export function broadcastRow(
  row: Float32Array, // (C)
  out: Float32Array, // (N, C)
  rows: number,
  cols: number,
): void {
  if (rows === 0 || cols === 0) return;
  for (let c = 0; c < cols; c++) out[c] = row[c]!;
  for (let done = 1; done < rows; done *= 2) out.copyWithin(done * cols, 0, Math.min(done, rows - done) * cols);
}

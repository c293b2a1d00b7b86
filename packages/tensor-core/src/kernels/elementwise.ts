/**
 * Binary elementwise kernels with broadcasting.
 *
 * The output is viewed as a (R, C) matrix (C is its last dimension). Each operand is read through a
 * pair of strides (rowStride, colStride) over that matrix:
 *   - same shape as the output: (C, 1)
 *   - a row, broadcast down the rows (a bias): (0, 1)
 *   - a column, broadcast across the columns (a per-row scale): (1, 0)
 *   - a scalar: (0, 0)
 * One loop serves every case, and the gradient of a broadcast operand is the same walk with the
 * roles reversed (see `reduceBroadcast`).
 */

/** How an operand is read over an (R, C) output. */
export interface Strides {
  readonly row: number;
  readonly col: number;
}

export const enum BinaryOp {
  Add,
  Sub,
  Mul,
  Div,
}

/** out(R, C) = a ∘ b, each operand read through its strides. */
export function binary(
  op: BinaryOp,
  a: Float32Array,
  as: Strides,
  b: Float32Array,
  bs: Strides,
  out: Float32Array, // (R, C)
  rows: number,
  cols: number,
): void {
  const ar = as.row, ac = as.col, br = bs.row, bc = bs.col;
  // The common cases (same shape, bias row) get a loop without index arithmetic.
  const flat = ar === cols && ac === 1 && br === cols && bc === 1;
  switch (op) {
    case BinaryOp.Add:
      if (flat) for (let i = 0; i < rows * cols; i++) out[i] = a[i]! + b[i]!;
      else for (let r = 0, o = 0; r < rows; r++) for (let c = 0; c < cols; c++, o++) out[o] = a[r * ar + c * ac]! + b[r * br + c * bc]!;
      return;
    case BinaryOp.Sub:
      if (flat) for (let i = 0; i < rows * cols; i++) out[i] = a[i]! - b[i]!;
      else for (let r = 0, o = 0; r < rows; r++) for (let c = 0; c < cols; c++, o++) out[o] = a[r * ar + c * ac]! - b[r * br + c * bc]!;
      return;
    case BinaryOp.Mul:
      if (flat) for (let i = 0; i < rows * cols; i++) out[i] = a[i]! * b[i]!;
      else for (let r = 0, o = 0; r < rows; r++) for (let c = 0; c < cols; c++, o++) out[o] = a[r * ar + c * ac]! * b[r * br + c * bc]!;
      return;
    case BinaryOp.Div:
      if (flat) for (let i = 0; i < rows * cols; i++) out[i] = a[i]! / b[i]!;
      else for (let r = 0, o = 0; r < rows; r++) for (let c = 0; c < cols; c++, o++) out[o] = a[r * ar + c * ac]! / b[r * br + c * bc]!;
      return;
  }
}

/**
 * grad[r * s.row + c * s.col] += scale * src(r, c) * (other ? other(r, c) : 1) — accumulates an
 * output gradient into a (possibly broadcast) operand's gradient, summing over the broadcast rows or
 * columns. `other` (read through its own strides) multiplies in the partner operand for mul/div.
 */
export function reduceBroadcast(
  src: Float32Array, // (R, C)
  grad: Float32Array,
  s: Strides,
  rows: number,
  cols: number,
  scale: number,
  other: Float32Array | null = null,
  os: Strides = { row: cols, col: 1 },
): void {
  const sr = s.row, sc = s.col, or = os.row, oc = os.col;
  if (other === null) {
    if (sr === cols && sc === 1) {
      for (let i = 0; i < rows * cols; i++) grad[i]! += scale * src[i]!;
      return;
    }
    for (let r = 0, o = 0; r < rows; r++) for (let c = 0; c < cols; c++, o++) grad[r * sr + c * sc]! += scale * src[o]!;
    return;
  }
  for (let r = 0, o = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++, o++) grad[r * sr + c * sc]! += scale * src[o]! * other[r * or + c * oc]!;
  }
}

/**
 * Differentiable ops. Each validates its inputs, computes its output with a kernel, and records one
 * small gradient rule that accumulates into its inputs' gradients.
 *
 * Gradient rules call kernels directly, with accumulation, rather than composing ops: a backward
 * pass then allocates nothing but the gradients of intermediate tensors, which is what lets a small
 * model's step run at the speed of its arithmetic.
 */
import { fmtShape, opError } from '../errors.js';
import { backend, rowKernels } from '../kernels/select.js';
import { BinaryOp, binary, reduceBroadcast, type Strides } from '../kernels/elementwise.js';
import * as unary from '../kernels/unary.js';
import { expandAxis, sumAll, sumAxis } from '../kernels/reduce.js';
import * as sm from '../kernels/softmax.js';
import { broadcastRow, copyColumns, gatherRows, scatterAddRows } from '../kernels/rows.js';
import { bagRows, bagRowsBackward, bagRowsScatterAdd } from '../kernels/bags.js';
import { IntTensor, Tensor, gradBuffer, passGrad, numel, record, type Shape } from './tensor.js';
import { RowSparseGrad } from './sparse-grad.js';
import { scratch } from './buffers.js';
import { normAxis, transpose } from './layout.js';
import { bmm } from './bmm.js';

/**
 * An op's output tensor, its buffer from the active pool when there is one (see buffers.ts).
 * `zeroed: false` for a kernel that writes every element (a pooled buffer is then not filled first:
 * the cnn's ReLU output fill was 2% of its step).
 */
const output = (shape: Shape, zeroed = true): Tensor => new Tensor(scratch(numel(shape), zeroed), shape);
import type { Random } from '../random.js';

function asTensor(x: Tensor | number): Tensor {
  return typeof x === 'number' ? new Tensor(Float32Array.of(x), []) : x;
}

function requireFloat(op: string, x: unknown, what: string): asserts x is Tensor {
  if (!(x instanceof Tensor)) {
    throw opError(op, `${what} must be a float Tensor, got ${x instanceof IntTensor ? 'an IntTensor' : typeof x}`);
  }
}

// ---------------------------------------------------------------------------------------------
// Broadcasting binary ops

interface BroadcastPlan {
  shape: number[];
  rows: number;
  cols: number;
  a: Strides;
  b: Strides;
}

/** How a and b broadcast to a common shape, viewed as (rows, cols); see kernels/elementwise.ts. */
function broadcastPlan(op: string, as: Shape, bs: Shape): BroadcastPlan {
  const rank = Math.max(as.length, bs.length);
  const pa = [...Array(rank - as.length).fill(1), ...as] as number[];
  const pb = [...Array(rank - bs.length).fill(1), ...bs] as number[];
  const shape: number[] = [];
  for (let i = 0; i < rank; i++) {
    if (pa[i] !== pb[i] && pa[i] !== 1 && pb[i] !== 1) {
      throw opError(op, `shapes ${fmtShape(as)} and ${fmtShape(bs)} do not broadcast (dimension ${i}: ${pa[i]} vs ${pb[i]})`);
    }
    shape.push(pa[i] === 1 ? pb[i]! : pa[i]!);
  }
  const cols = rank === 0 ? 1 : shape[rank - 1]!;
  const total = numel(shape);
  const rows = cols === 0 ? 0 : total / cols;
  const strides = (p: number[], original: Shape): Strides => {
    const n = numel(p);
    if (n === 1) return { row: 0, col: 0 };
    if (p.every((d, i) => d === shape[i])) return { row: cols, col: 1 };
    if (p[rank - 1] === cols && n === cols) return { row: 0, col: 1 };
    if (p[rank - 1] === 1 && p.every((d, i) => i === rank - 1 || d === shape[i])) return { row: 1, col: 0 };
    throw opError(
      op,
      `cannot broadcast ${fmtShape(original)} to ${fmtShape(shape)}: supported are equal shapes, a scalar, a row of ${cols} or a column of ${rows}`,
    );
  };
  return { shape, rows, cols, a: strides(pa, as), b: strides(pb, bs) };
}

function binaryOp(name: string, op: BinaryOp, x: Tensor | number, y: Tensor | number): Tensor {
  const a = asTensor(x);
  const b = asTensor(y);
  requireFloat(name, a, 'the first operand');
  requireFloat(name, b, 'the second operand');
  const plan = broadcastPlan(name, a.shape, b.shape);
  const { rows, cols } = plan;
  const out = output(plan.shape);
  binary(op, a.data, plan.a, b.data, plan.b, out.data, rows, cols);
  return record(out, name, [a, b], () => {
    const dy = out.grad!.data;
    const flat = { row: cols, col: 1 };
    // b first: a sum's first operand can then be handed dy itself (passGrad) once b has read it.
    if (b.requiresGrad) {
      const gb = gradBuffer(b);
      if (op === BinaryOp.Add) reduceBroadcast(dy, gb, plan.b, rows, cols, 1);
      else if (op === BinaryOp.Sub) reduceBroadcast(dy, gb, plan.b, rows, cols, -1);
      else if (op === BinaryOp.Mul) reduceBroadcast(dy, gb, plan.b, rows, cols, 1, a.data, plan.a);
      else {
        // d(a/b)/db = −(a/b)/b = −out/b
        const tmp = scratch(rows * cols);
        binary(BinaryOp.Div, out.data, flat, b.data, plan.b, tmp, rows, cols);
        reduceBroadcast(dy, gb, plan.b, rows, cols, -1, tmp, flat);
      }
    }
    if (a.requiresGrad) {
      const whole = (op === BinaryOp.Add || op === BinaryOp.Sub) && plan.a.row === cols && plan.a.col === 1;
      if (whole && passGrad(out, a)) return;
      const ga = gradBuffer(a);
      if (op === BinaryOp.Add || op === BinaryOp.Sub) reduceBroadcast(dy, ga, plan.a, rows, cols, 1);
      else if (op === BinaryOp.Mul) reduceBroadcast(dy, ga, plan.a, rows, cols, 1, b.data, plan.b);
      else {
        // d(a/b)/da = 1/b: dy/b equals dy·(a/b)/a only when a ≠ 0, so divide explicitly.
        const tmp = scratch(rows * cols);
        binary(BinaryOp.Div, dy, flat, b.data, plan.b, tmp, rows, cols);
        reduceBroadcast(tmp, ga, plan.a, rows, cols, 1);
      }
    }
  });
}

/** a + b, broadcasting a scalar, a row (bias) or a column. */
export const add = (a: Tensor | number, b: Tensor | number): Tensor => binaryOp('add', BinaryOp.Add, a, b);
/** a − b, broadcasting as `add`. */
export const sub = (a: Tensor | number, b: Tensor | number): Tensor => binaryOp('sub', BinaryOp.Sub, a, b);
/** a · b elementwise, broadcasting as `add`. */
export const mul = (a: Tensor | number, b: Tensor | number): Tensor => binaryOp('mul', BinaryOp.Mul, a, b);
/** a / b elementwise, broadcasting as `add`. */
export const div = (a: Tensor | number, b: Tensor | number): Tensor => binaryOp('div', BinaryOp.Div, a, b);

// ---------------------------------------------------------------------------------------------
// Unary ops

type Forward = (x: Float32Array, out: Float32Array, n: number) => void;
type Backward = (x: Float32Array, y: Float32Array, dy: Float32Array, dx: Float32Array, n: number) => void;

function unaryOp(name: string, x: Tensor, forward: Forward, backward: Backward): Tensor {
  requireFloat(name, x, 'the input');
  const out = output(x.shape, false); // every unary kernel writes each element
  forward(x.data, out.data, x.size);
  return record(out, name, [x], () => backward(x.data, out.data, out.grad!.data, gradBuffer(x), x.size));
}

/** −x */
export const neg = (x: Tensor): Tensor => unaryOp('neg', x, unary.neg, (_x, _y, dy, dx, n) => reduceBroadcastFlat(dy, dx, n, -1));
/** max(x, 0) */
export function relu(x: Tensor): Tensor {
  requireFloat('relu', x, 'the input');
  const out = output(x.shape, false);
  rowKernels.relu(x.data, out.data, x.size);
  return record(out, 'relu', [x], () => {
    // x's gradient usually starts here (x is a linear's output): then write it rather than add to zeros.
    const fresh = x.grad === null;
    const dx = gradBuffer(x, false); // fresh: written whole below; else it exists already
    if (fresh) rowKernels.reluBackwardInto(x.data, out.grad!.data, dx, x.size);
    else unary.reluBackward(x.data, out.grad!.data, dx, x.size);
  });
}
/** 1 / (1 + e^−x) */
export const sigmoid = (x: Tensor): Tensor => unaryOp('sigmoid', x, unary.sigmoid, (_x, y, dy, dx, n) => unary.sigmoidBackward(y, dy, dx, n));
/** tanh x */
export const tanh = (x: Tensor): Tensor => unaryOp('tanh', x, unary.tanh, (_x, y, dy, dx, n) => unary.tanhBackward(y, dy, dx, n));
/** e^x */
export const exp = (x: Tensor): Tensor => unaryOp('exp', x, unary.exp, (_x, y, dy, dx, n) => unary.mulAccumulate(dy, y, dx, n));
/** ln x */
export const log = (x: Tensor): Tensor => unaryOp('log', x, unary.log, (x, _y, dy, dx, n) => unary.divAccumulate(dy, x, dx, n));

function reduceBroadcastFlat(dy: Float32Array, dx: Float32Array, n: number, scale: number): void {
  reduceBroadcast(dy, dx, { row: n, col: 1 }, 1, n, scale);
}

// ---------------------------------------------------------------------------------------------
// Shapes

/** The same data with another shape of equal size (no copy). One dimension may be −1. */
export function reshape(x: Tensor, shape: Shape): Tensor {
  const s = [...shape];
  const unknown = s.indexOf(-1);
  if (unknown >= 0) {
    const known = s.reduce((p, d, i) => (i === unknown ? p : p * d), 1);
    s[unknown] = known === 0 ? 0 : x.size / known;
  }
  if (numel(s) !== x.size || !s.every((d) => Number.isInteger(d) && d >= 0)) {
    throw opError('reshape', `cannot reshape ${fmtShape(x.shape)} (${x.size} elements) to ${fmtShape(shape)}`);
  }
  const out = new Tensor(x.data, s);
  return record(out, 'reshape', [x], () => {
    if (!passGrad(out, x)) reduceBroadcastFlat(out.grad!.data, gradBuffer(x), x.size, 1);
  });
}

/**
 * Concatenates 2-D tensors along columns: (N, W₁), (N, W₂), … → (N, ΣW).
 * @example cat([userFeatures, itemEmbedding]) // (B, 20) and (B, 16) → (B, 36)
 */
export function cat(xs: readonly Tensor[]): Tensor {
  if (xs.length === 0) throw opError('cat', 'expected at least one tensor');
  const rows = xs[0]!.shape[0];
  let total = 0;
  xs.forEach((x, i) => {
    requireFloat('cat', x, `tensor ${i}`);
    if (x.ndim !== 2 || x.shape[0] !== rows) {
      throw opError('cat', `tensor ${i} has shape ${fmtShape(x.shape)}; expected 2-D with ${rows} rows like tensor 0 ${fmtShape(xs[0]!.shape)}`);
    }
    total += x.shape[1]!;
  });
  const n = rows ?? 0;
  const out = output([n, total]);
  let offset = 0;
  const offsets = xs.map((x) => {
    const o = offset;
    copyColumns(x.data, out.data, n, x.shape[1]!, total, o);
    offset += x.shape[1]!;
    return o;
  });
  return record(out, 'cat', xs, () => {
    xs.forEach((x, i) => {
      if (x.requiresGrad) copyColumns(gradBuffer(x), out.grad!.data, n, x.shape[1]!, total, offsets[i]!, true);
    });
  });
}

// ---------------------------------------------------------------------------------------------
// Reductions

function axisView(op: string, shape: Shape, axis: number): { outer: number; len: number; inner: number; axis: number } {
  const a = axis < 0 ? axis + shape.length : axis;
  if (!Number.isInteger(a) || a < 0 || a >= shape.length) {
    throw opError(op, `axis ${axis} is out of range for shape ${fmtShape(shape)}`);
  }
  return { outer: numel(shape.slice(0, a)), len: shape[a]!, inner: numel(shape.slice(a + 1)), axis: a };
}

function reduceOp(op: string, x: Tensor, axis: number | undefined, keepDim: boolean, mean: boolean): Tensor {
  requireFloat(op, x, 'the input');
  if (axis === undefined) {
    const scale = mean ? 1 / x.size : 1;
    const out = new Tensor(Float32Array.of(sumAll(x.data, x.size) * scale), []);
    return record(out, op, [x], () => {
      const g = out.grad!.data[0]! * scale;
      const dx = gradBuffer(x);
      for (let i = 0; i < dx.length; i++) dx[i]! += g;
    });
  }
  const v = axisView(op, x.shape, axis);
  const shape = keepDim ? x.shape.map((d, i) => (i === v.axis ? 1 : d)) : x.shape.filter((_, i) => i !== v.axis);
  const scale = mean ? 1 / v.len : 1;
  const out = output(shape);
  sumAxis(x.data, out.data, v.outer, v.len, v.inner, scale);
  return record(out, op, [x], () => expandAxis(out.grad!.data, gradBuffer(x), v.outer, v.len, v.inner, scale));
}

/** The sum of all elements, or over one axis. */
export const sum = (x: Tensor, axis?: number, keepDim = false): Tensor => reduceOp('sum', x, axis, keepDim, false);
/** The mean of all elements, or over one axis. */
export const mean = (x: Tensor, axis?: number, keepDim = false): Tensor => reduceOp('mean', x, axis, keepDim, true);

// ---------------------------------------------------------------------------------------------
// Softmax

function lastAxis(op: string, x: Tensor, axis: number): { rows: number; cols: number } {
  requireFloat(op, x, 'the input');
  if (x.ndim === 0 || (axis !== -1 && axis !== x.ndim - 1)) {
    throw opError(op, `only the last axis is supported, got axis ${axis} for shape ${fmtShape(x.shape)}`);
  }
  const cols = x.shape[x.ndim - 1]!;
  return { rows: cols === 0 ? 0 : x.size / cols, cols };
}

/**
 * Runs a last-axis op over `axis` instead, for an N-d x: the axis is swapped to the end, the op
 * applied and the axis swapped back (two copies). null when `axis` is already the last.
 */
function overAxis(op: string, x: Tensor, axis: number, f: (y: Tensor) => Tensor): Tensor | null {
  requireFloat(op, x, 'the input');
  if (x.ndim === 0) return null;
  const a = normAxis(op, x.shape, axis);
  if (a === x.ndim - 1) return null;
  return transpose(f(transpose(x, a, -1)), a, -1);
}

/**
 * Softmax over `axis` (default the last) of an N-d tensor, stable for large inputs: PyTorch's
 * `F.softmax(x, dim)`.
 * @example softmax(scores) // (B, H, T, T): each row of attention weights sums to 1
 */
export function softmax(x: Tensor, axis = -1): Tensor {
  const moved = overAxis('softmax', x, axis, (y) => softmax(y));
  if (moved !== null) return moved;
  const { rows, cols } = lastAxis('softmax', x, axis);
  const out = output(x.shape, false);
  sm.softmax(x.data, out.data, rows, cols);
  return record(out, 'softmax', [x], () => sm.softmaxBackward(out.data, out.grad!.data, gradBuffer(x), rows, cols));
}

/** Log-softmax over `axis` (default the last) of an N-d tensor, stable for large inputs. */
export function logSoftmax(x: Tensor, axis = -1): Tensor {
  const moved = overAxis('logSoftmax', x, axis, (y) => logSoftmax(y));
  if (moved !== null) return moved;
  const { rows, cols } = lastAxis('logSoftmax', x, axis);
  const out = output(x.shape, false);
  sm.logSoftmax(x.data, out.data, rows, cols);
  return record(out, 'logSoftmax', [x], () => sm.logSoftmaxBackward(out.data, out.grad!.data, gradBuffer(x), rows, cols));
}

// ---------------------------------------------------------------------------------------------
// Matrix products

/**
 * Whether t already has a gradient buffer: read it before gradBuffer(t), which creates one. When it
 * has none, a rule that would add to the new buffer can write it instead, and take it unzeroed
 * (gradBuffer(t, false)): a product then skips reading its output back in (the wasm backend copies
 * it into linear memory to accumulate).
 */
function hadGrad(t: Tensor): boolean {
  return t.grad !== null;
}

/** Cached (N) vectors of ones, one per length seen; a model sees a handful of batch sizes. */
const onesCache = new Map<number, Float32Array>();

/** A vector of n ones, for sums written as products. Shared: never write to it. */
function ones(n: number): Float32Array {
  let v = onesCache.get(n);
  if (v === undefined) {
    if (onesCache.size >= 64) onesCache.clear();
    v = new Float32Array(n).fill(1);
    onesCache.set(n, v);
  }
  return v;
}

function check2d(op: string, x: Tensor, what: string): void {
  requireFloat(op, x, what);
  if (x.ndim !== 2) throw opError(op, `${what} must be 2-D, got shape ${fmtShape(x.shape)}`);
}

/**
 * The matrix product of 2-D tensors: (M, K) · (K, N) → (M, N); with more dimensions, batched over
 * the leading ones, (…, M, K) · (…, K, N) → (…, M, N) (see `bmm`).
 * @example matmul(x, w) // (64, 100) · (100, 50) → (64, 50)
 */
export function matmul(a: Tensor, b: Tensor): Tensor {
  // (…, M, K)·(…, K, N) with leading batch dimensions: see bmm.ts.
  if (a instanceof Tensor && b instanceof Tensor && (a.ndim > 2 || b.ndim > 2)) return bmm(a, b);
  check2d('matmul', a, 'the first operand');
  check2d('matmul', b, 'the second operand');
  const [m, k] = a.shape as [number, number];
  const [k2, n] = b.shape as [number, number];
  if (k !== k2) throw opError('matmul', `inner dimensions differ: ${fmtShape(a.shape)} · ${fmtShape(b.shape)}`);
  const out = output([m, n], false); // the product overwrites it
  backend.matmul(a.data, b.data, out.data, m, k, n, false, false, false);
  return record(out, 'matmul', [a, b], () => {
    const dy = out.grad!.data; // (M, N)
    if (a.requiresGrad) {
      const add = hadGrad(a);
      backend.matmul(dy, b.data, gradBuffer(a, false), m, n, k, false, true, add); // dA += dy·Bᵀ
    }
    if (b.requiresGrad) {
      const add = hadGrad(b);
      backend.matmul(a.data, dy, gradBuffer(b, false), k, m, n, true, false, add); // dB += Aᵀ·dy
    }
  });
}

/**
 * y = x·Wᵀ + b with W stored (out, in), as PyTorch's `F.linear`: (N, in) → (N, out).
 * Fused so that backward reads W and x in place: dx = dy·W, dW += dyᵀ·x, db += Σₙ dy.
 *
 * The bias rides on the products too: y starts as b in every row (a handful of doubling copies, not
 * a loop over y) and the product is added to it, and db += 1ᵀ·dy. A JavaScript loop over y or dy
 * costs about 1.6 ns per element, as much as the multiply-adds of a K = 50 product on the wasm
 * backend; these cost a few copies and a thin product.
 */
export function linear(x: Tensor, weight: Tensor, bias: Tensor | null = null): Tensor {
  return linearOp('linear', x, weight, bias, false);
}

/**
 * relu(x·Wᵀ + b) as one op: `relu(linear(x, weight, bias))` with one (N, out) buffer instead of two.
 * The ReLU is applied in place on the product, and its gradient masks the incoming gradient in
 * place, so a Linear → ReLU pair costs one output, one gradient and two passes over them fewer than
 * the two ops. Sequential runs every Linear followed by a ReLU through it; the results are the same
 * bits as the two ops'.
 *
 * @example
 * linearRelu(x, fc1.weight, fc1.bias) // (64, 100) → (64, 50), every element ≥ 0
 */
export function linearRelu(x: Tensor, weight: Tensor, bias: Tensor | null = null): Tensor {
  return linearOp('linearRelu', x, weight, bias, true);
}

function linearOp(op: string, x: Tensor, weight: Tensor, bias: Tensor | null, relu: boolean): Tensor {
  // (…, in) → (…, out), as PyTorch: the leading dimensions are folded into rows (no copy).
  if (x instanceof Tensor && x.ndim > 2) {
    const y = linearOp(op, reshape(x, [-1, x.shape[x.ndim - 1]!]), weight, bias, relu);
    return reshape(y, [...x.shape.slice(0, -1), y.shape[1]!]);
  }
  check2d(op, x, 'the input');
  check2d(op, weight, 'the weight');
  const [n, inF] = x.shape as [number, number];
  const [outF, inW] = weight.shape as [number, number];
  if (inF !== inW) {
    throw opError(op, `input has ${inF} features but the weight ${fmtShape(weight.shape)} expects ${inW}`);
  }
  if (bias !== null) {
    requireFloat(op, bias, 'the bias');
    if (bias.size !== outF || bias.ndim !== 1) throw opError(op, `bias has shape ${fmtShape(bias.shape)}, expected [${outF}]`);
  }
  const out = output([n, outF], false); // the bias rows or the product overwrite it
  const y = out.data; // (N, out)
  if (bias !== null) broadcastRow(bias.data, y, n, outF); // y = b in every row
  backend.matmul(x.data, weight.data, y, n, inF, outF, false, true, bias !== null); // y (+)= x·Wᵀ
  if (relu) rowKernels.relu(y, y, n * outF);
  const parents = bias === null ? [x, weight] : [x, weight, bias];
  return record(out, op, parents, () => {
    const dy = out.grad!.data; // (N, out)
    // The ReLU's gradient, in place: dy is this op's own and complete (every consumer's rule has
    // run), and nothing reads it after this rule. y > 0 exactly where x·Wᵀ + b > 0.
    if (relu) rowKernels.reluBackwardInto(y, dy, dy, n * outF);
    if (x.requiresGrad) {
      const add = hadGrad(x);
      backend.matmul(dy, weight.data, gradBuffer(x, false), n, outF, inF, false, false, add); // dx += dy·W
    }
    if (weight.requiresGrad) {
      const add = hadGrad(weight);
      backend.matmul(dy, x.data, gradBuffer(weight, false), outF, n, inF, true, false, add); // dW += dyᵀ·x
    }
    if (bias !== null && bias.requiresGrad) {
      const add = hadGrad(bias);
      backend.matmul(ones(n), dy, gradBuffer(bias, false), 1, n, outF, false, false, add); // db += 1ᵀ·dy, (1, N)·(N, out)
    }
  });
}

// ---------------------------------------------------------------------------------------------
// Embeddings and dropout

export interface EmbeddingOptions {
  /**
   * Accumulate the weight's gradient as a row-sparse gradient, `weight.sparseGrad` (the looked-up
   * rows only), instead of a dense `weight.grad` (V, D): PyTorch's `sparse=True`. The weight must
   * be a leaf (a parameter).
   */
  sparse?: boolean;
}

/** The weight's row-sparse gradient, created on first use; checks that the weight is a leaf. */
function sparseGradOf(weight: Tensor): RowSparseGrad {
  if (weight.sparseGrad === null) {
    const [v, d] = weight.shape as [number, number];
    weight.sparseGrad = new RowSparseGrad(v, d);
  }
  return weight.sparseGrad;
}

function checkSparseWeight(op: string, weight: Tensor): void {
  if (weight._parents.length > 0) {
    throw opError(op, `sparse gradients need the weight to be a leaf (a parameter), got the output of '${weight._op}'`);
  }
}

function checkIndices(op: string, idx: Int32Array, v: number, bagOf?: (k: number) => number): void {
  for (let i = 0; i < idx.length; i++) {
    const x = idx[i]!;
    if (x < 0 || x >= v) {
      const where = bagOf === undefined ? `position ${i}` : `position ${i} (bag ${bagOf(i)})`;
      throw opError(op, `index ${x} at ${where} is out of range for ${v} rows`);
    }
  }
}

/**
 * Rows of `weight` (V, D) picked by integer indices of any shape → (...indices.shape, D).
 * Its gradient scatters back into the picked rows only; with `{ sparse: true }` it goes to
 * `weight.sparseGrad` as (row ids, rows) and no (V, D) gradient is ever made.
 *
 * @example
 * const w = Tensor.from([[1, 2], [3, 4], [5, 6]], undefined, true); // (3, 2)
 * embedding(w, IntTensor.from([2, 0, 2])); // [[5, 6], [1, 2], [5, 6]]
 */
export function embedding(weight: Tensor, indices: IntTensor, { sparse = false }: EmbeddingOptions = {}): Tensor {
  check2d('embedding', weight, 'the weight');
  if (!(indices instanceof IntTensor)) throw opError('embedding', 'indices must be an IntTensor');
  if (sparse) checkSparseWeight('embedding', weight);
  const [v, d] = weight.shape as [number, number];
  const idx = indices.data;
  checkIndices('embedding', idx, v);
  const out = output([...indices.shape, d]);
  gatherRows(weight.data, idx, out.data, idx.length, d);
  if (sparse) {
    return record(out, 'embedding', [weight], () => {
      // One value row per index, in index order: PyTorch's uncoalesced sparse gradient.
      const g = sparseGradOf(weight);
      const slot = g._stage(idx.length);
      slot.ids.set(idx);
      slot.values.set(out.grad!.data);
      g._commit();
    });
  }
  return record(out, 'embedding', [weight], () => scatterAddRows(out.grad!.data, idx, gradBuffer(weight), idx.length, d));
}

export type EmbeddingBagMode = 'sum' | 'mean';

/**
 * Sums or averages bags of rows of `weight` (V, D), as `torch.nn.functional.embedding_bag` with
 * offsets (include_last_offset = false): bag b is indices[offsets[b] .. offsets[b+1]), the last
 * bag runs to the end; `indices` (N) is flat and `offsets` (B) starts at 0 and never decreases.
 * An empty bag gives a row of zeros (in both modes, as PyTorch). → (B, D).
 *
 * The gradient of bag b goes to each of its rows, divided by the bag's size for 'mean'; with
 * `{ sparse: true }` it goes to `weight.sparseGrad` and no (V, D) gradient is ever made.
 *
 * Bit-for-bit with PyTorch 1.13 on CPU, forward and (sparse) backward: see kernels/bags.ts.
 *
 * @example
 * const w = Tensor.from([[1, 2], [3, 4], [5, 6]], undefined, true); // (3, 2)
 * const idx = IntTensor.from([0, 2, 1]);
 * embeddingBag(w, idx, IntTensor.from([0, 2, 3]), 'mean'); // [[3, 4], [3, 4], [0, 0]]: bags {0, 2}, {1}, {}
 */
export function embeddingBag(
  weight: Tensor,
  indices: IntTensor,
  offsets: IntTensor,
  mode: EmbeddingBagMode = 'mean',
  { sparse = false }: EmbeddingOptions = {},
): Tensor {
  const op = 'embeddingBag';
  check2d(op, weight, 'the weight');
  if (!(indices instanceof IntTensor) || indices.shape.length !== 1) {
    throw opError(op, `indices must be a 1-D IntTensor, got ${indices instanceof IntTensor ? `shape ${fmtShape(indices.shape)}` : 'a float Tensor'}`);
  }
  if (!(offsets instanceof IntTensor) || offsets.shape.length !== 1) {
    throw opError(op, `offsets must be a 1-D IntTensor, got ${offsets instanceof IntTensor ? `shape ${fmtShape(offsets.shape)}` : 'a float Tensor'}`);
  }
  if (mode !== 'sum' && mode !== 'mean') throw opError(op, `mode must be 'sum' or 'mean', got '${String(mode)}'`);
  if (sparse) checkSparseWeight(op, weight);
  const [v, d] = weight.shape as [number, number];
  const idx = indices.data; // (N)
  const off = offsets.data; // (B)
  const n = idx.length;
  const bags = off.length;
  if (bags > 0 && off[0] !== 0) throw opError(op, `offsets[0] must be 0 (the first bag starts at the first index), got ${off[0]}`);
  for (let b = 1; b < bags; b++) {
    if (off[b]! < off[b - 1]!) throw opError(op, `offsets must not decrease: offsets[${b}] = ${off[b]} is below offsets[${b - 1}] = ${off[b - 1]}`);
    if (off[b]! > n) throw opError(op, `offsets[${b}] = ${off[b]} is beyond the end of the ${n} indices`);
  }
  if (bags === 0 && n > 0) throw opError(op, `offsets is empty but there are ${n} indices: expected at least one bag`);
  checkIndices(op, idx, v, (k) => {
    let b = bags - 1;
    while (off[b]! > k) b--;
    return b;
  });
  const mean = mode === 'mean';
  const out = output([bags, d]);
  bagRows(weight.data, idx, off, out.data, bags, n, d, mean);
  if (sparse) {
    return record(out, op, [weight], () => {
      const g = sparseGradOf(weight);
      const slot = g._stage(n);
      slot.ids.set(idx);
      bagRowsBackward(out.grad!.data, off, slot.values, bags, n, d, mean);
      g._commit();
    });
  }
  return record(out, op, [weight], () => bagRowsScatterAdd(out.grad!.data, idx, off, gradBuffer(weight), bags, n, d, mean));
}

/**
 * Zeroes each element with probability p and scales the rest by 1/(1−p) (inverted dropout), drawing
 * the mask from `rng` so that runs with the same seed drop the same units.
 */
export function dropout(x: Tensor, p: number, rng: Random): Tensor {
  requireFloat('dropout', x, 'the input');
  if (!(p >= 0 && p < 1)) throw opError('dropout', `probability must be in [0, 1), got ${p}`);
  const mask = scratch(x.size);
  const keep = 1 / (1 - p);
  for (let i = 0; i < mask.length; i++) mask[i] = rng.next() < p ? 0 : keep;
  const out = output(x.shape);
  for (let i = 0; i < mask.length; i++) out.data[i] = x.data[i]! * mask[i]!;
  return record(out, 'dropout', [x], () => unary.mulAccumulate(out.grad!.data, mask, gradBuffer(x), x.size));
}


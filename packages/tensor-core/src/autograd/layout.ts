/**
 * Layout ops: transpose, split, flatten, maskedFill and the causal mask. Tensors are contiguous,
 * so transpose and split copy into a new tensor (as PyTorch's `.transpose(a, b).contiguous()`);
 * their gradients copy back, accumulating.
 *
 * This module imports only the Tensor and the kernels, so ops.ts can build on it (softmax over
 * any axis is a transpose, a last-axis softmax and a transpose back).
 */
import { fmtShape, opError } from '../errors.js';
import { copyBlock, maskedFill as maskedFillKernel, maskedFillBackward, swapAxes } from '../kernels/layout.js';
import { IntTensor, Tensor, gradBuffer, numel, record, type Shape } from './tensor.js';
import { scratch } from './buffers.js';

const output = (shape: Shape): Tensor => new Tensor(scratch(numel(shape)), shape);

function requireTensor(op: string, x: unknown, what = 'the input'): asserts x is Tensor {
  if (!(x instanceof Tensor)) {
    throw opError(op, `${what} must be a float Tensor, got ${x instanceof IntTensor ? 'an IntTensor' : typeof x}`);
  }
}

/** An axis in [0, ndim), from one that may count from the end (−1 is the last). */
export function normAxis(op: string, shape: Shape, axis: number): number {
  const a = axis < 0 ? axis + shape.length : axis;
  if (!Number.isInteger(a) || a < 0 || a >= shape.length) {
    throw opError(op, `axis ${axis} is out of range for shape ${fmtShape(shape)} (${shape.length} dimensions)`);
  }
  return a;
}

/**
 * x with axes a and b swapped, as a new contiguous tensor: PyTorch's `x.transpose(a, b)` followed
 * by `.contiguous()`. Axes may be negative.
 *
 * @example
 * const q = Tensor.zeros([2, 5, 4, 8]); // (B, T, H, D)
 * transpose(q, 1, 2).shape; // [2, 4, 5, 8]: (B, H, T, D)
 */
export function transpose(x: Tensor, a: number, b: number): Tensor {
  requireTensor('transpose', x);
  let i = normAxis('transpose', x.shape, a);
  let j = normAxis('transpose', x.shape, b);
  if (i > j) [i, j] = [j, i];
  const s = x.shape;
  const shape = [...s];
  shape[i] = s[j]!;
  shape[j] = s[i]!;
  const outer = numel(s.slice(0, i));
  const mid = numel(s.slice(i + 1, j));
  const inner = numel(s.slice(j + 1));
  const out = output(shape);
  swapAxes(x.data, out.data, outer, s[i]!, mid, s[j]!, inner, false);
  return record(out, 'transpose', [x], () => swapAxes(out.grad!.data, gradBuffer(x), outer, s[j]!, mid, s[i]!, inner, true));
}

/**
 * Splits x along `axis` into pieces of `size` (the last one shorter when the axis does not divide
 * evenly), each a new contiguous tensor: PyTorch's `torch.split(x, size, dim)`.
 *
 * @example
 * const [q, k, v] = split(qkv, 64, 2); // (B, T, 192) → three (B, T, 64)
 */
export function split(x: Tensor, size: number, axis = 0): Tensor[] {
  requireTensor('split', x);
  const a = normAxis('split', x.shape, axis);
  if (!Number.isInteger(size) || size <= 0) throw opError('split', `size must be a positive integer, got ${size}`);
  const s = x.shape;
  const total = s[a]!;
  const outer = numel(s.slice(0, a));
  const inner = numel(s.slice(a + 1));
  const pieces: Tensor[] = [];
  for (let start = 0; start < total; start += size) {
    const len = Math.min(size, total - start);
    const shape = [...s];
    shape[a] = len;
    const out = output(shape);
    copyBlock(x.data, out.data, outer, total, start, len, inner, false);
    pieces.push(record(out, 'split', [x], () => copyBlock(gradBuffer(x), out.grad!.data, outer, total, start, len, inner, true)));
  }
  return pieces;
}

/**
 * x with dimensions startDim..endDim merged into one (no copy): PyTorch's `torch.flatten`, whose
 * nn.Flatten default is startDim = 1 (keep the batch dimension).
 *
 * @example
 * flatten(Tensor.zeros([64, 16, 5, 5]), 1).shape; // [64, 400]
 */
export function flatten(x: Tensor, startDim = 0, endDim = -1): Tensor {
  requireTensor('flatten', x);
  if (x.ndim === 0) return reshapeLike(x, [1]);
  const a = normAxis('flatten', x.shape, startDim);
  const b = normAxis('flatten', x.shape, endDim);
  if (a > b) throw opError('flatten', `startDim ${startDim} comes after endDim ${endDim} for shape ${fmtShape(x.shape)}`);
  return reshapeLike(x, [...x.shape.slice(0, a), numel(x.shape.slice(a, b + 1)), ...x.shape.slice(b + 1)]);
}

/** A view of x's data with another shape of the same size; its gradient is the same view's. */
function reshapeLike(x: Tensor, shape: number[]): Tensor {
  const out = new Tensor(x.data, shape);
  return record(out, 'flatten', [x], () => {
    const dy = out.grad!.data;
    const dx = gradBuffer(x);
    for (let i = 0; i < dx.length; i++) dx[i]! += dy[i]!;
  });
}

/**
 * x with `value` wherever `mask` is non-zero: PyTorch's `x.masked_fill(mask, value)`. The mask's
 * shape must equal x's trailing dimensions; it is broadcast over the leading ones. No gradient flows
 * to filled positions.
 *
 * @example
 * const scores = Tensor.zeros([2, 4, 5, 5]); // (B, H, T, T)
 * maskedFill(scores, causalMask(5), -Infinity); // each position attends to itself and earlier ones
 */
export function maskedFill(x: Tensor, mask: IntTensor, value: number): Tensor {
  requireTensor('maskedFill', x);
  if (!(mask instanceof IntTensor)) throw opError('maskedFill', 'mask must be an IntTensor (non-zero where x is filled)');
  const m = mask.shape.length;
  const trailing = x.shape.slice(x.ndim - m);
  if (m > x.ndim || trailing.some((d, i) => d !== mask.shape[i])) {
    throw opError('maskedFill', `mask of shape ${fmtShape(mask.shape)} does not match the trailing dimensions of x ${fmtShape(x.shape)}`);
  }
  const rs = mask.size;
  const batches = rs === 0 ? 0 : x.size / rs;
  const out = output(x.shape);
  maskedFillKernel(x.data, mask.data, out.data, batches, rs, value);
  return record(out, 'maskedFill', [x], () => maskedFillBackward(out.grad!.data, mask.data, gradBuffer(x), batches, rs));
}

/** Cached causal masks by length; a model sees one or two. Shared: never write to them. */
const causalCache = new Map<number, IntTensor>();

/**
 * The (T, T) causal mask: 1 above the diagonal (position i must not see j > i), 0 elsewhere —
 * `torch.triu(torch.ones(T, T), diagonal=1).bool()`. Shared between calls: do not modify it.
 */
export function causalMask(t: number): IntTensor {
  if (!Number.isInteger(t) || t < 0) throw opError('causalMask', `length must be a non-negative integer, got ${t}`);
  let mask = causalCache.get(t);
  if (mask === undefined) {
    const data = new Int32Array(t * t);
    for (let i = 0; i < t; i++) for (let j = i + 1; j < t; j++) data[i * t + j] = 1;
    mask = new IntTensor(data, [t, t]);
    if (causalCache.size >= 16) causalCache.clear();
    causalCache.set(t, mask);
  }
  return mask;
}

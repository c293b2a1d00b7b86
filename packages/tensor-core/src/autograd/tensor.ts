/**
 * The user-facing Tensor: row-major float32 data plus a shape, and the tape that reverse-mode
 * autograd walks.
 *
 * `data` is always a Float32Array covering exactly this tensor's elements. It may be a view into a
 * larger buffer — a slice of a model's flat parameter array, or of a SharedArrayBuffer — so nothing
 * is copied when threads share parameters. Tensors are always contiguous: transposes are arguments
 * of the matmul kernel, not strided views.
 */
import { fmtShape, opError } from '../errors.js';
import { isGradEnabled } from './grad-mode.js';
import { recycle, scratch } from './buffers.js';
import type { Random } from '../random.js';
import type { RowSparseGrad } from './sparse-grad.js';
// Methods below delegate to the op functions; the cycle is safe because neither module uses the
// other while it is being evaluated.
import * as ops from './ops.js';

export type Shape = readonly number[];

/** The number of elements of a shape. */
export function numel(shape: Shape): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

function checkShape(op: string, shape: Shape): void {
  for (const d of shape) {
    if (!Number.isInteger(d) || d < 0) throw opError(op, `invalid shape ${fmtShape(shape)}: dimensions must be non-negative integers`);
  }
}

export class Tensor {
  /** The elements, row-major; a view when the tensor lives inside a larger buffer. */
  data: Float32Array;
  readonly shape: Shape;
  /** Whether backward() should compute a gradient for this tensor. */
  requiresGrad: boolean;
  /** The accumulated gradient, same shape; null until a backward pass reaches this tensor. */
  grad: Tensor | null = null;
  /**
   * The row-sparse gradient of an embedding table looked up with `sparse: true` (then `grad` stays
   * null: no dense table-sized gradient is ever made); null until such a backward reaches it.
   */
  sparseGrad: RowSparseGrad | null = null;
  /** @internal The tensors this one was computed from (empty for leaves). */
  _parents: readonly Tensor[] = [];
  /** @internal Accumulates this tensor's gradient into its parents' gradients. */
  _backward: (() => void) | null = null;
  /** @internal The op that produced this tensor, for error messages. */
  _op = 'leaf';
  /**
   * @internal Set by whoever knows that nothing but the graph holds this tensor or its data (an
   * activation between two layers of a Sequential): its data goes back for reuse once backward
   * has run its gradient rule, when every rule that reads it has run.
   */
  _transient = false;

  constructor(data: Float32Array, shape: Shape, requiresGrad = false) {
    checkShape('Tensor', shape);
    if (data.length !== numel(shape)) {
      throw opError('Tensor', `data has ${data.length} elements but shape ${fmtShape(shape)} needs ${numel(shape)}`);
    }
    this.data = data;
    this.shape = Object.freeze([...shape]);
    this.requiresGrad = requiresGrad;
  }

  /** A tensor of zeros. */
  static zeros(shape: Shape, requiresGrad = false): Tensor {
    checkShape('zeros', shape);
    return new Tensor(new Float32Array(numel(shape)), shape, requiresGrad);
  }

  /** A tensor filled with `value`. */
  static full(shape: Shape, value: number, requiresGrad = false): Tensor {
    checkShape('full', shape);
    return new Tensor(new Float32Array(numel(shape)).fill(value), shape, requiresGrad);
  }

  /** A tensor from nested or flat numbers; the shape is inferred from nesting unless given. */
  static from(values: ArrayLike<number> | number[][] | number, shape?: Shape, requiresGrad = false): Tensor {
    if (typeof values === 'number') return new Tensor(Float32Array.of(values), shape ?? [], requiresGrad);
    if (Array.isArray(values) && Array.isArray(values[0])) {
      const rows = values as number[][];
      const cols = rows[0]!.length;
      const data = new Float32Array(rows.length * cols);
      rows.forEach((row, r) => {
        if (row.length !== cols) throw opError('Tensor.from', `row ${r} has ${row.length} elements, row 0 has ${cols}`);
        data.set(row, r * cols);
      });
      return new Tensor(data, shape ?? [rows.length, cols], requiresGrad);
    }
    const data = Float32Array.from(values as ArrayLike<number>);
    return new Tensor(data, shape ?? [data.length], requiresGrad);
  }

  /** Uniform values in [low, high) from a seeded generator. */
  static uniform(shape: Shape, rng: Random, low = 0, high = 1, requiresGrad = false): Tensor {
    const t = Tensor.zeros(shape, requiresGrad);
    rng.fillUniform(t.data, low, high);
    return t;
  }

  /** Standard normal values from a seeded generator. */
  static randn(shape: Shape, rng: Random, requiresGrad = false): Tensor {
    const t = Tensor.zeros(shape, requiresGrad);
    rng.fillNormal(t.data, 0, 1);
    return t;
  }

  /** The number of elements. */
  get size(): number {
    return this.data.length;
  }

  /** The number of dimensions. */
  get ndim(): number {
    return this.shape.length;
  }

  /** The value of a one-element tensor. */
  item(): number {
    if (this.size !== 1) throw opError('item', `only one-element tensors can be converted to a number, got shape ${fmtShape(this.shape)}`);
    return this.data[0]!;
  }

  /** The elements as a plain array (a copy). */
  toArray(): number[] {
    return Array.from(this.data);
  }

  // Ops as methods, for code that reads like PyTorch: x.matmul(w).add(b).relu().

  /** this + other (broadcasting a scalar, row or column). */
  add(other: Tensor | number): Tensor {
    return ops.add(this, other);
  }
  /** this − other */
  sub(other: Tensor | number): Tensor {
    return ops.sub(this, other);
  }
  /** this · other, elementwise */
  mul(other: Tensor | number): Tensor {
    return ops.mul(this, other);
  }
  /** this / other, elementwise */
  div(other: Tensor | number): Tensor {
    return ops.div(this, other);
  }
  /** −this */
  neg(): Tensor {
    return ops.neg(this);
  }
  /** The matrix product this · other. */
  matmul(other: Tensor): Tensor {
    return ops.matmul(this, other);
  }
  relu(): Tensor {
    return ops.relu(this);
  }
  sigmoid(): Tensor {
    return ops.sigmoid(this);
  }
  tanh(): Tensor {
    return ops.tanh(this);
  }
  exp(): Tensor {
    return ops.exp(this);
  }
  log(): Tensor {
    return ops.log(this);
  }
  /** The sum of all elements, or over one axis. */
  sum(axis?: number, keepDim = false): Tensor {
    return ops.sum(this, axis, keepDim);
  }
  /** The mean of all elements, or over one axis. */
  mean(axis?: number, keepDim = false): Tensor {
    return ops.mean(this, axis, keepDim);
  }
  softmax(axis = -1): Tensor {
    return ops.softmax(this, axis);
  }
  logSoftmax(axis = -1): Tensor {
    return ops.logSoftmax(this, axis);
  }
  /** The same data with another shape (no copy). */
  reshape(shape: Shape): Tensor {
    return ops.reshape(this, shape);
  }

  /** A tensor sharing this one's data, cut from the graph (PyTorch's `detach`). */
  detach(): Tensor {
    return new Tensor(this.data, this.shape);
  }

  /** A copy of the data, cut from the graph. */
  clone(): Tensor {
    return new Tensor(this.data.slice(), this.shape);
  }

  /**
   * Computes the gradient of this tensor with respect to every tensor it was computed from that
   * requires gradients, accumulating into their `.grad` (call `zeroGrad` between steps, as in
   * PyTorch). Without an argument the tensor must hold one element (a loss).
   *
   * The graph is released afterwards: a second backward through the same graph throws.
   *
   * @example
   * const w = Tensor.from([1, 2, 3], [3], true);
   * const loss = w.mul(w).sum();
   * loss.backward(); // w.grad is [2, 4, 6]
   */
  backward(gradient?: Tensor): void {
    if (this._op === 'released') {
      throw opError('backward', 'trying to backward through the graph a second time: the graph is released after backward (compute the loss again)');
    }
    if (!this.requiresGrad) {
      throw opError('backward', 'this tensor does not require grad and has no graph (was it computed inside noGrad, or from tensors without requiresGrad?)');
    }
    if (gradient === undefined && this.size !== 1) {
      throw opError('backward', `a gradient can be created implicitly only for one-element outputs, got shape ${fmtShape(this.shape)}`);
    }
    if (gradient !== undefined && gradient.size !== this.size) {
      throw opError('backward', `gradient has shape ${fmtShape(gradient.shape)} but the tensor has shape ${fmtShape(this.shape)}`);
    }
    const order = topologicalOrder(this);
    if (gradient === undefined) gradBuffer(this)[0]! += 1;
    // A new seed is a copy (a memcpy, where the element loop was 0.3 ms for a conv layer's output).
    else if (this.grad === null) gradBuffer(this, false).set(gradient.data.subarray(0, this.size));
    else for (let i = 0, seed = this.grad.data; i < seed.length; i++) seed[i]! += gradient.data[i]!;
    for (let i = order.length - 1; i >= 0; i--) {
      const t = order[i]!;
      if (t._backward === null) continue;
      t._backward();
      // Release the graph: intermediate gradients and closures are not needed again, and keeping
      // them would hold every activation of the step in memory. Nothing else can reach this
      // gradient (it was made by gradBuffer and is dropped here), so its array goes back for reuse.
      t._backward = null;
      t._parents = [];
      if (t.grad !== null) recycle(t.grad.data);
      if (t._transient) recycle(t.data);
      t.grad = null;
      t._op = 'released';
    }
  }

  /**
   * Sets the gradient to zero (in place when one exists, so flat gradient views stay bound), and
   * empties a row-sparse gradient.
   */
  zeroGrad(): void {
    if (this.grad !== null) this.grad.data.fill(0);
    this.sparseGrad?.clear();
  }
}

/**
 * The tensor's gradient buffer, created as zeros on first use. Only intermediate tensors' gradients
 * may come from a buffer pool: a leaf's (a parameter's) gradient outlives the step.
 *
 * `zeroed: false` is for a rule that writes every element when the buffer is new (a product with
 * accumulate = false, ReLU's fresh path): a pooled buffer is then handed over as it is, unfilled.
 * The fill was 7% of the cnn model's step.
 */
export function gradBuffer(t: Tensor, zeroed = true): Float32Array {
  if (t.grad === null) t.grad = new Tensor(t._parents.length > 0 ? scratch(t.size, zeroed) : new Float32Array(t.size), t.shape);
  return t.grad.data;
}

/**
 * Gives `from`'s gradient buffer to `to` as its gradient, where the gradient `to` would receive is
 * `from`'s whole (a reshape's, an add's): one buffer instead of a copy, which was a pass over the
 * tensor per op (a GPT step reshapes around every Linear). Only when `to` has no gradient yet, is an
 * intermediate (a leaf's gradient outlives the step, so it must not be a pooled buffer) and has the
 * same size. `from`'s rule must be the buffer's last reader: from.grad is dropped, so the tape
 * recycles the buffer with `to`'s. Returns false, changing nothing, otherwise.
 */
export function passGrad(from: Tensor, to: Tensor): boolean {
  if (to.grad !== null || to._parents.length === 0 || from.grad === null || from.grad.size !== to.size) return false;
  to.grad = new Tensor(from.grad.data, to.shape);
  from.grad = null;
  return true;
}

/** Tensors reachable from `root` through parents, each after all its parents (iterative DFS). */
function topologicalOrder(root: Tensor): Tensor[] {
  const order: Tensor[] = [];
  const visited = new Set<Tensor>();
  const stack: Array<[Tensor, number]> = [[root, 0]];
  visited.add(root);
  while (stack.length > 0) {
    const top = stack[stack.length - 1]!;
    const [t, i] = top;
    if (i < t._parents.length) {
      top[1] = i + 1;
      const p = t._parents[i]!;
      if (p.requiresGrad && !visited.has(p)) {
        visited.add(p);
        stack.push([p, 0]);
      }
    } else {
      stack.pop();
      order.push(t);
    }
  }
  return order;
}

/**
 * Records that `out` was computed from `parents` by `op`, with `backward` accumulating out.grad
 * into the parents' gradients — when gradients are being recorded and any parent needs one.
 * Returns `out`.
 */
export function record(out: Tensor, op: string, parents: readonly Tensor[], backward: () => void): Tensor {
  out._op = op;
  if (!isGradEnabled()) return out;
  let needed = false;
  for (const p of parents) if (p.requiresGrad) needed = true;
  if (!needed) return out;
  out.requiresGrad = true;
  out._parents = parents;
  out._backward = backward;
  return out;
}

/**
 * Integer tensors: class labels and embedding indices. A separate type from Tensor, so that passing
 * float data where labels are expected is caught when the code is written, and at run time.
 */
export class IntTensor {
  readonly data: Int32Array;
  readonly shape: Shape;

  constructor(data: Int32Array, shape?: Shape) {
    const s = shape ?? [data.length];
    checkShape('IntTensor', s);
    if (data.length !== numel(s)) {
      throw opError('IntTensor', `data has ${data.length} elements but shape ${fmtShape(s)} needs ${numel(s)}`);
    }
    this.data = data;
    this.shape = Object.freeze([...s]);
  }

  /** An IntTensor from numbers; each must be an integer. */
  static from(values: ArrayLike<number>, shape?: Shape): IntTensor {
    const data = new Int32Array(values.length);
    for (let i = 0; i < values.length; i++) {
      const v = values[i]!;
      if (!Number.isInteger(v)) throw opError('IntTensor.from', `element ${i} is ${v}, not an integer`);
      data[i] = v;
    }
    return new IntTensor(data, shape);
  }

  get size(): number {
    return this.data.length;
  }
}

/**
 * Flat parameters: every parameter of a model as a view into ONE contiguous Float32Array, and every
 * gradient as a view into another, at the same offsets.
 *
 * This is the layout the rest of Loom stands on: worker threads share the arrays through a
 * SharedArrayBuffer, optimizers step them in one fused loop (or in slices), and parameter servers
 * own key ranges of them. The layout — name → offset, shape — is the order of namedParameters(),
 * packed densely, so it follows from the model definition alone.
 */
import { fmtShape, opError } from '../errors.js';
import { Tensor, numel, type Shape } from '../autograd/tensor.js';
import type { Module } from './module.js';

/** Where one parameter lives in the flat arrays. */
export interface LayoutEntry {
  readonly name: string;
  readonly offset: number;
  readonly shape: Shape;
  readonly size: number;
}

/** A model's parameters and gradients as two flat arrays, plus where each parameter lives. */
export interface FlatParameters {
  /** All parameters, concatenated in layout order. */
  readonly params: Float32Array;
  /** All gradients, at the same offsets. */
  readonly grads: Float32Array;
  readonly layout: readonly LayoutEntry[];
  /** The total number of parameters. */
  readonly size: number;
}

/** The flat layout of a model's parameters, computed from its definition alone. */
export function parameterLayout(model: Module<any>): LayoutEntry[] {
  let offset = 0;
  return model.namedParameters().map(([name, p]) => {
    const entry = { name, offset, shape: p.shape, size: numel(p.shape) };
    offset += entry.size;
    return entry;
  });
}

/** The total number of elements in a layout. */
export function layoutSize(layout: readonly LayoutEntry[]): number {
  const last = layout[layout.length - 1];
  return last === undefined ? 0 : last.offset + last.size;
}

export interface FlattenOptions {
  /**
   * The array to hold the parameters (for example a Float32Array over a SharedArrayBuffer). When
   * given, its current values become the model's: nothing is copied into it, so a thread can adopt
   * parameters another thread initialised. When omitted, a new array is made and the model's
   * current values are copied in.
   */
  params?: Float32Array;
  /** The array to hold the gradients; a new zeroed one when omitted. Its values are kept. */
  grads?: Float32Array;
}

/**
 * Rebinds every parameter of `model` to a view into one flat parameter array, and its gradient to a
 * view into one flat gradient array.
 *
 * @example
 * const model = new Sequential(new Linear(100, 50), new ReLU(), new Linear(50, 10));
 * const flat = flattenParameters(model);
 * flat.params.length; // 5560: 0.weight at 0, 0.bias at 5000, 2.weight at 5050, 2.bias at 5550
 */
export function flattenParameters(model: Module<any>, options: FlattenOptions = {}): FlatParameters {
  const named = model.namedParameters();
  const layout = parameterLayout(model);
  const size = layoutSize(layout);
  for (const [key, arr] of Object.entries(options)) {
    if (arr !== undefined && (!(arr instanceof Float32Array) || arr.length !== size)) {
      const found = arr instanceof Float32Array ? `${arr.length} elements` : typeof arr;
      throw opError('flattenParameters', `${key} must be a Float32Array of ${size} elements (the model's layout), got ${found}`);
    }
  }
  const adopt = options.params !== undefined;
  const params = options.params ?? new Float32Array(size);
  const grads = options.grads ?? new Float32Array(size);
  named.forEach(([name, p], i) => {
    const { offset, size: n } = layout[i]!;
    if (p.size !== n) throw opError('flattenParameters', `parameter '${name}' changed shape to ${fmtShape(p.shape)}`);
    const view = params.subarray(offset, offset + n);
    if (!adopt) view.set(p.data);
    p.data = view;
    p.grad = new Tensor(grads.subarray(offset, offset + n), p.shape);
  });
  return { params, grads, layout, size };
}

/**
 * Convolution and pooling over NCHW, with PyTorch's `F.conv2d`, `F.max_pool2d` and `F.avg_pool2d`
 * arguments. Kernel size, stride and padding are a number (both axes) or a [height, width] pair.
 * The arithmetic is in kernels/conv.ts (im2col + the backend's matmul) and kernels/pool.ts.
 */
import { fmtShape, opError } from '../errors.js';
import { backend, rowKernels } from '../kernels/select.js';
import { conv2d as conv2dKernel, conv2dBackward, outSize, type Conv2dShape } from '../kernels/conv.js';
import { avgPool2d as avgKernel, avgPool2dBackward, type Pool2dShape } from '../kernels/pool.js';
import { IntTensor, Tensor, gradBuffer, numel, record } from './tensor.js';
import { scratch } from './buffers.js';

/** A size for both spatial axes, or [height, width]. */
export type Pair = number | readonly [number, number];

/** A [height, width] pair from a Pair, each an integer ≥ min. */
export function pair(op: string, name: string, v: Pair, min: number): [number, number] {
  const p: [number, number] = typeof v === 'number' ? [v, v] : [v[0], v[1]];
  if (!Array.isArray(v) && typeof v !== 'number') throw opError(op, `${name} must be a number or a [height, width] pair, got ${String(v)}`);
  if (Array.isArray(v) && v.length !== 2) throw opError(op, `${name} must be a number or a [height, width] pair, got [${v.join(', ')}]`);
  for (const d of p) {
    if (!Number.isInteger(d) || d < min) throw opError(op, `${name} must be ${min === 0 ? 'non-negative' : 'positive'} integers, got ${typeof v === 'number' ? v : `[${p.join(', ')}]`}`);
  }
  return p;
}

function requireTensor(op: string, x: unknown, what: string): asserts x is Tensor {
  if (!(x instanceof Tensor)) {
    throw opError(op, `${what} must be a float Tensor, got ${x instanceof IntTensor ? 'an IntTensor' : typeof x}`);
  }
}

export interface Conv2dOptions {
  /** Step of the window, default 1. */
  stride?: Pair;
  /** Zeros added on each side, default 0. */
  padding?: Pair;
}

/**
 * 2-D convolution (cross-correlation, as every framework's): x (N, C, H, W) with weight
 * (O, C, kh, kw) and bias (O) → (N, O, OH, OW), OH = ⌊(H + 2·ph − kh) / sh⌋ + 1. As PyTorch's
 * `F.conv2d(x, weight, bias, stride, padding)`; runs as im2col and one matmul on the backend, or as
 * the backend's own whole convolution where it has one (the native addon's, a few images at a time).
 *
 * @example
 * const x = Tensor.zeros([64, 1, 28, 28]);
 * const w = Tensor.zeros([32, 1, 3, 3], true);
 * conv2d(x, w, null, { padding: 1 }).shape; // [64, 32, 28, 28]
 */
export function conv2d(x: Tensor, weight: Tensor, bias: Tensor | null = null, { stride = 1, padding = 0 }: Conv2dOptions = {}): Tensor {
  const op = 'conv2d';
  requireTensor(op, x, 'the input');
  requireTensor(op, weight, 'the weight');
  if (x.ndim !== 4) throw opError(op, `the input must be 4-D (N, C, H, W), got shape ${fmtShape(x.shape)}`);
  if (weight.ndim !== 4) throw opError(op, `the weight must be 4-D (out, in, kh, kw), got shape ${fmtShape(weight.shape)}`);
  const [n, c, h, w] = x.shape as [number, number, number, number];
  const [o, cw, kh, kw] = weight.shape as [number, number, number, number];
  if (c !== cw) throw opError(op, `the input ${fmtShape(x.shape)} has ${c} channels but the weight ${fmtShape(weight.shape)} expects ${cw}`);
  if (bias !== null) {
    requireTensor(op, bias, 'the bias');
    if (bias.ndim !== 1 || bias.size !== o) throw opError(op, `the bias has shape ${fmtShape(bias.shape)}, expected [${o}] for the weight ${fmtShape(weight.shape)}`);
  }
  const [sh, sw] = pair(op, 'stride', stride, 1);
  const [ph, pw] = pair(op, 'padding', padding, 0);
  const oh = outSize(h, kh, sh, ph);
  const ow = outSize(w, kw, sw, pw);
  if (oh < 1 || ow < 1 || kh < 1 || kw < 1) {
    throw opError(op, `the input ${fmtShape(x.shape)} padded by [${ph}, ${pw}] is ${h + 2 * ph}×${w + 2 * pw}, smaller than the kernel ${kh}×${kw} of the weight ${fmtShape(weight.shape)}`);
  }
  const s: Conv2dShape = { n, c, h, w, o, kh, kw, sh, sw, ph, pw, oh, ow };
  const parents = bias === null ? [x, weight] : [x, weight, bias];
  const grads = () => ({
    dx: x.requiresGrad ? gradBuffer(x) : null,
    dw: weight.requiresGrad ? gradBuffer(weight) : null,
    db: bias !== null && bias.requiresGrad ? gradBuffer(bias) : null,
  });
  if (backend.conv2d !== undefined && backend.conv2dBackward !== undefined) {
    // The backend's whole convolution: nothing kept for backward but x and the weight.
    const out = new Tensor(scratch(n * o * oh * ow, false), [n, o, oh, ow]);
    backend.conv2d(x.data, weight.data, bias === null ? null : bias.data, out.data, s);
    return record(out, op, parents, () => {
      const { dx, dw, db } = grads();
      backend.conv2dBackward!(x.data, weight.data, out.grad!.data, dx, dw, db, s);
    });
  }
  const np = n * oh * ow;
  // Not zeroed: im2col, the product (or the bias fill before it) and swap01 write every element.
  const cols = scratch(c * kh * kw * np, false); // (C·kh·kw, N·P), read again by backward
  const tmp = scratch(o * np, false); // (O, N·P), reused by backward as dyT
  const out = new Tensor(scratch(n * o * oh * ow, false), [n, o, oh, ow]);
  conv2dKernel(backend, x.data, weight.data, bias === null ? null : bias.data, out.data, cols, tmp, s);
  return record(out, op, parents, () => {
    const { dx, dw, db } = grads();
    // dcols overwrites cols: conv2dBackward reads cols for dW before it computes dcols.
    conv2dBackward(backend, weight.data, cols, out.grad!.data, tmp, cols, dx, dw, db, s);
  });
}

export interface Pool2dOptions {
  /** Step of the window; defaults to the kernel size (non-overlapping windows), as PyTorch. */
  stride?: Pair;
  /** Padding on each side, at most half the kernel; default 0. */
  padding?: Pair;
}

function poolShape(op: string, x: Tensor, kernelSize: Pair, { stride, padding = 0 }: Pool2dOptions): Pool2dShape {
  requireTensor(op, x, 'the input');
  if (x.ndim < 3) throw opError(op, `the input must be (N, C, H, W) or (C, H, W), got shape ${fmtShape(x.shape)}`);
  const [kh, kw] = pair(op, 'kernelSize', kernelSize, 1);
  const [sh, sw] = pair(op, 'stride', stride ?? kernelSize, 1);
  const [ph, pw] = pair(op, 'padding', padding, 0);
  if (2 * ph > kh || 2 * pw > kw) throw opError(op, `padding [${ph}, ${pw}] must be at most half the kernel size [${kh}, ${kw}]`);
  const h = x.shape[x.ndim - 2]!;
  const w = x.shape[x.ndim - 1]!;
  const oh = outSize(h, kh, sh, ph);
  const ow = outSize(w, kw, sw, pw);
  if (oh < 1 || ow < 1) throw opError(op, `the input ${fmtShape(x.shape)} padded by [${ph}, ${pw}] is smaller than the kernel [${kh}, ${kw}]`);
  return { planes: numel(x.shape.slice(0, -2)), h, w, kh, kw, sh, sw, ph, pw, oh, ow };
}

/**
 * The maximum of each kh × kw window, over (N, C, H, W) or (C, H, W): PyTorch's
 * `F.max_pool2d(x, kernel_size, stride=kernel_size, padding=0)`. The gradient goes to the position
 * of each maximum (the first one on ties).
 *
 * @example
 * maxPool2d(Tensor.zeros([64, 32, 26, 26]), 2).shape; // [64, 32, 13, 13]
 */
export function maxPool2d(x: Tensor, kernelSize: Pair, options: Pool2dOptions = {}): Tensor {
  const s = poolShape('maxPool2d', x, kernelSize, options);
  const size = s.planes * s.oh * s.ow;
  // Not zeroed: the kernel writes every maximum and position.
  const out = new Tensor(scratch(size, false), [...x.shape.slice(0, -2), s.oh, s.ow]);
  const buf = scratch(size, false);
  const argmax = new Int32Array(buf.buffer, buf.byteOffset, size); // positions in the plane
  rowKernels.maxPool2d(x.data, out.data, argmax, s);
  return record(out, 'maxPool2d', [x], () => rowKernels.maxPool2dBackward(out.grad!.data, argmax, gradBuffer(x), s));
}

/**
 * The mean of each kh × kw window, zeros of the padding included (count_include_pad = True):
 * PyTorch's `F.avg_pool2d(x, kernel_size, stride=kernel_size, padding=0)`.
 *
 * @example
 * avgPool2d(Tensor.zeros([8, 16, 7, 7]), 3, { stride: 2, padding: 1 }).shape; // [8, 16, 4, 4]
 */
export function avgPool2d(x: Tensor, kernelSize: Pair, options: Pool2dOptions = {}): Tensor {
  const s = poolShape('avgPool2d', x, kernelSize, options);
  const out = new Tensor(scratch(s.planes * s.oh * s.ow), [...x.shape.slice(0, -2), s.oh, s.ow]);
  avgKernel(x.data, out.data, s);
  return record(out, 'avgPool2d', [x], () => avgPool2dBackward(out.grad!.data, gradBuffer(x), s));
}

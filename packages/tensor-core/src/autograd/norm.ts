/**
 * Normalisation ops and GELU, with PyTorch's `F.layer_norm`, `F.batch_norm` and `F.gelu`
 * semantics. The arithmetic is in kernels/norm.ts and kernels/gelu.ts.
 */
import { fmtShape, opError } from '../errors.js';
import { batchNormBackward, channelStats, normalizeChannels } from '../kernels/norm.js';
import { rowKernels } from '../kernels/select.js';
import { IntTensor, Tensor, gradBuffer, numel, record } from './tensor.js';
import { scratch } from './buffers.js';

function requireTensor(op: string, x: unknown, what: string): asserts x is Tensor {
  if (!(x instanceof Tensor)) {
    throw opError(op, `${what} must be a float Tensor, got ${x instanceof IntTensor ? 'an IntTensor' : typeof x}`);
  }
}

function sameShape(op: string, t: Tensor, shape: readonly number[], what: string, against: string): void {
  requireTensor(op, t, what);
  if (t.ndim !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
    throw opError(op, `${what} has shape ${fmtShape(t.shape)}, expected ${fmtShape(shape)} (${against})`);
  }
}

/**
 * Normalises x over its trailing `normalizedShape` dimensions to zero mean and unit (biased)
 * variance, then scales by weight and shifts by bias (both of shape normalizedShape, optional):
 * PyTorch's `F.layer_norm(x, normalized_shape, weight, bias, eps=1e-5)`.
 *
 * @example
 * const x = Tensor.randn([2, 5, 8], new Random(0)); // (B, T, C)
 * layerNorm(x, [8], Tensor.full([8], 1, true), Tensor.zeros([8], true)); // each (b, t) row normalised
 */
export function layerNorm(x: Tensor, normalizedShape: number | readonly number[], weight: Tensor | null = null, bias: Tensor | null = null, eps = 1e-5): Tensor {
  const op = 'layerNorm';
  requireTensor(op, x, 'the input');
  const ns = typeof normalizedShape === 'number' ? [normalizedShape] : [...normalizedShape];
  const trailing = x.shape.slice(x.ndim - ns.length);
  if (ns.length === 0 || ns.length > x.ndim || trailing.some((d, i) => d !== ns[i])) {
    throw opError(op, `normalizedShape ${fmtShape(ns)} does not match the trailing dimensions of the input ${fmtShape(x.shape)}`);
  }
  if (weight !== null) sameShape(op, weight, ns, 'the weight', `normalizedShape`);
  if (bias !== null) sameShape(op, bias, ns, 'the bias', `normalizedShape`);
  if (!(eps >= 0)) throw opError(op, `eps must be non-negative, got ${eps}`);
  const d = numel(ns);
  const rows = d === 0 ? 0 : x.size / d;
  // Not zeroed: the kernel writes every output, mean and rstd.
  const out = new Tensor(scratch(x.size, false), x.shape);
  const mean = scratch(rows, false); // (R)
  const rstd = scratch(rows, false); // (R)
  rowKernels.layerNorm(x.data, weight?.data ?? null, bias?.data ?? null, out.data, mean, rstd, rows, d, eps);
  const parents = [x, ...(weight === null ? [] : [weight]), ...(bias === null ? [] : [bias])];
  return record(out, op, parents, () => {
    rowKernels.layerNormBackward(
      x.data,
      weight?.data ?? null,
      mean,
      rstd,
      out.grad!.data,
      x.requiresGrad ? gradBuffer(x) : null,
      weight?.requiresGrad ? gradBuffer(weight) : null,
      bias?.requiresGrad ? gradBuffer(bias) : null,
      rows,
      d,
    );
  });
}

export interface BatchNormOptions {
  /** Use this batch's statistics (and update the running ones) rather than the running ones. */
  training?: boolean;
  /** Weight of the new batch in the running statistics, default 0.1. */
  momentum?: number;
  eps?: number;
}

/**
 * Batch normalisation of x (N, C, …) per channel: PyTorch's `F.batch_norm(x, running_mean,
 * running_var, weight, bias, training, momentum, eps)`.
 *
 * Training: normalises with the batch's mean and biased variance, and updates the running
 * statistics in place (when given) as running = (1 − momentum)·running + momentum·batch, with the
 * batch's *unbiased* variance for running_var. Eval: normalises with the running statistics.
 *
 * @example
 * const rm = Tensor.zeros([16]), rv = Tensor.full([16], 1);
 * batchNorm(x, rm, rv, weight, bias, { training: true }); // x (64, 16, 13, 13); rm, rv updated
 */
export function batchNorm(
  x: Tensor,
  runningMean: Tensor | null,
  runningVar: Tensor | null,
  weight: Tensor | null = null,
  bias: Tensor | null = null,
  { training = false, momentum = 0.1, eps = 1e-5 }: BatchNormOptions = {},
): Tensor {
  const op = 'batchNorm';
  requireTensor(op, x, 'the input');
  if (x.ndim < 2) throw opError(op, `the input must be (N, C, …), got shape ${fmtShape(x.shape)}`);
  const n = x.shape[0]!;
  const c = x.shape[1]!;
  const p = numel(x.shape.slice(2));
  const ch = [c];
  const against = `the input ${fmtShape(x.shape)} has ${c} channels`;
  if (weight !== null) sameShape(op, weight, ch, 'the weight', against);
  if (bias !== null) sameShape(op, bias, ch, 'the bias', against);
  if (runningMean !== null) sameShape(op, runningMean, ch, 'runningMean', against);
  if (runningVar !== null) sameShape(op, runningVar, ch, 'runningVar', against);
  if (!training && (runningMean === null || runningVar === null)) {
    throw opError(op, 'eval mode (training: false) needs runningMean and runningVar');
  }
  if (training && n * p <= 1) {
    throw opError(op, `expected more than 1 value per channel when training, got input of shape ${fmtShape(x.shape)}`);
  }
  if (!(momentum >= 0 && momentum <= 1)) throw opError(op, `momentum must be in [0, 1], got ${momentum}`);
  const mean = scratch(c); // (C)
  const rstd = scratch(c); // (C)
  if (training) {
    const variance = scratch(c);
    channelStats(x.data, mean, variance, n, c, p);
    const count = n * p;
    for (let i = 0; i < c; i++) {
      rstd[i] = 1 / Math.sqrt(variance[i]! + eps);
      if (runningMean !== null) runningMean.data[i] = (1 - momentum) * runningMean.data[i]! + momentum * mean[i]!;
      if (runningVar !== null) runningVar.data[i] = (1 - momentum) * runningVar.data[i]! + momentum * variance[i]! * (count / (count - 1));
    }
  } else {
    mean.set(runningMean!.data);
    for (let i = 0; i < c; i++) rstd[i] = 1 / Math.sqrt(runningVar!.data[i]! + eps);
  }
  const out = new Tensor(scratch(x.size), x.shape);
  normalizeChannels(x.data, mean, rstd, weight?.data ?? null, bias?.data ?? null, out.data, n, c, p);
  const parents = [x, ...(weight === null ? [] : [weight]), ...(bias === null ? [] : [bias])];
  return record(out, op, parents, () => {
    batchNormBackward(
      x.data,
      mean,
      rstd,
      weight?.data ?? null,
      out.grad!.data,
      x.requiresGrad ? gradBuffer(x) : null,
      weight?.requiresGrad ? gradBuffer(weight) : null,
      bias?.requiresGrad ? gradBuffer(bias) : null,
      n,
      c,
      p,
      training,
    );
  });
}

/**
 * The exact GELU, x·Φ(x) with Φ the standard normal CDF (through erf): PyTorch's `F.gelu(x)`
 * (approximate='none').
 *
 * @example
 * gelu(Tensor.from([-1, 0, 1])).toArray(); // [-0.1587, 0, 0.8413]
 */
export function gelu(x: Tensor): Tensor {
  requireTensor('gelu', x, 'the input');
  const out = new Tensor(scratch(x.size), x.shape);
  rowKernels.gelu(x.data, out.data, x.size);
  return record(out, 'gelu', [x], () => rowKernels.geluBackward(x.data, out.grad!.data, gradBuffer(x), x.size));
}

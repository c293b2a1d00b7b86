/**
 * Weight initialisation with PyTorch's formulas (`torch.nn.init`). Each function fills a tensor in
 * place from a seeded generator — the module default from `manualSeed` unless one is passed — and
 * returns it.
 */
import { fmtShape, opError } from '../errors.js';
import { Random } from '../random.js';
import type { Tensor } from '../autograd/tensor.js';

let generator = new Random(0);

/** Seeds the default generator that layers draw their initial weights from (`torch.manual_seed`). */
export function manualSeed(seed: number): void {
  generator = new Random(seed);
}

/** The default generator. */
export function defaultGenerator(): Random {
  return generator;
}

export type Nonlinearity = 'linear' | 'sigmoid' | 'tanh' | 'relu' | 'leaky_relu';

/** The recommended gain for a nonlinearity, as `torch.nn.init.calculate_gain`. */
export function calculateGain(nonlinearity: Nonlinearity, param?: number): number {
  switch (nonlinearity) {
    case 'linear':
    case 'sigmoid':
      return 1;
    case 'tanh':
      return 5 / 3;
    case 'relu':
      return Math.SQRT2;
    case 'leaky_relu': {
      const slope = param ?? 0.01;
      return Math.sqrt(2 / (1 + slope * slope));
    }
    default:
      throw opError('calculateGain', `unsupported nonlinearity '${String(nonlinearity)}'`);
  }
}

/** fan_in and fan_out of a weight of shape (out, in, ...receptive field). */
export function fans(t: Tensor): { fanIn: number; fanOut: number } {
  if (t.ndim < 2) {
    throw opError('init', `fan in and fan out cannot be computed for a tensor with fewer than 2 dimensions, got ${fmtShape(t.shape)}`);
  }
  let receptive = 1;
  for (let i = 2; i < t.ndim; i++) receptive *= t.shape[i]!;
  return { fanIn: t.shape[1]! * receptive, fanOut: t.shape[0]! * receptive };
}

export interface InitOptions {
  rng?: Random;
}

/** U(low, high) */
export function uniform(t: Tensor, low = 0, high = 1, { rng = generator }: InitOptions = {}): Tensor {
  rng.fillUniform(t.data, low, high);
  return t;
}

/** N(mean, std²) */
export function normal(t: Tensor, mean = 0, std = 1, { rng = generator }: InitOptions = {}): Tensor {
  rng.fillNormal(t.data, mean, std);
  return t;
}

/** Every element set to `value`. */
export function constant(t: Tensor, value: number): Tensor {
  t.data.fill(value);
  return t;
}

/** Every element set to 0. */
export function zeros(t: Tensor): Tensor {
  return constant(t, 0);
}

/** Glorot uniform: U(−a, a) with a = gain · √(6 / (fan_in + fan_out)). */
export function xavierUniform(t: Tensor, { gain = 1, rng = generator }: InitOptions & { gain?: number } = {}): Tensor {
  const { fanIn, fanOut } = fans(t);
  const a = gain * Math.sqrt(6 / (fanIn + fanOut));
  return uniform(t, -a, a, { rng });
}

/** Glorot normal: N(0, σ²) with σ = gain · √(2 / (fan_in + fan_out)). */
export function xavierNormal(t: Tensor, { gain = 1, rng = generator }: InitOptions & { gain?: number } = {}): Tensor {
  const { fanIn, fanOut } = fans(t);
  return normal(t, 0, gain * Math.sqrt(2 / (fanIn + fanOut)), { rng });
}

export interface KaimingOptions extends InitOptions {
  /** The negative slope of the leaky ReLU that follows (0 for ReLU). */
  a?: number;
  mode?: 'fan_in' | 'fan_out';
  nonlinearity?: Nonlinearity;
}

function kaimingStd(t: Tensor, { a = 0, mode = 'fan_in', nonlinearity = 'leaky_relu' }: KaimingOptions): number {
  if (mode !== 'fan_in' && mode !== 'fan_out') throw opError('kaiming', `mode must be 'fan_in' or 'fan_out', got '${mode}'`);
  const { fanIn, fanOut } = fans(t);
  return calculateGain(nonlinearity, a) / Math.sqrt(mode === 'fan_in' ? fanIn : fanOut);
}

/** He uniform: U(−b, b) with b = gain · √(3 / fan). */
export function kaimingUniform(t: Tensor, options: KaimingOptions = {}): Tensor {
  const bound = Math.sqrt(3) * kaimingStd(t, options);
  return uniform(t, -bound, bound, { rng: options.rng ?? generator });
}

/** He normal: N(0, σ²) with σ = gain / √fan. */
export function kaimingNormal(t: Tensor, options: KaimingOptions = {}): Tensor {
  return normal(t, 0, kaimingStd(t, options), { rng: options.rng ?? generator });
}

/**
 * Normalisation layers: LayerNorm and BatchNorm2d, with PyTorch's arguments, parameter names
 * (`weight`, `bias`) and initialisation (weight 1, bias 0).
 */
import { Tensor } from '../autograd/tensor.js';
import { batchNorm, layerNorm } from '../autograd/norm.js';
import { opError } from '../errors.js';
import { Module, checkSize } from './module.js';

export interface LayerNormOptions {
  eps?: number;
  /** Learn a weight and a bias (default true). */
  elementwiseAffine?: boolean;
  /** With elementwiseAffine, learn the bias too (default true; nanoGPT's `bias=False` turns it off). */
  bias?: boolean;
}

/**
 * Layer normalisation over the trailing `normalizedShape`, as PyTorch's nn.LayerNorm
 * (eps 1e-5, weight ones, bias zeros).
 *
 * @example
 * const ln = new LayerNorm(64);
 * ln.forward(Tensor.zeros([8, 32, 64])).shape; // [8, 32, 64], each (b, t) row normalised
 */
export class LayerNorm extends Module {
  readonly normalizedShape: readonly number[];
  readonly eps: number;
  weight: Tensor | null;
  bias: Tensor | null;

  constructor(normalizedShape: number | readonly number[], { eps = 1e-5, elementwiseAffine = true, bias = true }: LayerNormOptions = {}) {
    super();
    const ns = typeof normalizedShape === 'number' ? [normalizedShape] : [...normalizedShape];
    if (ns.length === 0) throw opError('LayerNorm', 'normalizedShape must have at least one dimension');
    ns.forEach((d) => checkSize('LayerNorm', 'normalizedShape', d));
    this.normalizedShape = ns;
    this.eps = eps;
    this.weight = elementwiseAffine ? Tensor.full(ns, 1, true) : null;
    this.bias = elementwiseAffine && bias ? Tensor.zeros(ns, true) : null;
  }

  forward(x: Tensor): Tensor {
    return layerNorm(x, this.normalizedShape, this.weight, this.bias, this.eps);
  }
}

export interface BatchNormLayerOptions {
  eps?: number;
  /** Weight of each new batch in the running statistics (default 0.1). */
  momentum?: number;
  /** Learn a weight and a bias (default true). */
  affine?: boolean;
  /** Keep running statistics for eval mode (default true); without, eval uses the batch's. */
  trackRunningStats?: boolean;
}

/**
 * Batch normalisation of (N, C, H, W) per channel, as PyTorch's nn.BatchNorm2d: in training mode
 * normalises with the batch's mean and biased variance and updates `running_mean` and
 * `running_var` (with the unbiased variance) by `momentum`; in eval mode (`model.eval()`)
 * normalises with the running statistics.
 *
 * The running statistics are buffers, not parameters: they are not in parameters() or
 * stateDict(); read them as `bn.running_mean` / `bn.running_var` (PyTorch's names).
 *
 * @example
 * const bn = new BatchNorm2d(32);
 * bn.forward(x);        // training: batch statistics, running ones updated
 * bn.eval().forward(x); // eval: running statistics
 */
export class BatchNorm2d extends Module {
  readonly numFeatures: number;
  readonly eps: number;
  readonly momentum: number;
  weight: Tensor | null;
  bias: Tensor | null;
  // PyTorch's buffer names, so a state dict with buffers can map onto them one to one.
  running_mean: Tensor | null;
  running_var: Tensor | null;

  constructor(numFeatures: number, { eps = 1e-5, momentum = 0.1, affine = true, trackRunningStats = true }: BatchNormLayerOptions = {}) {
    super();
    checkSize('BatchNorm2d', 'numFeatures', numFeatures);
    if (!(momentum >= 0 && momentum <= 1)) throw opError('BatchNorm2d', `momentum must be in [0, 1], got ${momentum}`);
    this.numFeatures = numFeatures;
    this.eps = eps;
    this.momentum = momentum;
    this.weight = affine ? Tensor.full([numFeatures], 1, true) : null;
    this.bias = affine ? Tensor.zeros([numFeatures], true) : null;
    this.running_mean = trackRunningStats ? Tensor.zeros([numFeatures]) : null;
    this.running_var = trackRunningStats ? Tensor.full([numFeatures], 1) : null;
  }

  forward(x: Tensor): Tensor {
    if (x instanceof Tensor && x.ndim !== 4) throw opError('BatchNorm2d', `expected a 4-D input (N, C, H, W), got shape [${x.shape.join(', ')}]`);
    const batchStats = this.training || this.running_mean === null;
    return batchNorm(x, this.running_mean, this.running_var, this.weight, this.bias, { training: batchStats, momentum: this.momentum, eps: this.eps });
  }
}

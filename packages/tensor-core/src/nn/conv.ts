/**
 * Convolutional layers: Conv2d, MaxPool2d, AvgPool2d and Flatten, with PyTorch's constructor
 * arguments, parameter names (`weight` (out, in, kh, kw), `bias` (out)) and default
 * initialisation.
 */
import type { Random } from '../random.js';
import { Tensor } from '../autograd/tensor.js';
import { avgPool2d, conv2d, maxPool2d, pair, type Pair, type Pool2dOptions } from '../autograd/conv.js';
import { flatten } from '../autograd/layout.js';
import { Module, checkSize } from './module.js';
import { defaultGenerator, kaimingUniform, uniform } from './init.js';

export interface Conv2dLayerOptions {
  /** Step of the window, default 1. */
  stride?: Pair;
  /** Zeros added on each side, default 0. */
  padding?: Pair;
  /** Whether to learn an additive bias (default true). */
  bias?: boolean;
  /** Generator for the initial weights; the default one (see manualSeed) when omitted. */
  rng?: Random;
}

/**
 * 2-D convolution over (N, C, H, W), as PyTorch's nn.Conv2d(in, out, kernel_size, stride,
 * padding, bias): weight (out, in, kh, kw) ~ kaiming_uniform(a = √5) = U(±1/√fan_in) and bias
 * (out) ~ U(±1/√fan_in), fan_in = in·kh·kw, drawn in that order.
 *
 * @example
 * const conv = new Conv2d(1, 32, 3);
 * conv.forward(Tensor.zeros([64, 1, 28, 28])).shape; // [64, 32, 26, 26]
 */
export class Conv2d extends Module {
  readonly inChannels: number;
  readonly outChannels: number;
  readonly kernelSize: [number, number];
  readonly stride: [number, number];
  readonly padding: [number, number];
  weight: Tensor;
  bias: Tensor | null;

  constructor(inChannels: number, outChannels: number, kernelSize: Pair, { stride = 1, padding = 0, bias = true, rng = defaultGenerator() }: Conv2dLayerOptions = {}) {
    super();
    checkSize('Conv2d', 'inChannels', inChannels);
    checkSize('Conv2d', 'outChannels', outChannels);
    this.inChannels = inChannels;
    this.outChannels = outChannels;
    this.kernelSize = pair('Conv2d', 'kernelSize', kernelSize, 1);
    this.stride = pair('Conv2d', 'stride', stride, 1);
    this.padding = pair('Conv2d', 'padding', padding, 0);
    const [kh, kw] = this.kernelSize;
    this.weight = kaimingUniform(Tensor.zeros([outChannels, inChannels, kh, kw], true), { a: Math.sqrt(5), rng });
    this.bias = null;
    if (bias) {
      const bound = 1 / Math.sqrt(inChannels * kh * kw);
      this.bias = uniform(Tensor.zeros([outChannels], true), -bound, bound, { rng });
    }
  }

  forward(x: Tensor): Tensor {
    return conv2d(x, this.weight, this.bias, { stride: this.stride, padding: this.padding });
  }
}

/**
 * Max pooling, as PyTorch's nn.MaxPool2d(kernel_size, stride=kernel_size, padding=0).
 *
 * @example
 * new MaxPool2d(2).forward(Tensor.zeros([64, 32, 26, 26])).shape; // [64, 32, 13, 13]
 */
export class MaxPool2d extends Module {
  constructor(readonly kernelSize: Pair, readonly options: Pool2dOptions = {}) {
    super();
    pair('MaxPool2d', 'kernelSize', kernelSize, 1);
  }

  forward(x: Tensor): Tensor {
    return maxPool2d(x, this.kernelSize, this.options);
  }
}

/**
 * Average pooling (padding counted in the divisor), as PyTorch's nn.AvgPool2d(kernel_size,
 * stride=kernel_size, padding=0).
 *
 * @example
 * new AvgPool2d(2).forward(Tensor.zeros([1, 3, 8, 8])).shape; // [1, 3, 4, 4]
 */
export class AvgPool2d extends Module {
  constructor(readonly kernelSize: Pair, readonly options: Pool2dOptions = {}) {
    super();
    pair('AvgPool2d', 'kernelSize', kernelSize, 1);
  }

  forward(x: Tensor): Tensor {
    return avgPool2d(x, this.kernelSize, this.options);
  }
}

/**
 * Merges dimensions startDim..endDim (default 1..−1: everything but the batch), as PyTorch's
 * nn.Flatten. No copy.
 *
 * @example
 * new Flatten().forward(Tensor.zeros([64, 64, 5, 5])).shape; // [64, 1600]
 */
export class Flatten extends Module {
  constructor(readonly startDim = 1, readonly endDim = -1) {
    super();
  }

  forward(x: Tensor): Tensor {
    return flatten(x, this.startDim, this.endDim);
  }
}

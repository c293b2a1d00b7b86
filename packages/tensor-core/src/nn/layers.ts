/**
 * Layers. Each is a Module with PyTorch's constructor arguments, parameter names and default
 * initialisation, so a Loom model and the same PyTorch model exchange state dicts as they are.
 */
import { opError } from '../errors.js';
import { Random } from '../random.js';
import { IntTensor, Tensor } from '../autograd/tensor.js';
import * as ops from '../autograd/ops.js';
import { Module, checkSize } from './module.js';
import { defaultGenerator, kaimingUniform, normal, uniform } from './init.js';

export interface LinearOptions {
  bias?: boolean;
  /**
   * Leave the parameters at zero instead of initialising them (PyTorch's `skip_init`): for a model
   * that is about to adopt parameters from elsewhere (flattenParameters with `params`). The zero
   * pages are never touched, so they cost no resident memory.
   */
  skipInit?: boolean;
  /** Generator for the initial weights; the default one (see manualSeed) when omitted. */
  rng?: Random;
}

/**
 * y = x·Wᵀ + b, with weight (out, in) and bias (out), initialised as PyTorch's nn.Linear:
 * W ~ kaiming_uniform(a = √5) = U(−1/√in, 1/√in), b ~ U(−1/√in, 1/√in).
 *
 * @example
 * const layer = new Linear(100, 50);
 * const y = layer.forward(Tensor.zeros([64, 100])); // (64, 50)
 */
export class Linear extends Module {
  readonly inFeatures: number;
  readonly outFeatures: number;
  weight: Tensor;
  bias: Tensor | null;

  constructor(inFeatures: number, outFeatures: number, { bias = true, rng = defaultGenerator(), skipInit = false }: LinearOptions = {}) {
    super();
    checkSize('Linear', 'inFeatures', inFeatures);
    checkSize('Linear', 'outFeatures', outFeatures);
    this.inFeatures = inFeatures;
    this.outFeatures = outFeatures;
    this.weight = Tensor.zeros([outFeatures, inFeatures], true);
    this.bias = bias ? Tensor.zeros([outFeatures], true) : null;
    if (skipInit) return;
    kaimingUniform(this.weight, { a: Math.sqrt(5), rng });
    if (this.bias !== null) {
      const bound = 1 / Math.sqrt(inFeatures);
      uniform(this.bias, -bound, bound, { rng });
    }
  }

  forward(x: Tensor): Tensor {
    return ops.linear(x, this.weight, this.bias);
  }
}

/**
 * A lookup table of `numEmbeddings` rows of size `embeddingDim`, initialised N(0, 1) as PyTorch's
 * nn.Embedding. Its gradient touches only the rows that were looked up.
 */
export class Embedding extends Module<IntTensor> {
  weight: Tensor;

  constructor(numEmbeddings: number, embeddingDim: number, { rng = defaultGenerator() }: { rng?: Random } = {}) {
    super();
    checkSize('Embedding', 'numEmbeddings', numEmbeddings);
    checkSize('Embedding', 'embeddingDim', embeddingDim);
    this.weight = normal(Tensor.zeros([numEmbeddings, embeddingDim], true), 0, 1, { rng });
  }

  forward(indices: IntTensor): Tensor {
    return ops.embedding(this.weight, indices);
  }
}

/** max(x, 0) */
export class ReLU extends Module {
  forward(x: Tensor): Tensor {
    return ops.relu(x);
  }
}

/** 1 / (1 + e^−x) */
export class Sigmoid extends Module {
  forward(x: Tensor): Tensor {
    return ops.sigmoid(x);
  }
}

/** tanh x */
export class Tanh extends Module {
  forward(x: Tensor): Tensor {
    return ops.tanh(x);
  }
}

/**
 * Inverted dropout in training mode, identity in eval mode. Its masks come from its own generator,
 * seeded at construction, so the same seed drops the same units in every process.
 */
export class Dropout extends Module {
  readonly p: number;
  private readonly rng: Random;

  constructor(p = 0.5, { seed }: { seed?: number } = {}) {
    super();
    if (!(p >= 0 && p < 1)) throw opError('Dropout', `probability must be in [0, 1), got ${p}`);
    this.p = p;
    this.rng = new Random(seed ?? defaultGenerator().nextUint32());
  }

  forward(x: Tensor): Tensor {
    if (!this.training || this.p === 0) return x;
    return ops.dropout(x, this.p, this.rng);
  }
}

/**
 * Modules applied in order. Children are named "0", "1", … as in PyTorch, so parameters are
 * `0.weight`, `0.bias`, `2.weight`, ….
 *
 * @example
 * const model = new Sequential(new Linear(100, 50), new ReLU(), new Linear(50, 10));
 */
export class Sequential extends Module {
  readonly layers: readonly Module<any>[];

  constructor(...layers: Module<any>[]) {
    super();
    this.layers = layers;
  }

  override namedChildren(): Array<[string, Module<any>]> {
    return this.layers.map((m, i) => [String(i), m]);
  }

  forward(x: Tensor): Tensor {
    let y = x;
    for (const layer of this.layers) y = layer.forward(y);
    return y;
  }
}

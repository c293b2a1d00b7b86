/**
 * Layers. Each is a Module with PyTorch's constructor arguments, parameter names and default
 * initialisation, so a Loom model and the same PyTorch model exchange state dicts as they are.
 */
import { fmtShape, opError } from '../errors.js';
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

export interface EmbeddingLayerOptions {
  /**
   * Give the weight a row-sparse gradient, `weight.sparseGrad` (the rows a step looked up, as
   * (ids, rows)), instead of a dense `weight.grad` of the whole table: PyTorch's `sparse=True`.
   * `zeroGrad()` clears it.
   */
  sparse?: boolean;
  /** Generator for the initial weights; the default one (see manualSeed) when omitted. */
  rng?: Random;
}

/**
 * A lookup table of `numEmbeddings` rows of size `embeddingDim`, initialised N(0, 1) as PyTorch's
 * nn.Embedding. Its gradient touches only the rows that were looked up; with `{ sparse: true }`
 * it is a row-sparse gradient (`weight.sparseGrad`) and `weight.grad` stays null.
 *
 * @example
 * const users = new Embedding(1_000_000, 32, { sparse: true });
 * users.forward(IntTensor.from([3, 14, 3])).sum().backward();
 * users.weight.sparseGrad!.ids; // Int32Array [3, 14]
 */
export class Embedding extends Module<IntTensor> {
  weight: Tensor;
  readonly sparse: boolean;

  constructor(numEmbeddings: number, embeddingDim: number, { sparse = false, rng = defaultGenerator() }: EmbeddingLayerOptions = {}) {
    super();
    checkSize('Embedding', 'numEmbeddings', numEmbeddings);
    checkSize('Embedding', 'embeddingDim', embeddingDim);
    this.weight = normal(Tensor.zeros([numEmbeddings, embeddingDim], true), 0, 1, { rng });
    this.sparse = sparse;
  }

  forward(indices: IntTensor): Tensor {
    return ops.embedding(this.weight, indices, { sparse: this.sparse });
  }
}

/**
 * Sums or averages bags of rows of a table, as PyTorch's nn.EmbeddingBag (weight N(0, 1), default
 * mode 'mean'): `forward(indices, offsets)` with flat indices (N) and bag starts (B), or
 * `forward(indices)` with a 2-D (B, L) tensor of B bags of L indices each. → (B, embeddingDim).
 * See `embeddingBag` for the rules; `{ sparse: true }` as for Embedding.
 *
 * @example
 * const history = new EmbeddingBag(200_000, 32, { mode: 'mean', sparse: true });
 * // two users: the first clicked articles 7, 7 and 42, the second nothing yet
 * const h = history.forward(IntTensor.from([7, 7, 42]), IntTensor.from([0, 3])); // (2, 32), row 1 zeros
 */
export class EmbeddingBag extends Module<IntTensor> {
  weight: Tensor;
  readonly mode: ops.EmbeddingBagMode;
  readonly sparse: boolean;

  constructor(
    numEmbeddings: number,
    embeddingDim: number,
    { mode = 'mean', sparse = false, rng = defaultGenerator() }: EmbeddingLayerOptions & { mode?: ops.EmbeddingBagMode } = {},
  ) {
    super();
    checkSize('EmbeddingBag', 'numEmbeddings', numEmbeddings);
    checkSize('EmbeddingBag', 'embeddingDim', embeddingDim);
    if (mode !== 'sum' && mode !== 'mean') throw opError('EmbeddingBag', `mode must be 'sum' or 'mean', got '${String(mode)}'`);
    this.weight = normal(Tensor.zeros([numEmbeddings, embeddingDim], true), 0, 1, { rng });
    this.mode = mode;
    this.sparse = sparse;
  }

  forward(indices: IntTensor, offsets?: IntTensor): Tensor {
    if (offsets === undefined) {
      if (!(indices instanceof IntTensor) || indices.shape.length !== 2) {
        throw opError('EmbeddingBag', `without offsets, indices must be a 2-D IntTensor (bags, length), got ${indices instanceof IntTensor ? `shape ${fmtShape(indices.shape)}` : 'a float Tensor'}`);
      }
      const [bags, length] = indices.shape as [number, number];
      const starts = new Int32Array(bags);
      for (let b = 0; b < bags; b++) starts[b] = b * length;
      return ops.embeddingBag(this.weight, new IntTensor(indices.data), new IntTensor(starts), this.mode, { sparse: this.sparse });
    }
    return ops.embeddingBag(this.weight, indices, offsets, this.mode, { sparse: this.sparse });
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

  /**
   * Each layer's forward in turn, except that a Linear followed by a ReLU runs as one op,
   * `linearRelu` (one output buffer instead of two, the same bits): the Linear's own output is seen
   * by nothing but the ReLU, so nothing can tell. Subclasses that override either forward are
   * run as they are.
   *
   * When such a pair's (2-D) output goes on to a Linear, nothing but the graph holds it: the Linear
   * reads it in its forward and its gradient rule and keeps nothing. It is marked transient, and its
   * array is reused once backward is past it (a fresh one costs page faults; see buffers.ts).
   */
  forward(x: Tensor): Tensor {
    const layers = this.layers;
    let y = x;
    for (let i = 0; i < layers.length; i++) {
      const layer = layers[i]!;
      if (isPlain(layer, Linear) && isPlain(layers[i + 1], ReLU)) {
        const flat = y.ndim === 2; // else linearRelu's output is a reshaped view of its buffer
        y = ops.linearRelu(y, layer.weight, layer.bias);
        i++;
        if (flat && isPlain(layers[i + 1], Linear)) y._transient = true;
      } else y = layer.forward(y);
    }
    return y;
  }
}

/** Whether m is a `type` whose forward is type's own (a subclass may do anything in its forward). */
function isPlain<T extends Module<any>>(m: Module<any> | undefined, type: { new (...args: any[]): T; prototype: T }): m is T {
  return m instanceof type && m.forward === type.prototype.forward;
}

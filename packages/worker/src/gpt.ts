/**
 * A GPT decoder as nanoGPT's `GPT` (model.py), named as its state dict names it:
 *
 *   transformer.wte.weight (V, C)    token embeddings
 *   transformer.wpe.weight (T, C)    position embeddings
 *   transformer.h.{i}.*              L pre-LayerNorm TransformerBlocks (@loom/tensor-core)
 *   transformer.ln_f.weight/bias (C) the final LayerNorm
 *   lm_head.weight (V, C)            the head, no bias
 *
 * One difference from nanoGPT: lm_head.weight is not tied to wte.weight (Loom's flat parameter
 * layout holds each parameter once; a tied pair would be two names for one tensor). Initialised as
 * nanoGPT does: every Linear and Embedding weight N(0, 0.02), biases zero, LayerNorms 1 and 0, and
 * each block's c_proj weights N(0, 0.02/√(2L)).
 *
 * Dimension letters: B batch, T sequence length (≤ context), C width, V vocabulary.
 */
import { Embedding, IntTensor, LayerNorm, Linear, Module, Tensor, TransformerBlock, add, init, reshape, type Random } from '@loom/tensor-core';
import { WorkerError } from './errors.js';

export interface GptConfig {
  layers: number;
  embed: number;
  heads: number;
  context: number;
  vocab: number;
}

/** The blocks, named 0 … L−1 as a PyTorch nn.ModuleList names them. */
export class ModuleList extends Module {
  constructor(readonly items: readonly Module<any>[]) {
    super();
  }

  override namedChildren(): Array<[string, Module<any>]> {
    return this.items.map((m, i) => [String(i), m]);
  }

  forward(x: Tensor): Tensor {
    let y = x;
    for (const m of this.items) y = m.forward(y);
    return y;
  }
}

/** nanoGPT's `transformer` ModuleDict: wte, wpe, h, ln_f. */
export class GptTrunk extends Module {
  wte: Embedding;
  wpe: Embedding;
  h: ModuleList;
  ln_f: LayerNorm;

  constructor(c: GptConfig, rng: Random) {
    super();
    this.wte = new Embedding(c.vocab, c.embed, { rng });
    this.wpe = new Embedding(c.context, c.embed, { rng });
    this.h = new ModuleList(Array.from({ length: c.layers }, () => new TransformerBlock(c.embed, c.heads, { rng })));
    this.ln_f = new LayerNorm(c.embed);
  }

  forward(): Tensor {
    throw new WorkerError('GptTrunk', 'call GPT.forward');
  }
}

/**
 * Token ids (B, T) → logits (B, T, V). The ids come as a float Tensor (exact below 2^24), as every
 * Loom batch does, or as an IntTensor.
 *
 * @example
 * const gpt = new GPT({ layers: 2, embed: 64, heads: 4, context: 64, vocab: 60 }, new Random(42));
 * gpt.forward(Tensor.zeros([8, 64])).shape; // [8, 64, 60]
 */
export class GPT extends Module<Tensor | IntTensor> {
  transformer: GptTrunk;
  lm_head: Linear;
  readonly config: GptConfig;

  constructor(c: GptConfig, rng: Random) {
    super();
    this.config = c;
    this.transformer = new GptTrunk(c, rng);
    this.lm_head = new Linear(c.embed, c.vocab, { bias: false, rng });
    // nanoGPT's _init_weights, then the scaled residual projections.
    for (const [name, p] of this.namedParameters()) {
      if (p.ndim === 2) init.normal(p, 0, name.endsWith('c_proj.weight') ? 0.02 / Math.sqrt(2 * c.layers) : 0.02, { rng });
      else if (!name.includes('ln_')) init.zeros(p);
    }
  }

  forward(idx: Tensor | IntTensor): Tensor {
    const [b, t] = idx.shape as [number, number];
    const { context, vocab, embed } = this.config;
    if (idx.shape.length !== 2 || t > context || t < 1) {
      throw new WorkerError('GPT', `expected token ids (B, T) with 1 ≤ T ≤ ${context}, got shape (${idx.shape.join(', ')})`);
    }
    const ids = idx instanceof IntTensor ? idx : new IntTensor(Int32Array.from(idx.data), [b, t]);
    for (let i = 0; i < ids.data.length; i++) {
      const v = ids.data[i]!;
      if (!(v >= 0 && v < vocab)) throw new WorkerError('GPT', `token id ${v} at position ${i} is outside the vocabulary of ${vocab}`);
    }
    const tok = this.transformer.wte.forward(ids); // (B, T, C)
    const pos = this.transformer.wpe.forward(new IntTensor(Int32Array.from({ length: t }, (_, i) => i), [t])); // (T, C)
    // (B, T·C) + a row of T·C: the position embeddings broadcast over the batch.
    let x = reshape(add(reshape(tok, [b, t * embed]), reshape(pos, [t * embed])), [b, t, embed]);
    x = this.transformer.h.forward(x);
    x = this.transformer.ln_f.forward(x);
    return this.lm_head.forward(x); // (B, T, V)
  }
}

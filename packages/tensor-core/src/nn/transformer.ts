/**
 * Transformer layers: GELU, causal self-attention and a pre-LayerNorm block, named as nanoGPT's
 * `model.py` (and so as a GPT-2 state dict) names them:
 *
 *   CausalSelfAttention   c_attn.weight (3C, C), c_attn.bias (3C)   q, k, v = split(c_attn(x), C)
 *                         c_proj.weight (C, C),  c_proj.bias (C)
 *   MLP                   c_fc.weight (4C, C), c_fc.bias (4C), c_proj.weight (C, 4C), c_proj.bias (C)
 *   TransformerBlock      ln_1.*, attn.*, ln_2.*, mlp.*
 *
 * Layers are initialised with PyTorch's defaults (nn.Linear, nn.LayerNorm); nanoGPT's GPT
 * re-initialises them at model level (N(0, 0.02), c_proj scaled by 1/√(2·layers)), which is the
 * model's business, not the layer's.
 *
 * Dimension letters: B batch, T sequence length, C embedding width, H heads, D = C / H head width.
 */
import type { Random } from '../random.js';
import { Tensor } from '../autograd/tensor.js';
import * as ops from '../autograd/ops.js';
import { causalAttention, composedAttention } from '../autograd/attention.js';
import { gelu } from '../autograd/norm.js';
import { fmtShape, opError } from '../errors.js';
import { Module, checkSize } from './module.js';
import { Dropout, Linear } from './layers.js';
import { LayerNorm } from './norm.js';
import { defaultGenerator } from './init.js';

/**
 * The exact GELU, x·Φ(x), as PyTorch's nn.GELU() (approximate='none').
 *
 * @example
 * new GELU().forward(Tensor.from([-1, 0, 1])); // [-0.1587, 0, 0.8413]
 */
export class GELU extends Module {
  forward(x: Tensor): Tensor {
    return gelu(x);
  }
}

export interface AttentionOptions {
  /** Biases in c_attn and c_proj (and the LayerNorms of a block); default true. */
  bias?: boolean;
  /** Dropout on the attention weights and on the output, as nanoGPT's; default 0. */
  dropout?: number;
  /** Generator for the initial weights; the default one (see manualSeed) when omitted. */
  rng?: Random;
  /** Seed of the dropout masks; drawn from rng when omitted. */
  seed?: number;
}

/**
 * Multi-head causal self-attention over x (B, T, C) → (B, T, C), as nanoGPT's
 * CausalSelfAttention: one projection c_attn to q, k, v, per head softmax(q·kᵀ/√D) with −∞ above
 * the diagonal (position t attends to positions ≤ t), the heads' outputs concatenated and
 * projected by c_proj.
 *
 * @example
 * const attn = new CausalSelfAttention(64, 4);
 * attn.forward(Tensor.zeros([8, 32, 64])).shape; // [8, 32, 64]
 * attn.namedParameters().map(([n]) => n); // ['c_attn.weight', 'c_attn.bias', 'c_proj.weight', 'c_proj.bias']
 */
export class CausalSelfAttention extends Module {
  readonly embed: number;
  readonly heads: number;
  c_attn: Linear;
  c_proj: Linear;
  attn_dropout: Dropout;
  resid_dropout: Dropout;

  constructor(embed: number, heads: number, { bias = true, dropout = 0, rng = defaultGenerator(), seed }: AttentionOptions = {}) {
    super();
    checkSize('CausalSelfAttention', 'embed', embed);
    checkSize('CausalSelfAttention', 'heads', heads);
    if (embed % heads !== 0) throw opError('CausalSelfAttention', `embed ${embed} is not divisible by heads ${heads}`);
    this.embed = embed;
    this.heads = heads;
    this.c_attn = new Linear(embed, 3 * embed, { bias, rng });
    this.c_proj = new Linear(embed, embed, { bias, rng });
    const s = seed ?? rng.nextUint32();
    this.attn_dropout = new Dropout(dropout, { seed: s });
    this.resid_dropout = new Dropout(dropout, { seed: s + 1 });
  }

  forward(x: Tensor): Tensor {
    if (!(x instanceof Tensor) || x.ndim !== 3 || x.shape[2] !== this.embed) {
      const found = x instanceof Tensor ? fmtShape(x.shape) : typeof x;
      throw opError('CausalSelfAttention', `expected input (B, T, ${this.embed}), got ${found}`);
    }
    const qkv = this.c_attn.forward(x); // (B, T, 3C)
    // Dropped-out attention weights need the composed ops; otherwise the fused core (one kernel
    // call where the backend has it).
    const dropping = this.training && this.attn_dropout.p > 0;
    const y = dropping ? composedAttention(qkv, this.heads, (w) => this.attn_dropout.forward(w)) : causalAttention(qkv, this.heads);
    return this.resid_dropout.forward(this.c_proj.forward(y));
  }
}

/**
 * The feed-forward half of a block, as nanoGPT's MLP: c_fc (C → 4C), GELU, c_proj (4C → C),
 * dropout.
 */
export class MLP extends Module {
  c_fc: Linear;
  gelu: GELU;
  c_proj: Linear;
  dropout: Dropout;

  constructor(embed: number, { bias = true, dropout = 0, rng = defaultGenerator(), seed }: AttentionOptions = {}) {
    super();
    checkSize('MLP', 'embed', embed);
    this.c_fc = new Linear(embed, 4 * embed, { bias, rng });
    this.gelu = new GELU();
    this.c_proj = new Linear(4 * embed, embed, { bias, rng });
    this.dropout = new Dropout(dropout, { seed: seed ?? rng.nextUint32() });
  }

  forward(x: Tensor): Tensor {
    return this.dropout.forward(this.c_proj.forward(this.gelu.forward(this.c_fc.forward(x))));
  }
}

/**
 * A pre-LayerNorm transformer block, as nanoGPT's Block:
 *
 *   x = x + attn(ln_1(x))
 *   x = x + mlp(ln_2(x))
 *
 * @example
 * const block = new TransformerBlock(64, 4);
 * block.forward(Tensor.zeros([8, 32, 64])).shape; // [8, 32, 64]
 */
export class TransformerBlock extends Module {
  ln_1: LayerNorm;
  attn: CausalSelfAttention;
  ln_2: LayerNorm;
  mlp: MLP;

  constructor(embed: number, heads: number, { bias = true, dropout = 0, rng = defaultGenerator(), seed }: AttentionOptions = {}) {
    super();
    const s = seed ?? rng.nextUint32();
    this.ln_1 = new LayerNorm(embed, { bias });
    this.attn = new CausalSelfAttention(embed, heads, { bias, dropout, rng, seed: s });
    this.ln_2 = new LayerNorm(embed, { bias });
    this.mlp = new MLP(embed, { bias, dropout, rng, seed: s + 2 });
  }

  forward(x: Tensor): Tensor {
    const h = ops.add(x, this.attn.forward(this.ln_1.forward(x)));
    return ops.add(h, this.mlp.forward(this.ln_2.forward(h)));
  }
}

// Conv2d, pooling, Flatten, LayerNorm, BatchNorm2d and causal self-attention as modules: PyTorch's
// names, shapes and default initialisation, train/eval behaviour, causality, and bad inputs.
import { describe, expect, it } from 'vitest';
import { Random } from '../random.js';
import { Tensor } from '../autograd/tensor.js';
import { noGrad } from '../autograd/grad-mode.js';
import { Conv2d, Flatten, MaxPool2d, AvgPool2d } from './conv.js';
import { BatchNorm2d, LayerNorm } from './norm.js';
import { CausalSelfAttention, TransformerBlock } from './transformer.js';
import { ReLU, Linear, Sequential } from './layers.js';

describe('Conv2d', () => {
  it('has PyTorch shapes and U(±1/√fan_in) weight and bias', () => {
    const conv = new Conv2d(3, 16, [3, 5], { rng: new Random(1) });
    expect(conv.namedParameters().map(([n, p]) => [n, p.shape])).toEqual([['weight', [16, 3, 3, 5]], ['bias', [16]]]);
    const bound = 1 / Math.sqrt(3 * 3 * 5);
    for (const p of conv.parameters()) {
      const max = Math.max(...p.data.map(Math.abs));
      expect(max).toBeLessThanOrEqual(bound);
      expect(max).toBeGreaterThan(0.8 * bound);
    }
    expect(new Conv2d(1, 2, 3, { bias: false }).bias).toBeNull();
  });
  it('makes the issue\'s Fashion-MNIST CNN shapes', () => {
    const model = new Sequential(
      new Conv2d(1, 32, 3), new ReLU(), new MaxPool2d(2), new Conv2d(32, 64, 3), new ReLU(), new MaxPool2d(2),
      new Flatten(), new Linear(64 * 5 * 5, 128), new ReLU(), new Linear(128, 10),
    );
    expect(noGrad(() => model.forward(Tensor.zeros([2, 1, 28, 28]))).shape).toEqual([2, 10]);
    expect(new AvgPool2d(2).forward(Tensor.zeros([1, 3, 5, 5])).shape).toEqual([1, 3, 2, 2]);
  });
  it('says which sizes disagree', () => {
    expect(() => new Conv2d(3, 8, 3).forward(Tensor.zeros([2, 1, 28, 28]))).toThrow('conv2d: the input [2, 1, 28, 28] has 1 channels but the weight [8, 3, 3, 3] expects 3');
    expect(() => new Conv2d(3, 8, 0)).toThrow('Conv2d: kernelSize must be positive integers, got 0');
  });
});

describe('LayerNorm and BatchNorm2d', () => {
  it('LayerNorm starts as weight 1, bias 0 under PyTorch names', () => {
    const ln = new LayerNorm(6);
    expect(ln.namedParameters().map(([n]) => n)).toEqual(['weight', 'bias']);
    expect(Array.from(ln.weight!.data)).toEqual([1, 1, 1, 1, 1, 1]);
    expect(new LayerNorm(6, { bias: false }).bias).toBeNull();
  });
  it('BatchNorm2d normalises with batch statistics in training and running ones in eval', () => {
    const bn = new BatchNorm2d(2, { momentum: 0.5 });
    const x = Tensor.uniform([4, 2, 3, 3], new Random(5), 1, 3);
    const y = bn.forward(x);
    let m = 0;
    for (let n = 0; n < 4; n++) for (let q = 0; q < 9; q++) m += y.data[n * 18 + q]!;
    expect(Math.abs(m / 36)).toBeLessThan(1e-5); // channel 0 has zero mean
    expect(bn.running_mean!.data[0]).toBeGreaterThan(0.9); // half of a mean near 2
    expect(bn.parameters()).toHaveLength(2); // running statistics are buffers
    bn.eval();
    const rm = bn.running_mean!.data.slice();
    const z = bn.forward(x);
    expect(Array.from(bn.running_mean!.data)).toEqual(Array.from(rm)); // eval leaves them alone
    const rv = bn.running_var!.data[0]!;
    expect(z.data[0]).toBeCloseTo((x.data[0]! - rm[0]!) / Math.sqrt(rv + 1e-5), 5);
  });
});

describe('CausalSelfAttention', () => {
  it('names its parameters as nanoGPT', () => {
    const block = new TransformerBlock(16, 4);
    expect(block.namedParameters().map(([n, p]) => `${n} ${JSON.stringify(p.shape)}`)).toEqual([
      'ln_1.weight [16]', 'ln_1.bias [16]',
      'attn.c_attn.weight [48,16]', 'attn.c_attn.bias [48]', 'attn.c_proj.weight [16,16]', 'attn.c_proj.bias [16]',
      'ln_2.weight [16]', 'ln_2.bias [16]',
      'mlp.c_fc.weight [64,16]', 'mlp.c_fc.bias [64]', 'mlp.c_proj.weight [16,64]', 'mlp.c_proj.bias [16]',
    ]);
  });
  it('is causal: changing a later token leaves earlier outputs unchanged', () => {
    const attn = new CausalSelfAttention(8, 2, { rng: new Random(3) });
    const x = Tensor.randn([1, 6, 8], new Random(4));
    const before = attn.forward(x).data.slice();
    x.data[4 * 8 + 1]! += 1; // token 4
    const after = attn.forward(x).data;
    for (let i = 0; i < 4 * 8; i++) expect(after[i]).toBe(before[i]); // tokens 0..3: bit for bit
    expect(after[4 * 8]).not.toBe(before[4 * 8]);
  });
  it('drops out in training only', () => {
    const attn = new CausalSelfAttention(8, 2, { dropout: 0.5, seed: 1 });
    const x = Tensor.randn([2, 3, 8], new Random(4));
    const a = attn.eval().forward(x).data.slice();
    expect(Array.from(attn.forward(x).data)).toEqual(Array.from(a));
    expect(Array.from(attn.train().forward(x).data)).not.toEqual(Array.from(a));
  });
  it('names both sides of a bad input', () => {
    expect(() => new CausalSelfAttention(8, 3)).toThrow('CausalSelfAttention: embed 8 is not divisible by heads 3');
    expect(() => new CausalSelfAttention(8, 2).forward(Tensor.zeros([2, 3, 6]))).toThrow('CausalSelfAttention: expected input (B, T, 8), got [2, 3, 6]');
  });
});

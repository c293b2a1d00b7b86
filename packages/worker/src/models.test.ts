import { describe, expect, it } from 'vitest';
import { Random, Tensor, flattenParameters, mlp } from '@loom/tensor-core';
import { CharVocab, newsText, splitText, tokenWindows } from '@loom/data';
import { checkModelFits, parseModelSpec, withVocab } from './models.js';
import { evaluateLm, unigramLoss } from './lm.js';
import { WorkerError } from './errors.js';

describe('the model registry', () => {
  it('builds reference and mlp specs bit for bit as mlp(sizes, xavier) from the seed', () => {
    for (const [spec, sizes] of [['reference', [100, 50, 10]], ['mlp:784,32,10', [784, 32, 10]]] as const) {
      const a = flattenParameters(parseModelSpec(spec).build(new Random(7))).params;
      const b = flattenParameters(mlp(sizes, { init: 'xavier', rng: new Random(7) })).params;
      expect(a).toEqual(b);
    }
  });

  it('builds the cnn: PyTorch names, 1×28×28 images from rows of 784, 10 logits', () => {
    const m = parseModelSpec('cnn');
    const model = m.build(new Random(1));
    expect(model.namedParameters().map(([n, p]) => `${n} ${p.shape.join('x')}`)).toEqual([
      '1.weight 32x1x3x3', '1.bias 32', '4.weight 64x32x3x3', '4.bias 64', '8.weight 128x3136', '8.bias 128', '10.weight 10x128', '10.bias 10',
    ]);
    expect(model.forward(Tensor.zeros([3, 784])).shape).toEqual([3, 10]);
    expect(m.batchSize).toBe(32);
    expect(parseModelSpec('mlp:784,32,10').batchSize).toBeUndefined();
  });

  it('builds a gpt with nanoGPT names once it knows its vocabulary', () => {
    const spec = withVocab('gpt:2,16,4,8', 11);
    expect(spec).toBe('gpt:2,16,4,8,11');
    const model = parseModelSpec(spec).build(new Random(1));
    const names = model.namedParameters().map(([n]) => n);
    for (const n of ['transformer.wte.weight', 'transformer.wpe.weight', 'transformer.h.0.ln_1.weight', 'transformer.h.1.attn.c_attn.weight', 'transformer.h.1.mlp.c_proj.bias', 'transformer.ln_f.weight', 'lm_head.weight']) {
      expect(names).toContain(n);
    }
    expect(model.forward(Tensor.zeros([2, 5])).shape).toEqual([2, 5, 11]);
    // Same seed, same bits.
    expect(flattenParameters(parseModelSpec(spec).build(new Random(3))).params).toEqual(flattenParameters(parseModelSpec(spec).build(new Random(3))).params);
    expect(() => parseModelSpec('gpt:2,16,4,8').build(new Random(1))).toThrow(/no vocabulary size/);
    expect(() => withVocab('gpt:2,16,4,8,11', 12)).toThrow(/predicts 11 tokens, but the data's vocabulary has 12/);
  });

  it('rejects bad specs with a message naming them', () => {
    for (const bad of ['mlp:10', 'mlp:10,0,2', 'cnn:3', 'gpt:2,15,4,8', 'gpt:0,16,4,8', 'gpt:1,2,3', 'resnet']) {
      expect(() => parseModelSpec(bad)).toThrow(WorkerError);
      expect(() => parseModelSpec(bad)).toThrow(`'${bad}'`);
    }
  });

  it('says which side does not fit: features, classes, images, vocabulary', () => {
    expect(() => checkModelFits(parseModelSpec('cnn'), { dataset: 'news', kind: 'features', width: 100, classes: 10 })).toThrow(
      'cnn takes 1×28×28 images (784 features) and predicts 10 classes, but --dataset news has 100 features and 10 classes',
    );
    expect(() => checkModelFits(parseModelSpec('gpt:1,8,2,4,30'), { dataset: 'news-text', kind: 'tokens', vocab: 40 })).toThrow('predicts 30 tokens, but --dataset news-text has a vocabulary of 40');
    expect(() => checkModelFits(parseModelSpec('gpt:1,8,2,4'), { dataset: 'news', kind: 'features', width: 100, classes: 10 })).toThrow(/language model over tokens, but --dataset news has rows of 100 features/);
    expect(() => checkModelFits(parseModelSpec('reference'), { dataset: 'news-text', kind: 'tokens', vocab: 40 })).toThrow(/classifies rows of 100 features, but --dataset news-text is text of 40 tokens/);
  });
});

describe('text data and the LM baseline', () => {
  it('a character vocabulary round-trips and names what it cannot encode', () => {
    const v = CharVocab.fromText('hello world');
    expect(v.decode(v.encode('low hell'))).toBe('low hell');
    expect(() => v.encode('hello?!')).toThrow('characters outside the vocabulary: "?", "!"');
  });

  it('an untrained gpt scores about ln V, above the unigram baseline', () => {
    const text = newsText({ seed: 1, sentences: 200 });
    const s = splitText(text);
    const w = tokenWindows(s.tokens, 16, { from: s.validStart, to: s.testStart });
    const model = parseModelSpec(withVocab('gpt:1,16,2,16', s.vocab.size)).build(new Random(1));
    const e = evaluateLm(model, w.features, Int32Array.from({ length: w.rows }, (_, i) => i), 16);
    expect(e.loss).toBeGreaterThan(Math.log(s.vocab.size) - 0.2);
    expect(unigramLoss(s.tokens.subarray(0, s.validStart), s.tokens.subarray(s.validStart, s.testStart), s.vocab.size)).toBeLessThan(e.loss);
  });
});

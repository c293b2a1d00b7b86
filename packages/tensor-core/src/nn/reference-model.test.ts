// Loom's reference model against PyTorch 1.13: the same weights and batch must give the same loss
// and the same gradient for every parameter. The fixture is made by fixtures/make_reference_mlp.py.
import { describe, expect, it } from 'vitest';
import { fileURLToPath } from 'node:url';
import { readFileSync } from 'node:fs';
import { IntTensor, Tensor } from '../autograd/tensor.js';
import { crossEntropy } from '../autograd/losses.js';
import { loadSafetensors } from '../io/safetensors.js';
import { mlp } from './mlp.js';
import { flattenParameters } from './flat.js';

const fixture = (name: string) => fileURLToPath(new URL(`../../fixtures/${name}`, import.meta.url));

describe('reference model against PyTorch 1.13', () => {
  const { tensors, metadata } = loadSafetensors(fixture('reference_mlp.safetensors'));
  const summary = JSON.parse(readFileSync(fixture('reference_mlp.json'), 'utf8')) as {
    tensors: Record<string, { shape: number[]; first: number[]; sum: number }>;
  };

  it('reads the file Python wrote with identical values', () => {
    expect(metadata.writer).toBe('make_reference_mlp.py');
    for (const [name, s] of Object.entries(summary.tensors)) {
      const t = tensors[name]!;
      expect(t.shape, name).toEqual(s.shape);
      expect(Array.from(t.data.subarray(0, 5)), name).toEqual(s.first);
      let sum = 0;
      for (const v of t.data) sum += v;
      expect(sum, name).toBeCloseTo(s.sum, 9);
    }
    expect(tensors.labels).toBeInstanceOf(IntTensor); // I64 in the file
  });

  for (const flat of [false, true]) {
    it(`gives PyTorch's loss and gradients${flat ? ' with flat parameters' : ''}`, () => {
      const model = mlp([100, 50, 10]);
      model.loadStateDict(Object.fromEntries(Object.entries(tensors).filter(([n]) => /^\d\./.test(n))), 'reference_mlp.safetensors');
      if (flat) flattenParameters(model);
      const loss = crossEntropy(model.forward(tensors.input as Tensor), tensors.labels as IntTensor);
      expect(Math.abs(loss.item() - (tensors.loss as Tensor).item())).toBeLessThan(1e-6);
      loss.backward();
      for (const [name, p] of model.namedParameters()) {
        const expected = (tensors[`grad.${name}`] as Tensor).data;
        let err = 0;
        let scale = 0;
        for (let i = 0; i < expected.length; i++) {
          err = Math.max(err, Math.abs(p.grad!.data[i]! - expected[i]!));
          scale = Math.max(scale, Math.abs(expected[i]!));
        }
        expect(err / scale, name).toBeLessThan(1e-5);
      }
    });
  }
});

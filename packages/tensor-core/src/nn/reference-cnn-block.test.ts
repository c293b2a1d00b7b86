// A small CNN and one transformer block against PyTorch 1.13: the same parameters, loaded by
// PyTorch's names, give PyTorch's loss and every gradient (fixtures/make_reference_cnn_block.py).
import { describe, expect, it } from 'vitest';
import { fileURLToPath } from 'node:url';
import { readFileSync } from 'node:fs';
import { IntTensor, Tensor } from '../autograd/tensor.js';
import { crossEntropy, mseLoss } from '../autograd/losses.js';
import { Linear, ReLU, Sequential } from './layers.js';
import { Conv2d, Flatten, MaxPool2d } from './conv.js';
import { TransformerBlock } from './transformer.js';
import { flattenParameters } from './flat.js';
import type { Module } from './module.js';

interface Dumped { shape: number[]; data: number[] }
interface Case { params: Record<string, Dumped>; grads: Record<string, Dumped>; input: Dumped; input_grad: Dumped; loss: number; labels?: number[]; target?: Dumped }

const fixture = JSON.parse(readFileSync(fileURLToPath(new URL('../../fixtures/reference_cnn_block.json', import.meta.url)), 'utf8')) as {
  writer: string; cnn: Case; block: Case;
};
const tensor = (d: Dumped, requiresGrad = false) => new Tensor(Float32Array.from(d.data), d.shape, requiresGrad);

/** max|a − b| / max|b|: the error relative to the tensor's scale. */
function relError(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let err = 0, scale = 0;
  for (let i = 0; i < b.length; i++) {
    err = Math.max(err, Math.abs(a[i]! - b[i]!));
    scale = Math.max(scale, Math.abs(b[i]!));
  }
  return err / scale;
}

function check(c: Case, model: Module, loss: (y: Tensor) => Tensor, flat: boolean) {
  model.loadStateDict(Object.fromEntries(Object.entries(c.params).map(([n, d]) => [n, tensor(d)])), 'reference_cnn_block.json');
  if (flat) flattenParameters(model);
  expect(model.namedParameters().map(([n]) => n).sort()).toEqual(Object.keys(c.params).sort());
  const x = tensor(c.input, true);
  const l = loss(model.forward(x));
  expect(Math.abs(l.item() - c.loss) / Math.abs(c.loss)).toBeLessThan(1e-6);
  l.backward();
  for (const [name, p] of model.namedParameters()) expect(relError(p.grad!.data, c.grads[name]!.data), name).toBeLessThan(1e-5);
  expect(relError(x.grad!.data, c.input_grad.data), 'input').toBeLessThan(1e-5);
}

const cnn = () => new Sequential(
  new Conv2d(2, 4, 3, { padding: 1 }), new ReLU(), new MaxPool2d(2),
  new Conv2d(4, 6, [3, 2], { stride: [1, 2], padding: [1, 0] }), new ReLU(), new MaxPool2d(2),
  new Flatten(), new Linear(12, 5),
);

describe('reference CNN and transformer block against PyTorch 1.13', () => {
  it('was written by the committed script', () => expect(fixture.writer).toBe('make_reference_cnn_block.py'));
  for (const flat of [false, true]) {
    it(`CNN: loss and every gradient${flat ? ' with flat parameters' : ''}`, () => {
      check(fixture.cnn, cnn(), (y) => crossEntropy(y, IntTensor.from(fixture.cnn.labels!)), flat);
    });
    it(`transformer block: loss and every gradient${flat ? ' with flat parameters' : ''}`, () => {
      check(fixture.block, new TransformerBlock(8, 2), (y) => mseLoss(y, tensor(fixture.block.target!)), flat);
    });
  }
});

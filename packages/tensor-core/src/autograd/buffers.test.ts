import { describe, expect, it } from 'vitest';
import { Random } from '../random.js';
import { IntTensor, Tensor, gradBuffer, record } from './tensor.js';
import { mul, sum } from './ops.js';
import { crossEntropy } from './losses.js';
import { BufferPool, recycle, reusingBuffers, scratch } from './buffers.js';
import { mlp } from '../nn/mlp.js';
import { flattenParameters } from '../nn/flat.js';
import { Flatten, Conv2d, MaxPool2d } from '../nn/conv.js';
import { Linear, ReLU, Sequential } from '../nn/layers.js';
import { TransformerBlock } from '../nn/transformer.js';
import { reshape } from './ops.js';
import type { Module } from '../nn/module.js';

describe('reusingBuffers', () => {
  const rng = new Random(1);
  const x = Tensor.uniform([8, 6], rng, -1, 1);
  const y = IntTensor.from([0, 1, 2, 0, 1, 2, 0, 1]);

  function step(model: ReturnType<typeof mlp>, pool: BufferPool | null) {
    const run = () => {
      const loss = crossEntropy(model.forward(x), y);
      loss.backward();
      return loss.item();
    };
    return pool === null ? run() : reusingBuffers(pool, run);
  }

  it('gives the same losses and gradients as fresh buffers, step after step', () => {
    const a = mlp([6, 5, 3], { rng: new Random(2) });
    const b = mlp([6, 5, 3], { rng: new Random(2) });
    const fa = flattenParameters(a);
    const fb = flattenParameters(b);
    const pool = new BufferPool();
    for (let i = 0; i < 3; i++) {
      fa.grads.fill(0);
      fb.grads.fill(0);
      expect(step(b, pool)).toBe(step(a, null));
      expect(fb.grads).toEqual(fa.grads);
      for (let j = 0; j < fa.params.length; j++) {
        fa.params[j]! -= 0.1 * fa.grads[j]!;
        fb.params[j]! -= 0.1 * fb.grads[j]!;
      }
    }
  });

  // Ops that take their output or gradient unzeroed from the pool (conv's scratch, pooling, layer
  // norm, attention, products that overwrite a fresh gradient) must write every element: a step
  // after the first reuses buffers that hold the last step's values.
  const cnn = () => new Sequential(new Conv2d(2, 3, 3, { padding: 1, rng: new Random(3) }), new ReLU(), new MaxPool2d(2), new Flatten(), new Linear(3 * 3 * 3, 4, { rng: new Random(4) }));
  const block = () => new Sequential(new TransformerBlock(8, 2, { rng: new Random(5) }), new Linear(8, 4, { rng: new Random(6) }));
  const cases: [string, () => Module, Tensor, IntTensor][] = [
    ['a cnn (conv, ReLU, max pool, Linear)', cnn, Tensor.uniform([4, 2, 6, 6], rng, -1, 1), IntTensor.from([0, 1, 2, 3])],
    ['a transformer block and a head (layer norm, attention, GELU)', block, Tensor.uniform([2, 3, 8], rng, -1, 1), IntTensor.from([0, 1, 2, 3, 0, 1])],
  ];
  for (const [name, make, input, labels] of cases) {
    it(`gives the same losses and gradients as fresh buffers, step after step: ${name}`, () => {
      const [a, b] = [make(), make()];
      const [fa, fb] = [flattenParameters(a), flattenParameters(b)];
      const pool = new BufferPool();
      const run = (m: Module) => () => {
        const out = m.forward(input) as Tensor;
        const loss = crossEntropy(reshape(out, [-1, 4]), labels);
        loss.backward();
        return loss.item();
      };
      for (let i = 0; i < 3; i++) {
        fa.grads.fill(0);
        fb.grads.fill(0);
        expect(reusingBuffers(pool, run(b))).toBe(run(a)());
        expect(fb.grads).toEqual(fa.grads);
        for (let j = 0; j < fa.params.length; j++) {
          fa.params[j]! -= 0.1 * fa.grads[j]!;
          fb.params[j]! -= 0.1 * fb.grads[j]!;
        }
      }
    });
  }

  it('lends the same arrays again on the next step, and never a parameter gradient', () => {
    const m = mlp([6, 5, 3], { rng: new Random(3) }); // not flattened: grads are created by backward
    const pool = new BufferPool();
    reusingBuffers(pool, () => crossEntropy(m.forward(x), y).backward());
    const grads = m.parameters().map((p) => p.grad!.data);
    // Ten steps reuse a handful of arrays; fresh allocation would give ten distinct outputs.
    const outputs = new Set<Float32Array>();
    for (let i = 0; i < 10; i++) reusingBuffers(pool, () => void outputs.add(m.forward(x).data));
    expect(outputs.size).toBeLessThanOrEqual(2);
    const lent = new Set<Float32Array>();
    reusingBuffers(pool, () => {
      for (let i = 0; i < 20; i++) {
        const out = m.forward(x);
        crossEntropy(out, y).backward();
        lent.add(out.data);
      }
    });
    for (const g of grads) expect(lent.has(g)).toBe(false);
  });
});

describe('recycling outside a pool', () => {
  it("gives an intermediate gradient back once backward has passed it, never a parameter's", () => {
    // A pass-through op that shows its gradient array: (7, 13), a length no other test uses.
    let seen: Float32Array | null = null;
    const probe = (t: Tensor) => {
      const out = new Tensor(t.data, t.shape);
      return record(out, 'probe', [t], () => {
        seen = out.grad!.data;
        gradBuffer(t).set(seen);
      });
    };
    const w = Tensor.uniform([7, 13], new Random(4), -1, 1, true);
    sum(probe(w)).backward();
    expect(w.grad!.data.every((v) => v === 1)).toBe(true);
    const next = scratch(7 * 13);
    expect(next).toBe(seen);
    expect(next.every((v) => v === 0)).toBe(true);
    expect(scratch(7 * 13)).not.toBe(w.grad!.data); // a leaf's gradient outlives the step
  });

  it('hands an array out once however often it is given back, and ignores arrays it did not make', () => {
    const n = 1237; // a length no other test uses
    const a = scratch(n);
    a.fill(3);
    recycle(a);
    recycle(a);
    const b = scratch(n);
    const c = scratch(n);
    expect(b).toBe(a);
    expect(c).not.toBe(a);
    expect(b.every((v) => v === 0)).toBe(true); // zero-filled again
    const foreign = new Float32Array(n);
    recycle(foreign);
    expect(scratch(n)).not.toBe(foreign);
    const pool = new BufferPool();
    const lent = reusingBuffers(pool, () => scratch(n));
    recycle(lent); // the pool's, not ours: the pool lends it again, nobody else
    expect(scratch(n)).not.toBe(lent);
  });
});

describe('backward(gradient) seeds with a copy of the gradient', () => {
  it('in a pool whose arrays hold garbage, on a leaf, and twice on a leaf (which accumulates)', () => {
    const g = Tensor.from([1, -2, 3, 4], [2, 2]);
    const x = Tensor.from([5, 6, 7, 8], [2, 2], true);
    const pool = new BufferPool();
    for (let step = 0; step < 3; step++) {
      x.zeroGrad();
      reusingBuffers(pool, () => {
        scratch(4, false).fill(NaN); // a dirty array of the seed's length for the pool to lend next
        pool.reclaim();
        mul(x, Tensor.from([2, 2, 2, 2], [2, 2])).backward(g);
      });
      expect([...x.grad!.data]).toEqual([2, -4, 6, 8]);
    }
    const leaf = Tensor.from([0, 0, 0, 0], [2, 2], true);
    leaf.backward(g);
    expect([...leaf.grad!.data]).toEqual([1, -2, 3, 4]);
    expect(leaf.grad!.data).not.toBe(g.data);
    leaf.backward(g);
    expect([...leaf.grad!.data]).toEqual([2, -4, 6, 8]);
    expect([...g.data]).toEqual([1, -2, 3, 4]);
  });
});

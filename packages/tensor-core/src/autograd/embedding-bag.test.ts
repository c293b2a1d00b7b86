// embeddingBag: forward and backward against central finite differences of a float64 reference,
// the sparse gradient against the dense one, and the errors for bad input.
import { describe, expect, it } from 'vitest';
import { Random } from '../random.js';
import { IntTensor, Tensor } from './tensor.js';
import * as ops from './ops.js';
import { gradCheck, type Ref } from './gradcheck.testutil.js';

const rng = new Random(12);
const TOL = { forward: 1e-6, grad: 2e-4 };

/** Bag b is indices[offsets[b] .. offsets[b+1]), the last to the end; mean of an empty bag is 0. */
function bagRef(v: number, d: number, indices: number[], offsets: number[], mode: 'sum' | 'mean'): Ref {
  return ([w]) => {
    const out = new Float64Array(offsets.length * d);
    offsets.forEach((start, b) => {
      const end = b + 1 < offsets.length ? offsets[b + 1]! : indices.length;
      for (let k = start; k < end; k++) for (let j = 0; j < d; j++) out[b * d + j]! += w![indices[k]! * d + j]!;
      if (mode === 'mean' && end > start) for (let j = 0; j < d; j++) out[b * d + j]! /= end - start;
    });
    expect(w!.length).toBe(v * d);
    return out;
  };
}

const cases: Array<{ name: string; v: number; d: number; indices: number[]; offsets: number[] }> = [
  { name: 'repeats within and across bags, empty bags in the middle and at the end', v: 7, d: 3, indices: [3, 1, 3, 1, 1, 6, 0], offsets: [0, 3, 3, 5, 7] },
  { name: 'an empty first bag', v: 5, d: 4, indices: [2, 2, 4], offsets: [0, 0, 1] },
  { name: 'batch 1', v: 6, d: 2, indices: [4, 0, 4, 4, 5], offsets: [0] },
  { name: 'every bag empty', v: 4, d: 2, indices: [], offsets: [0, 0, 0] },
  { name: 'one index per bag (an embedding)', v: 6, d: 3, indices: [5, 0, 5, 2], offsets: [0, 1, 2, 3] },
];

describe('embeddingBag against finite differences', () => {
  for (const mode of ['sum', 'mean'] as const) {
    for (const c of cases) {
      it(`${mode}: ${c.name}`, () => {
        const w = Tensor.uniform([c.v, c.d], rng, -1, 1);
        const idx = IntTensor.from(c.indices);
        const off = IntTensor.from(c.offsets);
        const { forwardError, gradError } = gradCheck(([x]) => ops.embeddingBag(x!, idx, off, mode), bagRef(c.v, c.d, c.indices, c.offsets, mode), [w]);
        expect(forwardError).toBeLessThan(TOL.forward);
        expect(gradError).toBeLessThan(TOL.grad);
      });
    }
  }

  it('gives zeros for empty bags in both modes, and (0, D) for no bags', () => {
    const w = Tensor.uniform([3, 2], rng, 1, 2);
    for (const mode of ['sum', 'mean'] as const) {
      const out = ops.embeddingBag(w, IntTensor.from([1]), IntTensor.from([0, 0, 1]), mode);
      expect(Array.from(out.data.subarray(0, 2))).toEqual([0, 0]);
      expect(Array.from(out.data.subarray(4, 6))).toEqual([0, 0]);
      expect(ops.embeddingBag(w, IntTensor.from([]), IntTensor.from([]), mode).shape).toEqual([0, 2]);
    }
  });
});

describe('embeddingBag sparse gradient', () => {
  it('equals the dense gradient on the touched rows, bit for bit, and is null elsewhere', () => {
    const c = cases[0]!;
    for (const mode of ['sum', 'mean'] as const) {
      const dense = Tensor.uniform([c.v, c.d], rng, -1, 1, true);
      const sparse = new Tensor(dense.data.slice(), dense.shape, true);
      const dy = Tensor.uniform([c.offsets.length, c.d], rng, -1, 1);
      ops.embeddingBag(dense, IntTensor.from(c.indices), IntTensor.from(c.offsets), mode).backward(dy);
      ops.embeddingBag(sparse, IntTensor.from(c.indices), IntTensor.from(c.offsets), mode, { sparse: true }).backward(dy);
      expect(sparse.grad).toBeNull();
      const g = sparse.sparseGrad!;
      expect(Array.from(g.ids)).toEqual([0, 1, 3, 6]);
      expect(g.values.length).toBe(4 * c.d);
      g.ids.forEach((id, r) => expect(Array.from(g.values.subarray(r * c.d, (r + 1) * c.d))).toEqual(Array.from(dense.grad!.data.subarray(id * c.d, (id + 1) * c.d))));
      // untouched rows (2, 4, 5) have no gradient in the dense one either
      for (const id of [2, 4, 5]) expect(Array.from(dense.grad!.data.subarray(id * c.d, (id + 1) * c.d))).toEqual([0, 0, 0]);
    }
  });
});

describe('embeddingBag errors', () => {
  const w = Tensor.zeros([10, 2]);
  const bag = (indices: number[], offsets: number[], mode: 'sum' | 'mean' = 'sum') => () => ops.embeddingBag(w, IntTensor.from(indices), IntTensor.from(offsets), mode);

  it('names an out-of-range index, its position and its bag', () => {
    expect(bag([1, 2, 10, 3], [0, 2])).toThrow('embeddingBag: index 10 at position 2 (bag 1) is out of range for 10 rows');
    expect(bag([1, -1], [0, 1, 1])).toThrow('embeddingBag: index -1 at position 1 (bag 2) is out of range for 10 rows');
  });

  it('names bad offsets', () => {
    expect(bag([1, 2, 3], [1, 2])).toThrow('embeddingBag: offsets[0] must be 0 (the first bag starts at the first index), got 1');
    expect(bag([1, 2, 3], [0, 2, 1])).toThrow('embeddingBag: offsets must not decrease: offsets[2] = 1 is below offsets[1] = 2');
    expect(bag([1, 2, 3], [0, 4])).toThrow('embeddingBag: offsets[1] = 4 is beyond the end of the 3 indices');
    expect(bag([1, 2, 3], [])).toThrow('embeddingBag: offsets is empty but there are 3 indices: expected at least one bag');
  });

  it('names wrong kinds and shapes of arguments', () => {
    expect(() => ops.embeddingBag(w, IntTensor.from([1, 2], [1, 2]), IntTensor.from([0]))).toThrow('embeddingBag: indices must be a 1-D IntTensor, got shape [1, 2]');
    expect(() => ops.embeddingBag(w, IntTensor.from([1]), Tensor.from([0]) as unknown as IntTensor)).toThrow('embeddingBag: offsets must be a 1-D IntTensor, got a float Tensor');
    expect(() => ops.embeddingBag(w, IntTensor.from([1]), IntTensor.from([0]), 'max' as 'sum')).toThrow("embeddingBag: mode must be 'sum' or 'mean', got 'max'");
    expect(() => ops.embeddingBag(Tensor.zeros([10]), IntTensor.from([1]), IntTensor.from([0]))).toThrow('embeddingBag: the weight must be 2-D, got shape [10]');
  });

  it('refuses a sparse gradient for a weight that is not a leaf', () => {
    const leaf = Tensor.zeros([10, 2], true);
    expect(() => ops.embeddingBag(leaf.mul(2), IntTensor.from([1]), IntTensor.from([0]), 'sum', { sparse: true })).toThrow(
      "embeddingBag: sparse gradients need the weight to be a leaf (a parameter), got the output of 'mul'",
    );
    expect(() => ops.embedding(leaf.mul(2), IntTensor.from([1]), { sparse: true })).toThrow("embedding: sparse gradients need the weight to be a leaf (a parameter), got the output of 'mul'");
  });
});

// Embedding and EmbeddingBag layers with row-sparse gradients: no dense table-sized gradient is
// ever allocated, the sparse gradient accumulates until zeroGrad, and the worker's compact local
// table (uniqueIds) gives the same gradient as the global table.
import { afterEach, describe, expect, it } from 'vitest';
import { Random } from '../random.js';
import { IntTensor, Tensor } from '../autograd/tensor.js';
import * as ops from '../autograd/ops.js';
import { UniqueIds } from '../kernels/unique.js';
import { Embedding, EmbeddingBag } from './layers.js';
import { Module } from './module.js';

const rng = new Random(5);

/**
 * Records the length of every Float32Array and Float64Array made while `fn` runs, by swapping the
 * global constructors for subclasses (module code resolves `new Float32Array` at call time).
 */
function allocations(fn: () => void): number[] {
  const seen: number[] = [];
  const F32 = globalThis.Float32Array;
  const F64 = globalThis.Float64Array;
  const spy = <T extends typeof Float32Array | typeof Float64Array>(Base: T) =>
    class extends (Base as typeof Float32Array) {
      constructor(...args: any[]) {
        super(...(args as []));
        seen.push(this.length);
      }
    } as unknown as T;
  globalThis.Float32Array = spy(F32);
  globalThis.Float64Array = spy(F64);
  try {
    fn();
  } finally {
    globalThis.Float32Array = F32;
    globalThis.Float64Array = F64;
  }
  return seen;
}

describe('sparse gradients never allocate the table', () => {
  const V = 200_000;
  const D = 8;
  afterEach(() => expect(globalThis.Float32Array.name).toBe('Float32Array'));

  it('the allocation spy sees a dense gradient when there is one', () => {
    const emb = new Embedding(V, D, { rng });
    const sizes = allocations(() => emb.forward(IntTensor.from([1, 2, 1])).sum().backward());
    expect(Math.max(...sizes)).toBe(V * D);
    expect(emb.weight.grad).not.toBeNull();
  });

  it('Embedding({ sparse: true }): forward, backward and reading the gradient allocate only per touched row', () => {
    const emb = new Embedding(V, D, { sparse: true, rng });
    const ids = IntTensor.from([199_999, 5, 5, 70_000, 5]);
    let read: { ids: number[]; length: number } | null = null;
    const sizes = allocations(() => {
      emb.forward(ids).sum().backward();
      const g = emb.weight.sparseGrad!;
      read = { ids: Array.from(g.ids), length: g.values.length };
    });
    expect(Math.max(...sizes)).toBeLessThan(100 * D); // occurrence buffers (≥ 16 rows), not V·D
    expect(emb.weight.grad).toBeNull();
    expect(read).toEqual({ ids: [5, 70_000, 199_999], length: 3 * D });
    expect(Array.from(emb.weight.sparseGrad!.values.subarray(0, D))).toEqual(new Array(D).fill(3)); // row 5, looked up 3 times
  });

  it('EmbeddingBag({ sparse: true }): the same, in both modes', () => {
    for (const mode of ['sum', 'mean'] as const) {
      const bag = new EmbeddingBag(V, D, { mode, sparse: true, rng });
      const sizes = allocations(() => {
        bag.forward(IntTensor.from([7, 7, 123_456, 9]), IntTensor.from([0, 3, 3])).sum().backward();
        void bag.weight.sparseGrad!.values;
      });
      expect(Math.max(...sizes)).toBeLessThan(100 * D);
      expect(bag.weight.grad).toBeNull();
      const g = bag.weight.sparseGrad!;
      expect(Array.from(g.ids)).toEqual([7, 9, 123_456]);
      expect(g.values.length).toBe(3 * D);
      const row7 = mode === 'sum' ? 2 : 2 * Math.fround(1 / 3);
      expect(g.values[0]).toBeCloseTo(row7, 6);
    }
  });
});

describe('RowSparseGrad accumulation', () => {
  it('accumulates across backward calls until Module.zeroGrad, which empties it', () => {
    const emb = new Embedding(10, 2, { sparse: true, rng });
    const model = new (class extends Module<IntTensor> {
      emb = emb;
      forward(x: IntTensor) {
        return this.emb.forward(x);
      }
    })();
    model.forward(IntTensor.from([1, 4])).sum().backward();
    model.forward(IntTensor.from([4, 8])).mul(2).sum().backward();
    const g = emb.weight.sparseGrad!;
    expect(Array.from(g.ids)).toEqual([1, 4, 8]);
    expect(Array.from(g.values)).toEqual([1, 1, 3, 3, 2, 2]);
    model.zeroGrad();
    expect(g.size).toBe(0);
    expect(g.values.length).toBe(0);
    model.forward(IntTensor.from([2])).sum().backward();
    expect(Array.from(g.ids)).toEqual([2]);
  });

  it('sums exactly as the dense gradient for small batches (≤ 16 repeats keep occurrence order)', () => {
    const dense = new Embedding(30, 4, { rng: new Random(1) });
    const sparse = new Embedding(30, 4, { sparse: true, rng: new Random(1) });
    const ids = IntTensor.from(Array.from({ length: 16 }, () => rng.int(6)));
    const dy = Tensor.uniform([16, 4], rng, -1, 1);
    dense.forward(ids).backward(dy);
    sparse.forward(ids).backward(dy);
    const g = sparse.weight.sparseGrad!;
    g.ids.forEach((id, r) => expect(Array.from(g.values.subarray(r * 4, r * 4 + 4))).toEqual(Array.from(dense.weight.grad!.data.subarray(id * 4, id * 4 + 4))));
  });

  it('names a bad append', () => {
    const emb = new Embedding(10, 2, { sparse: true, rng });
    emb.forward(IntTensor.from([1])).sum().backward();
    const g = emb.weight.sparseGrad!;
    expect(() => g.append(Int32Array.of(10), Float32Array.of(1, 1))).toThrow('RowSparseGrad.append: row id 10 at position 0 is out of range for 10 rows');
    expect(() => g.append(Int32Array.of(1, 2), Float32Array.of(1, 1))).toThrow('RowSparseGrad.append: expected 2·2 = 4 values for 2 ids, got 2');
  });
});

describe('EmbeddingBag layer', () => {
  it('takes a 2-D (bags, length) input without offsets, as PyTorch', () => {
    const bag = new EmbeddingBag(10, 3, { mode: 'sum', rng });
    const a = bag.forward(IntTensor.from([1, 2, 3, 3, 4, 5], [2, 3]));
    const b = bag.forward(IntTensor.from([1, 2, 3, 3, 4, 5]), IntTensor.from([0, 3]));
    expect(a.shape).toEqual([2, 3]);
    expect(Array.from(a.data)).toEqual(Array.from(b.data));
    expect(() => bag.forward(IntTensor.from([1, 2]))).toThrow('EmbeddingBag: without offsets, indices must be a 2-D IntTensor (bags, length), got shape [2]');
  });

  it('defaults to mean, initialises N(0, 1) as nn.EmbeddingBag, and checks its arguments', () => {
    const bag = new EmbeddingBag(1000, 16, { rng: new Random(3) });
    expect(bag.mode).toBe('mean');
    expect(bag.namedParameters().map(([n]) => n)).toEqual(['weight']);
    const w = bag.weight.data;
    const mean = w.reduce((s, x) => s + x, 0) / w.length;
    const variance = w.reduce((s, x) => s + (x - mean) ** 2, 0) / w.length;
    expect(Math.abs(mean)).toBeLessThan(0.02);
    expect(Math.abs(variance - 1)).toBeLessThan(0.03);
    // the same draws as an Embedding from the same generator
    expect(Array.from(new Embedding(1000, 16, { rng: new Random(3) }).weight.data)).toEqual(Array.from(w));
    expect(() => new EmbeddingBag(10, 2, { mode: 'max' as 'sum' })).toThrow("EmbeddingBag: mode must be 'sum' or 'mean', got 'max'");
    expect(() => new EmbeddingBag(0, 2)).toThrow('EmbeddingBag: numEmbeddings must be a positive integer, got 0');
  });
});

describe("the worker's compact local table", () => {
  it('looking up unique rows through `inverse` gives the global output, and the local dense gradient is the global sparse one', () => {
    const V = 50_000;
    const D = 4;
    const global = new EmbeddingBag(V, D, { mode: 'mean', sparse: true, rng });
    const indices = Int32Array.from([49_999, 12, 12, 700, 49_999, 3, 12, 700]);
    const offsets = IntTensor.from([0, 3, 3, 6]);
    const dy = Tensor.uniform([4, D], rng, -1, 1);
    const out = global.forward(new IntTensor(indices), offsets);
    out.backward(dy);

    const { unique, inverse } = new UniqueIds().of(indices);
    const local = new Tensor(new Float32Array(unique.length * D), [unique.length, D], true); // (U, D) pulled rows
    unique.forEach((id, r) => local.data.set(global.weight.data.subarray(id * D, id * D + D), r * D));
    const localOut = ops.embeddingBag(local, new IntTensor(inverse.slice()), offsets, 'mean');
    expect(Array.from(localOut.data)).toEqual(Array.from(out.data));
    localOut.backward(dy);

    const g = global.weight.sparseGrad!;
    expect(Array.from(g.ids)).toEqual(Array.from(unique));
    expect(Array.from(g.values)).toEqual(Array.from(local.grad!.data));
  });
});

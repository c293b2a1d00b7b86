// EmbeddingBag and Embedding with sparse gradients against PyTorch 1.13, bit for bit: forward
// outputs, the uncoalesced gradient PyTorch keeps in .grad, and the coalesced gradient an optimizer
// reads. The fixture is made by fixtures/make_reference_sparse.py.
import { describe, expect, it } from 'vitest';
import { fileURLToPath } from 'node:url';
import { readFileSync } from 'node:fs';
import { IntTensor, Tensor } from '../autograd/tensor.js';
import { coalesceRowsReference } from '../kernels/coalesce.js';
import { Embedding, EmbeddingBag } from './layers.js';

interface Grad {
  uncoalescedIds: number[];
  uncoalescedValues?: number[];
  ids: number[];
  values: number[];
}
interface BagCase {
  name: string;
  layer: 'EmbeddingBag';
  mode: 'sum' | 'mean';
  V: number;
  D: number;
  weight: number[];
  indices: number[];
  offsets: number[];
  upstream: number[];
  output: number[];
  grad: Grad;
  stableOrderDiffers: boolean;
}
interface EmbeddingCase {
  name: string;
  layer: 'Embedding';
  V: number;
  D: number;
  shape: number[];
  weight: number[];
  calls: number[][];
  upstream: number[][];
  output: number[][];
  grad: Grad;
  stableOrderDiffers: boolean;
}

const path = fileURLToPath(new URL('../../fixtures/reference_sparse.json', import.meta.url));
const fixture = JSON.parse(readFileSync(path, 'utf8')) as { torch: string; cases: Array<BagCase | EmbeddingCase> };
const f32 = (xs: number[]) => Float32Array.from(xs);
/** Bitwise equality of float32 arrays (also tells −0 from +0). */
const bits = (xs: Float32Array | number[]) => Array.from(new Uint32Array(Float32Array.from(xs).buffer));

describe('sparse embeddings against PyTorch 1.13', () => {
  it('has the cases it was made with', () => {
    expect(fixture.torch).toMatch(/^1\.13/);
    expect(fixture.cases.length).toBe(15);
    // the larger cases are the ones where the order of a sum shows: a stable-order coalesce fails them
    expect(fixture.cases.filter((c) => c.stableOrderDiffers).map((c) => c.name)).toEqual([
      'many-sum', 'many-mean', 'embedding-coalesce-500', 'embedding-coalesce-one-row', 'embedding-coalesce-accumulate',
    ]);
  });

  for (const c of fixture.cases.filter((c): c is BagCase => c.layer === 'EmbeddingBag')) {
    it(`EmbeddingBag ${c.name}: output and sparse gradient bit for bit`, () => {
      const bag = new EmbeddingBag(c.V, c.D, { mode: c.mode, sparse: true });
      bag.weight.data.set(c.weight);
      const out = bag.forward(IntTensor.from(c.indices), IntTensor.from(c.offsets));
      expect(out.shape).toEqual([c.offsets.length, c.D]);
      expect(bits(out.data)).toEqual(bits(c.output));
      out.backward(new Tensor(f32(c.upstream), out.shape));
      expect(bag.weight.grad).toBeNull();
      const g = bag.weight.sparseGrad!;
      expect(g.occurrences).toBe(c.grad.uncoalescedIds.length);
      expect(Array.from(g.ids)).toEqual(c.grad.ids);
      expect(bits(g.values)).toEqual(bits(c.grad.values));
    });
  }

  for (const c of fixture.cases.filter((c): c is EmbeddingCase => c.layer === 'Embedding')) {
    it(`Embedding ${c.name}: output and sparse gradient bit for bit (${c.calls.length} backward call(s))`, () => {
      const emb = new Embedding(c.V, c.D, { sparse: true });
      emb.weight.data.set(c.weight);
      c.calls.forEach((indices, k) => {
        const idx = c.calls.length === 1 && c.shape.length > 0 ? IntTensor.from(indices, c.shape) : IntTensor.from(indices);
        const out = emb.forward(idx);
        expect(bits(out.data)).toEqual(bits(c.output[k]!));
        out.backward(new Tensor(f32(c.upstream[k]!), out.shape));
      });
      expect(emb.weight.grad).toBeNull();
      const g = emb.weight.sparseGrad!;
      expect(g.occurrences).toBe(c.grad.uncoalescedIds.length);
      expect(Array.from(g.ids)).toEqual(c.grad.ids);
      expect(bits(g.values)).toEqual(bits(c.grad.values));
      // and within float32 rounding of the plain stable-order oracle
      const all = c.grad.uncoalescedValues ?? c.upstream[0]!;
      const ref = coalesceRowsReference(c.grad.uncoalescedIds, all, c.D);
      expect(Array.from(g.ids)).toEqual(ref.ids);
      g.values.forEach((v, i) => expect(v).toBeCloseTo(ref.values[i]!, 2));
    });
  }
});

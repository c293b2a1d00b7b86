import { describe, expect, it } from 'vitest';
import { BatchIterator } from './batches.js';
import { shard } from './split.js';

// 10 examples of width 3: row r is [r, r + 0.25, r + 0.5], label 100 + r.
const n = 10;
const width = 3;
const source = {
  features: Float32Array.from({ length: n * width }, (_, i) => Math.floor(i / 3) + (i % 3) * 0.25),
  labels: Int32Array.from({ length: n }, (_, r) => 100 + r),
  width,
};

function epochRows(it: BatchIterator): number[][] {
  const out: number[][] = [];
  for (const b of it) {
    for (let i = 0; i < b.size; i++) {
      const r = b.rows[i]!;
      expect(b.y[i]).toBe(100 + r);
      expect(Array.from(b.x.subarray(i * width, i * width + width))).toEqual([r, r + 0.25, r + 0.5]);
    }
    out.push(Array.from(b.rows));
  }
  return out;
}

describe('BatchIterator', () => {
  it('covers the rows once per epoch, the last batch short, features and labels of the same rows', () => {
    const it = new BatchIterator(source, { batchSize: 4, seed: 3 });
    expect(it.batchesPerEpoch).toBe(3);
    const batches = epochRows(it);
    expect(batches.map((b) => b.length)).toEqual([4, 4, 2]);
    expect(batches.flat().sort((a, b) => a - b)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  });

  it('copies wide rows (a memcpy per row) and narrow ones (a loop) alike', () => {
    for (const w of [47, 48, 100, 784]) {
      const wide = { features: Float32Array.from({ length: n * w }, (_, i) => i), labels: new Int32Array(n), width: w };
      for (const b of new BatchIterator(wide, { batchSize: 4, seed: 5 })) {
        for (let i = 0; i < b.size; i++) {
          const r = b.rows[i]!;
          expect(b.x.subarray(i * w, (i + 1) * w)).toEqual(wide.features.subarray(r * w, (r + 1) * w));
        }
      }
    }
  });

  it('dropLast skips the short batch', () => {
    const it = new BatchIterator(source, { batchSize: 4, dropLast: true, shuffle: false });
    expect(epochRows(it)).toEqual([
      [0, 1, 2, 3],
      [4, 5, 6, 7],
    ]);
  });

  it('reuses its buffers: the same batch object and arrays at every step and epoch', () => {
    const it = new BatchIterator(source, { batchSize: 4, seed: 1 });
    const seen = { batch: new Set(), x: new Set(), y: new Set(), rows: new Set(), result: new Set() };
    for (let e = 0; e < 3; e++) {
      it[Symbol.iterator]();
      for (let r = it.next(); !r.done; r = it.next()) {
        seen.result.add(r);
        seen.batch.add(r.value);
        seen.x.add(r.value.x);
        seen.y.add(r.value.y);
        seen.rows.add(r.value.rows);
      }
    }
    expect(seen.result.size).toBe(1);
    expect(seen.batch.size).toBe(1);
    expect(seen.x.size).toBe(2); // the full buffer and the view for the short last batch, made once
    expect(seen.y.size).toBe(2);
    expect(seen.rows.size).toBe(2);
  });

  it('epoch e has the same order whenever it is run; different epochs differ; seeds differ', () => {
    const a = new BatchIterator(source, { batchSize: 4, seed: 7 });
    const e0 = epochRows(a);
    const e1 = epochRows(a);
    expect(e1).not.toEqual(e0);
    const b = new BatchIterator(source, { batchSize: 4, seed: 7 });
    expect(epochRows(b.epoch(1))).toEqual(e1);
    expect(epochRows(b.epoch(0))).toEqual(e0);
    expect(epochRows(new BatchIterator(source, { batchSize: 4, seed: 8 }))).not.toEqual(e0);
  });

  it('iterates only the given rows, e.g. a worker shard', () => {
    const rows = Int32Array.from([9, 8, 7, 6, 5, 4, 3, 2, 1, 0]);
    const mine = shard(rows, 1, 3); // sizes 4, 3, 3: shard 1 is [5, 4, 3]
    const it = new BatchIterator(source, { batchSize: 2, rows: mine, shuffle: false });
    expect(epochRows(it)).toEqual([[5, 4], [3]]);
  });

  it('validates its arguments', () => {
    expect(() => new BatchIterator(source, { batchSize: 0 })).toThrow('BatchIterator: invalid batchSize: expected a positive integer, found 0');
    expect(() => new BatchIterator({ ...source, width: 4 }, { batchSize: 2 })).toThrow('expected labels.length × width = 10 × 4 values');
    expect(() => new BatchIterator(source, { batchSize: 2, rows: Int32Array.from([10]) })).toThrow('invalid rows[0]: expected a row in [0, 10), found 10');
  });

  it('part: W workers each fill only their rows, and together they make the whole batch', () => {
    const n = 50;
    const width = 3;
    const features = Float32Array.from({ length: n * width }, (_, i) => i);
    const labels = Int32Array.from({ length: n }, (_, i) => i);
    const whole = new BatchIterator({ features, labels, width }, { batchSize: 16, seed: 9 });
    for (const w of [2, 3]) {
      const parts = Array.from({ length: w }, (_, r) => new BatchIterator({ features, labels, width }, { batchSize: 16, seed: 9, part: [r, w] }));
      const expected: Array<{ y: number[]; x: number[]; size: number }> = [];
      for (const b of whole.epoch(1)) expected.push({ y: Array.from(b.y), x: Array.from(b.x), size: b.size }); // the batch object is refilled: copy
      const got = expected.map(() => ({ y: [] as number[], x: [] as number[], sizes: [] as number[], global: 0 }));
      for (const it of parts) {
        let k = 0;
        for (const b of it.epoch(1)) {
          got[k]!.y.push(...b.y);
          got[k]!.x.push(...b.x);
          got[k]!.sizes.push(b.size);
          got[k]!.global = b.globalSize;
          k++;
        }
      }
      expected.forEach((e, k) => {
        expect(got[k]!.y).toEqual(e.y);
        expect(got[k]!.x).toEqual(e.x);
        expect(got[k]!.global).toBe(e.size); // 16, 16, 16, then the short 2
        expect(Math.max(...got[k]!.sizes) - Math.min(...got[k]!.sizes)).toBeLessThanOrEqual(1);
      });
    }
    expect(() => new BatchIterator({ features, labels, width }, { batchSize: 4, part: [2, 2] })).toThrow(/part/);
  });
});

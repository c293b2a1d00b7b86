import { describe, expect, it } from 'vitest';
import { Random } from '@loom/data';
import { SparseRowOptimizer, namedSparseOptimizer, sparseAdam } from '@loom/optimizer';
import { IdMap } from './id-map.js';
import { shardOfId } from './placement.js';
import { RowTable, type RowTableOptions } from './row-table.js';

const D = 4;
function table(o: Partial<RowTableOptions> = {}): RowTable {
  const { algorithm, options } = namedSparseOptimizer('sparse-adam', { lr: 0.01 });
  return new RowTable({ name: 'article', dim: D, seed: 7, algorithm, options, ...o });
}

function pulled(t: RowTable, ids: number[], step = 0): Float32Array {
  const out = new Float32Array(ids.length * D);
  t.pull(ids, out, step);
  return out;
}

describe('IdMap', () => {
  it('agrees with a Map through inserts, updates and deletes of 64-bit-safe ids', () => {
    const m = new IdMap(4);
    const oracle = new Map<number, number>();
    const r = new Random(5);
    for (let i = 0; i < 20000; i++) {
      // Ids clustered in a small range (many collisions) and spread up to 2^53.
      const id = r.next() < 0.5 ? r.int(3000) : Math.floor(r.next() * Number.MAX_SAFE_INTEGER);
      const op = r.next();
      if (op < 0.6) {
        m.set(id, i);
        oracle.set(id, i);
      } else if (op < 0.85) {
        expect(m.delete(id)).toBe(oracle.get(id) ?? -1);
        oracle.delete(id);
      } else {
        expect(m.get(id)).toBe(oracle.get(id) ?? -1);
      }
    }
    expect(m.size).toBe(oracle.size);
    for (const [id, v] of oracle) expect(m.get(id)).toBe(v);
  });
});

describe('shardOfId', () => {
  it('spreads consecutive ids and Zipf-hot ids evenly over servers', () => {
    for (const shards of [2, 3, 4]) {
      const counts = new Array(shards).fill(0);
      for (let id = 0; id < 100000; id++) counts[shardOfId(id, shards)]++;
      for (const c of counts) expect(Math.abs(c / 100000 - 1 / shards)).toBeLessThan(0.01);
    }
    // The 1,000 hottest ids of a Zipf law carry most of the load: they too must split evenly.
    const hot = new Array(2).fill(0);
    let total = 0;
    for (let rank = 1; rank <= 1000; rank++) {
      const w = rank ** -1.1;
      total += w;
      hot[shardOfId(rank * 7919 + 13, 2)] += w;
    }
    expect(Math.abs(hot[0] / total - 0.5)).toBeLessThan(0.15);
    expect(shardOfId(2 ** 53 - 1, 4)).toBe(shardOfId(2 ** 53 - 1, 4));
  });
});

describe('RowTable', () => {
  it('creates a row on first pull with a value every process computes from (seed, table, id) alone', () => {
    const a = table();
    const b = table();
    const ids = [5, 2 ** 40 + 3, 5, 9007199254740991];
    const ra = pulled(a, ids);
    expect(pulled(b, [ids[3]!, ids[1]!])).toEqual(Float32Array.from([...ra.subarray(3 * D, 4 * D), ...ra.subarray(D, 2 * D)]));
    expect(ra.subarray(0, D)).toEqual(ra.subarray(2 * D, 3 * D));
    expect(a.size).toBe(3);
    // read() gives the same value without creating the row.
    const c = table();
    const peek = new Float32Array(D);
    c.read([ids[1]!], peek);
    expect(peek).toEqual(ra.subarray(D, 2 * D));
    expect(c.size).toBe(0);
    const other = pulled(table({ name: 'user' }), [5]);
    expect(other).not.toEqual(ra.subarray(0, D));
    // N(0, 1) as nn.Embedding: the mean and variance of many rows' values.
    const many = pulled(table(), Array.from({ length: 5000 }, (_, i) => i * 1000003));
    const mean = many.reduce((s, v) => s + v, 0) / many.length;
    const variance = many.reduce((s, v) => s + (v - mean) ** 2, 0) / many.length;
    expect(Math.abs(mean)).toBeLessThan(0.03);
    expect(Math.abs(variance - 1)).toBeLessThan(0.05);
  });

  it('steps pushed rows exactly as SparseAdam on the dense table would, duplicates summed', () => {
    const t = table();
    const ids = [10, 2 ** 33, 10, 77];
    // The same rows in a dense table of 3: 10 → 0, 2^33 → 1, 77 → 2.
    const dense = new Float32Array(3 * D);
    t.pull([10, 2 ** 33, 77], dense);
    const opt = new SparseRowOptimizer(sparseAdam, dense, D, { lr: 0.01 });
    const r = new Random(1);
    for (let step = 1; step <= 5; step++) {
      const grads = Float32Array.from({ length: ids.length * D }, () => r.normal());
      pulled(t, ids, step);
      t.push(ids, grads, step);
      opt.step(Int32Array.of(0, 1, 0, 2), grads);
    }
    expect(pulled(t, [10, 2 ** 33, 77])).toEqual(dense);
    // Rows never pushed keep their initial values.
    const fresh = table();
    expect(pulled(t, [123456])).toEqual(pulled(fresh, [123456]));
  });

  it('admits an id at its admitAfter-th pull; before, it reads zeros and its gradients are dropped', () => {
    const t = table({ admitAfter: 3 });
    expect(pulled(t, [42])).toEqual(new Float32Array(D));
    t.push([42], new Float32Array(D).fill(1), 1);
    expect(pulled(t, [42])).toEqual(new Float32Array(D));
    expect(t.stats()).toMatchObject({ rows: 0, pending: 1, dropped: 1, admitted: 0 });
    expect(pulled(t, [42])).toEqual(pulled(table(), [42]));
    expect(t.stats()).toMatchObject({ rows: 1, pending: 0, admitted: 1, created: 1 });
  });

  it('evicts rows untouched for evictAfter steps, and the least recent at capacity', () => {
    const t = table({ evictAfter: 5 });
    pulled(t, [1, 2, 3], 0);
    pulled(t, [2], 4);
    t.push([3], new Float32Array(D).fill(1), 6);
    expect(t.evict(7)).toBe(1); // id 1, last touched at 0 < 7 − 5
    expect([t.has(1), t.has(2), t.has(3)]).toEqual([false, true, true]);
    expect(t.stats().evicted).toBe(1);
    const c = table({ capacity: 8 });
    for (let i = 0; i < 8; i++) pulled(c, [i], i);
    pulled(c, [100], 9);
    expect(c.size).toBeLessThanOrEqual(8);
    expect(c.has(0)).toBe(false); // the least recently touched went first
    expect(c.has(7)).toBe(true);
    expect(c.has(100)).toBe(true);
  });

  it('restores from a snapshot plus incremental changes to the same weights and optimizer state', () => {
    const t = table({ evictAfter: 3 });
    const r = new Random(2);
    const step = (s: number, ids: number[]) => {
      pulled(t, ids, s);
      t.push(ids, Float32Array.from({ length: ids.length * D }, () => r.normal()), s);
    };
    step(1, [1, 2, 3]);
    const full = t.snapshot();
    t.takeChanges();
    step(2, [2, 4]);
    step(3, [4, 5, 4]);
    const first = t.takeChanges();
    expect([...first.ids].sort()).toEqual([2, 4, 5]); // only the rows changed since the snapshot
    step(8, [5]);
    t.evict(8); // 1, 2, 3, 4 untouched since step 3
    const second = t.takeChanges();
    expect(second.evicted.sort()).toEqual([1, 2, 3, 4]);
    const back = table({ evictAfter: 3 });
    back.restore(full.ids, full.records, [], full.touched);
    back.restore(first.ids, first.records, first.evicted, first.touched);
    back.restore(second.ids, second.records, second.evicted, second.touched);
    expect(back.snapshot()).toEqual(t.snapshot());
    expect(() => back.restore([1], new Float32Array(D))).toThrow(/weights and optimizer state/);
  });

  it('refuses bad ids, unknown rows and wrong sizes by name and position, changing nothing', () => {
    const t = table();
    pulled(t, [1, 2]);
    const before = t.snapshot();
    expect(() => pulled(t, [3, -1])).toThrow(/table 'article': id at position 1 is -1, negative/);
    expect(() => pulled(t, [1.5])).toThrow(/position 0 is 1.5, not an integer/);
    expect(() => pulled(t, [2 ** 53])).toThrow(/beyond 2\^53/);
    expect(() => pulled(t, [Number.NaN])).toThrow(/NaN/);
    expect(() => t.push([1, 99], new Float32Array(2 * D), 1)).toThrow(/push for id 99 \(position 1\), which was never pulled/);
    expect(() => t.push([1], new Float32Array(D + 1), 1)).toThrow(/needs 1 × 4 = 4 gradient floats, got 5/);
    expect(() => t.push([1], new Float32Array(D).fill(Number.NaN), 1)).toThrow(/not finite/);
    expect(() => t.push([1], new Float32Array(D), 0)).toThrow(/optimizer step/);
    expect(() => t.pull([1], new Float32Array(3))).toThrow(/needs out of 1 × 4/);
    expect(t.snapshot()).toEqual(before);
    expect(t.has(3)).toBe(false);
  });

  it('never holds a table-sized array for a table of 2^50 possible ids', () => {
    const t = table();
    const ids = Array.from({ length: 3000 }, (_, i) => i * 2 ** 37 + 1);
    pulled(t, ids, 1);
    t.push(ids, new Float32Array(ids.length * D).fill(0.1), 1);
    expect(t.size).toBe(3000);
    // Storage grows by doubling from 1024 rows: 4096 rows of weights and two moments at most.
    expect(t.snapshot().records.length).toBe(3000 * 3 * D);
  });
});

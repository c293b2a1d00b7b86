import { describe, expect, it } from 'vitest';
import { groupPart, shard, shuffledIndices, split, splitByGroup } from './split.js';

const sorted = (a: Int32Array) => Array.from(a).sort((x, y) => x - y);
const range = (n: number) => Array.from({ length: n }, (_, i) => i);

describe('shuffledIndices', () => {
  it('is a permutation that depends only on (n, seed)', () => {
    const a = shuffledIndices(1000, 3);
    expect(sorted(a)).toEqual(range(1000));
    expect(shuffledIndices(1000, 3)).toEqual(a);
    expect(shuffledIndices(1000, 4)).not.toEqual(a);
    expect(Array.from(shuffledIndices(8, 42))).toEqual([1, 6, 7, 2, 5, 3, 4, 0]); // pinned: same in every process
  });
});

describe('split', () => {
  it('sizes by rounding, disjoint, covering, sorted, deterministic', () => {
    const s = split(1003, { valid: 0.1, test: 0.2, seed: 9 });
    expect([s.train.length, s.valid.length, s.test.length]).toEqual([702, 100, 201]);
    expect(sorted(Int32Array.from([...s.train, ...s.valid, ...s.test]))).toEqual(range(1003));
    expect(Array.from(s.valid)).toEqual(sorted(s.valid));
    expect(split(1003, { valid: 0.1, test: 0.2, seed: 9 })).toEqual(s);
  });

  it('rejects fractions that leave nothing to train on', () => {
    expect(() => split(10, { valid: 0.6, test: 0.4 })).toThrow('split: invalid valid + test: expected a sum below 1');
    expect(() => split(10, { valid: -0.1 })).toThrow('split: invalid valid: expected a fraction in [0, 1), found -0.1');
  });
});

describe('splitByGroup', () => {
  it('keeps each group in one part, whatever other groups are present', () => {
    const groups = Int32Array.from({ length: 5000 }, (_, i) => Math.floor(i / 5)); // 1000 groups of 5 rows
    const s = splitByGroup(groups, { seed: 1 });
    const partOf = new Map<number, number>();
    ([s.train, s.valid, s.test] as const).forEach((rows, p) => {
      for (const r of rows) {
        const g = groups[r]!;
        expect(partOf.get(g) ?? p).toBe(p);
        partOf.set(g, p);
        expect(groupPart(g, 1)).toBe(p);
      }
    });
    expect(s.train.length + s.valid.length + s.test.length).toBe(5000);
    expect(s.valid.length / 5000).toBeGreaterThan(0.07);
    expect(s.valid.length / 5000).toBeLessThan(0.13);
    // Another table with only some of the groups splits them the same way.
    const some = Int32Array.from([7, 7, 500, 999]);
    const s2 = splitByGroup(some, { seed: 1 });
    for (const [rows, p] of [[s2.train, 0], [s2.valid, 1], [s2.test, 2]] as const) for (const r of rows) expect(partOf.get(some[r]!)).toBe(p);
  });
});

describe('shard', () => {
  it('n shards are disjoint, cover the indices, and differ in size by at most one', () => {
    const idx = shuffledIndices(103, 0);
    for (const n of [1, 2, 3, 7, 103, 150]) {
      const shards = range(n).map((i) => shard(idx, i, n));
      expect(shards.flatMap((s) => Array.from(s))).toEqual(Array.from(idx));
      const sizes = shards.map((s) => s.length);
      expect(Math.max(...sizes) - Math.min(...sizes)).toBeLessThanOrEqual(1);
    }
  });

  it('validates i and n', () => {
    expect(() => shard(new Int32Array(4), 2, 2)).toThrow('shard: invalid i: expected an integer in [0, 2), found 2');
    expect(() => shard(new Int32Array(4), 0, 0)).toThrow('shard: invalid n: expected an integer ≥ 1, found 0');
  });
});

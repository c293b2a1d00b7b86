// The sparse kernels against their plain oracles: the std::sort port sorts and permutes correctly
// on every pattern (the PyTorch fixture checks its order of equal keys), coalesceRows against a
// Map, mergeRows against PyTorch's merge written out by hand, UniqueIds against a Set.
import { describe, expect, it } from 'vitest';
import { fileURLToPath } from 'node:url';
import { readFileSync } from 'node:fs';
import { Random } from '../random.js';
import { _heapSortPairs, coalesceRows, coalesceRowsReference, mergeRows, sortPairsByKey } from './coalesce.js';
import { UniqueIds, uniqueIds, uniqueIdsReference } from './unique.js';

const rng = new Random(99);
const randomInts = (n: number, low: number, high: number) => Int32Array.from({ length: n }, () => low + rng.int(high - low));

function checkSorted(original: Int32Array, keys: Int32Array, perm: Int32Array) {
  const n = original.length;
  for (let i = 1; i < n; i++) expect(keys[i - 1]! <= keys[i]!).toBe(true);
  const seen = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    expect(original[perm[i]!]).toBe(keys[i]);
    seen[perm[i]!]!++;
  }
  expect(seen.every((s) => s === 1)).toBe(true);
}

const patterns: Record<string, (n: number) => Int32Array> = {
  random: (n) => randomInts(n, -1000, 1000),
  'few distinct': (n) => randomInts(n, 0, 5),
  'all equal': (n) => new Int32Array(n).fill(7),
  ascending: (n) => Int32Array.from({ length: n }, (_, i) => i),
  descending: (n) => Int32Array.from({ length: n }, (_, i) => n - i),
  'organ pipe': (n) => Int32Array.from({ length: n }, (_, i) => Math.min(i, n - i)),
  extremes: (n) => Int32Array.from({ length: n }, (_, i) => (i % 3 === 0 ? -(2 ** 31) : i % 3 === 1 ? 2 ** 31 - 1 : 0)),
};

describe('sortPairsByKey (libstdc++ std::sort)', () => {
  for (const [name, make] of Object.entries(patterns)) {
    it(`sorts keys and moves values with them: ${name}`, () => {
      for (const n of [0, 1, 2, 15, 16, 17, 33, 100, 1000, 5000]) {
        const original = make(n);
        const keys = original.slice();
        const perm = Int32Array.from({ length: n }, (_, i) => i);
        sortPairsByKey(keys, perm, n);
        checkSorted(original, keys, perm);
      }
    });
  }

  it('is stable up to 16 elements (insertion sort), as PyTorch relies on for small gradients', () => {
    const keys = randomInts(16, 0, 3);
    const perm = Int32Array.from({ length: 16 }, (_, i) => i);
    sortPairsByKey(keys, perm, 16);
    for (let i = 1; i < 16; i++) if (keys[i] === keys[i - 1]) expect(perm[i]! > perm[i - 1]!).toBe(true);
  });

  it('gives the permutation of libstdc++ std::sort (GCC 12), heap fallback included', () => {
    // fixtures/make_std_sort.cpp: the antiqsort adversary drives introsort past its depth limit
    const path = fileURLToPath(new URL('../../fixtures/std_sort.json', import.meta.url));
    const { compiler, cases } = JSON.parse(readFileSync(path, 'utf8')) as { compiler: string; cases: Array<{ name: string; keys: number[]; perm: number[] }> };
    expect(compiler).toMatch(/^GCC 12/);
    for (const c of cases) {
      const keys = Int32Array.from(c.keys);
      const perm = Int32Array.from(c.keys, (_, i) => i);
      sortPairsByKey(keys, perm, keys.length);
      expect(Array.from(perm), c.name).toEqual(c.perm);
    }
  });

  it("sorts with the heap fallback introsort uses past its depth limit", () => {
    for (const make of Object.values(patterns)) {
      const original = make(257);
      const keys = original.slice();
      const perm = Int32Array.from({ length: 257 }, (_, i) => i);
      _heapSortPairs(keys, perm, 0, 257);
      checkSorted(original, keys, perm);
    }
  });
});

describe('coalesceRows', () => {
  it('gives the sorted unique ids and summed rows of the oracle (values within rounding)', () => {
    for (const n of [0, 1, 16, 17, 300]) {
      const d = 3;
      const ids = randomInts(n, 0, 40);
      const values = Float32Array.from({ length: n * d }, () => rng.uniform(-1, 1));
      const s = new Int32Array(n);
      const outIds = new Int32Array(n);
      const outValues = new Float32Array(n * d);
      const u = coalesceRows(ids, values, n, d, new Int32Array(n), s, outIds, outValues);
      const ref = coalesceRowsReference(ids, values, d);
      expect(Array.from(outIds.subarray(0, u))).toEqual(ref.ids);
      Array.from(outValues.subarray(0, u * d)).forEach((v, i) => expect(v).toBeCloseTo(ref.values[i]!, 5));
    }
  });
});

describe('mergeRows (PyTorch adding two uncoalesced sparse gradients)', () => {
  it('takes the smaller head first and joins equal heads', () => {
    // [1, 6, 1, 3] + [3, 1, 2] → [1, 3, 1, 2, 6, 1, 3], as PyTorch 1.13 does (see the fixture)
    const a = Int32Array.of(1, 6, 1, 3);
    const b = Int32Array.of(3, 1, 2);
    const av = Float32Array.of(1, 2, 3, 4);
    const bv = Float32Array.of(10, 20, 30);
    const ids = new Int32Array(7);
    const vals = new Float32Array(7);
    const r = mergeRows(a, av, 4, b, bv, 3, 1, ids, vals);
    expect(Array.from(ids.subarray(0, r))).toEqual([1, 3, 1, 2, 6, 1, 3]);
    expect(Array.from(vals.subarray(0, r))).toEqual([1, 10, 20, 30, 2, 3, 4]);
    // equal sequences become one row per position, a + b
    const same = mergeRows(a, av, 4, a, av, 4, 1, ids, vals);
    expect(Array.from(ids.subarray(0, same))).toEqual([1, 6, 1, 3]);
    expect(Array.from(vals.subarray(0, same))).toEqual([2, 4, 6, 8]);
  });

  it('writes a −0 gradient as +0 (0 + a), as PyTorch', () => {
    const ids = new Int32Array(2);
    const vals = new Float32Array(2);
    mergeRows(Int32Array.of(1), Float32Array.of(-0), 1, Int32Array.of(2), Float32Array.of(-0), 1, 1, ids, vals);
    expect(Object.is(vals[0], 0) && Object.is(vals[1], 0)).toBe(true);
  });
});

describe('uniqueIds', () => {
  it('matches the Set oracle, sorted and in first-occurrence order', () => {
    for (const [name, make] of Object.entries(patterns)) {
      for (const n of [0, 1, 5, 100, 3000]) {
        const ids = make(n);
        for (const sorted of [true, false]) {
          const got = uniqueIds(ids, { sorted });
          const ref = uniqueIdsReference(ids, sorted);
          expect(Array.from(got.unique), name).toEqual(ref.unique);
          expect(Array.from(got.inverse), name).toEqual(ref.inverse);
        }
      }
    }
  });

  it('reuses its buffers across calls of any size, with no leftovers from earlier calls', () => {
    const u = new UniqueIds();
    let previousBuffer: ArrayBufferLike | null = null;
    for (const n of [1000, 10, 1000, 0, 37, 1000, 1000]) {
      const ids = randomInts(n, 0, n + 1);
      const { unique, inverse } = u.of(ids);
      const ref = uniqueIdsReference(ids);
      expect(Array.from(unique)).toEqual(ref.unique);
      expect(Array.from(inverse)).toEqual(ref.inverse);
      for (let i = 0; i < n; i++) expect(unique[inverse[i]!]).toBe(ids[i]);
      if (n === 1000 && previousBuffer !== null) expect(unique.buffer).toBe(previousBuffer); // no new buffer once grown
      if (n === 1000) previousBuffer = unique.buffer;
    }
  });

  it('takes a prefix of a longer buffer', () => {
    const { unique, inverse } = new UniqueIds().of(Int32Array.of(9, 4, 9, 1, 1), { n: 3 });
    expect(Array.from(unique)).toEqual([4, 9]);
    expect(Array.from(inverse)).toEqual([1, 0, 1]);
  });
});

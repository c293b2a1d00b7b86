/**
 * allFinite: the SIMD scan (arrays in the optimizer's memory) and the JavaScript loop (elsewhere)
 * both agree with the Number.isFinite oracle for every special value at every position around the
 * scan's 16-value blocks and its tail, on whole arrays and slices.
 */
import { describe, expect, it } from 'vitest';
import { allFinite, optimizerMemory } from '@loom/optimizer';
import { allFiniteReference } from './finite.js';

const SPECIALS = [NaN, Infinity, -Infinity, -0, 0, 3.4028234663852886e38, -3.4028234663852886e38, 1.4e-45, -1e-40, 2 ** 127];

describe('allFinite', () => {
  for (const inMemory of [true, false]) {
    it(`${inMemory ? 'in the optimizer memory (SIMD scan)' : 'an ordinary array (JavaScript loop)'}: the oracle's answer for every special value anywhere`, () => {
      const n = 300;
      const a = inMemory ? optimizerMemory.alloc(n) : new Float32Array(n);
      a.forEach((_, i) => (a[i] = Math.sin(i) * 1e3));
      for (const v of SPECIALS) {
        for (let at = 0; at < n; at += at < 40 || at > n - 40 ? 1 : 17) {
          const keep = a[at]!;
          a[at] = v;
          for (const [start, end] of [[0, n], [0, 256], [1, n - 1], [at, at + 1], [Math.max(0, at - 20), at]] as const) {
            if (end > n) continue;
            expect(allFinite(a, start, end)).toBe(allFiniteReference(a, start, end));
          }
          a[at] = keep;
        }
      }
      expect(allFinite(a)).toBe(true);
      if (inMemory) optimizerMemory.free(a);
    });
  }

  it('names what is wrong with its arguments', () => {
    expect(() => allFinite(new Float64Array(2) as never)).toThrow(/allFinite: expected a Float32Array/);
    expect(() => allFinite(new Float32Array(2), 1, 3)).toThrow(/allFinite: slice \[1, 3\) is not within \[0, 2\]/);
  });
});

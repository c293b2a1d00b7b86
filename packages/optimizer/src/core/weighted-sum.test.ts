/**
 * weightedSum: the SIMD kernel equals its float64 plain-loop oracle bit for bit, for every input
 * count (one kernel per count up to MAX_SUM_INPUTS, the loop beyond), slice and alignment, in place
 * in the optimizer's memory and through the staging path.
 */
import { describe, expect, it } from 'vitest';
import { optimizerMemory, weightedSum } from '@loom/optimizer';
import { weightedSumReference } from './weighted-sum.js';

/** Deterministic values of many magnitudes and both signs, zeros of both signs included. */
function values(n: number, seed: number): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = Math.sin(seed * 7919 + i * 104729) * 10 ** ((i * seed) % 7 - 3);
  a[0] = -0;
  a[1] = 0;
  return a;
}
/** The bit patterns, so that −0 and +0 (and NaNs) compare apart. */
const bits = (a: Float32Array) => new Uint32Array(a.buffer, a.byteOffset, a.length);
const weightsFor = (k: number) => Float64Array.from({ length: k }, (_, i) => (i + 1) / (k * (k + 1) / 2) + 1e-9 * i);

describe('weightedSum', () => {
  for (const k of [1, 2, 3, 7, 9]) {
    for (const inMemory of [true, false]) {
      it(`${k} input(s), ${inMemory ? 'in place in optimizer memory' : 'ordinary arrays'}: the oracle's bits on every slice`, () => {
        const n = 5000;
        const fresh = (seed: number) => {
          const arr = optimizerMemory.alloc(n);
          arr.set(values(n, seed));
          return inMemory ? arr : (optimizerMemory.free(arr), values(n, seed));
        };
        const inputs = Array.from({ length: k }, (_, i) => fresh(i + 1));
        const out = inMemory ? optimizerMemory.alloc(n) : new Float32Array(n);
        const w = weightsFor(k);
        for (const [start, end] of [[0, n], [3, 4097], [1000, 1003], [17, 17]] as const) {
          out.fill(123);
          const want = new Float32Array(n).fill(123);
          weightedSumReference(want, inputs, w, start, end);
          weightedSum(out, inputs, w, start, end);
          expect(bits(out)).toEqual(bits(want));
        }
        expect(optimizerMemory.contains(out)).toBe(inMemory);
        if (inMemory) [...inputs, out].forEach((a) => optimizerMemory.free(a));
      });
    }
  }

  it('writes onto its first input, reading each element before writing it', () => {
    const a = optimizerMemory.alloc(1000), b = optimizerMemory.alloc(1000);
    a.set(values(1000, 3));
    b.set(values(1000, 4));
    const want = new Float32Array(1000);
    weightedSumReference(want, [a.slice(), b.slice()], [0.25, 0.75], 0, 1000);
    weightedSum(a, [a, b], [0.25, 0.75]);
    expect(bits(a)).toEqual(bits(want));
    [a, b].forEach((x) => optimizerMemory.free(x));
  });

  it('computes in float64: two halves of 2²⁴ + 1 sum to it exactly before the one rounding', () => {
    const x = Float32Array.of(16777216, 16777216, 16777216, 16777216, 16777216); // 2²⁴: 2²⁴ + 1 is not a float32
    const y = Float32Array.of(2, 2, 2, 2, 2);
    const out = new Float32Array(5);
    weightedSum(out, [x, y], [1, 0.5], 0, 5);
    expect(Array.from(out)).toEqual(Array(5).fill(16777216)); // 2²⁴ + 1 rounds to even, 2²⁴
    weightedSum(out, [x, y, y], [1, 0.5, 1], 0, 5);
    expect(Array.from(out)).toEqual(Array(5).fill(16777220)); // 2²⁴ + 3 → 2²⁴ + 4, rounded once
  });

  it('leaves a single input of weight 1 onto itself as it is, and scales one of another weight', () => {
    const a = Float32Array.of(-0, 2, 4);
    weightedSum(a, [a], [1]);
    expect(Object.is(a[0], -0)).toBe(true);
    weightedSum(a, [a], [0.5]);
    expect(Array.from(a)).toEqual([0, 1, 2]);
  });

  it('names what is wrong with its arguments', () => {
    const a = new Float32Array(4);
    expect(() => weightedSum(a, [a, a], [1])).toThrow(/weightedSum: expected as many weights as inputs \(≥ 1\), got 1 weights for 2 inputs/);
    expect(() => weightedSum(a, [new Float32Array(2)], [1])).toThrow(/inputs\[0\] must be a Float32Array of length ≥ 4/);
    expect(() => weightedSum(a, [a], [1], 3, 2)).toThrow(/slice \[3, 2\) is not within \[0, 4\]/);
  });
});

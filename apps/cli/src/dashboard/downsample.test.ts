import { describe, expect, it } from 'vitest';
import { downsample } from './downsample.js';

describe('downsample (min/max per bucket)', () => {
  it('returns a short curve as it is', () => {
    expect(downsample([1, 2, 3], [5, 4, 3], 3, 10)).toEqual({ x: [1, 2, 3], y: [5, 4, 3] });
  });

  it('100k points become at most 2·points + 2, ascending in x, keeping the ends and every spike', () => {
    const n = 100_000;
    const xs = Float64Array.from({ length: n }, (_, i) => i);
    const ys = Float64Array.from({ length: n }, (_, i) => Math.sin(i / 1000));
    ys[12_345] = 50; // a spike
    ys[67_890] = -50;
    const c = downsample(xs, ys, n, 500);
    expect(c.x.length).toBeLessThanOrEqual(2 * 500 + 2);
    expect(c.x.length).toBeGreaterThan(500);
    for (let i = 1; i < c.x.length; i++) expect(c.x[i]!).toBeGreaterThan(c.x[i - 1]!);
    expect(c.x[0]).toBe(0);
    expect(c.x.at(-1)).toBe(n - 1);
    expect(c.y).toContain(50);
    expect(c.y).toContain(-50);
    expect(Math.max(...(c.y as number[]))).toBe(50);
  });

  it('a range [from, to] is downsampled alone, with one point either side', () => {
    const xs = Array.from({ length: 1000 }, (_, i) => i / 10); // 0 … 99.9
    const ys = xs.map((x) => x * 2);
    const c = downsample(xs, ys, xs.length, 10, 10, 20);
    expect(c.x[0]).toBeCloseTo(9.9);
    expect(c.x.at(-1)).toBeCloseTo(20.1);
    expect(c.x.length).toBeLessThanOrEqual(22);
  });

  it('keeps non-finite values as gaps (null)', () => {
    const c = downsample([1, 2, 3], [1, NaN, 3], 3, 10);
    expect(c.y).toEqual([1, null, 3]);
    const many = downsample(Array.from({ length: 100 }, (_, i) => i), Array.from({ length: 100 }, () => NaN), 100, 5);
    expect(many.y.every((y) => y === null)).toBe(true);
    expect(many.x.length).toBe(5);
  });
});

import { describe, expect, it } from 'vitest';
import { Random, hashSeed } from './random.js';

describe('Random (mulberry32)', () => {
  it('gives the published mulberry32 stream: pinned values, so every process and platform agrees', () => {
    const r = new Random(42);
    expect([r.nextUint32(), r.nextUint32(), r.nextUint32()]).toEqual([2581720956, 1925393290, 3661312704]);
    expect(new Random(42).next()).toBe(0.6011037519201636);
    expect(hashSeed(42, 7)).toBe(hashSeed(42, 7));
    expect(hashSeed(42, 7)).not.toBe(hashSeed(7, 42));
  });

  it('reseed restarts the stream', () => {
    const r = new Random(5);
    const a = [r.next(), r.normal(), r.next()];
    r.reseed(5);
    expect([r.next(), r.normal(), r.next()]).toEqual(a);
  });

  it('distributions have the right means (loose checks)', () => {
    const r = new Random(1);
    const n = 20000;
    let u = 0, z = 0, z2 = 0, g = 0, p = 0;
    for (let i = 0; i < n; i++) {
      u += r.next();
      const x = r.normal();
      z += x;
      z2 += x * x;
      g += r.gamma(0.4);
      p += r.poisson(3);
    }
    expect(u / n).toBeCloseTo(0.5, 1);
    expect(z / n).toBeCloseTo(0, 1);
    expect(z2 / n).toBeCloseTo(1, 1);
    expect(g / n).toBeCloseTo(0.4, 1);
    expect(p / n).toBeCloseTo(3, 1);
    const d = r.dirichlet([1, 2, 3], new Float64Array(3));
    expect(d.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 12);
    const counts = [0, 0, 0];
    for (let i = 0; i < 30000; i++) counts[r.categorical([1, 0, 3])]!++;
    expect(counts[1]).toBe(0);
    expect(counts[2]! / counts[0]!).toBeCloseTo(3, 0);
  });
});

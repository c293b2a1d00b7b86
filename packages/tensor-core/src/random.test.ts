import { describe, expect, it } from 'vitest';
import { Random } from './random.js';

describe('Random', () => {
  it('is deterministic per seed and differs across seeds', () => {
    const a = Array.from({ length: 5 }, ((r) => () => r.nextUint32())(new Random(42)));
    const b = Array.from({ length: 5 }, ((r) => () => r.nextUint32())(new Random(42)));
    const c = Array.from({ length: 5 }, ((r) => () => r.nextUint32())(new Random(43)));
    expect(a).toEqual(b);
    expect(a).not.toEqual(c);
  });
  it('gives uniform values in [0, 1) with the right moments', () => {
    const r = new Random(1);
    let sum = 0;
    let sq = 0;
    const n = 100_000;
    for (let i = 0; i < n; i++) {
      const v = r.next();
      expect(v >= 0 && v < 1).toBe(true);
      sum += v;
      sq += v * v;
    }
    expect(sum / n).toBeCloseTo(0.5, 2);
    expect(sq / n - (sum / n) ** 2).toBeCloseTo(1 / 12, 2);
  });
  it('gives standard normals', () => {
    const r = new Random(2);
    const xs = Array.from({ length: 100_000 }, () => r.normal());
    const mean = xs.reduce((s, v) => s + v, 0) / xs.length;
    const variance = xs.reduce((s, v) => s + (v - mean) ** 2, 0) / xs.length;
    expect(mean).toBeCloseTo(0, 1);
    expect(variance).toBeCloseTo(1, 1);
  });
  it('permutes every index exactly once', () => {
    const p = new Random(3).permutation(1000);
    expect(new Set(p).size).toBe(1000);
    expect(Array.from(p)).not.toEqual(Array.from({ length: 1000 }, (_, i) => i));
  });
  it('rejects a non-integer seed', () => expect(() => new Random(1.5)).toThrow('Random: seed must be an integer, got 1.5'));
});

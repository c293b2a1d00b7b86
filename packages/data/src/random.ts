// Seeded randomness. Everything random in @loom/data draws from `Random`, a mulberry32 generator
// (Tommy Ettinger's 32-bit generator: one 32-bit state, period 2^32, passes gjrand/PractRand to
// 2^32 outputs). It uses only 32-bit integer arithmetic (Math.imul, >>>), so a seed gives the same
// stream in every process and on every platform. Derived streams (one per user, one per epoch) come
// from `hashSeed`, so each is reproducible without generating the ones before it.

/** Mixes any number of 32-bit integers into one seed (murmur3's finaliser over a running hash). */
export function hashSeed(...parts: number[]): number {
  let h = 0x9e3779b9;
  for (const p of parts) {
    h = Math.imul(h ^ (p | 0), 0x85ebca6b);
    h ^= h >>> 13;
    h = Math.imul(h, 0xc2b2ae35);
    h ^= h >>> 16;
  }
  return h >>> 0;
}

/**
 * A seeded pseudo-random generator (mulberry32) with the few distributions Loom needs.
 *
 * ```ts
 * const r = new Random(42);
 * r.next();      // 0.6011037519201636, in [0, 1), the same in every process
 * r.int(10);     // an integer in [0, 10)
 * ```
 */
export class Random {
  private state: number;
  private spare = NaN; // the second normal of a Box–Muller pair

  constructor(seed: number) {
    this.state = seed >>> 0;
  }

  /** Restarts the stream from `seed`, as if newly constructed (no allocation). */
  reseed(seed: number): void {
    this.state = seed >>> 0;
    this.spare = NaN;
  }

  /** Next 32-bit unsigned integer. */
  nextUint32(): number {
    let t = (this.state = (this.state + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }

  /** Uniform in [0, 1). */
  next(): number {
    return this.nextUint32() / 4294967296;
  }

  /** Uniform integer in [0, n), n ≤ 2^32 (multiply-shift; bias below 2^-32·n, irrelevant here). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }

  /** Standard normal (Box–Muller; the second value of each pair is kept for the next call). */
  normal(): number {
    if (!Number.isNaN(this.spare)) {
      const s = this.spare;
      this.spare = NaN;
      return s;
    }
    let u = this.next();
    while (u === 0) u = this.next();
    const v = this.next();
    const r = Math.sqrt(-2 * Math.log(u));
    this.spare = r * Math.sin(2 * Math.PI * v);
    return r * Math.cos(2 * Math.PI * v);
  }

  /** Gamma(shape, 1) by Marsaglia–Tsang; shape < 1 uses Gamma(shape + 1)·U^(1/shape). */
  gamma(shape: number): number {
    if (shape < 1) {
      let u = this.next();
      while (u === 0) u = this.next();
      return this.gamma(shape + 1) * Math.pow(u, 1 / shape);
    }
    const d = shape - 1 / 3;
    const c = 1 / Math.sqrt(9 * d);
    for (;;) {
      let x: number, v: number;
      do {
        x = this.normal();
        v = 1 + c * x;
      } while (v <= 0);
      v = v * v * v;
      const u = this.next();
      if (u < 1 - 0.0331 * x * x * x * x) return d * v;
      if (Math.log(u) < 0.5 * x * x + d * (1 - v + Math.log(v))) return d * v;
    }
  }

  /** Poisson(mean) by inversion (fine for the small means used here). */
  poisson(mean: number): number {
    const l = Math.exp(-mean);
    let k = 0;
    let p = this.next();
    while (p > l) {
      k++;
      p *= this.next();
    }
    return k;
  }

  /** Writes a Dirichlet(alpha) sample into `out` (same length as alpha). */
  dirichlet(alpha: ArrayLike<number>, out: Float64Array): Float64Array {
    let sum = 0;
    for (let i = 0; i < alpha.length; i++) sum += out[i] = this.gamma(alpha[i]!);
    for (let i = 0; i < alpha.length; i++) out[i]! /= sum;
    return out;
  }

  /** Index drawn with probability proportional to weights[i] (weights ≥ 0, not all zero). */
  categorical(weights: ArrayLike<number>, total?: number): number {
    let sum = total ?? 0;
    if (total === undefined) for (let i = 0; i < weights.length; i++) sum += weights[i]!;
    let u = this.next() * sum;
    for (let i = 0; i < weights.length; i++) {
      u -= weights[i]!;
      if (u < 0) return i;
    }
    // Rounding left u ≥ 0 past the last weight: return the last index with non-zero weight.
    for (let i = weights.length - 1; i >= 0; i--) if (weights[i]! > 0) return i;
    return weights.length - 1;
  }
}

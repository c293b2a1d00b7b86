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

// The distributions themselves, not only their means: for each, the mean and variance within 4
// standard errors, and the Kolmogorov–Smirnov distance between N = 20 000 draws (a fixed seed, so
// the outcome is fixed too) and the exact CDF below the critical value at significance α = 0.001
// — a correct sampler exceeds it for one seed in a thousand.
const N = 20_000;
const ALPHA = 0.001;
/** The KS critical value for n draws at significance α (Kolmogorov's limit: √(−ln(α/2) / 2) / √n; 0.0138 here). */
const ksCritical = (n: number, alpha: number) => Math.sqrt(-Math.log(alpha / 2) / 2) / Math.sqrt(n);

/** sup over x of |empirical CDF − cdf| of the sample. */
function ksDistance(sample: Float64Array, cdf: (x: number) => number): number {
  const s = sample.slice().sort();
  let d = 0;
  s.forEach((x, i) => {
    const f = cdf(x);
    d = Math.max(d, (i + 1) / s.length - f, f - i / s.length);
  });
  return d;
}

function meanVariance(sample: Float64Array): { mean: number; variance: number } {
  const mean = sample.reduce((a, b) => a + b, 0) / sample.length;
  return { mean, variance: sample.reduce((a, x) => a + (x - mean) ** 2, 0) / (sample.length - 1) };
}

/** ln Γ(x) for x > 0 (Lanczos, g = 7, 9 terms; relative error below 1e-13). */
function lnGamma(x: number): number {
  const c = [0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313, -176.61502916214059, 12.507343278686905, -0.13857109526572012, 9.9843695780195716e-6, 1.5056327351493116e-7];
  if (x < 0.5) return Math.log(Math.PI / Math.sin(Math.PI * x)) - lnGamma(1 - x);
  x -= 1;
  let a = c[0]!;
  const t = x + 7.5;
  for (let i = 1; i < 9; i++) a += c[i]! / (x + i);
  return 0.5 * Math.log(2 * Math.PI) + (x + 0.5) * Math.log(t) - t + Math.log(a);
}

/** The CDF of Gamma(a, 1): the regularized lower incomplete gamma P(a, x) (series below a + 1, continued fraction above). */
function gammaCdf(a: number, x: number): number {
  if (x <= 0) return 0;
  const front = Math.exp(a * Math.log(x) - x - lnGamma(a));
  if (x < a + 1) {
    let term = 1 / a, sum = term;
    for (let n = 1; Math.abs(term) > 1e-16 * Math.abs(sum); n++) sum += term *= x / (a + n);
    return front * sum;
  }
  // Q(a, x) by Lentz's method on its continued fraction.
  const tiny = 1e-300;
  let b = x + 1 - a, c = 1 / tiny, d = 1 / b, h = d;
  for (let i = 1; i < 1000; i++) {
    const an = -i * (i - a);
    b += 2;
    d = an * d + b;
    if (Math.abs(d) < tiny) d = tiny;
    c = b + an / c;
    if (Math.abs(c) < tiny) c = tiny;
    d = 1 / d;
    const delta = d * c;
    h *= delta;
    if (Math.abs(delta - 1) < 1e-16) break;
  }
  return 1 - front * h;
}

/** The CDF of Beta(a, b) for whole a, b: the chance that at least a of a + b − 1 uniform draws fall below x. */
function betaCdf(a: number, b: number, x: number): number {
  const n = a + b - 1;
  let p = 0, choose = 1; // C(n, j)
  for (let j = 0; j <= n; j++) {
    if (j >= a) p += choose * x ** j * (1 - x) ** (n - j);
    choose = (choose * (n - j)) / (j + 1);
  }
  return p;
}

describe('gamma and dirichlet sample their distributions', () => {
  it('the reference CDFs agree with closed forms', () => {
    for (const x of [0.01, 0.3, 1, 2.5, 7, 30]) {
      expect(gammaCdf(1, x)).toBeCloseTo(1 - Math.exp(-x), 12);
      expect(gammaCdf(3, x)).toBeCloseTo(1 - Math.exp(-x) * (1 + x + (x * x) / 2), 12);
    }
    // A shape that is not whole: P(1/2, x) = erf(√x), at x = 1/4, 1 (series) and 4 (continued fraction).
    expect(gammaCdf(0.5, 0.25)).toBeCloseTo(0.5204998778130465, 12);
    expect(gammaCdf(0.5, 1)).toBeCloseTo(0.8427007929497149, 12);
    expect(gammaCdf(0.5, 4)).toBeCloseTo(0.9953222650189527, 12);
    for (const x of [0, 0.1, 0.5, 0.9, 1]) {
      expect(betaCdf(1, 5, x)).toBeCloseTo(1 - (1 - x) ** 5, 12);
      expect(betaCdf(3, 3, x)).toBeCloseTo(10 * x ** 3 - 15 * x ** 4 + 6 * x ** 5, 12);
    }
  });

  for (const k of [0.4, 1, 3.5]) {
    it(`gamma(${k}): mean and variance ${k}, and Gamma(${k}, 1) by Kolmogorov–Smirnov at α = ${ALPHA}`, () => {
      const r = new Random(11);
      const draws = Float64Array.from({ length: N }, () => r.gamma(k));
      const { mean, variance } = meanVariance(draws);
      expect(Math.abs(mean - k)).toBeLessThan(4 * Math.sqrt(k / N));
      // The sample variance's standard error: √((μ₄ − σ⁴) / N), with μ₄ = 3k(k + 2) for Gamma(k, 1).
      expect(Math.abs(variance - k)).toBeLessThan(4 * Math.sqrt((3 * k * (k + 2) - k * k) / N));
      expect(ksDistance(draws, (x) => gammaCdf(k, x))).toBeLessThan(ksCritical(N, ALPHA));
    });
  }

  it(`dirichlet([1, 2, 3]): each part Beta(αᵢ, 6 − αᵢ) in mean, variance and by Kolmogorov–Smirnov at α = ${ALPHA}`, () => {
    const alpha = [1, 2, 3];
    const total = 6;
    const r = new Random(12);
    const parts = alpha.map(() => new Float64Array(N));
    const out = new Float64Array(3);
    for (let n = 0; n < N; n++) {
      r.dirichlet(alpha, out);
      expect(Math.abs(out[0]! + out[1]! + out[2]! - 1)).toBeLessThan(1e-12);
      out.forEach((v, i) => (parts[i]![n] = v));
    }
    alpha.forEach((a, i) => {
      const { mean, variance } = meanVariance(parts[i]!);
      const b = total - a;
      const exact = (a * b) / (total * total * (total + 1));
      // The sample variance's standard error: exact · √((κ − 1) / N), κ the kurtosis of Beta(a, b).
      const kurtosis = 3 + (6 * ((a - b) ** 2 * (a + b + 1) - a * b * (a + b + 2))) / (a * b * (a + b + 2) * (a + b + 3));
      expect(Math.abs(mean - a / total), `part ${i}`).toBeLessThan(4 * Math.sqrt(exact / N));
      expect(Math.abs(variance - exact), `part ${i}`).toBeLessThan(4 * exact * Math.sqrt((kurtosis - 1) / N));
      expect(ksDistance(parts[i]!, (x) => betaCdf(a, total - a, x)), `part ${i}`).toBeLessThan(ksCritical(N, ALPHA));
    });
  });
});

/**
 * The exact GELU, x·Φ(x) with Φ the standard normal CDF, as PyTorch's `F.gelu` (approximate =
 * 'none'), and the error function it needs (JavaScript has no Math.erf).
 *
 * Two ways to Φ. The kernels (`gelu`, `geluBackward`) take erfc from a fitted formula: one
 * division, one exp and a degree-9 polynomial, erfc(z) = t·exp(−z² + P(t)) with t = 1/(1 + z/2), a
 * Chebyshev fit whose relative error is below 1.2e-7 for every z ≥ 0 (Numerical Recipes, 2nd ed.,
 * §6.2; 1.05e-7 measured here against the series below) — float32 holds 6e-8, so the step's GELU is
 * as exact as its storage, at a tenth of the series' cost: the series took half of a GPT step.
 *
 * `erf` and `erfc` are the oracle: float64 by two expansions, each where it converges fast and
 * without cancellation:
 *
 *   |x| < 2.5   erf(x)  = 2/√π · e^(−x²) · Σₙ 2ⁿ x^(2n+1) / (1·3·…·(2n+1))    (all terms positive)
 *   |x| ≥ 2.5   erfc(x) = e^(−x²)/√π · 1/(x + ½/(x + 1/(x + 3/2/(x + …))))  (40 levels)
 *
 * Against CPython's math.erf on [−6, 6] in steps of 0.01: erf within 9e-16 absolute, erfc within
 * 4e-15 relative — far below float32's resolution.
 */

const TWO_OVER_SQRT_PI = 1.1283791670955126;
const INV_SQRT_PI = 0.5641895835477563;
const SQRT1_2 = Math.SQRT1_2;
/** 1/√(2π), the standard normal density at 0. */
const INV_SQRT_2PI = 0.3989422804014327;

/** erf(x) for 0 ≤ x < 2.5 by its everywhere-positive series. */
function erfSeries(x: number): number {
  const x2 = x * x;
  let term = x;
  let sum = x;
  for (let n = 0; term > 1e-17 * sum; n++) {
    term *= (2 * x2) / (2 * n + 3);
    sum += term;
  }
  return TWO_OVER_SQRT_PI * Math.exp(-x2) * sum;
}

/** erfc(x) for x ≥ 2.5 by its continued fraction, evaluated from the bottom. */
function erfcFraction(x: number): number {
  let t = x;
  for (let k = 40; k >= 1; k--) t = x + k / 2 / t;
  return (Math.exp(-x * x) * INV_SQRT_PI) / t;
}

/** The error function, 2/√π ∫₀ˣ e^(−t²) dt, in float64. */
export function erf(x: number): number {
  if (Number.isNaN(x)) return x;
  const a = Math.abs(x);
  const v = a < 2.5 ? erfSeries(a) : a === Infinity ? 1 : 1 - erfcFraction(a);
  return x < 0 ? -v : v;
}

/** 1 − erf(x), accurate (relative) for large positive x where 1 − erf(x) would cancel. */
export function erfc(x: number): number {
  if (Number.isNaN(x)) return x;
  if (x >= 2.5) return x === Infinity ? 0 : erfcFraction(x);
  return 1 - erf(x);
}

/** Φ(x) = ½·erfc(−x/√2), the standard normal CDF, through the oracle erfc. */
export function phiReference(x: number): number {
  return 0.5 * erfc(-x * SQRT1_2);
}

/** The fit's coefficients, constant term first: erfc(z) ≈ t·exp(−z² + Σ cᵢ tⁱ), t = 1/(1 + z/2). */
const C0 = -1.26551223, C1 = 1.00002368, C2 = 0.37409196, C3 = 0.09678418, C4 = -0.18628806;
const C5 = 0.27886807, C6 = -1.13520398, C7 = 1.48851587, C8 = -0.82215223, C9 = 0.17087277;

/** P(t) of the fit: erfc(z) = t·exp(−z² + P(t)), t = 1/(1 + z/2), for z ≥ 0. */
function fitExponent(t: number): number {
  return C0 + t * (C1 + t * (C2 + t * (C3 + t * (C4 + t * (C5 + t * (C6 + t * (C7 + t * (C8 + t * C9))))))));
}

/** out = x·Φ(x), the exact GELU (Φ to 1.2e-7 relative, see above). */
export function gelu(x: Float32Array, out: Float32Array, n: number): void {
  for (let i = 0; i < n; i++) {
    const v = x[i]!;
    const z = Math.abs(v) * SQRT1_2;
    const t = 1 / (1 + 0.5 * z);
    const half = 0.5 * t * Math.exp(fitExponent(t) - z * z); // Φ(−|v|) = ½·erfc(z)
    out[i] = v * (v < 0 ? half : 1 - half);
  }
}

/** dx += dy · (Φ(x) + x·φ(x)), φ the standard normal density: the gradient of gelu. */
export function geluBackward(x: Float32Array, dy: Float32Array, dx: Float32Array, n: number): void {
  for (let i = 0; i < n; i++) {
    const v = x[i]!;
    const z = Math.abs(v) * SQRT1_2;
    const t = 1 / (1 + 0.5 * z);
    const e = Math.exp(-z * z); // e^(−x²/2), needed alone for φ
    const half = 0.5 * t * Math.exp(fitExponent(t)) * e;
    dx[i]! += dy[i]! * ((v < 0 ? half : 1 - half) + v * INV_SQRT_2PI * e);
  }
}

/**
 * Gradient checking for tests: Loom's analytic gradients (float32) against central finite
 * differences of a plain float64 reference of the same function, written in the test.
 *
 * The scalar checked is L = Σ out ⊙ W with a random fixed W, so every output element contributes
 * with a different weight (a plain sum would hide errors that cancel).
 */
import { Random } from '../random.js';
import { Tensor } from './tensor.js';
import { mul, sum } from './ops.js';

export type Ref = (inputs: Float64Array[]) => Float64Array;

export interface GradCheckResult {
  forwardError: number;
  gradError: number;
}

/** Relative error max|a − b| / max(1, max|b|). */
export function relError(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let num = 0;
  let den = 1;
  for (let i = 0; i < b.length; i++) {
    num = Math.max(num, Math.abs(a[i]! - b[i]!));
    den = Math.max(den, Math.abs(b[i]!));
  }
  return num / den;
}

/**
 * Checks `op` (on tensors) against `ref` (on float64 arrays) at `inputs`; returns the forward
 * error and the worst gradient error over all inputs.
 */
export function gradCheck(op: (xs: Tensor[]) => Tensor, ref: Ref, inputs: Tensor[], seed = 1, eps = 1e-6): GradCheckResult {
  const rng = new Random(seed);
  for (const x of inputs) {
    x.requiresGrad = true;
    x.grad = null;
  }
  const out = op(inputs);
  const w = Tensor.uniform(out.shape, rng, -1, 1);
  sum(mul(out, w)).backward();

  const x64 = inputs.map((x) => Float64Array.from(x.data));
  const forwardError = relError(out.data, ref(x64));
  const loss = (xs: Float64Array[]) => {
    const y = ref(xs);
    let s = 0;
    for (let i = 0; i < y.length; i++) s += y[i]! * w.data[i]!;
    return s;
  };
  let gradError = 0;
  inputs.forEach((x, k) => {
    const fd = new Float64Array(x.size);
    const xk = x64[k]!;
    for (let i = 0; i < x.size; i++) {
      const v = xk[i]!;
      xk[i] = v + eps;
      const up = loss(x64);
      xk[i] = v - eps;
      const down = loss(x64);
      xk[i] = v;
      fd[i] = (up - down) / (2 * eps);
    }
    const analytic = x.grad === null ? new Float32Array(x.size) : x.grad.data;
    gradError = Math.max(gradError, relError(analytic, fd));
  });
  return { forwardError, gradError };
}

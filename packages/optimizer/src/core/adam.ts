/**
 * Adam and AdamW (PyTorch 1.13's torch/optim/adam.py and adamw.py, single-tensor path). AdamW is
 * Adam with decoupled weight decay: one loop serves both, switched by `decoupled`.
 *
 * For t = step, g = ∇θ (−∇θ when maximize), γ = lr, λ = weightDecay:
 *
 *   Adam:  g ← g + λθ                      (L2 penalty, when λ ≠ 0)
 *   AdamW: θ ← θ · (1 − γλ)                 (decoupled decay, when λ ≠ 0)
 *          m ← β₁m + (1 − β₁)g
 *          v ← β₂v + (1 − β₂)g²
 *          v̂max ← max(v̂max, v)              (amsgrad; v̂max is used below in place of v)
 *          θ ← θ − (γ / (1 − β₁ᵗ)) · m / (√v / √(1 − β₂ᵗ) + ε)
 *
 * Buffers, all of length N (the number of parameters):
 *   params (N), grads (N), expAvg m (N), expAvgSq v (N), maxExpAvgSq v̂max (N, amsgrad only)
 */
import { checkBetas, checkBoolean, checkNonNegative, checkPositive } from '../options.js';
import { add, compileKernel, div, max, mul, neg, sqrt, type Kernel } from '../simd/kernel.js';
import { f, fma, type Algorithm, type StateArrays } from './common.js';
import { kernelSteps } from './kernel-step.js';

export interface AdamOptions {
  /** Learning rate γ. Default 1e-3. */
  lr: number;
  /** Decay rates (β₁, β₂) of the first and second moment averages, each in [0, 1). Default [0.9, 0.999]. */
  betas: readonly [number, number];
  /** Added to the denominator for numerical stability, > 0. Default 1e-8. */
  eps: number;
  /** λ: L2 penalty for Adam, decoupled decay for AdamW. Default 0 (Adam), 1e-2 (AdamW). */
  weightDecay: number;
  /** Use the maximum of past second moments (AMSGrad). Default false. */
  amsgrad: boolean;
  /** Maximise the objective instead of minimising it. Default false. */
  maximize: boolean;
}

/** Adam's state arrays. `maxExpAvgSq` is needed only with amsgrad. */
export type AdamState = {
  expAvg: Float32Array;
  expAvgSq: Float32Array;
  maxExpAvgSq?: Float32Array | undefined;
};

export const adamDefaults: Readonly<AdamOptions> = Object.freeze({
  lr: 1e-3,
  betas: Object.freeze([0.9, 0.999]) as unknown as readonly [number, number],
  eps: 1e-8,
  weightDecay: 0,
  amsgrad: false,
  maximize: false,
});

export const adamwDefaults: Readonly<AdamOptions> = Object.freeze({ ...adamDefaults, weightDecay: 1e-2 });

function validate(o: AdamOptions): void {
  checkNonNegative('learning rate', o.lr);
  checkPositive('epsilon value', o.eps);
  checkBetas(o.betas);
  checkNonNegative('weightDecay value', o.weightDecay);
  checkBoolean('amsgrad value', o.amsgrad);
  checkBoolean('maximize value', o.maximize);
}

const stateKeys = (o: AdamOptions) => (o.amsgrad ? ['expAvg', 'expAvgSq', 'maxExpAvgSq'] : ['expAvg', 'expAvgSq']);

/**
 * The per-step scalars, computed in float64 exactly as PyTorch computes them in Python, then
 * rounded to float32 as PyTorch's kernels round a scalar argument.
 */
function scalars(o: AdamOptions, step: number) {
  const [beta1, beta2] = o.betas;
  const biasCorrection1 = 1 - beta1 ** step;
  const biasCorrection2 = 1 - beta2 ** step;
  const stepSize = o.lr / biasCorrection1;
  return [
    f(beta1), // b1
    f(1 - beta1), // omb1
    f(beta2), // b2
    f(1 - beta2), // omb2
    f(Math.sqrt(biasCorrection2)), // bc2: √(1 − β₂ᵗ)
    f(o.eps), // eps
    f(-stepSize), // nss: −γ / (1 − β₁ᵗ)
    f(o.weightDecay), // wd: λ for the L2 penalty
    f(1 - o.lr * o.weightDecay), // decay: 1 − γλ for decoupled decay
  ];
}
const SCALARS = ['b1', 'omb1', 'b2', 'omb2', 'bc2', 'eps', 'nss', 'wd', 'decay'] as const;

/**
 * The plain loop: the reference the SIMD kernel is tested against, and what runs for short slices.
 * Every operation is one float32 operation, in PyTorch's order.
 */
export function adamReference(
  params: Float32Array, grads: Float32Array, state: AdamState | StateArrays,
  o: AdamOptions, step: number, start: number, end: number, decoupled: boolean,
): void {
  const [b1, omb1, b2, omb2, bc2, eps, nss, wd, decay] = scalars(o, step) as [number, number, number, number, number, number, number, number, number];
  const { maximize, amsgrad } = o;
  const l2 = !decoupled && o.weightDecay !== 0, decoupledDecay = decoupled && o.weightDecay !== 0;
  const expAvg = state.expAvg!, expAvgSq = state.expAvgSq!, maxExpAvgSq = state.maxExpAvgSq!;
  for (let i = start; i < end; i++) {
    let g = maximize ? -grads[i]! : grads[i]!;
    let p = params[i]!;
    if (decoupledDecay) p = f(p * decay); // θ ← θ(1 − γλ)
    if (l2) g = fma(p, wd, g); // g ← g + λθ
    const m = fma(g, omb1, f(expAvg[i]! * b1)); // m ← β₁m + (1 − β₁)g
    const v = fma(f(omb2 * g), g, f(expAvgSq[i]! * b2)); // v ← β₂v + (1 − β₂)g²
    expAvg[i] = m;
    expAvgSq[i] = v;
    let s = v;
    if (amsgrad) maxExpAvgSq[i] = s = Math.max(maxExpAvgSq[i]!, v); // v̂max ← max(v̂max, v)
    const denom = f(f(f(Math.sqrt(s)) / bc2) + eps); // √v / √(1 − β₂ᵗ) + ε
    params[i] = f(p + f(f(nss * m) / denom)); // θ ← θ − γ/(1 − β₁ᵗ) · m / denom
  }
}

/** The same statements as `adamReference`, compiled to WebAssembly SIMD. */
function compile(maximize: boolean, l2: boolean, decoupledDecay: boolean, amsgrad: boolean, sumInputs: number): Kernel | null {
  return compileKernel(['p', 'g', 'm', 'v', 'vmax'], SCALARS, (k) => {
    const s = (n: (typeof SCALARS)[number]) => k.scalar(n);
    let g = k.load('g');
    let p = k.load('p');
    if (maximize) g = k.let(neg(g));
    if (decoupledDecay) p = k.let(mul(p, s('decay')));
    if (l2) g = k.let(k.fma(p, s('wd'), g));
    const m = k.let(k.fma(g, s('omb1'), mul(k.load('m'), s('b1'))));
    const v = k.let(k.fma(mul(s('omb2'), g), g, mul(k.load('v'), s('b2'))));
    k.store('m', m);
    k.store('v', v);
    let sq = v;
    if (amsgrad) {
      sq = k.let(max(k.load('vmax'), v));
      k.store('vmax', sq);
    }
    const denom = add(div(sqrt(sq), s('bc2')), s('eps'));
    k.store('p', add(p, div(mul(s('nss'), m), denom)));
  }, { array: 'g', inputs: sumInputs });
}

type AdamStepFunction = (
  params: Float32Array, grads: Float32Array, state: AdamState | StateArrays,
  options: AdamOptions, step: number, start?: number, end?: number,
) => void;

function adamLike(fn: string, decoupled: boolean) {
  return kernelSteps<AdamOptions>(fn, {
    stateKeys,
    call(params, grads, state, options, step) {
      const { maximize, amsgrad } = options;
      const l2 = !decoupled && options.weightDecay !== 0, decoupledDecay = decoupled && options.weightDecay !== 0;
      return {
        key: `${+maximize}${+l2}${+decoupledDecay}${+amsgrad}`,
        compile: (sumInputs) => compile(maximize, l2, decoupledDecay, amsgrad, sumInputs),
        arrays: [params, grads, state.expAvg, state.expAvgSq, state.maxExpAvgSq],
        scalars: scalars(options, step),
      };
    },
    reference: (params, grads, state, options, step, start, end) => adamReference(params, grads, state, options, step, start, end, decoupled),
  });
}
const adamSteps = adamLike('adamStep', false);
const adamwSteps = adamLike('adamwStep', true);

/**
 * One Adam step over `params[start, end)`, in place. `options` must be complete (see
 * `resolveOptions(adam, {...})`); `step` is the 1-based number of this step.
 *
 * @example
 * const n = 4, params = new Float32Array(n), grads = new Float32Array(n).fill(1);
 * const state = { expAvg: new Float32Array(n), expAvgSq: new Float32Array(n) };
 * adamStep(params, grads, state, adamDefaults, 1);       // whole buffer
 * adamStep(params, grads, state, adamDefaults, 2, 0, 2); // or any slice: the same bits
 * adamStep(params, grads, state, adamDefaults, 2, 2, 4);
 */
export const adamStep: AdamStepFunction = adamSteps.step;

/** One AdamW step: Adam with decoupled weight decay θ ← θ(1 − γλ). Same arguments as `adamStep`. */
export const adamwStep: AdamStepFunction = adamwSteps.step;

export const adam: Algorithm<AdamOptions> = {
  name: 'Adam',
  defaults: adamDefaults,
  validate,
  stateKeys,
  initialValue: () => 0,
  step: adamStep,
  stepSum: adamSteps.stepSum,
};

export const adamw: Algorithm<AdamOptions> = { ...adam, name: 'AdamW', defaults: adamwDefaults, step: adamwStep, stepSum: adamwSteps.stepSum };

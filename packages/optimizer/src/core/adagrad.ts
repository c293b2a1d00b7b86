/**
 * Adagrad (PyTorch 1.13's torch/optim/adagrad.py, single-tensor path, dense gradients).
 *
 * For t = step, g = ∇θ (−∇θ when maximize), γ = lr, η = lrDecay, λ = weightDecay:
 *
 *   g ← g + λθ                    (when λ ≠ 0)
 *   γₜ = γ / (1 + (t − 1)η)
 *   S ← S + g²                    (S starts at initialAccumulatorValue)
 *   θ ← θ − γₜ · g / (√S + ε)
 *
 * Buffers, all of length N: params (N), grads (N), sum S (N).
 */
import { checkBoolean, checkNonNegative, checkPositive } from '../options.js';
import { add, compileKernel, div, mul, neg, sqrt, type Kernel } from '../simd/kernel.js';
import { f, fma, type Algorithm, type StateArrays } from './common.js';
import { kernelSteps } from './kernel-step.js';

export interface AdagradOptions {
  /** Learning rate γ. Default 1e-2. */
  lr: number;
  /** Learning-rate decay η: step t uses γ / (1 + (t − 1)η). Default 0. */
  lrDecay: number;
  /** L2 penalty λ ≥ 0. Default 0. */
  weightDecay: number;
  /** The value S starts at. Default 0. */
  initialAccumulatorValue: number;
  /** Added to the denominator for numerical stability, > 0. Default 1e-10. */
  eps: number;
  /** Maximise the objective instead of minimising it. Default false. */
  maximize: boolean;
}

export type AdagradState = { sum: Float32Array };

export const adagradDefaults: Readonly<AdagradOptions> = Object.freeze({
  lr: 1e-2,
  lrDecay: 0,
  weightDecay: 0,
  initialAccumulatorValue: 0,
  eps: 1e-10,
  maximize: false,
});

function validate(o: AdagradOptions): void {
  checkNonNegative('learning rate', o.lr);
  checkNonNegative('lrDecay value', o.lrDecay);
  checkNonNegative('weightDecay value', o.weightDecay);
  checkNonNegative('initialAccumulatorValue', o.initialAccumulatorValue);
  checkPositive('epsilon value', o.eps);
  checkBoolean('maximize value', o.maximize);
}

const STATE_KEYS = ['sum'];

function scalars(o: AdagradOptions, step: number) {
  const clr = o.lr / (1 + (step - 1) * o.lrDecay);
  return [f(o.weightDecay), f(o.eps), f(-clr)];
}
const SCALARS = ['wd', 'eps', 'nclr'] as const;

/** The plain loop: the reference for the SIMD kernel, and what runs for short slices. */
export function adagradReference(
  params: Float32Array, grads: Float32Array, state: AdagradState | StateArrays,
  o: AdagradOptions, step: number, start: number, end: number,
): void {
  const [wd, eps, nclr] = scalars(o, step) as [number, number, number];
  const { maximize } = o;
  const decay = o.weightDecay !== 0;
  const sum = state.sum!;
  for (let i = start; i < end; i++) {
    const p = params[i]!;
    let g = maximize ? -grads[i]! : grads[i]!;
    if (decay) g = fma(p, wd, g); // g ← g + λθ
    const s = fma(g, g, sum[i]!); // S ← S + g²
    sum[i] = s;
    const std = f(f(Math.sqrt(s)) + eps); // √S + ε
    params[i] = f(p + f(f(nclr * g) / std)); // θ ← θ − γₜ g / (√S + ε)
  }
}

function compile(maximize: boolean, decay: boolean, sumInputs: number): Kernel | null {
  return compileKernel(['p', 'g', 'sum'], SCALARS, (k) => {
    const p = k.load('p');
    let g = k.load('g');
    if (maximize) g = k.let(neg(g));
    if (decay) g = k.let(k.fma(p, k.scalar('wd'), g));
    const s = k.let(k.fma(g, g, k.load('sum')));
    k.store('sum', s);
    const std = add(sqrt(s), k.scalar('eps'));
    k.store('p', add(p, div(mul(k.scalar('nclr'), g), std)));
  }, { array: 'g', inputs: sumInputs });
}

const steps = kernelSteps<AdagradOptions>('adagradStep', {
  stateKeys: () => STATE_KEYS,
  call(params, grads, state, options, step) {
    const { maximize } = options;
    const decay = options.weightDecay !== 0;
    return {
      key: `${+maximize}${+decay}`,
      compile: (sumInputs) => compile(maximize, decay, sumInputs),
      arrays: [params, grads, state.sum],
      scalars: scalars(options, step),
    };
  },
  reference: adagradReference,
});

/** One Adagrad step over `params[start, end)`, in place. `state.sum` must start at initialAccumulatorValue. */
export const adagradStep: (
  params: Float32Array, grads: Float32Array, state: AdagradState | StateArrays,
  options: AdagradOptions, step: number, start?: number, end?: number,
) => void = steps.step;

export const adagrad: Algorithm<AdagradOptions> = {
  name: 'Adagrad',
  defaults: adagradDefaults,
  validate,
  stateKeys: () => STATE_KEYS,
  initialValue: (key, o) => (key === 'sum' ? o.initialAccumulatorValue : 0),
  step: adagradStep,
  stepSum: steps.stepSum,
};

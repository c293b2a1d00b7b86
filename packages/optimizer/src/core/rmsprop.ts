/**
 * RMSprop (PyTorch 1.13's torch/optim/rmsprop.py, single-tensor path).
 *
 * For g = ∇θ (−∇θ when maximize), γ = lr, α = alpha, μ = momentum, λ = weightDecay:
 *
 *   g ← g + λθ                          (when λ ≠ 0)
 *   s ← αs + (1 − α)g²
 *   ḡ ← αḡ + (1 − α)g                  (centered)
 *   d ← √(s − ḡ²) + ε  (centered)   or   d ← √s + ε
 *   b ← μb + g/d,  θ ← θ − γb          (μ > 0)
 *   θ ← θ − γg/d                         (μ = 0)
 *
 * Buffers, all of length N: params (N), grads (N), squareAvg s (N), gradAvg ḡ (N, centered only),
 * momentumBuffer b (N, momentum > 0 only).
 */
import { checkBoolean, checkNonNegative, checkPositive } from '../options.js';
import { add, compileKernel, div, mul, neg, sqrt, type Kernel } from '../simd/kernel.js';
import { f, fma, type Algorithm, type StateArrays } from './common.js';
import { kernelSteps } from './kernel-step.js';

export interface RMSpropOptions {
  /** Learning rate γ. Default 1e-2. */
  lr: number;
  /** Smoothing constant α of the squared-gradient average. Default 0.99. */
  alpha: number;
  /** Added to the denominator for numerical stability, > 0. Default 1e-8. */
  eps: number;
  /** L2 penalty λ ≥ 0. Default 0. */
  weightDecay: number;
  /** Momentum factor μ ≥ 0. Default 0. */
  momentum: number;
  /** Normalise by the estimated variance of the gradient instead of its second moment. Default false. */
  centered: boolean;
  /** Maximise the objective instead of minimising it. Default false. */
  maximize: boolean;
}

export type RMSpropState = {
  squareAvg: Float32Array;
  gradAvg?: Float32Array | undefined;
  momentumBuffer?: Float32Array | undefined;
};

export const rmspropDefaults: Readonly<RMSpropOptions> = Object.freeze({
  lr: 1e-2,
  alpha: 0.99,
  eps: 1e-8,
  weightDecay: 0,
  momentum: 0,
  centered: false,
  maximize: false,
});

function validate(o: RMSpropOptions): void {
  checkNonNegative('learning rate', o.lr);
  checkPositive('epsilon value', o.eps);
  checkNonNegative('momentum value', o.momentum);
  checkNonNegative('weightDecay value', o.weightDecay);
  checkNonNegative('alpha value', o.alpha);
  checkBoolean('centered value', o.centered);
  checkBoolean('maximize value', o.maximize);
}

const stateKeys = (o: RMSpropOptions) => [
  'squareAvg',
  ...(o.momentum > 0 ? ['momentumBuffer'] : []),
  ...(o.centered ? ['gradAvg'] : []),
];

const scalars = (o: RMSpropOptions) => [f(o.alpha), f(1 - o.alpha), f(o.eps), f(o.weightDecay), f(o.momentum), f(-o.lr)];
const SCALARS = ['alpha', 'oma', 'eps', 'wd', 'mom', 'nlr'] as const;

/** The plain loop: the reference for the SIMD kernel, and what runs for short slices. */
export function rmspropReference(
  params: Float32Array, grads: Float32Array, state: RMSpropState | StateArrays,
  o: RMSpropOptions, _step: number, start: number, end: number,
): void {
  const [alpha, oma, eps, wd, mom, nlr] = scalars(o) as [number, number, number, number, number, number];
  const { maximize, centered } = o;
  const decay = o.weightDecay !== 0, momentum = o.momentum > 0;
  const squareAvg = state.squareAvg!, gradAvg = state.gradAvg!, buf = state.momentumBuffer!;
  for (let i = start; i < end; i++) {
    const p = params[i]!;
    let g = maximize ? -grads[i]! : grads[i]!;
    if (decay) g = fma(p, wd, g); // g ← g + λθ
    const s = fma(f(oma * g), g, f(squareAvg[i]! * alpha)); // s ← αs + (1 − α)g²
    squareAvg[i] = s;
    let d: number;
    if (centered) {
      const ga = fma(g, oma, f(gradAvg[i]! * alpha)); // ḡ ← αḡ + (1 − α)g
      gradAvg[i] = ga;
      d = f(Math.sqrt(fma(-ga, ga, s))); // √(s − ḡ²)
    } else {
      d = f(Math.sqrt(s)); // √s
    }
    d = f(d + eps);
    if (momentum) {
      const b = f(f(buf[i]! * mom) + f(g / d)); // b ← μb + g/d
      buf[i] = b;
      params[i] = fma(b, nlr, p); // θ ← θ − γb
    } else {
      params[i] = f(p + f(f(nlr * g) / d)); // θ ← θ − γg/d
    }
  }
}

function compile(maximize: boolean, decay: boolean, centered: boolean, momentum: boolean, sumInputs: number): Kernel | null {
  return compileKernel(['p', 'g', 's', 'ga', 'b'], SCALARS, (k) => {
    const c = (n: (typeof SCALARS)[number]) => k.scalar(n);
    const p = k.load('p');
    let g = k.load('g');
    if (maximize) g = k.let(neg(g));
    if (decay) g = k.let(k.fma(p, c('wd'), g));
    const s = k.let(k.fma(mul(c('oma'), g), g, mul(k.load('s'), c('alpha'))));
    k.store('s', s);
    let d: ReturnType<typeof sqrt>;
    if (centered) {
      const ga = k.let(k.fma(g, c('oma'), mul(k.load('ga'), c('alpha'))));
      k.store('ga', ga);
      d = sqrt(k.fma(neg(ga), ga, s));
    } else {
      d = sqrt(s);
    }
    d = k.let(add(d, c('eps')));
    if (momentum) {
      const b = k.let(add(mul(k.load('b'), c('mom')), div(g, d)));
      k.store('b', b);
      k.store('p', k.fma(b, c('nlr'), p));
    } else {
      k.store('p', add(p, div(mul(c('nlr'), g), d)));
    }
  }, { array: 'g', inputs: sumInputs });
}

const steps = kernelSteps<RMSpropOptions>('rmspropStep', {
  stateKeys,
  call(params, grads, state, options) {
    const { maximize, centered } = options;
    const decay = options.weightDecay !== 0, momentum = options.momentum > 0;
    return {
      key: `${+maximize}${+decay}${+centered}${+momentum}`,
      compile: (sumInputs) => compile(maximize, decay, centered, momentum, sumInputs),
      arrays: [params, grads, state.squareAvg, state.gradAvg, state.momentumBuffer],
      scalars: scalars(options),
    };
  },
  reference: rmspropReference,
});

/** One RMSprop step over `params[start, end)`, in place. RMSprop does not use `step`, but it is checked like every step function's. */
export const rmspropStep: (
  params: Float32Array, grads: Float32Array, state: RMSpropState | StateArrays,
  options: RMSpropOptions, step: number, start?: number, end?: number,
) => void = steps.step;

export const rmsprop: Algorithm<RMSpropOptions> = {
  name: 'RMSprop',
  defaults: rmspropDefaults,
  validate,
  stateKeys,
  initialValue: () => 0,
  step: rmspropStep,
  stepSum: steps.stepSum,
};

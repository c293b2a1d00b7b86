/**
 * SGD with optional momentum, dampening, Nesterov momentum, weight decay and maximize (PyTorch
 * 1.13's torch/optim/sgd.py, single-tensor path). Plain gradient descent is SGD with momentum 0;
 * "Momentum" is momentum > 0; "Nesterov" adds nesterov: true.
 *
 * For t = step, g = ∇θ (−∇θ when maximize), γ = lr, μ = momentum, τ = dampening, λ = weightDecay:
 *
 *   g ← g + λθ                      (when λ ≠ 0)
 *   b ← g                           (μ ≠ 0, t = 1)
 *   b ← μb + (1 − τ)g               (μ ≠ 0, t > 1)
 *   g ← g + μb  (nesterov)  or  g ← b   (μ ≠ 0)
 *   θ ← θ − γg
 *
 * Buffers, all of length N: params (N), grads (N), momentumBuffer b (N, only when μ ≠ 0).
 */
import { argError, OptimizerError } from '../errors.js';
import { checkBoolean, checkFinite, checkNonNegative } from '../options.js';
import { add, compileKernel, mul, neg, type Kernel } from '../simd/kernel.js';
import { f, fma, type Algorithm, type StateArrays } from './common.js';
import { kernelSteps } from './kernel-step.js';

export interface SGDOptions {
  /** Learning rate γ. Required: PyTorch's SGD has no default. */
  lr: number;
  /** Momentum factor μ ≥ 0. Default 0 (plain gradient descent). */
  momentum: number;
  /** Dampening τ for momentum. Default 0. */
  dampening: number;
  /** L2 penalty λ ≥ 0. Default 0. */
  weightDecay: number;
  /** Nesterov momentum (needs momentum > 0 and dampening 0). Default false. */
  nesterov: boolean;
  /** Maximise the objective instead of minimising it. Default false. */
  maximize: boolean;
}

/** SGD's state: the momentum buffer, needed only when momentum ≠ 0. */
export type SGDState = { momentumBuffer?: Float32Array | undefined };

export const sgdDefaults: Readonly<SGDOptions> = Object.freeze({
  lr: undefined as unknown as number, // required
  momentum: 0,
  dampening: 0,
  weightDecay: 0,
  nesterov: false,
  maximize: false,
});

function validate(o: SGDOptions): void {
  checkNonNegative('learning rate', o.lr);
  checkNonNegative('momentum value', o.momentum);
  checkFinite('dampening value', o.dampening);
  checkNonNegative('weightDecay value', o.weightDecay);
  checkBoolean('nesterov value', o.nesterov);
  checkBoolean('maximize value', o.maximize);
  if (o.nesterov && (o.momentum <= 0 || o.dampening !== 0)) {
    throw new OptimizerError(`Nesterov momentum requires a momentum and zero dampening (got momentum ${o.momentum}, dampening ${o.dampening})`);
  }
}

const stateKeys = (o: SGDOptions) => (o.momentum !== 0 ? ['momentumBuffer'] : []);

const scalars = (o: SGDOptions) => [f(o.weightDecay), f(o.momentum), f(1 - o.dampening), f(-o.lr)];
const SCALARS = ['wd', 'mom', 'omd', 'nlr'] as const;

/** The plain loop: the reference for the SIMD kernel, and what runs for short slices. */
export function sgdReference(
  params: Float32Array, grads: Float32Array, state: SGDState | StateArrays,
  o: SGDOptions, step: number, start: number, end: number,
): void {
  const [wd, mom, omd, nlr] = scalars(o) as [number, number, number, number];
  const { maximize, nesterov } = o;
  const decay = o.weightDecay !== 0, momentum = o.momentum !== 0, first = step === 1;
  const buf = state.momentumBuffer!;
  for (let i = start; i < end; i++) {
    const p = params[i]!;
    let d = maximize ? -grads[i]! : grads[i]!;
    if (decay) d = fma(p, wd, d); // g ← g + λθ
    if (momentum) {
      const b = first ? d : fma(d, omd, f(buf[i]! * mom)); // b ← μb + (1 − τ)g
      buf[i] = b;
      d = nesterov ? fma(b, mom, d) : b; // g ← g + μb, or g ← b
    }
    params[i] = fma(d, nlr, p); // θ ← θ − γg
  }
}

function compile(maximize: boolean, decay: boolean, momentum: boolean, nesterov: boolean, first: boolean, undamped: boolean, sumInputs: number): Kernel | null {
  return compileKernel(['p', 'g', 'b'], SCALARS, (k) => {
    const p = k.load('p');
    let d = k.load('g');
    if (maximize) d = k.let(neg(d));
    if (decay) d = k.let(k.fma(p, k.scalar('wd'), d));
    if (momentum) {
      const decayed = mul(k.load('b'), k.scalar('mom'));
      // With dampening 0 the fma's factor is 1, and fma(d, 1, x) is exactly the float32 sum d + x.
      const b = first ? d : k.let(undamped ? add(decayed, d) : k.fma(d, k.scalar('omd'), decayed));
      k.store('b', b);
      d = nesterov ? k.let(k.fma(b, k.scalar('mom'), d)) : b;
    }
    k.store('p', k.fma(d, k.scalar('nlr'), p));
  }, { array: 'g', inputs: sumInputs });
}

const steps = kernelSteps<SGDOptions>('sgdStep', {
  stateKeys,
  checkOptions(fn, options) {
    if (typeof options.lr !== 'number') throw argError(fn, 'options.lr is required');
  },
  call(params, grads, state, options, step) {
    const { maximize, nesterov } = options;
    const decay = options.weightDecay !== 0, momentum = options.momentum !== 0, first = step === 1;
    const undamped = options.dampening === 0;
    return {
      key: `${+maximize}${+decay}${+momentum}${+(momentum && nesterov)}${+(momentum && first)}${+undamped}`,
      compile: (sumInputs) => compile(maximize, decay, momentum, nesterov, first, undamped, sumInputs),
      arrays: [params, grads, state.momentumBuffer],
      scalars: scalars(options),
    };
  },
  reference: sgdReference,
});

/**
 * One SGD step over `params[start, end)`, in place. On step 1 the momentum buffer is set to the
 * gradient (its previous contents are not read), as PyTorch does when it creates the buffer.
 *
 * @example
 * const params = Float32Array.of(1, 2), grads = Float32Array.of(0.5, -0.5);
 * sgdStep(params, grads, {}, { ...sgdDefaults, lr: 0.1 }, 1); // params = [0.95, 2.05]
 */
export const sgdStep: (
  params: Float32Array, grads: Float32Array, state: SGDState | StateArrays,
  options: SGDOptions, step: number, start?: number, end?: number,
) => void = steps.step;

export const sgd: Algorithm<SGDOptions> = {
  name: 'SGD',
  defaults: sgdDefaults,
  validate,
  stateKeys,
  initialValue: () => 0,
  countsStepsFromNewState: true,
  step: sgdStep,
  stepSum: steps.stepSum,
};

/**
 * How every step function runs, in one place: its SIMD kernel when one applies, else its plain loop;
 * and the same step with the gradient given as the weighted sum of several arrays — a sync
 * reduction — fused into the kernel, so that the sum is computed element by element where the step
 * reads it and is never written out.
 *
 * Why fused: a thread of a local sync run reduces its slice of two workers' gradients and then
 * steps it. Done as two passes, the sum is written and read back once more; on the Fashion-MNIST
 * MLP with 2 threads the fused pass made the whole step 1.7–2.6% faster (median step time, the two
 * alternating within one run), and the optimizer's kernel, bound by its divisions and square root,
 * reads the extra array almost for free.
 */
import { MAX_ARRAYS } from '../simd/memory.js';
import type { Kernel } from '../simd/kernel.js';
import { checkStepArgs, pickKernel, type StateArrays, type StepFunction, type SumStepFunction } from './common.js';
import { checkSumArgs, weightedSum } from './weighted-sum.js';

/** One call of an optimizer's kernel: its cache key, how to compile it, its arrays and its scalars. */
export interface KernelCall {
  /** The variant (options that change the statements, not their values). */
  key: string;
  /** The kernel with the gradient array read as the weighted sum of `sumInputs` arrays (0: as is). */
  compile(sumInputs: number): Kernel | null;
  /** In the kernel's order, the gradient second. */
  arrays: readonly (Float32Array | undefined)[];
  scalars: readonly number[];
}

/** What an optimizer tells `kernelSteps` about itself. */
export interface StepSpec<O> {
  /** The state arrays the options need (checked for presence and length). */
  stateKeys(options: O): readonly string[];
  /** Checks beyond the arrays' (SGD: lr is required); throws an OptimizerError. */
  checkOptions?(fn: string, options: O): void;
  call(params: Float32Array, grads: Float32Array, state: StateArrays, options: O, step: number): KernelCall;
  /** The plain loop: for short slices, runtimes without SIMD, and as the kernel's test oracle. */
  reference(params: Float32Array, grads: Float32Array, state: StateArrays, options: O, step: number, start: number, end: number): void;
}

/** The step function and its summed-gradient twin (see SumStepFunction) for one optimizer. */
export function kernelSteps<O>(name: string, spec: StepSpec<O>): { step: StepFunction<O>; stepSum: SumStepFunction<O> } {
  const kernels = new Map<string, Kernel | null>();
  const check = (fn: string, params: Float32Array, grads: Float32Array, state: StateArrays, options: O, step: number, start: number, end: number | undefined) => {
    const e = checkStepArgs(fn, params, grads, state, spec.stateKeys(options), step, start, end);
    spec.checkOptions?.(fn, options);
    return e;
  };
  const step: StepFunction<O> = (params, grads, state, options, stepNumber, start = 0, end) => {
    const e = check(name, params, grads, state, options, stepNumber, start, end);
    const call = spec.call(params, grads, state, options, stepNumber);
    const kernel = pickKernel(kernels, call.key, () => call.compile(0), e - start);
    if (kernel) kernel.run(call.arrays, call.scalars, start, e);
    else spec.reference(params, grads, state, options, stepNumber, start, e);
  };
  const sumName = `${name}Sum`;
  const stepSum: SumStepFunction<O> = (params, inputs, weights, state, options, stepNumber, start = 0, end) => {
    checkSumArgs(sumName, inputs, weights);
    const grads = inputs[0]!;
    const e = check(sumName, params, grads, state, options, stepNumber, start, end);
    checkSumArgs(sumName, inputs, weights, e);
    const k = inputs.length;
    const call = spec.call(params, grads, state, options, stepNumber);
    const fusable = k >= 2 && call.arrays.length + k - 1 <= MAX_ARRAYS;
    const kernel = fusable ? pickKernel(kernels, `${call.key}+${k}`, () => call.compile(k), e - start) : null;
    if (kernel) {
      kernel.run([...call.arrays, ...inputs.slice(1)], [...call.scalars, ...Array.from(weights)], start, e);
    } else {
      weightedSum(grads, inputs, weights, start, e);
      step(params, grads, state, options, stepNumber, start, e);
    }
  };
  return { step, stepSum };
}

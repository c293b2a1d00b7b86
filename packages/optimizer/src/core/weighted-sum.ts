/**
 * The weighted sum that turns several workers' gradients into one: out = Σₖ wₖ·xₖ, accumulated in
 * float64 in the order given and rounded once to float32. Every Loom aggregator — threads reducing
 * their slices, a hierarchical worker's threads, a parameter server's shard — averages with it, so
 * they all produce the same bits from the same gradients, whatever carries them.
 *
 * Like the step functions it works on a slice [start, end), and in place (one SIMD pass, no copy)
 * when every array lives in the optimizer's memory (`optimizerMemory`).
 */
import { argError } from '../errors.js';
import { MAX_SUM_INPUTS, compileWeightedSum, type Kernel } from '../simd/kernel.js';
import { pickKernel, type Algorithm, type StateArrays } from './common.js';

/** The plain loop: the oracle of the SIMD kernel, and what runs for short slices or many inputs. */
export function weightedSumReference(out: Float32Array, inputs: readonly Float32Array[], weights: ArrayLike<number>, start: number, end: number): void {
  for (let j = start; j < end; j++) {
    let acc = 0;
    for (let k = 0; k < inputs.length; k++) acc += weights[k]! * inputs[k]![j]!;
    out[j] = acc;
  }
}

const kernels = new Map<string, Kernel | null>();
/** The kernel's arguments, reused: [out, x₀, …]. */
const arrays: Float32Array[] = [];

/**
 * out[j] = Σₖ weights[k]·inputs[k][j] for j in [start, end): float64 products and sums, in order
 * (`0 + w₀x₀ + w₁x₁ + …`), rounded once to float32. `out` may be one of the inputs (it is read
 * before it is written, element by element). One input of weight 1 written onto itself is left as
 * it is (the sum would only turn −0 into +0).
 *
 * @example
 * // the mean of two workers' gradients, each over half of the global batch
 * weightedSum(g0, [g0, g1], [0.5, 0.5]);
 */
export function weightedSum(out: Float32Array, inputs: readonly Float32Array[], weights: ArrayLike<number>, start = 0, end: number = out.length): void {
  const fn = 'weightedSum';
  if (!(out instanceof Float32Array)) throw argError(fn, 'out must be a Float32Array');
  checkSumArgs(fn, inputs, weights, end);
  if (!Number.isInteger(start) || !Number.isInteger(end) || start < 0 || start > end || end > out.length) {
    throw argError(fn, `slice [${start}, ${end}) is not within [0, ${out.length}]`);
  }
  const k = inputs.length;
  if (k === 1 && inputs[0] === out && weights[0] === 1) return;
  const kernel = k <= MAX_SUM_INPUTS ? pickKernel(kernels, String(k), () => compileWeightedSum(k), end - start) : null;
  if (!kernel) return weightedSumReference(out, inputs, weights, start, end);
  arrays.length = k + 1;
  arrays[0] = out;
  for (let i = 0; i < k; i++) arrays[i + 1] = inputs[i]!;
  kernel.run(arrays, weights, start, end);
}

/** Throws unless there are as many weights as inputs (≥ 1) and every input is a Float32Array of length ≥ end. */
export function checkSumArgs(fn: string, inputs: readonly Float32Array[], weights: ArrayLike<number>, end = 0): void {
  if (!Array.isArray(inputs) || inputs.length === 0 || inputs.length !== weights?.length) {
    throw argError(fn, `expected as many weights as inputs (≥ 1), got ${weights?.length} weights for ${inputs?.length} inputs`);
  }
  for (const [k, x] of inputs.entries()) {
    if (!(x instanceof Float32Array) || x.length < end) throw argError(fn, `inputs[${k}] must be a Float32Array of length ≥ ${end}`);
  }
}

/**
 * One step of `algorithm` over [start, end) with the gradient Σₖ weights[k]·inputs[k]: its fused
 * `stepSum` when it has one, else `weightedSum` into inputs[0] and its `step` — the same bits either
 * way. Afterwards inputs[0][start, end) is scratch (see SumStepFunction).
 *
 * @example
 * // a sync step over two workers' gradients, each the mean over half of the global batch
 * stepWithSum(adam, params, [g0, g1], [0.5, 0.5], state, resolveOptions(adam, {}), t, lo, hi);
 */
export function stepWithSum<O extends object>(
  algorithm: Algorithm<O>, params: Float32Array, inputs: readonly Float32Array[], weights: ArrayLike<number>,
  state: StateArrays, options: O, step: number, start = 0, end: number = params.length,
): void {
  if (algorithm.stepSum) return algorithm.stepSum(params, inputs, weights, state, options, step, start, end);
  weightedSum(inputs[0]!, inputs, weights, start, end);
  algorithm.step(params, inputs[0]!, state, options, step, start, end);
}

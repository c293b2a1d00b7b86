/**
 * stepSum (and stepWithSum): a step on the weighted sum of several gradients, fused into the
 * kernel, gives the bits of weightedSum into a copy followed by the plain step — for every
 * optimizer variant, input count, slice and tail, in place in the optimizer's memory and through
 * the staging path, with the fused and the emulated fma, and with the plain-loop backend. The
 * two-pass path is the oracle: its parts are each tested against PyTorch and their own oracles.
 */
import { afterEach, describe, expect, it } from 'vitest';
import {
  adagrad, adam, adamw, optimizerMemory, resolveOptions, rmsprop, sgd, setKernelBackend, stepWithSum, weightedSum,
  OptimizerError, type Algorithm, type StateArrays,
} from '@loom/optimizer';
import { setFmaLowering, type FmaLowering } from '../simd/kernel.js';

afterEach(() => {
  setKernelBackend('auto');
  setFmaLowering(undefined);
});

/** Deterministic values of many magnitudes and both signs, zeros of both signs included. */
function values(n: number, seed: number, scale = 1): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = scale * Math.sin(seed * 7919 + i * 104729) * 10 ** (((i * seed) % 5) - 2);
  a[0] = -0;
  a[1] = 0;
  return a;
}
const bits = (a: Float32Array) => Array.from(new Uint32Array(a.buffer, a.byteOffset, a.length));

const variants: Array<[string, Algorithm<any>, object]> = [
  ['SGD', sgd, { lr: 0.1 }],
  ['SGD momentum, dampening, decay', sgd, { lr: 0.1, momentum: 0.9, dampening: 0.1, weightDecay: 1e-2 }],
  ['SGD nesterov, maximize', sgd, { lr: 0.1, momentum: 0.9, nesterov: true, maximize: true }],
  ['RMSprop', rmsprop, {}],
  ['RMSprop centered, momentum, decay', rmsprop, { centered: true, momentum: 0.5, weightDecay: 1e-2 }],
  ['Adam', adam, {}],
  ['Adam amsgrad, L2, maximize', adam, { amsgrad: true, weightDecay: 1e-2, maximize: true }],
  ['AdamW', adamw, {}],
  ['Adagrad', adagrad, { weightDecay: 1e-2, initialAccumulatorValue: 0.1 }],
];

/** params, state and k gradients in the optimizer's memory (or ordinary arrays), with a twin set for the oracle. */
function setup(algorithm: Algorithm<any>, options: object, n: number, k: number, inMemory: boolean) {
  const make = () => (inMemory ? optimizerMemory.alloc(n) : new Float32Array(n));
  const made: Float32Array[] = [];
  const fill = (a: Float32Array, v: Float32Array | number) => (typeof v === 'number' ? a.fill(v) : a.set(v), made.push(a), a);
  const side = () => {
    const state: Record<string, Float32Array> = {};
    for (const key of algorithm.stateKeys(options)) state[key] = fill(make(), algorithm.initialValue(key, options));
    return { params: fill(make(), values(n, 99)), state };
  };
  const weights = Float64Array.from({ length: k }, (_, i) => (i + 1) / ((k * (k + 1)) / 2));
  return { fused: side(), plain: side(), weights, made, grads: () => Array.from({ length: k }, (_, i) => fill(make(), values(n, i + 1, 1e-2))) };
}

describe('stepSum: a step on a weighted sum of gradients, fused', () => {
  for (const [name, algorithm, given] of variants) {
    const options = resolveOptions(algorithm, given);
    for (const k of [1, 2, 3, 4]) {
      for (const inMemory of [true, false]) {
        it(`${name}, ${k} input(s), ${inMemory ? 'in place' : 'ordinary arrays'}: the bits of weightedSum then step, on every slice, over 3 steps`, () => {
          const n = 1029; // a tail of 1–3 elements after whole groups of 4 and 8
          const s = setup(algorithm, options, n, k, inMemory);
          for (let step = 1; step <= 3; step++) {
            for (const [start, end] of [[0, n], [5, 518], [518, n]] as const) {
              const inputs = s.grads();
              const copy = inputs.map((g) => g.slice());
              const first = inputs[0]!.slice();
              weightedSum(copy[0]!, copy, s.weights, start, end);
              algorithm.step(s.plain.params, copy[0]!, s.plain.state as StateArrays, options, step, start, end);
              algorithm.stepSum!(s.fused.params, inputs, s.weights, s.fused.state as StateArrays, options, step, start, end);
              expect(bits(s.fused.params)).toEqual(bits(s.plain.params));
              for (const key of Object.keys(s.plain.state)) expect(bits(s.fused.state[key]!)).toEqual(bits(s.plain.state[key]!));
              // Inputs other than the first are only read; the first too when the sum is fused (from 2 inputs).
              for (let i = 1; i < k; i++) expect(bits(inputs[i]!)).toEqual(bits(copy[i]!));
              if (k >= 2) expect(bits(inputs[0]!)).toEqual(bits(first));
            }
          }
          if (inMemory) s.made.forEach((a) => optimizerMemory.free(a));
        });
      }
    }
  }

  for (const lowering of ['fused', 'emulated'] as FmaLowering[]) {
    it(`the same bits with the ${lowering} fma, and with the plain-loop backend`, () => {
      setFmaLowering(lowering);
      const options = resolveOptions(adam, { amsgrad: true, weightDecay: 1e-2 });
      const results = [];
      for (const backend of ['wasm', 'js'] as const) {
        setKernelBackend(backend);
        const s = setup(adam, options, 777, 3, true);
        for (let step = 1; step <= 2; step++) adam.stepSum!(s.fused.params, s.grads(), s.weights, s.fused.state as StateArrays, options, step);
        results.push(bits(s.fused.params));
        s.made.forEach((a) => optimizerMemory.free(a));
      }
      expect(results[0]).toEqual(results[1]);
    });
  }

  it('more inputs than one kernel takes: summed first, then stepped — the same bits', () => {
    const options = resolveOptions(adam, { amsgrad: true }); // 5 arrays: at most 4 gradients fit in a kernel's 8
    const s = setup(adam, options, 600, 6, true);
    const inputs = s.grads();
    const copy = inputs.map((g) => g.slice());
    weightedSum(copy[0]!, copy, s.weights);
    adam.step(s.plain.params, copy[0]!, s.plain.state as StateArrays, options, 1);
    adam.stepSum!(s.fused.params, inputs, s.weights, s.fused.state as StateArrays, options, 1);
    expect(bits(s.fused.params)).toEqual(bits(s.plain.params));
    s.made.forEach((a) => optimizerMemory.free(a));
  });

  it('stepWithSum uses stepSum, or weightedSum and step for an algorithm without one', () => {
    const options = resolveOptions(sgd, { lr: 0.5, momentum: 0.9 });
    const bare: Algorithm<any> = { ...sgd, stepSum: undefined };
    const out = [];
    for (const algorithm of [sgd, bare]) {
      const s = setup(algorithm, options, 300, 2, true);
      stepWithSum(algorithm, s.fused.params, s.grads(), s.weights, s.fused.state as StateArrays, options, 1, 10, 290);
      out.push(bits(s.fused.params));
      s.made.forEach((a) => optimizerMemory.free(a));
    }
    expect(out[0]).toEqual(out[1]);
  });

  it('refuses mismatched weights, short inputs and bad slices, naming itself', () => {
    const options = resolveOptions(adam, {});
    const n = 100, p = new Float32Array(n), state = { expAvg: new Float32Array(n), expAvgSq: new Float32Array(n) };
    const g = [new Float32Array(n), new Float32Array(n)];
    expect(() => adam.stepSum!(p, g, [0.5], state, options, 1)).toThrow(OptimizerError);
    expect(() => adam.stepSum!(p, g, [0.5], state, options, 1)).toThrow(/adamStepSum: expected as many weights as inputs/);
    expect(() => adam.stepSum!(p, [], [], state, options, 1)).toThrow(/adamStepSum/);
    expect(() => adam.stepSum!(p, [g[0]!, new Float32Array(10)], [0.5, 0.5], state, options, 1)).toThrow(/adamStepSum: inputs\[1\] must be a Float32Array of length ≥ 100/);
    expect(() => adam.stepSum!(p, g, [0.5, 0.5], state, options, 1, 50, 200)).toThrow(/adamStepSum: slice \[50, 200\)/);
    expect(() => adamw.stepSum!(p, g, [0.5, 0.5], {}, options, 1)).toThrow(/adamwStepSum: state.expAvg/);
  });
});

/**
 * The functional cores: the WebAssembly SIMD kernels give the same bits as the plain loops — on
 * ordinary arrays (copied through WebAssembly memory) and in place on arrays in optimizerMemory —
 * and stepping a buffer in slices (2 and 3 uneven ones, in any order, on either backend) gives the
 * same bits as one step over the whole buffer.
 */
import { afterEach, describe, expect, it } from 'vitest';
import {
  adagrad, adam, adamw, resolveOptions, rmsprop, sgd, setKernelBackend, getKernelBackend,
  optimizerMemory, type Algorithm, type KernelBackend,
} from '@loom/optimizer';
import { CHUNK, compileKernel, fmaLowering, setFmaLowering, type FmaLowering } from '../simd/kernel.js';
import { STAGING_BYTES, kernelHeap } from '../simd/memory.js';

afterEach(() => {
  setKernelBackend('auto');
  setFmaLowering(undefined);
});

/** Every combination of the given option values. */
function combos(choices: Record<string, unknown[]>): Record<string, unknown>[] {
  return Object.entries(choices).reduce<Record<string, unknown>[]>(
    (acc, [k, values]) => acc.flatMap((o) => values.map((v) => ({ ...o, [k]: v }))),
    [{}],
  );
}

const cases: [Algorithm<object>, Record<string, unknown>[]][] = [
  [sgd as unknown as Algorithm<object>, combos({ lr: [0.1], maximize: [false, true], weightDecay: [0, 0.01], momentum: [0, 0.9], dampening: [0, 0.2] })
    .concat(combos({ lr: [0.1], maximize: [false, true], weightDecay: [0, 0.01], momentum: [0.9], nesterov: [true] }))],
  [rmsprop as unknown as Algorithm<object>, combos({ maximize: [false, true], weightDecay: [0, 0.01], centered: [false, true], momentum: [0, 0.5] })],
  [adam as unknown as Algorithm<object>, combos({ lr: [0.01], maximize: [false, true], weightDecay: [0, 0.05], amsgrad: [false, true] })],
  [adamw as unknown as Algorithm<object>, combos({ lr: [0.01], maximize: [false, true], weightDecay: [0, 0.05], amsgrad: [false, true] })],
  [adagrad as unknown as Algorithm<object>, combos({ maximize: [false, true], weightDecay: [0, 0.05], lrDecay: [0, 0.1], initialAccumulatorValue: [0, 0.1] })],
];

/** Deterministic values of many magnitudes, with zeros, negative zeros and subnormals mixed in. */
function values(n: number, seed: number): Float32Array {
  const out = new Float32Array(n);
  let s = seed >>> 0;
  const rand = () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32);
  for (let i = 0; i < n; i++) {
    const r = rand();
    if (r < 0.02) out[i] = 0;
    else if (r < 0.03) out[i] = -0;
    else if (r < 0.04) out[i] = (rand() - 0.5) * 1e-40; // subnormal
    else out[i] = (rand() - 0.5) * 10 ** Math.floor(rand() * 8 - 5);
  }
  return out;
}

interface World {
  params: Float32Array;
  grads: Float32Array;
  state: Record<string, Float32Array>;
}

function world(alg: Algorithm<object>, options: object, n: number, seed: number): World {
  const state: Record<string, Float32Array> = {};
  alg.stateKeys(options).forEach((k, i) => {
    const init = alg.initialValue(k, options);
    // Momentum buffers and averages start from arbitrary values so the kernels' reads are tested.
    state[k] = init !== 0 ? new Float32Array(n).fill(init) : values(n, seed + 10 + i).map(Math.abs);
  });
  return { params: values(n, seed), grads: values(n, seed + 1), state };
}

const clone = (w: World): World => ({
  params: w.params.slice(),
  grads: w.grads.slice(),
  state: Object.fromEntries(Object.entries(w.state).map(([k, v]) => [k, v.slice()])),
});

/** Bitwise equality of two worlds, NaN equal to NaN (payloads are not observable from JavaScript). */
function expectSameBits(a: World, b: World, what: string): void {
  const same = (x: Float32Array, y: Float32Array, name: string) => {
    const xi = new Uint32Array(x.buffer, x.byteOffset, x.length), yi = new Uint32Array(y.buffer, y.byteOffset, y.length);
    for (let i = 0; i < x.length; i++) {
      if (xi[i] !== yi[i] && !(Number.isNaN(x[i]) && Number.isNaN(y[i]))) {
        throw new Error(`${what}: ${name}[${i}] differs: ${x[i]} vs ${y[i]}`);
      }
    }
  };
  same(a.params, b.params, 'params');
  for (const k of Object.keys(a.state)) same(a.state[k]!, b.state[k]!, k);
}

function stepAll(alg: Algorithm<object>, w: World, options: object, step: number, slices: [number, number][], backends: KernelBackend[]): void {
  slices.forEach(([s, e], i) => {
    setKernelBackend(backends[i % backends.length]!);
    alg.step(w.params, w.grads, w.state, options, step, s, e);
  });
}

const N = 2 * CHUNK + 37; // crosses chunk boundaries and leaves a tail of 1 element past a group of 4

describe('WebAssembly SIMD kernels against the plain loops', () => {
  it('compile in this runtime (otherwise every comparison below would be the JS loop against itself)', () => {
    expect(compileKernel(['a'], [], (k) => k.store('a', k.load('a')))).not.toBeNull();
  });

  // The fused multiply-add where this machine has one, and the float64 emulation used elsewhere.
  const lowerings: FmaLowering[] = fmaLowering() === 'fused' ? ['fused', 'emulated'] : ['emulated'];
  for (const [alg, optionList] of cases) for (const lowering of lowerings) {
    it(`${alg.name}: every option combination, 3 steps, same bits (${optionList.length} combinations, ${lowering} fma)`, () => {
      setFmaLowering(lowering);
      optionList.forEach((given, ci) => {
        const options = resolveOptions(alg, given);
        const w = world(alg, options, N, 1000 + ci);
        const js = clone(w), wasm = clone(w);
        for (let step = 1; step <= 3; step++) {
          stepAll(alg, js, options, step, [[0, N]], ['js']);
          stepAll(alg, wasm, options, step, [[3, N - 1]], ['wasm']); // unaligned start, odd tail
          stepAll(alg, wasm, options, step, [[0, 3], [N - 1, N]], ['wasm']); // edges: shorter than a vector
        }
        expectSameBits(js, wasm, `${alg.name}(${JSON.stringify(given)})`);
      });
    });
  }
});

describe('slices are bitwise equal to one whole step', () => {
  const splits: [string, [number, number][]][] = [
    ['2 uneven slices', [[0, 1001], [1001, N]]],
    ['2 uneven slices, reversed', [[1001, N], [0, 1001]]],
    ['3 uneven slices', [[0, 7], [7, CHUNK + 5], [CHUNK + 5, N]]],
    ['3 uneven slices, shuffled', [[CHUNK + 5, N], [0, 7], [7, CHUNK + 5]]],
  ];
  for (const [alg, optionList] of cases) {
    it(`${alg.name}: 2 and 3 uneven slices in any order, on either backend`, () => {
      for (const given of [optionList[0]!, optionList[optionList.length - 1]!]) {
        const options = resolveOptions(alg, given);
        const base = world(alg, options, N, 7);
        const whole = clone(base);
        for (let step = 1; step <= 3; step++) stepAll(alg, whole, options, step, [[0, N]], ['auto']);
        for (const [name, slices] of splits) {
          for (const backends of [['auto'], ['js'], ['wasm'], ['js', 'wasm', 'auto']] as KernelBackend[][]) {
            const sliced = clone(base);
            for (let step = 1; step <= 3; step++) stepAll(alg, sliced, options, step, slices, backends);
            expectSameBits(whole, sliced, `${alg.name}(${JSON.stringify(given)}) ${name} on ${backends.join('/')}`);
          }
        }
      }
    });
  }

  it('leaves elements outside [start, end) untouched', () => {
    const options = resolveOptions(adam as unknown as Algorithm<object>, { amsgrad: true });
    const w = world(adam as unknown as Algorithm<object>, options, N, 3);
    const before = clone(w);
    adam.step(w.params, w.grads, w.state, options as never, 1, 100, 5000);
    for (const [a, b] of [[w.params, before.params], ...Object.keys(w.state).map((k) => [w.state[k]!, before.state[k]!])] as [Float32Array, Float32Array][]) {
      expect(a.subarray(0, 100)).toEqual(b.subarray(0, 100));
      expect(a.subarray(5000)).toEqual(b.subarray(5000));
      expect(a.subarray(100, 5000)).not.toEqual(b.subarray(100, 5000));
    }
  });
});

describe('step function arguments', () => {
  const o = resolveOptions(adam as unknown as Algorithm<object>, {}) as never;
  const p = new Float32Array(8), g = new Float32Array(8), state = { expAvg: new Float32Array(8), expAvgSq: new Float32Array(8) };

  it('names the array whose length differs', () => {
    expect(() => adam.step(p, new Float32Array(7), state, o, 1)).toThrow('adamStep: grads has length 7, params has length 8');
    expect(() => adam.step(p, g, { ...state, expAvgSq: new Float32Array(9) }, o, 1)).toThrow('adamStep: state.expAvgSq has length 9, params has length 8');
    expect(() => adam.step(p, g, { expAvg: state.expAvg }, o, 1)).toThrow('adamStep: state.expAvgSq must be a Float32Array of length 8, got undefined');
  });

  it('rejects a slice outside the arrays and a step count below 1', () => {
    expect(() => adam.step(p, g, state, o, 1, 4, 9)).toThrow('adamStep: slice [4, 9) is not within [0, 8]');
    expect(() => adam.step(p, g, state, o, 1, 5, 4)).toThrow('slice [5, 4)');
    expect(() => adam.step(p, g, state, o, 0)).toThrow('step must be an integer ≥ 1');
    expect(() => sgd.step(p, new Float64Array(8) as never, {}, resolveOptions(sgd, { lr: 1 }), 1)).toThrow('sgdStep: grads must be a Float32Array, got Float64Array');
  });

  it('switches backends only by name', () => {
    expect(getKernelBackend()).toBe('auto');
    expect(() => setKernelBackend('gpu' as never)).toThrow("setKernelBackend: unknown backend 'gpu'");
  });
});

describe('in place in the optimizer memory: the same bits as the copying path and the plain loops', () => {
  /** A copy of `w` whose arrays live in optimizerMemory: whole allocations, or (`unaligned`) slices of them starting off a 16-byte boundary. */
  const inMemory = (w: World, which: 'all' | 'params and grads', unaligned: boolean) => {
    const blocks: Float32Array[] = [];
    const place = (a: Float32Array, i: number) => {
      const skip = unaligned ? 1 + (i % 3) : 0, block = optimizerMemory.alloc(a.length + skip);
      blocks.push(block);
      const view = block.subarray(skip, skip + a.length);
      view.set(a);
      return view;
    };
    const state = Object.fromEntries(Object.entries(w.state).map(([k, v], i) => [k, which === 'all' ? place(v, i + 2) : v.slice()]));
    return { world: { params: place(w.params, 0), grads: place(w.grads, 1), state }, free: () => blocks.forEach((b) => optimizerMemory.free(b)) };
  };

  it('has a shared WebAssembly memory in this runtime (otherwise these would all take the copying path)', () => {
    expect(optimizerMemory.available).toBe(true);
  });

  for (const [alg, optionList] of cases) {
    it(`${alg.name}: every option combination, whole, in slices and mixed with ordinary arrays, 3 steps`, () => {
      const inUse = optimizerMemory.bytesInUse;
      optionList.forEach((given, ci) => {
        const options = resolveOptions(alg, given);
        const w = world(alg, options, N, 2000 + ci);
        const js = clone(w), copied = clone(w);
        const whole = inMemory(w, 'all', false), sliced = inMemory(w, 'all', true), mixed = inMemory(w, 'params and grads', true);
        for (const m of [whole, sliced, mixed]) for (const a of [m.world.params, ...Object.values(m.world.state)]) expect(optimizerMemory.contains(a)).toBe(m !== mixed || a === m.world.params);
        for (let step = 1; step <= 3; step++) {
          stepAll(alg, js, options, step, [[0, N]], ['js']);
          stepAll(alg, copied, options, step, [[0, N]], ['wasm']);
          stepAll(alg, whole.world, options, step, [[0, N]], ['wasm']);
          stepAll(alg, sliced.world, options, step, [[3, N - 1], [0, 3], [N - 1, N]], ['wasm']); // unaligned starts, odd tails
          stepAll(alg, mixed.world, options, step, [[CHUNK + 5, N], [0, CHUNK + 5]], ['wasm', 'auto']);
        }
        const what = `${alg.name}(${JSON.stringify(given)})`;
        expectSameBits(js, copied, `${what} copying path`);
        expectSameBits(js, whole.world, `${what} in place`);
        expectSameBits(js, sliced.world, `${what} in place, in slices`);
        expectSameBits(js, mixed.world, `${what} state outside the memory`);
        [whole, sliced, mixed].forEach((m) => m.free());
      });
      expect(optimizerMemory.bytesInUse).toBe(inUse);
    });
  }

  it('runs in place (the staging area is untouched) only when every array is in the memory', () => {
    const staging = new Uint8Array(kernelHeap()!.memory.buffer, 0, STAGING_BYTES);
    const options = resolveOptions(sgd, { lr: 0.1, momentum: 0.9 });
    const plain = world(sgd as unknown as Algorithm<object>, options, N, 5), m = inMemory(plain, 'all', true);
    staging.fill(0xab);
    sgd.step(m.world.params, m.world.grads, m.world.state, options, 2);
    expect(staging.every((b) => b === 0xab)).toBe(true);
    sgd.step(plain.params, plain.grads, plain.state, options, 2);
    expect(staging.every((b) => b === 0xab)).toBe(false);
    m.free();
  });
});

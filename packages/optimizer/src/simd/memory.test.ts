/**
 * optimizerMemory: aligned, zeroed arrays inside the kernels' WebAssembly memory; freed blocks are
 * reused; arrays survive the memory's growth (and a step on them still runs in place); the class
 * API allocates state beside parameters that live there and frees it in dispose().
 */
import { describe, expect, it } from 'vitest';
import { Adam, Optimizer, SGD, adam, allocateFlat, optimizerMemory, type Algorithm, type AdamOptions, type ParamLike } from '@loom/optimizer';
import { STAGING_BYTES, kernelHeap } from './memory.js';

const bufferLength = () => optimizerMemory.memory!.buffer.byteLength;
const ramp = (a: Float32Array) => a.forEach((_, i) => (a[i] = Math.sin(i + 1)));

describe('optimizerMemory.alloc and free', () => {
  it('hands out zeroed, 16-byte aligned views into the WebAssembly memory, above the staging area', () => {
    const arrays = [1, 3, 4, 1000].map((n) => optimizerMemory.alloc(n));
    for (const a of arrays) {
      expect(a.buffer).toBeInstanceOf(SharedArrayBuffer);
      expect(optimizerMemory.contains(a)).toBe(true);
      expect(a.byteOffset % 16).toBe(0);
      expect(a.byteOffset).toBeGreaterThanOrEqual(STAGING_BYTES);
      expect(a.every((x) => x === 0)).toBe(true);
    }
    expect(optimizerMemory.contains(new Float32Array(4))).toBe(false);
    arrays.forEach((a) => optimizerMemory.free(a));
  });

  it('reuses freed blocks (zeroed again) and merges free neighbours', () => {
    const inUse = optimizerMemory.bytesInUse;
    const [a, b, c] = [100, 100, 100].map((n) => optimizerMemory.alloc(n).fill(7)) as [Float32Array, Float32Array, Float32Array];
    optimizerMemory.free(a);
    optimizerMemory.free(b); // a and b merge into one free block of 800 bytes
    const d = optimizerMemory.alloc(200);
    expect(d.byteOffset).toBe(a.byteOffset);
    expect(d.every((x) => x === 0)).toBe(true);
    expect(optimizerMemory.bytesInUse).toBe(inUse + 400 + 800);
    [c, d].forEach((x) => optimizerMemory.free(x));
    expect(optimizerMemory.bytesInUse).toBe(inUse);
  });

  it('names what is wrong with a bad size or a bad free', () => {
    expect(() => optimizerMemory.alloc(-1)).toThrow('optimizerMemory.alloc: expected a whole number of elements ≥ 0, got -1');
    expect(() => optimizerMemory.alloc(1.5)).toThrow('got 1.5');
    const a = optimizerMemory.alloc(8);
    expect(() => optimizerMemory.free(a.subarray(1))).toThrow('optimizerMemory.free: expected an array returned by optimizerMemory.alloc and not yet freed, got Float32Array(7) at byte');
    expect(() => optimizerMemory.free(new Float32Array(8))).toThrow('got Float32Array(8) outside the optimizer memory');
    optimizerMemory.free(a);
    expect(() => optimizerMemory.free(a)).toThrow('not yet freed');
  });
});

describe('growth', () => {
  it('keeps earlier arrays valid and in the memory, and steps on them still run in place', () => {
    const n = 1000;
    const p = optimizerMemory.alloc(n), g = optimizerMemory.alloc(n), m = optimizerMemory.alloc(n), v = optimizerMemory.alloc(n);
    ramp(p);
    ramp(g);
    const plain = { p: p.slice(), g: g.slice(), m: new Float32Array(n), v: new Float32Array(n) };
    const before = bufferLength();
    const big = optimizerMemory.alloc(before / 4); // cannot fit below the current end: the memory grows
    expect(bufferLength()).toBeGreaterThan(before);
    expect(p.length).toBe(n);
    expect(p.buffer).not.toBe(optimizerMemory.memory!.buffer);
    expect(p).toEqual(plain.p); // not detached: the same values
    for (const a of [p, g, m, v]) expect(optimizerMemory.contains(a)).toBe(true);
    // An old view and a new view of the same bytes alias each other.
    new Float32Array(optimizerMemory.memory!.buffer, p.byteOffset, 1)[0] = 42;
    expect(p[0]).toBe(42);
    plain.p[0] = 42;

    const staging = new Uint8Array(kernelHeap()!.memory.buffer, 0, STAGING_BYTES).fill(0xcd);
    adam.step(p, g, { expAvg: m, expAvgSq: v }, adam.defaults, 1);
    expect(staging.every((x) => x === 0xcd)).toBe(true); // in place
    adam.step(plain.p, plain.g, { expAvg: plain.m, expAvgSq: plain.v }, adam.defaults, 1);
    expect(p).toEqual(plain.p);
    expect(v).toEqual(plain.v);
    [p, g, m, v, big].forEach((a) => optimizerMemory.free(a));
  });
});

describe('the class API over parameters in the memory', () => {
  /** An Adam whose step function records each call's length. */
  const spyAdam = (params: ParamLike[]) => {
    const calls: number[] = [];
    const alg: Algorithm<AdamOptions> = { ...adam, step: (p, g, s, o, step, start, end) => (calls.push(p.length), adam.step(p, g, s, o, step, start, end)) };
    return { opt: new Optimizer(alg, params, { lr: 0.01, amsgrad: true }), calls };
  };

  it('allocates state there, gives the same bits as ordinary arrays, and frees it in dispose()', () => {
    const inUse = optimizerMemory.bytesInUse;
    const flat = allocateFlat(500);
    ramp(flat.params);
    const views = (f: { params: Float32Array; grads: Float32Array }) => [[0, 200], [200, 500]].map(([s, e]) => ({ data: f.params.subarray(s, e), grad: { data: f.grads.subarray(s, e) } }));
    const inMem = views(flat), plain = views({ params: flat.params.slice(), grads: new Float32Array(500) });
    const a = spyAdam(inMem), b = new Adam(plain, { lr: 0.01, amsgrad: true });
    for (let t = 0; t < 3; t++) {
      flat.grads.forEach((_, i) => (flat.grads[i] = plain[i < 200 ? 0 : 1]!.grad.data[i < 200 ? i : i - 200] = Math.cos(t + i)));
      a.opt.step();
      b.step();
    }
    expect(a.calls).toEqual([500, 500, 500]); // one call over both parameters
    for (const key of ['expAvg', 'expAvgSq', 'maxExpAvgSq']) {
      expect(optimizerMemory.contains(a.opt.getState(inMem[1]!)!.arrays[key]!)).toBe(true);
      expect(a.opt.getState(inMem[1]!)!.arrays[key]).toEqual(b.getState(plain[1]!)!.arrays[key]);
    }
    expect(flat.params).toEqual(new Float32Array([...plain[0]!.data, ...plain[1]!.data]));
    expect(optimizerMemory.bytesInUse).toBe(inUse + 4 * 500 * 5);
    a.opt.dispose();
    expect(a.opt.getState(inMem[0]!)).toBeUndefined();
    expect(optimizerMemory.bytesInUse).toBe(inUse + 4 * 500 * 2);
    optimizerMemory.free(flat.params);
    optimizerMemory.free(flat.grads);
  });

  it('steps parameters allocated before and after a growth, and adjacent, in one call', () => {
    const p1 = optimizerMemory.alloc(16);
    const p2 = optimizerMemory.alloc(bufferLength() / 4); // grows the memory; placed right after p1
    expect(p2.byteOffset).toBe(p1.byteOffset + p1.byteLength);
    expect(p2.buffer).not.toBe(p1.buffer);
    const grads = optimizerMemory.alloc(16 + 32);
    const params = [{ data: p1, grad: { data: grads.subarray(0, 16) } }, { data: p2.subarray(0, 32), grad: { data: grads.subarray(16) } }];
    grads.fill(1);
    const { opt, calls } = spyAdam(params);
    opt.step();
    expect(calls).toEqual([48]);
    expect(p1[0]).toBeCloseTo(-0.01, 6);
    expect(p2[31]).toBeCloseTo(-0.01, 6);
    expect(p2[32]).toBe(0);
    opt.dispose();
    [p1, p2, grads].forEach((a) => optimizerMemory.free(a));
  });

  it('keeps state in ordinary arrays when the parameters are ordinary arrays', () => {
    const p = { data: new Float32Array(300), grad: { data: new Float32Array(300).fill(1) } };
    const opt = new SGD([p], { lr: 0.1, momentum: 0.9 });
    opt.step();
    expect(optimizerMemory.contains(opt.getState(p)!.arrays.momentumBuffer!)).toBe(false);
    expect(p.data[0]).toBeCloseTo(-0.1, 6);
  });
});

describe('sharing the memory with a worker thread (forThread, adopt)', () => {
  it('a thread that adopts it steps its slice in place, with the same bits, and cannot allocate', async () => {
    const { Worker } = await import('node:worker_threads');
    const n = 10_000, half = 5000;
    const [p, g, m, v] = [0, 1, 2, 3].map(() => optimizerMemory.alloc(n)) as [Float32Array, Float32Array, Float32Array, Float32Array];
    ramp(p);
    g.forEach((_, i) => (g[i] = Math.cos(i)));
    const plain = { p: p.slice(), g: g.slice(), m: new Float32Array(n), v: new Float32Array(n) };
    const handle = optimizerMemory.forThread();
    const staging = new Uint8Array(handle.memory.buffer, handle.stagingAt, STAGING_BYTES).fill(0xcd);
    // The thread runs the built package (a worker cannot use the test's source aliases).
    const dist = new URL('../../dist/index.js', import.meta.url).href;
    const code = `
      const { parentPort, workerData: d } = require('node:worker_threads');
      import(${JSON.stringify(dist)}).then(({ optimizerMemory, adamStep, adamDefaults }) => {
        optimizerMemory.adopt(d.handle);
        const view = (at) => new Float32Array(d.handle.memory.buffer, at, d.n);
        adamStep(view(d.p), view(d.g), { expAvg: view(d.m), expAvgSq: view(d.v) }, adamDefaults, 1, 0, d.half);
        let error = '';
        try { optimizerMemory.alloc(4); } catch (e) { error = e.message; }
        parentPort.postMessage(error);
      });`;
    const worker = new Worker(code, { eval: true, workerData: { handle, n, half, p: p.byteOffset, g: g.byteOffset, m: m.byteOffset, v: v.byteOffset } });
    const error = await new Promise<string>((resolve, reject) => worker.once('message', resolve).once('error', reject));
    await worker.terminate();
    expect(error).toMatch(/optimizerMemory.alloc: this thread adopted another thread's memory; allocate on the owning thread/);
    adam.step(p, g, { expAvg: m, expAvgSq: v }, adam.defaults, 1, half, n); // the owner steps the other half
    adam.step(plain.p, plain.g, { expAvg: plain.m, expAvgSq: plain.v }, adam.defaults, 1);
    expect(p).toEqual(plain.p);
    expect(v).toEqual(plain.v);
    expect(staging.every((x) => x === 0xcd)).toBe(true); // the thread's steps ran in place
    optimizerMemory.releaseThread(handle);
    [p, g, m, v].forEach((a) => optimizerMemory.free(a));
  });

  it('names what is wrong with a bad handle or a second memory', () => {
    expect(() => optimizerMemory.adopt({ memory: null, stagingAt: 0 } as never)).toThrow(/optimizerMemory.adopt: expected a handle from optimizerMemory.forThread/);
    const other = new WebAssembly.Memory({ initial: 1, maximum: 2, shared: true });
    expect(() => optimizerMemory.adopt({ memory: other, stagingAt: 0 })).toThrow(/already has its own optimizer memory/);
    expect(() => optimizerMemory.releaseThread({ memory: other, stagingAt: 0 })).toThrow(/releaseThread: expected a handle returned by forThread/);
  });
});

// The row kernels a backend may take over (KernelBackend's optional relu, reluBackwardInto, gelu,
// geluBackward, softmaxCrossEntropy and softmaxCrossEntropyBackward) against the TypeScript kernels,
// their oracles (GELU's: the float64 series of gelu.ts): on every backend that has them (the native addon, once per code path, and 'auto', which
// routes small calls to TypeScript), on sizes off every vector width and the native softmax's 64-row
// blocks, in place, in a SharedArrayBuffer, and on the values where bits and comparisons could disagree.
import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import type { KernelBackend } from './backend.js';
import { loadNativeBackend, nativePath } from './native-backend.js';
import { onEveryNativePath } from './native-paths.testutil.js';
import { TINY_ROWS, routeTiny, rowKernelsOf, type RowKernels } from './select.js';
import { jsBackend } from './matmul.js';
import { relu, reluBackwardInto } from './unary.js';
import { softmaxCrossEntropy, softmaxCrossEntropyBackward } from './softmax.js';
import { gelu, geluBackward, phiReference } from './gelu.js';
import { layerNorm, layerNormBackward } from './norm.js';

const SPECIAL = [0, -0, 1, -1, NaN, -NaN, Infinity, -Infinity, 1e-45, -1e-45, 3.4e38, -3.4e38, 1.5, -2.5, 1e-38, -1e-38];

/** Seeded values in [-scale, scale), as float32, after `prefix`. */
function values(n: number, seed: number, scale = 1, prefix: number[] = []): Float32Array {
  const out = new Float32Array(n);
  out.set(prefix.slice(0, n));
  let s = seed >>> 0;
  for (let i = Math.min(prefix.length, n); i < n; i++) {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    out[i] = (s / 2 ** 32 - 0.5) * 2 * scale;
  }
  return out;
}

/**
 * Checks gelu and geluBackward over n values against the float64 oracle: each result within
 * rel(x) of the size of what it sums (|x·Φ(x)|; |dx₀| + |dy|·(Φ(x) + |x|·φ(x)) for the gradient,
 * whose terms cancel near x = −0.75) or of a float32 denormal, non-finite results equal, nothing
 * past n written.
 */
function checkGelu(k: Pick<RowKernels, 'gelu' | 'geluBackward'>, n: number, rel: (x: number) => number): void {
  const x = values(n + 2, n + 5, 9, SPECIAL);
  const dy = values(n + 2, n + 6);
  const dx0 = values(n + 2, n + 7);
  const out = new Float32Array(n + 2).fill(-7);
  k.gelu(x, out, n);
  const dx = dx0.slice();
  k.geluBackward(x, dy, dx, n);
  const close = (got: number, want: number, scale: number, v: number, what: string) => {
    if (!Number.isFinite(want)) return expect(got, what).toBe(want);
    expect(Math.abs(got - want), what).toBeLessThanOrEqual(rel(v) * scale + 1.2e-38);
  };
  for (let i = 0; i < n; i++) {
    const v = x[i]!;
    const phi = phiReference(v);
    const density = Math.exp(-0.5 * v * v) / Math.sqrt(2 * Math.PI);
    close(out[i]!, v * phi, Math.abs(v * phi), v, `gelu(${v})`);
    close(dx[i]!, dx0[i]! + dy[i]! * (phi + v * density), Math.abs(dx0[i]!) + Math.abs(dy[i]!) * (phi + Math.abs(v) * density), v, `geluBackward at ${v}`);
  }
  expect([...out.subarray(n)]).toEqual([-7, -7]);
  expect([...dx.subarray(n)]).toEqual([...dx0.subarray(n)]);
  const inPlace = x.slice(0, n);
  k.gelu(inPlace, inPlace, n);
  expect(bits(inPlace)).toEqual(bits(out.subarray(0, n)));
}

const bits = (x: Float32Array) => [...new Uint32Array(x.buffer, x.byteOffset, x.length)];

function suite(getKernels: () => RowKernels): void {
  for (const n of [0, 1, 3, 16, 17, 255, 256, 1000, 25600 + 5]) {
    it(`relu and reluBackwardInto over ${n} elements: the oracle's bits, in place too, nothing past n`, () => {
      const k = getKernels();
      const x = values(n + 2, n, 2, SPECIAL);
      const dy = values(n + 2, n + 1);
      const want = new Float32Array(n + 2).fill(-7);
      relu(x, want, n);
      const got = new Float32Array(n + 2).fill(-7);
      k.relu(x, got, n);
      expect(bits(got)).toEqual(bits(want));
      const inPlace = x.slice();
      k.relu(inPlace, inPlace, n);
      expect(bits(inPlace.subarray(0, n))).toEqual(bits(want.subarray(0, n)));

      const wantDx = new Float32Array(n + 2).fill(-7);
      reluBackwardInto(x, dy, wantDx, n);
      const gotDx = new Float32Array(n + 2).fill(-7);
      k.reluBackwardInto(x, dy, gotDx, n);
      expect(bits(gotDx)).toEqual(bits(wantDx));
      const dyInPlace = dy.slice();
      k.reluBackwardInto(x, dyInPlace, dyInPlace, n);
      expect(bits(dyInPlace.subarray(0, n))).toEqual(bits(wantDx.subarray(0, n)));
    });
  }

  for (const n of [1, 7, 17, 256, 1000, 4099]) {
    it(`gelu and geluBackward over ${n} elements: the float64 oracle's values within 5e-7 + 1e-7·x² of their size, in place too`, () => {
      // float32's rounding of −x²/2 before its exp: see native/rows.c.
      checkGelu(getKernels(), n, (x) => 5e-7 + 1e-7 * x * x);
    });
  }

  /** max |a − b| over max(1, max |b|): float32 arithmetic against the float64 kernel. */
  const relErr = (a: Float32Array, b: Float32Array) => {
    let num = 0, den = 1;
    for (let i = 0; i < b.length; i++) {
      num = Math.max(num, Math.abs(a[i]! - b[i]!));
      den = Math.max(den, Math.abs(b[i]!));
    }
    return num / den;
  };

  for (const [rows, d] of [[1, 1], [3, 3], [5, 8], [7, 17], [130, 64], [2, 100]] as const) {
    for (const affine of [true, false]) {
      it(`layerNorm and its backward on (${rows}, ${d})${affine ? ' with weight and bias' : ', no weight or bias'}: the oracle's within 2e-6, gradients accumulated`, () => {
        const k = getKernels();
        const x = values(rows * d, rows * 7 + d, 3);
        const w = affine ? values(d, d + 1, 2) : null, b = affine ? values(d, d + 2) : null;
        const want = new Float32Array(rows * d), wm = new Float32Array(rows), wr = new Float32Array(rows);
        layerNorm(x, w, b, want, wm, wr, rows, d, 1e-5);
        const got = new Float32Array(rows * d).fill(NaN), gm = new Float32Array(rows).fill(NaN), gr = new Float32Array(rows).fill(NaN);
        k.layerNorm(x, w, b, got, gm, gr, rows, d, 1e-5);
        expect(relErr(got, want)).toBeLessThan(2e-6);
        expect(relErr(gm, wm)).toBeLessThan(2e-6);
        expect(relErr(gr, wr)).toBeLessThan(2e-6);

        const dy = values(rows * d, rows + d + 3);
        const start = values(rows * d, 9), wStart = values(d, 10), bStart = values(d, 11);
        const [dx, dw, db] = [start.slice(), wStart.slice(), bStart.slice()];
        layerNormBackward(x, w, wm, wr, dy, dx, affine ? dw : null, affine ? db : null, rows, d);
        const [gx, gw, gb] = [start.slice(), wStart.slice(), bStart.slice()];
        k.layerNormBackward(x, w, wm, wr, dy, gx, affine ? gw : null, affine ? gb : null, rows, d);
        expect(relErr(gx, dx)).toBeLessThan(1e-5);
        expect(relErr(gw, dw)).toBeLessThan(1e-5);
        expect(relErr(gb, db)).toBeLessThan(1e-5);
        if (!affine) expect([...gw, ...gb]).toEqual([...wStart, ...bStart]); // not wanted: untouched
        if (affine) {
          const onlyWeight = wStart.slice();
          k.layerNormBackward(x, w, wm, wr, dy, null, onlyWeight, null, rows, d); // no dx wanted
          expect(relErr(onlyWeight, dw)).toBeLessThan(1e-5);
        }
      });
    }
  }

  // rows × cols: one row, one class, rows across the 64-row blocks, the reference model's and wider.
  for (const [rows, cols] of [[1, 1], [1, 10], [3, 1], [5, 3], [63, 10], [64, 10], [65, 7], [130, 17], [512, 10], [9, 300]] as const) {
    it(`softmaxCrossEntropy and its backward on (${rows}, ${cols}): the oracle's loss, probabilities and gradient to float32 tolerance`, () => {
      const k = getKernels();
      const x = values(rows * cols, rows * 31 + cols, 8);
      const labels = Int32Array.from({ length: rows }, (_, r) => (r * 7 + 3) % cols);
      const want = new Float32Array(rows * cols);
      const wantTotal = softmaxCrossEntropy(x, labels, want, rows, cols);
      const got = new Float32Array(rows * cols).fill(NaN); // overwritten, not read
      const total = k.softmaxCrossEntropy(x, labels, got, rows, cols);
      expect(Math.abs(total - wantTotal)).toBeLessThanOrEqual(1e-6 * Math.max(1, Math.abs(wantTotal)));
      for (let i = 0; i < want.length; i++) expect(Math.abs(got[i]! - want[i]!)).toBeLessThanOrEqual(1e-6);

      const start = values(rows * cols, 5);
      const wantDx = start.slice();
      softmaxCrossEntropyBackward(want, labels, wantDx, rows, cols, 0.25);
      const gotDx = start.slice();
      k.softmaxCrossEntropyBackward(want, labels, gotDx, rows, cols, 0.25);
      for (let i = 0; i < want.length; i++) expect(Math.abs(gotDx[i]! - wantDx[i]!)).toBeLessThanOrEqual(1e-6);
    });
  }

  it('softmaxCrossEntropy stays finite where exp overflows and a label’s probability underflows', () => {
    const k = getKernels();
    const [rows, cols] = [4, 4];
    const x = Float32Array.of(0.5, -1, 2, 0, 1000, 0, -1000, 999, -200, 0, 1, 300, -1e30, 0, -88, -87); // (4, 4)
    const labels = Int32Array.of(2, 2, 0, 2);
    const want = new Float32Array(rows * cols);
    const wantTotal = softmaxCrossEntropy(x, labels, want, rows, cols);
    const got = new Float32Array(rows * cols);
    const total = k.softmaxCrossEntropy(x, labels, got, rows, cols);
    expect(Number.isFinite(total)).toBe(true);
    expect(Math.abs(total - wantTotal)).toBeLessThanOrEqual(1e-6 * Math.abs(wantTotal));
    for (let i = 0; i < want.length; i++) expect(Math.abs(got[i]! - want[i]!)).toBeLessThanOrEqual(1e-6);
    expect(got[6]).toBe(0); // e^−2000 is 0, not a denormal or garbage
  });

  it('reads and writes views into a SharedArrayBuffer in place, and nothing around them', () => {
    const k = getKernels();
    const [rows, cols] = [70, 10];
    const n = rows * cols;
    const whole = new Float32Array(new SharedArrayBuffer(4 * (3 + n + 5 + n + 7)));
    whole.fill(NaN);
    const x = whole.subarray(3, 3 + n);
    const out = whole.subarray(3 + n + 5, 3 + n + 5 + n);
    x.set(values(n, 9, 4));
    const want = new Float32Array(n);
    softmaxCrossEntropy(x, Int32Array.from({ length: rows }, (_, r) => r % cols), want, rows, cols);
    k.softmaxCrossEntropy(x, Int32Array.from({ length: rows }, (_, r) => r % cols), out, rows, cols);
    for (let i = 0; i < n; i++) expect(Math.abs(out[i]! - want[i]!)).toBeLessThanOrEqual(1e-6);
    k.relu(x, out, n);
    expect(whole.subarray(0, 3).every(Number.isNaN) && whole.subarray(3 + n, 3 + n + 5).every(Number.isNaN)).toBe(true);
    expect(whole.subarray(3 + n + 5 + n).every(Number.isNaN)).toBe(true);
  });
}

describe('the TypeScript row kernels (what a backend without them uses)', () => {
  it('are what rowKernelsOf gives for a backend that has none', () => {
    const k = rowKernelsOf(jsBackend);
    expect([k.relu, k.reluBackwardInto, k.gelu, k.geluBackward, k.layerNorm, k.layerNormBackward, k.softmaxCrossEntropy, k.softmaxCrossEntropyBackward]).toEqual([
      relu, reluBackwardInto, gelu, geluBackward, layerNorm, layerNormBackward, softmaxCrossEntropy, softmaxCrossEntropyBackward,
    ]);
  });

  it("gelu's fitted erfc (float64) is within 3e-7 of the float64 series everywhere: 1.2e-7 of the fit and float32's rounding", () => {
    checkGelu({ gelu, geluBackward }, 4099, () => 3e-7);
    // erfc's far tail, where Φ(−|x|) is tiny but its relative error is the fit's.
    const x = Float32Array.from({ length: 200 }, (_, i) => -0.06 * i);
    const out = new Float32Array(200);
    gelu(x, out, 200);
    for (let i = 1; i < 200; i++) expect(Math.abs(out[i]! / (x[i]! * phiReference(x[i]!)) - 1)).toBeLessThanOrEqual(3e-7);
  });
});

describe.skipIf(!existsSync(nativePath))('native row kernels', () => {
  onEveryNativePath(suite);

  it('refuse, touching nothing, labels out of range, short arrays and the wrong array types', () => {
    const native = loadNativeBackend()!;
    const x = new Float32Array(6), probs = new Float32Array(6).fill(7);
    expect(() => native.softmaxCrossEntropy(x, Int32Array.of(0, 3), probs, 2, 3)).toThrow(
      'softmaxCrossEntropy (native): label 3 at position 1 is out of range for 3 classes',
    );
    expect(() => native.softmaxCrossEntropyBackward(x, Int32Array.of(-1, 0), probs, 2, 3, 1)).toThrow('label -1 at position 0 is out of range');
    expect(() => native.softmaxCrossEntropy(x, Int32Array.of(0), probs, 2, 3)).toThrow('softmaxCrossEntropy (native): labels: expected at least 2 elements');
    expect(() => native.softmaxCrossEntropy(x, Float32Array.of(0, 1) as unknown as Int32Array, probs, 2, 3)).toThrow('labels: expected an Int32Array');
    expect(() => native.relu(x, probs, 7)).toThrow('relu (native): x: expected at least 7 elements for these sizes, got 6');
    expect(() => native.reluBackwardInto(x, x, new Float64Array(6) as unknown as Float32Array, 6)).toThrow('reluBackwardInto (native): dx: expected a Float32Array');
    expect([...probs]).toEqual([7, 7, 7, 7, 7, 7]);
  });
});

describe('routeTiny and the row kernels', () => {
  it(`sends calls over fewer than TINY_ROWS = ${TINY_ROWS} elements to TypeScript, the rest to the large backend`, () => {
    const calls: string[] = [];
    const large: KernelBackend = {
      name: 'large',
      matmul: () => undefined,
      relu: () => void calls.push('relu'),
      softmaxCrossEntropy: () => (calls.push('softmaxCrossEntropy'), 0),
    };
    const routed = rowKernelsOf(routeTiny(large, jsBackend, 64));
    const x = new Float32Array(TINY_ROWS);
    routed.relu(x, x, TINY_ROWS - 1);
    routed.relu(x, x, TINY_ROWS);
    routed.softmaxCrossEntropy(x, new Int32Array(TINY_ROWS), x, TINY_ROWS / 2 - 1, 2);
    routed.softmaxCrossEntropy(x, new Int32Array(TINY_ROWS), x, TINY_ROWS / 2, 2);
    routed.reluBackwardInto(x, x, x, TINY_ROWS); // the large backend has none: TypeScript's
    expect(calls).toEqual(['relu', 'softmaxCrossEntropy']);
  });
});

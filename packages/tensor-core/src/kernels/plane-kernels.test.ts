// The plane kernels a backend may take over (KernelBackend's optional im2col, col2im, swap01,
// addRowSums, maxPool2d and maxPool2dBackward) against the TypeScript kernels, their oracles: on
// every code path of the native addon and on 'auto', with padding, strides, non-square kernels and
// windows reaching past the plane, outputs that start as garbage (the kernels must write every
// element: conv2d's scratch is not zeroed), pooling ties, NaN and −∞, and rows of every length
// around the native 2×2 pool's four-output vectors.
import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { Random } from '../random.js';
import { loadNativeBackend, nativePath } from './native-backend.js';
import { onEveryNativePath } from './native-paths.testutil.js';
import { rowKernelsOf, type RowKernels } from './select.js';
import { addRowSums, col2im, im2col, outSize, swap01, type Conv2dShape } from './conv.js';
import { maxPool2d, maxPool2dBackward, type Pool2dShape } from './pool.js';

const rng = new Random(11);
const rand = (n: number) => rng.fillUniform(new Float32Array(n), -1, 1);
const bits = (x: Float32Array | Int32Array) => [...new Uint32Array(x.buffer, x.byteOffset, x.length)];

function conv(n: number, c: number, h: number, w: number, [kh, kw]: number[], [sh, sw]: number[], [ph, pw]: number[]): Conv2dShape {
  return { n, c, h, w, o: 1, kh: kh!, kw: kw!, sh: sh!, sw: sw!, ph: ph!, pw: pw!, oh: outSize(h, kh!, sh!, ph!), ow: outSize(w, kw!, sw!, pw!) };
}

function pool(planes: number, h: number, w: number, [kh, kw]: number[], [sh, sw]: number[], [ph, pw]: number[]): Pool2dShape {
  return { planes, h, w, kh: kh!, kw: kw!, sh: sh!, sw: sw!, ph: ph!, pw: pw!, oh: outSize(h, kh!, sh!, ph!), ow: outSize(w, kw!, sw!, pw!) };
}

const CONVS = [
  conv(2, 3, 9, 8, [3, 3], [1, 1], [1, 1]),
  conv(1, 1, 28, 28, [3, 3], [1, 1], [1, 1]),
  conv(3, 4, 11, 11, [5, 5], [2, 2], [2, 2]),
  conv(2, 2, 7, 5, [2, 3], [3, 2], [1, 0]),
  conv(1, 2, 3, 3, [5, 5], [1, 1], [2, 2]), // the kernel wider than the image
  conv(2, 2, 6, 7, [3, 5], [1, 1], [1, 2]), // "same" width with a non-square kernel: native's whole-plane shifts
  conv(2, 3, 5, 6, [1, 1], [1, 1], [0, 0]), // 1×1: a plain copy
];

// 2×2 stride 2 on widths that give rows of 1–7 and 14 outputs (the native fast path, its tails and
// an odd height), then the general path: overlapping, padded, non-square windows.
const POOLS = [
  ...[2, 6, 8, 10, 12, 14, 28].map((w) => pool(3, 7, w, [2, 2], [2, 2], [0, 0])),
  pool(5, 28, 28, [2, 2], [2, 2], [0, 0]),
  pool(2, 9, 9, [3, 3], [2, 2], [1, 1]),
  pool(2, 6, 7, [2, 2], [1, 1], [0, 0]),
  pool(3, 8, 9, [2, 3], [1, 2], [1, 1]),
];

/** Values with ties (multiples of 1/4), and a NaN, a −∞ and a +∞ among them when `specials`. */
function pooled(n: number, specials: boolean): Float32Array {
  const x = rand(n).map((v) => Math.round(v * 4) / 4);
  if (specials && n > 20) {
    x[3] = NaN;
    x[10] = -Infinity;
    x[17] = Infinity;
    x.fill(-Infinity, n - 8); // a whole window of −∞
  }
  return x;
}

function suite(getKernels: () => RowKernels): void {
  for (const s of CONVS) {
    it(`im2col and col2im: the oracle's bits, every column written (${JSON.stringify(s)})`, () => {
      const k = getKernels();
      const x = rand(s.n * s.c * s.h * s.w);
      const size = s.c * s.kh * s.kw * s.n * s.oh * s.ow;
      const want = new Float32Array(size);
      im2col(x, want, s);
      const got = new Float32Array(size + 3).fill(NaN);
      k.im2col(x, got, s);
      expect(bits(got.subarray(0, size))).toEqual(bits(want));
      expect(got.subarray(size).every(Number.isNaN)).toBe(true);

      const dcols = rand(size);
      const start = rand(x.length);
      const wantDx = start.slice();
      col2im(dcols, wantDx, s);
      const gotDx = start.slice();
      k.col2im(dcols, gotDx, s);
      expect(bits(gotDx)).toEqual(bits(wantDx));
    });
  }

  it('swap01 and addRowSums: the oracle (bits for the swap, float32 rounding for the sums)', () => {
    const k = getKernels();
    for (const [a, b, inner] of [[3, 5, 7], [32, 4, 196], [1, 9, 1]] as const) {
      const x = rand(a * b * inner);
      for (const accumulate of [false, true]) {
        const want = rand(x.length);
        const got = want.slice();
        swap01(x, want, a, b, inner, accumulate);
        k.swap01(x, got, a, b, inner, accumulate);
        expect(bits(got)).toEqual(bits(want));
      }
      const sums = rand(a);
      const wantSums = sums.slice();
      addRowSums(x, wantSums, a, b * inner);
      k.addRowSums(x, sums, a, b * inner);
      for (let r = 0; r < a; r++) expect(Math.abs(sums[r]! - wantSums[r]!)).toBeLessThanOrEqual(2e-7 * (1 + Math.abs(wantSums[r]!)) * Math.sqrt(b * inner));
    }
  });

  for (const s of POOLS) {
    it(`maxPool2d and its backward: the oracle's maxima, positions and gradient, ties, NaN and −∞ (${JSON.stringify(s)})`, () => {
      const k = getKernels();
      const n = s.planes * s.oh * s.ow;
      const x = pooled(s.planes * s.h * s.w, true);
      const want = new Float32Array(n), wantAt = new Int32Array(n);
      maxPool2d(x, want, wantAt, s);
      const got = new Float32Array(n).fill(7), at = new Int32Array(n).fill(-5);
      k.maxPool2d(x, got, at, s);
      expect(bits(got)).toEqual(bits(want));
      expect([...at]).toEqual([...wantAt]);

      const dy = rand(n);
      const start = rand(x.length);
      const wantDx = start.slice();
      maxPool2dBackward(dy, wantAt, wantDx, s);
      const gotDx = start.slice();
      k.maxPool2dBackward(dy, at, gotDx, s);
      expect(bits(gotDx)).toEqual(bits(wantDx));
    });
  }
}

describe.skipIf(!existsSync(nativePath))('native plane kernels', () => {
  onEveryNativePath(suite, "'auto'");

  it('refuse, touching nothing, short arrays, a zero stride and positions outside the plane', () => {
    const native = loadNativeBackend()!;
    const s = conv(1, 1, 4, 4, [3, 3], [1, 1], [1, 1]);
    const cols = new Float32Array(9 * 16).fill(7);
    expect(() => native.im2col(new Float32Array(15), cols, s)).toThrow('im2col (native): x: expected at least 16 elements for these sizes, got 15');
    expect(() => native.im2col(new Float32Array(16), cols.subarray(1), s)).toThrow('im2col (native): cols: expected at least 144 elements');
    expect(() => native.col2im(cols, new Float32Array(16), { ...s, sw: 0 })).toThrow('col2im (native): sw: expected at least 1, got 0');
    expect(cols.every((v) => v === 7)).toBe(true);
    const p = pool(1, 4, 4, [2, 2], [2, 2], [0, 0]);
    const dx = new Float32Array(16).fill(3);
    expect(() => native.maxPool2dBackward(new Float32Array(4), Int32Array.of(0, 2, 16, 10), dx, p)).toThrow(
      'maxPool2dBackward (native): argmax 16 at position 2 lies outside its 4×4 plane',
    );
    expect(() => native.maxPool2d(new Float32Array(16), new Float32Array(4), new Float32Array(4) as unknown as Int32Array, p)).toThrow('maxPool2d (native): argmax: expected an Int32Array');
    expect(() => native.swap01(new Float32Array(5), new Float32Array(6), 2, 3, 1, false)).toThrow('swap01 (native): x: expected at least 6 elements');
    expect(() => native.addRowSums(new Float32Array(6), new Float32Array(1), 2, 3)).toThrow('addRowSums (native): out: expected at least 2 elements');
    expect(dx.every((v) => v === 3)).toBe(true);
  });
});

describe('the TypeScript plane kernels (what a backend without them uses)', () => {
  it('are what rowKernelsOf gives for a backend that has none', () => {
    const k = rowKernelsOf({ name: 'bare', matmul: () => undefined });
    expect([k.im2col, k.col2im, k.swap01, k.addRowSums, k.maxPool2d, k.maxPool2dBackward]).toEqual([im2col, col2im, swap01, addRowSums, maxPool2d, maxPool2dBackward]);
  });
});

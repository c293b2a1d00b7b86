// conv2d as im2col + matmul against the naive seven loops, on the portable backend and on the
// selected one (WebAssembly when built), including accumulation into existing gradients.
import { describe, expect, it } from 'vitest';
import { Random } from '../random.js';
import { jsBackend } from './matmul.js';
import { backend as selected } from './select.js';
import { conv2d, conv2dBackward, conv2dReference, outSize, type Conv2dShape } from './conv.js';

const rng = new Random(7);
const rand = (n: number) => rng.fillUniform(new Float32Array(n), -1, 1);

function shape(n: number, c: number, h: number, w: number, o: number, k: number, s: number, p: number): Conv2dShape {
  return { n, c, h, w, o, kh: k, kw: k, sh: s, sw: s, ph: p, pw: p, oh: outSize(h, k, s, p), ow: outSize(w, k, s, p) };
}

describe.each([jsBackend, selected])('conv2d on $name', (mm) => {
  for (const s of [shape(2, 3, 9, 8, 5, 3, 1, 1), shape(1, 1, 28, 28, 8, 3, 1, 0), shape(3, 4, 11, 11, 6, 5, 2, 2)]) {
    it(`equals the seven loops: ${JSON.stringify(s)}`, () => {
      const p = s.oh * s.ow, np = s.n * p, k = s.c * s.kh * s.kw;
      const x = rand(s.n * s.c * s.h * s.w), w = rand(s.o * k), b = rand(s.o);
      const want = new Float32Array(s.n * s.o * p);
      conv2dReference(x, w, b, want, s);
      // Garbage in the output and the scratch, as the autograd op's unzeroed buffers hold: every element must be written.
      const got = new Float32Array(want.length).fill(NaN);
      const cols = new Float32Array(k * np).fill(NaN), tmp = new Float32Array(s.o * np).fill(NaN);
      conv2d(mm, x, w, b, got, cols, tmp, s);
      for (let i = 0; i < want.length; i++) expect(got[i]).toBeCloseTo(want[i]!, 4);

      // Backward accumulates: start every gradient at 1 and check dW against its definition.
      const dy = rand(want.length);
      const dw = new Float32Array(w.length).fill(1), db = new Float32Array(s.o).fill(1), dx = new Float32Array(x.length).fill(1);
      conv2dBackward(mm, w, cols, dy, tmp, cols, dx, dw, db, s);
      // dW[o, c, i, j] = Σ dy[n, o, y, x] · x[n, c, y·s − p + i, x·s − p + j]: the forward of x against dy.
      const wantDw = new Float64Array(w.length).fill(1);
      const wantDx = new Float64Array(x.length).fill(1);
      for (let n = 0; n < s.n; n++) for (let o = 0; o < s.o; o++) for (let oy = 0; oy < s.oh; oy++) for (let ox = 0; ox < s.ow; ox++) {
        const g = dy[((n * s.o + o) * s.oh + oy) * s.ow + ox]!;
        for (let c = 0; c < s.c; c++) for (let i = 0; i < s.kh; i++) for (let j = 0; j < s.kw; j++) {
          const iy = oy * s.sh - s.ph + i, ix = ox * s.sw - s.pw + j;
          if (iy < 0 || iy >= s.h || ix < 0 || ix >= s.w) continue;
          const xi = ((n * s.c + c) * s.h + iy) * s.w + ix, wi = ((o * s.c + c) * s.kh + i) * s.kw + j;
          wantDw[wi]! += g * x[xi]!;
          wantDx[xi]! += g * w[wi]!;
        }
      }
      for (let i = 0; i < w.length; i++) expect(dw[i]).toBeCloseTo(wantDw[i]!, 3);
      for (let i = 0; i < x.length; i++) expect(dx[i]).toBeCloseTo(wantDx[i]!, 3);
      for (let o = 0; o < s.o; o++) {
        let sum = 1;
        for (let n = 0; n < s.n; n++) for (let q = 0; q < p; q++) sum += dy[(n * s.o + o) * p + q]!;
        expect(db[o]).toBeCloseTo(sum, 3);
      }
    });
  }
});

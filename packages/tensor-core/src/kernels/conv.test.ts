// conv2d against the naive seven loops: as im2col + matmul on the portable backend and on the
// selected one (WebAssembly when built), and as the native addon's whole convolution (conv2d and
// conv2dBackward of native/conv.c) on every code path it has — including accumulation into existing
// gradients, a batch split into several chunks of images with a short last one, the direct
// convolutions of the AVX-512 path, no bias, and the gradients asked for one at a time (a first
// layer has no input gradient).
import { describe, expect, it } from 'vitest';
import { Random } from '../random.js';
import { jsBackend } from './matmul.js';
import { loadNativeBackend, nativeIsas } from './native-backend.js';
import { backend as selected } from './select.js';
import { conv2d, conv2dBackward, conv2dReference, outSize, type Conv2dShape } from './conv.js';
import type { KernelBackend } from './backend.js';

const rng = new Random(7);
const rand = (n: number) => rng.fillUniform(new Float32Array(n), -1, 1);

function shape(n: number, c: number, h: number, w: number, o: number, k: number, s: number, p: number): Conv2dShape {
  return { n, c, h, w, o, kh: k, kw: k, sh: s, sw: s, ph: p, pw: p, oh: outSize(h, k, s, p), ow: outSize(w, k, s, p) };
}

const SHAPES = [
  shape(2, 3, 9, 8, 5, 3, 1, 1),
  shape(1, 1, 28, 28, 8, 3, 1, 0),
  shape(3, 4, 11, 11, 6, 5, 2, 2),
  // 16·9 × 144 columns an image: native/conv.c takes 6 images a chunk, so 7 make a chunk of 6 and one of 1.
  shape(7, 16, 12, 12, 4, 3, 1, 1),
  shape(2, 5, 6, 7, 3, 1, 1, 0), // 1×1
  // 32 channels in and out: native-avx512 runs the forward and the input gradient as direct
  // convolutions (14 pixels a tile: 16 wide is a full tile and a partial one), then no padding, a 5×5.
  shape(2, 32, 7, 16, 32, 3, 1, 1),
  shape(2, 32, 9, 9, 64, 5, 1, 0),
  shape(1, 32, 6, 5, 32, 5, 1, 2),
];

/** A convolution's forward and backward as one backend runs them. */
interface Conv {
  forward(x: Float32Array, w: Float32Array, b: Float32Array | null, out: Float32Array, s: Conv2dShape): void;
  backward(x: Float32Array, w: Float32Array, dy: Float32Array, dx: Float32Array | null, dw: Float32Array | null, db: Float32Array | null, s: Conv2dShape): void;
}

/** The composition in conv.ts on `mm`'s products, its scratch kept between the two calls. */
function composed(mm: KernelBackend): Conv {
  let cols = new Float32Array(0), tmp = new Float32Array(0);
  return {
    forward(x, w, b, out, s) {
      const np = s.n * s.oh * s.ow;
      // Garbage in the scratch, as the autograd op's unzeroed buffers hold: every element must be written.
      cols = new Float32Array(s.c * s.kh * s.kw * np).fill(NaN);
      tmp = new Float32Array(s.o * np).fill(NaN);
      conv2d(mm, x, w, b, out, cols, tmp, s);
    },
    backward(_x, w, dy, dx, dw, db, s) {
      conv2dBackward(mm, w, cols, dy, tmp, cols, dx, dw, db, s);
    },
  };
}

function whole(mm: KernelBackend): Conv {
  return { forward: (...a) => mm.conv2d!(...a), backward: (...a) => mm.conv2dBackward!(...a) };
}

/** dW, dx and db from their definitions, in float64, each starting at 1. */
function gradients(x: Float32Array, w: Float32Array, dy: Float32Array, s: Conv2dShape) {
  const dw = new Float64Array(w.length).fill(1), dx = new Float64Array(x.length).fill(1), db = new Float64Array(s.o).fill(1);
  for (let n = 0; n < s.n; n++) for (let o = 0; o < s.o; o++) for (let oy = 0; oy < s.oh; oy++) for (let ox = 0; ox < s.ow; ox++) {
    const g = dy[((n * s.o + o) * s.oh + oy) * s.ow + ox]!;
    db[o]! += g;
    for (let c = 0; c < s.c; c++) for (let i = 0; i < s.kh; i++) for (let j = 0; j < s.kw; j++) {
      const iy = oy * s.sh - s.ph + i, ix = ox * s.sw - s.pw + j;
      if (iy < 0 || iy >= s.h || ix < 0 || ix >= s.w) continue;
      const xi = ((n * s.c + c) * s.h + iy) * s.w + ix, wi = ((o * s.c + c) * s.kh + i) * s.kw + j;
      dw[wi]! += g * x[xi]!;
      dx[xi]! += g * w[wi]!;
    }
  }
  return { dw, dx, db };
}

function close(got: Float32Array, want: ArrayLike<number>, digits: number): void {
  expect(got.length).toBe(want.length);
  for (let i = 0; i < want.length; i++) expect(got[i]).toBeCloseTo(want[i]!, digits);
}

function suite(make: () => Conv): void {
  for (const s of SHAPES) {
    it(`equals the seven loops, and its gradients their definitions: ${JSON.stringify(s)}`, () => {
      const conv = make();
      const p = s.oh * s.ow, k = s.c * s.kh * s.kw;
      const x = rand(s.n * s.c * s.h * s.w), w = rand(s.o * k), b = rand(s.o);
      const want = new Float32Array(s.n * s.o * p);
      conv2dReference(x, w, b, want, s);
      const got = new Float32Array(want.length).fill(NaN); // every element must be written
      conv.forward(x, w, b, got, s);
      close(got, want, 4);

      // Backward accumulates: every gradient starts at 1.
      const dy = rand(want.length);
      const dw = new Float32Array(w.length).fill(1), db = new Float32Array(s.o).fill(1), dx = new Float32Array(x.length).fill(1);
      conv.backward(x, w, dy, dx, dw, db, s);
      const g = gradients(x, w, dy, s);
      close(dw, g.dw, 3);
      close(dx, g.dx, 3);
      close(db, g.db, 3);
    });
  }

  it('without a bias, and with each gradient asked for alone (the others untouched)', () => {
    const s = SHAPES[3]!;
    const conv = make();
    const x = rand(s.n * s.c * s.h * s.w), w = rand(s.o * s.c * s.kh * s.kw), dy = rand(s.n * s.o * s.oh * s.ow);
    const want = new Float32Array(dy.length);
    conv2dReference(x, w, null, want, s);
    const got = new Float32Array(dy.length).fill(NaN);
    conv.forward(x, w, null, got, s);
    close(got, want, 4);
    const g = gradients(x, w, dy, s);
    const ones = (n: number) => new Float32Array(n).fill(1);
    for (const only of ['dx', 'dw', 'db'] as const) {
      conv.forward(x, w, null, got, s);
      const dx = only === 'dx' ? ones(x.length) : null, dw = only === 'dw' ? ones(w.length) : null, db = only === 'db' ? ones(s.o) : null;
      conv.backward(x, w, dy, dx, dw, db, s);
      close((dx ?? dw ?? db)!, g[only], 3);
    }
  });
}

describe.each([jsBackend, selected])('conv2d as im2col + matmul on $name', (mm) => suite(() => composed(mm)));

for (const isa of nativeIsas()) {
  describe(`conv2d as native-${isa}'s whole convolution`, () => {
    const native = loadNativeBackend({ isa });
    suite(() => {
      if (native === null) throw new Error(`the addon offers '${isa}' but did not load it`);
      return whole(native);
    });
  });
}

// conv2d, maxPool2d, avgPool2d and flatten: forward and gradients against float64 loops and central
// finite differences (odd shapes, stride and padding combinations, batch 1), and bad arguments.
import { describe, expect, it } from 'vitest';
import { Random } from '../random.js';
import { Tensor } from './tensor.js';
import { avgPool2d, conv2d, maxPool2d } from './conv.js';
import { flatten } from './layout.js';
import { gradCheck, type Ref } from './gradcheck.testutil.js';

const rng = new Random(13);
const rand = (shape: number[]) => Tensor.uniform(shape, rng, -1, 1);
const TOL = { forward: 1e-5, grad: 2e-4 };

function expectClose(op: (xs: Tensor[]) => Tensor, ref: Ref, inputs: Tensor[]) {
  const { forwardError, gradError } = gradCheck(op, ref, inputs);
  expect(forwardError).toBeLessThan(TOL.forward);
  expect(gradError).toBeLessThan(TOL.grad);
}

const out = (size: number, k: number, s: number, p: number) => Math.floor((size + 2 * p - k) / s) + 1;

/** The seven loops, in float64. */
function convRef(n: number, c: number, h: number, w: number, o: number, kh: number, kw: number, sh: number, sw: number, ph: number, pw: number, bias: boolean): Ref {
  const oh = out(h, kh, sh, ph), ow = out(w, kw, sw, pw);
  return ([x, wt, b]) => {
    const y = new Float64Array(n * o * oh * ow);
    for (let i = 0; i < n; i++) for (let oc = 0; oc < o; oc++) for (let oy = 0; oy < oh; oy++) for (let ox = 0; ox < ow; ox++) {
      let s = bias ? b![oc]! : 0;
      for (let ci = 0; ci < c; ci++) for (let a = 0; a < kh; a++) for (let e = 0; e < kw; e++) {
        const iy = oy * sh - ph + a, ix = ox * sw - pw + e;
        if (iy >= 0 && iy < h && ix >= 0 && ix < w) s += x![((i * c + ci) * h + iy) * w + ix]! * wt![((oc * c + ci) * kh + a) * kw + e]!;
      }
      y[((i * o + oc) * oh + oy) * ow + ox] = s;
    }
    return y;
  };
}

function poolRef(kind: 'max' | 'avg', planes: number, h: number, w: number, kh: number, kw: number, sh: number, sw: number, ph: number, pw: number): Ref {
  const oh = out(h, kh, sh, ph), ow = out(w, kw, sw, pw);
  return ([x]) => {
    const y = new Float64Array(planes * oh * ow);
    for (let p = 0; p < planes; p++) for (let oy = 0; oy < oh; oy++) for (let ox = 0; ox < ow; ox++) {
      let best = -Infinity, sum = 0;
      for (let a = 0; a < kh; a++) for (let e = 0; e < kw; e++) {
        const iy = oy * sh - ph + a, ix = ox * sw - pw + e;
        if (iy < 0 || iy >= h || ix < 0 || ix >= w) continue;
        const v = x![(p * h + iy) * w + ix]!;
        best = Math.max(best, v);
        sum += v;
      }
      y[(p * oh + oy) * ow + ox] = kind === 'max' ? best : sum / (kh * kw);
    }
    return y;
  };
}

describe('conv2d: gradients against float64 finite differences', () => {
  // [name, N, C, H, W, O, kh, kw, stride, padding, bias]
  const cases: Array<[string, number, number, number, number, number, number, number, number | [number, number], number | [number, number], boolean]> = [
    ['3×3, no padding', 2, 3, 7, 6, 4, 3, 3, 1, 0, true],
    ['batch 1, padding 1', 1, 2, 5, 5, 3, 3, 3, 1, 1, true],
    ['stride 2, padding 1, odd size', 2, 2, 9, 7, 3, 3, 3, 2, 1, true],
    ['rectangular kernel, stride and padding pairs', 1, 3, 8, 7, 2, 2, 3, [2, 1], [1, 0], false],
    ['1×1 kernel', 3, 4, 3, 5, 5, 1, 1, 1, 0, true],
    ['kernel as large as the padded input', 1, 1, 3, 3, 2, 5, 5, 1, 1, true],
  ];
  for (const [name, n, c, h, w, o, kh, kw, stride, padding, bias] of cases) {
    it(name, () => {
      const [sh, sw] = typeof stride === 'number' ? [stride, stride] : stride;
      const [ph, pw] = typeof padding === 'number' ? [padding, padding] : padding;
      const inputs = [rand([n, c, h, w]), rand([o, c, kh, kw]), ...(bias ? [rand([o])] : [])];
      expectClose(([x, wt, b]) => conv2d(x!, wt!, b ?? null, { stride, padding }), convRef(n, c, h, w, o, kh, kw, sh, sw, ph, pw, bias), inputs);
    });
  }
});

describe('pooling: gradients against float64 finite differences', () => {
  // [name, shape, kernel, stride, padding]
  const cases: Array<[string, number[], number | [number, number], number | [number, number] | undefined, number | [number, number]]> = [
    ['2×2, stride = kernel', [2, 3, 6, 6], 2, undefined, 0],
    ['odd size drops the last row and column', [1, 2, 7, 5], 2, undefined, 0],
    ['3×3 stride 2 padding 1', [2, 2, 7, 7], 3, 2, 1],
    ['overlapping windows, stride 1', [1, 1, 5, 6], 3, 1, 0],
    ['rectangular kernel and padding', [1, 3, 6, 7], [2, 3], [2, 2], [1, 1]],
    ['unbatched (C, H, W)', [3, 5, 5], 2, 1, 1],
  ];
  for (const kind of ['max', 'avg'] as const) {
    for (const [name, shape, kernel, stride, padding] of cases) {
      it(`${kind}Pool2d: ${name}`, () => {
        const [kh, kw] = typeof kernel === 'number' ? [kernel, kernel] : kernel;
        const st = stride ?? kernel;
        const [sh, sw] = typeof st === 'number' ? [st, st] : st;
        const [ph, pw] = typeof padding === 'number' ? [padding, padding] : padding;
        const h = shape[shape.length - 2]!, w = shape[shape.length - 1]!;
        const planes = shape.slice(0, -2).reduce((a, b) => a * b, 1);
        const f = kind === 'max' ? maxPool2d : avgPool2d;
        expectClose(([x]) => f(x!, kernel, { stride, padding }), poolRef(kind, planes, h, w, kh, kw, sh, sw, ph, pw), [rand(shape)]);
      });
    }
  }

  it('maxPool2d picks the first of equal maxima, as PyTorch', () => {
    const x = Tensor.from([1, 3, 3, 0], [1, 1, 2, 2], true);
    maxPool2d(x, 2).sum().backward();
    expect(x.grad!.toArray()).toEqual([0, 1, 0, 0]);
  });
});

describe('flatten', () => {
  it('merges all but the batch dimension by default in nn.Flatten style and passes gradients', () => {
    expectClose(([x]) => flatten(x!, 1), ([x]) => x!.slice(), [rand([2, 3, 2, 2])]);
    expect(flatten(Tensor.zeros([2, 3, 4, 5]), 1, 2).shape).toEqual([2, 12, 5]);
  });
});

describe('bad arguments name both sides', () => {
  it('conv2d', () => {
    expect(() => conv2d(Tensor.zeros([1, 3, 5, 5]), Tensor.zeros([4, 2, 3, 3]))).toThrow('conv2d: the input [1, 3, 5, 5] has 3 channels but the weight [4, 2, 3, 3] expects 2');
    expect(() => conv2d(Tensor.zeros([3, 5, 5]), Tensor.zeros([4, 3, 3, 3]))).toThrow('conv2d: the input must be 4-D (N, C, H, W), got shape [3, 5, 5]');
    expect(() => conv2d(Tensor.zeros([1, 3, 2, 2]), Tensor.zeros([4, 3, 3, 3]))).toThrow('padded by [0, 0] is 2×2, smaller than the kernel 3×3');
    expect(() => conv2d(Tensor.zeros([1, 3, 5, 5]), Tensor.zeros([4, 3, 3, 3]), Tensor.zeros([3]))).toThrow('the bias has shape [3], expected [4]');
    expect(() => conv2d(Tensor.zeros([1, 3, 5, 5]), Tensor.zeros([4, 3, 3, 3]), null, { stride: 0 })).toThrow('stride must be positive integers, got 0');
  });
  it('pooling', () => {
    expect(() => maxPool2d(Tensor.zeros([1, 1, 4, 4]), 2, { padding: 2 })).toThrow('maxPool2d: padding [2, 2] must be at most half the kernel size [2, 2]');
    expect(() => avgPool2d(Tensor.zeros([1, 1, 2, 2]), 3)).toThrow('avgPool2d: the input [1, 1, 2, 2] padded by [0, 0] is smaller than the kernel [3, 3]');
  });
});

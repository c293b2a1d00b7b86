// layerNorm, batchNorm and gelu: forward and gradients against float64 references and central
// finite differences; batch norm's running statistics as PyTorch updates them.
import { describe, expect, it } from 'vitest';
import { Random } from '../random.js';
import { Tensor } from './tensor.js';
import { batchNorm, gelu, layerNorm } from './norm.js';
import { erf } from '../kernels/gelu.js';
import { gradCheck, type Ref } from './gradcheck.testutil.js';

const rng = new Random(29);
const rand = (shape: number[], low = -1, high = 1) => Tensor.uniform(shape, rng, low, high);

function expectClose(op: (xs: Tensor[]) => Tensor, ref: Ref, inputs: Tensor[], grad = 2e-4) {
  const { forwardError, gradError } = gradCheck(op, ref, inputs);
  expect(forwardError).toBeLessThan(1e-5);
  expect(gradError).toBeLessThan(grad);
}

/** Normalise groups given by index lists, then scale and shift by the feature index. */
function normRef(groups: number[][], feature: (i: number) => number, eps: number, affine: boolean): Ref {
  return ([x, w, b]) => {
    const y = new Float64Array(x!.length);
    for (const g of groups) {
      const m = g.reduce((s, i) => s + x![i]!, 0) / g.length;
      const v = g.reduce((s, i) => s + (x![i]! - m) ** 2, 0) / g.length;
      for (const i of g) y[i] = ((x![i]! - m) / Math.sqrt(v + eps)) * (affine ? w![feature(i)]! : 1) + (affine ? b![feature(i)]! : 0);
    }
    return y;
  };
}

describe('layerNorm', () => {
  const cases: Array<[string, number[], number[]]> = [
    ['(B, T, C) over C', [2, 3, 7], [7]],
    ['batch 1, one row', [1, 5], [5]],
    ['over the last two dimensions', [3, 2, 5], [2, 5]],
  ];
  for (const [name, shape, ns] of cases) {
    for (const affine of [true, false]) {
      it(`${name}${affine ? '' : ', no weight or bias'}`, () => {
        const d = ns.reduce((a, b) => a * b, 1);
        const rows = shape.reduce((a, b) => a * b, 1) / d;
        const groups = Array.from({ length: rows }, (_, r) => Array.from({ length: d }, (_, i) => r * d + i));
        const inputs = [rand(shape), ...(affine ? [rand(ns, 0.5, 1.5), rand(ns)] : [])];
        expectClose(([x, w, b]) => layerNorm(x!, ns, w ?? null, b ?? null), normRef(groups, (i) => i % d, 1e-5, affine), inputs);
      });
    }
  }
  it('names both sides of a bad shape', () => {
    expect(() => layerNorm(Tensor.zeros([2, 3, 4]), [3])).toThrow('layerNorm: normalizedShape [3] does not match the trailing dimensions of the input [2, 3, 4]');
    expect(() => layerNorm(Tensor.zeros([2, 4]), [4], Tensor.zeros([5]))).toThrow('layerNorm: the weight has shape [5], expected [4]');
  });
});

describe('batchNorm', () => {
  const channelGroups = (n: number, c: number, p: number) =>
    Array.from({ length: c }, (_, ch) => Array.from({ length: n * p }, (_, k) => (Math.floor(k / p) * c + ch) * p + (k % p)));

  for (const [name, shape] of [['(N, C, H, W)', [3, 4, 3, 2]], ['batch 1', [1, 3, 3, 3]], ['(N, C)', [5, 3]]] as Array<[string, number[]]>) {
    it(`training, ${name}: batch statistics, gradients through them`, () => {
      const [n, c] = shape as [number, number];
      const p = shape.slice(2).reduce((a, b) => a * b, 1);
      const featureOf = (i: number) => Math.floor(i / p) % c;
      expectClose(
        ([x, w, b]) => batchNorm(x!, null, null, w!, b!, { training: true }),
        normRef(channelGroups(n, c, p), featureOf, 1e-5, true),
        [rand(shape), rand([c], 0.5, 1.5), rand([c])],
      );
    });
  }

  it('eval: running statistics are constants', () => {
    const rm = rand([3]), rv = rand([3], 0.5, 2);
    const p = 4;
    expectClose(
      ([x, w, b]) => batchNorm(x!, rm, rv, w!, b!, { training: false }),
      ([x, w, b]) => x!.map((v, i) => {
        const ch = Math.floor(i / p) % 3;
        return ((v - rm.data[ch]!) / Math.sqrt(rv.data[ch]! + 1e-5)) * w![ch]! + b![ch]!;
      }),
      [rand([2, 3, 2, 2]), rand([3]), rand([3])],
    );
  });

  it('updates running statistics as PyTorch: unbiased variance, momentum', () => {
    const x = Tensor.from([1, 2, 3, 4, 10, 20, 30, 50], [2, 2, 2]); // channel 0: 1 2 10 20; channel 1: 3 4 30 50
    const rm = Tensor.zeros([2]), rv = Tensor.full([2], 1);
    batchNorm(x, rm, rv, null, null, { training: true, momentum: 0.1 });
    // torch.nn.functional.batch_norm(x, rm, rv, training=True, momentum=0.1) gives these.
    const mean0 = 33 / 4, mean1 = 87 / 4;
    const uvar = (xs: number[], m: number) => xs.reduce((s, v) => s + (v - m) ** 2, 0) / (xs.length - 1);
    expect(rm.data[0]).toBeCloseTo(0.1 * mean0, 5);
    expect(rm.data[1]).toBeCloseTo(0.1 * mean1, 5);
    expect(rv.data[0]).toBeCloseTo(0.9 + 0.1 * uvar([1, 2, 10, 20], mean0), 4);
    expect(rv.data[1]).toBeCloseTo(0.9 + 0.1 * uvar([3, 4, 30, 50], mean1), 4);
  });

  it('refuses one value per channel in training, as PyTorch', () => {
    expect(() => batchNorm(Tensor.zeros([1, 3]), null, null, null, null, { training: true })).toThrow('expected more than 1 value per channel when training, got input of shape [1, 3]');
    expect(() => batchNorm(Tensor.zeros([2, 3]), Tensor.zeros([4]), Tensor.zeros([3]))).toThrow('runningMean has shape [4], expected [3] (the input [2, 3] has 3 channels)');
  });
});

describe('gelu', () => {
  it('erf matches known values', () => {
    // Values of erf from Abramowitz & Stegun table 7.1 and the limits.
    expect(erf(0)).toBe(0);
    expect(erf(0.5)).toBeCloseTo(0.5204998778130465, 15);
    expect(erf(1)).toBeCloseTo(0.8427007929497149, 15);
    expect(erf(-2)).toBeCloseTo(-0.9953222650189527, 15);
    expect(erf(3)).toBeCloseTo(0.9999779095030014, 15);
    expect(erf(Infinity)).toBe(1);
  });
  it('gradient against finite differences, including the tails', () => {
    const x = rand([4, 9], -3, 3);
    x.data[0] = -7;
    x.data[1] = 6;
    expectClose(([t]) => gelu(t!), ([t]) => t!.map((v) => 0.5 * v * (1 + erf(v / Math.SQRT2))), [x]);
  });
  it('equals PyTorch 1.13 F.gelu at a few points', () => {
    // torch.nn.functional.gelu(torch.tensor([-3., -1., -0.5, 0.5, 1., 3.])).tolist()
    const want = [-0.004049867391586304, -0.1586552858352661, -0.1542687863111496, 0.3457311987876892, 0.8413447141647339, 2.995950222015381];
    const got = gelu(Tensor.from([-3, -1, -0.5, 0.5, 1, 3])).toArray();
    got.forEach((v, i) => expect(v).toBeCloseTo(want[i]!, 6));
  });
});

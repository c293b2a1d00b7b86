// transpose, split, maskedFill, batched matmul and softmax over any axis: forward and gradients
// against float64 references and central finite differences.
import { describe, expect, it } from 'vitest';
import { Random } from '../random.js';
import { IntTensor, Tensor } from './tensor.js';
import { causalMask, maskedFill, split, transpose } from './layout.js';
import * as ops from './ops.js';
import { gradCheck, type Ref } from './gradcheck.testutil.js';

const rng = new Random(31);
const rand = (shape: number[]) => Tensor.uniform(shape, rng, -1, 1);

function expectClose(op: (xs: Tensor[]) => Tensor, ref: Ref, inputs: Tensor[]) {
  const { forwardError, gradError } = gradCheck(op, ref, inputs);
  expect(forwardError).toBeLessThan(1e-5);
  expect(gradError).toBeLessThan(2e-4);
}

const strides = (shape: number[]) => shape.map((_, i) => shape.slice(i + 1).reduce((a, b) => a * b, 1));
/** Element-by-element permutation of axes a and b, by index arithmetic. */
function transposeRef(shape: number[], a: number, b: number): Ref {
  const outShape = [...shape];
  [outShape[a], outShape[b]] = [shape[b]!, shape[a]!];
  const inS = strides(shape), outS = strides(outShape);
  return ([x]) => {
    const y = new Float64Array(x!.length);
    for (let i = 0; i < x!.length; i++) {
      const idx = inS.map((s, d) => Math.floor(i / s) % shape[d]!);
      [idx[a], idx[b]] = [idx[b]!, idx[a]!];
      y[idx.reduce((s, v, d) => s + v * outS[d]!, 0)] = x![i]!;
    }
    return y;
  };
}

describe('transpose', () => {
  for (const [shape, a, b] of [[[3, 5], 0, 1], [[2, 3, 4, 5], 1, 2], [[2, 3, 4, 5], 3, 1], [[1, 4, 3], -1, -2], [[2, 3, 2, 3, 2], 0, 4]] as Array<[number[], number, number]>) {
    it(`${JSON.stringify(shape)} axes ${a}, ${b}`, () => {
      const n = shape.length;
      expectClose(([x]) => transpose(x!, a, b), transposeRef(shape, (a + n) % n, (b + n) % n), [rand(shape)]);
    });
  }
  it('names a bad axis with the shape', () => {
    expect(() => transpose(Tensor.zeros([2, 3]), 0, 2)).toThrow('transpose: axis 2 is out of range for shape [2, 3] (2 dimensions)');
  });
});

describe('split', () => {
  it('pieces along a middle axis, the last one shorter, each with its gradient', () => {
    const x = rand([2, 7, 3]);
    expectClose(([t]) => {
      const [p, q, r] = split(t!, 3, 1);
      expect([p!.shape, q!.shape, r!.shape]).toEqual([[2, 3, 3], [2, 3, 3], [2, 1, 3]]);
      // Weight the pieces differently so a gradient sent to the wrong piece shows.
      return ops.cat([ops.reshape(p!, [2, 9]), ops.reshape(ops.mul(q!, 2), [2, 9]), ops.reshape(ops.mul(r!, 3), [2, 3])]);
    }, ([t]) => {
      const y = new Float64Array(42);
      for (let b = 0; b < 2; b++) for (let i = 0; i < 7; i++) for (let c = 0; c < 3; c++) {
        const piece = Math.floor(i / 3), within = i % 3;
        const col = piece === 0 ? within * 3 + c : piece === 1 ? 9 + within * 3 + c : 18 + c;
        y[b * 21 + col] = t![(b * 7 + i) * 3 + c]! * (piece + 1);
      }
      return y;
    }, [x]);
  });
});

describe('maskedFill and the causal mask', () => {
  it('causalMask is torch.triu(ones, 1)', () => {
    expect(Array.from(causalMask(3).data)).toEqual([0, 1, 1, 0, 0, 1, 0, 0, 0]);
  });
  it('fills masked positions, broadcast over leading dimensions; no gradient flows there', () => {
    const mask = causalMask(4);
    expectClose(([x]) => maskedFill(x!, mask, 0.5), ([x]) => x!.map((v, i) => (mask.data[i % 16] ? 0.5 : v)), [rand([2, 3, 4, 4])]);
  });
  it('−∞ then softmax gives zero weight above the diagonal', () => {
    const p = ops.softmax(maskedFill(rand([2, 3, 3]), causalMask(3), -Infinity));
    expect(p.data[1]).toBe(0);
    expect(p.data[0]).toBe(1);
  });
  it('names both shapes when the mask does not fit', () => {
    expect(() => maskedFill(Tensor.zeros([2, 4, 4]), causalMask(3), 0)).toThrow('maskedFill: mask of shape [3, 3] does not match the trailing dimensions of x [2, 4, 4]');
    expect(() => maskedFill(Tensor.zeros([2]), IntTensor.from([1]), 0)).toThrow('maskedFill: mask');
  });
});

function bmmRef(batches: number, m: number, k: number, n: number, aShared: boolean, bShared: boolean): Ref {
  return ([a, b]) => {
    const y = new Float64Array(batches * m * n);
    for (let t = 0; t < batches; t++) for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) {
      let s = 0;
      for (let p = 0; p < k; p++) s += a![(aShared ? 0 : t * m * k) + i * k + p]! * b![(bShared ? 0 : t * k * n) + p * n + j]!;
      y[(t * m + i) * n + j] = s;
    }
    return y;
  };
}

describe('batched matmul', () => {
  it('(B, H, M, K)·(B, H, K, N)', () => {
    expectClose(([a, b]) => ops.matmul(a!, b!), bmmRef(6, 3, 5, 4, false, false), [rand([2, 3, 3, 5]), rand([2, 3, 5, 4])]);
  });
  it('(B, M, K)·(K, N): a shared weight', () => {
    expectClose(([a, b]) => ops.matmul(a!, b!), bmmRef(3, 4, 5, 2, false, true), [rand([3, 4, 5]), rand([5, 2])]);
  });
  it('(M, K)·(B, K, N): a shared left operand, its gradient summed', () => {
    expectClose(([a, b]) => ops.matmul(a!, b!), bmmRef(2, 3, 4, 5, true, false), [rand([3, 4]), rand([2, 4, 5])]);
  });
  it('batch 1 with odd sizes', () => {
    expectClose(([a, b]) => ops.matmul(a!, b!), bmmRef(1, 1, 7, 3, false, false), [rand([1, 1, 7]), rand([1, 7, 3])]);
  });
  it('names both shapes when batch or inner dimensions differ', () => {
    expect(() => ops.matmul(Tensor.zeros([2, 3, 4]), Tensor.zeros([3, 4, 5]))).toThrow('matmul: batch dimensions differ: [2, 3, 4] · [3, 4, 5] ([2] vs [3])');
    expect(() => ops.matmul(Tensor.zeros([2, 3, 4]), Tensor.zeros([2, 5, 5]))).toThrow('matmul: inner dimensions differ: [2, 3, 4] · [2, 5, 5] (4 vs 5)');
  });
  it('linear takes (…, in) as PyTorch', () => {
    const x = rand([2, 3, 4]), w = rand([5, 4]), b = rand([5]);
    expectClose(([t, u, v]) => ops.linear(t!, u!, v!), ([t, u, v]) => {
      const y = new Float64Array(30);
      for (let r = 0; r < 6; r++) for (let o = 0; o < 5; o++) {
        let s = v![o]!;
        for (let i = 0; i < 4; i++) s += t![r * 4 + i]! * u![o * 4 + i]!;
        y[r * 5 + o] = s;
      }
      return y;
    }, [x, w, b]);
    expect(ops.linear(x, w, b).shape).toEqual([2, 3, 5]);
  });
});

describe('softmax and logSoftmax over any axis', () => {
  function softmaxRef(shape: number[], axis: number, log: boolean): Ref {
    const s = strides(shape);
    return ([x]) => {
      const y = new Float64Array(x!.length);
      for (let i = 0; i < x!.length; i++) {
        const pos = Math.floor(i / s[axis]!) % shape[axis]!;
        const start = i - pos * s[axis]!;
        const vals = Array.from({ length: shape[axis]! }, (_, j) => x![start + j * s[axis]!]!);
        const max = Math.max(...vals);
        const lse = max + Math.log(vals.reduce((a, v) => a + Math.exp(v - max), 0));
        y[i] = log ? x![i]! - lse : Math.exp(x![i]! - lse);
      }
      return y;
    };
  }
  for (const [shape, axis] of [[[2, 3, 4], -1], [[2, 3, 4], 1], [[2, 3, 4], 0], [[3, 2, 2, 5], 2]] as Array<[number[], number]>) {
    for (const log of [false, true]) {
      it(`${log ? 'logSoftmax' : 'softmax'} ${JSON.stringify(shape)} axis ${axis}`, () => {
        const f = log ? ops.logSoftmax : ops.softmax;
        expectClose(([x]) => f(x!, axis), softmaxRef(shape, (axis + shape.length) % shape.length, log), [rand(shape)]);
      });
    }
  }
});

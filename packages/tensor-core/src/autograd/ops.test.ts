import { describe, expect, it } from 'vitest';
import { Random } from '../random.js';
import { IntTensor, Tensor } from './tensor.js';
import * as ops from './ops.js';
import { bceWithLogits, crossEntropy, mseLoss } from './losses.js';
import { noGrad } from './grad-mode.js';
import { BufferPool, reusingBuffers } from './buffers.js';
import { gradCheck, type Ref } from './gradcheck.testutil.js';

const rng = new Random(2024);
const rand = (shape: number[], low = -1, high = 1) => Tensor.uniform(shape, rng, low, high);
/** Values bounded away from 0, so relu's kink is never inside a finite-difference step. */
const awayFromZero = (shape: number[]) => {
  const t = rand(shape);
  for (let i = 0; i < t.size; i++) t.data[i] = Math.sign(t.data[i]! || 1) * (0.05 + Math.abs(t.data[i]!));
  return t;
};
const TOL = { forward: 1e-5, grad: 2e-4 };

function expectClose(op: (xs: Tensor[]) => Tensor, ref: Ref, inputs: Tensor[]) {
  const { forwardError, gradError } = gradCheck(op, ref, inputs);
  expect(forwardError).toBeLessThan(TOL.forward);
  expect(gradError).toBeLessThan(TOL.grad);
}

// Plain float64 references, written for obviousness.
const map = (f: (v: number) => number): Ref => ([x]) => x!.map(f);
/** Reads operand v, of `shape`, broadcast to an output (rows, cols) at (r, c). */
function at(v: Float64Array, shape: number[], rows: number, cols: number, r: number, c: number): number {
  if (v.length === 1) return v[0]!;
  if (v.length === rows * cols) return v[r * cols + c]!;
  if (shape[shape.length - 1] === cols) return v[c]!;
  return v[r]!;
}
function binaryRef(f: (a: number, b: number) => number, as: number[], bs: number[], rows: number, cols: number): Ref {
  return ([a, b]) => {
    const out = new Float64Array(rows * cols);
    for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[r * cols + c] = f(at(a!, as, rows, cols, r, c), at(b!, bs, rows, cols, r, c));
    return out;
  };
}
function matmulRef(m: number, k: number, n: number): Ref {
  return ([a, b]) => {
    const out = new Float64Array(m * n);
    for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) for (let p = 0; p < k; p++) out[i * n + j]! += a![i * k + p]! * b![p * n + j]!;
    return out;
  };
}
function logSoftmaxRef(x: Float64Array, rows: number, cols: number): Float64Array {
  const out = new Float64Array(x.length);
  for (let r = 0; r < rows; r++) {
    const row = x.subarray(r * cols, (r + 1) * cols);
    const max = Math.max(...row);
    const lse = max + Math.log(row.reduce((s, v) => s + Math.exp(v - max), 0));
    for (let c = 0; c < cols; c++) out[r * cols + c] = row[c]! - lse;
  }
  return out;
}

describe('broadcasting binary ops: gradients against float64 finite differences', () => {
  const cases: Array<[string, number[], number[], number, number]> = [
    ['same shape', [7, 13], [7, 13], 7, 13],
    ['bias row', [5, 11], [11], 5, 11],
    ['row on the left', [11], [5, 11], 5, 11],
    ['column', [6, 9], [6, 1], 6, 9],
    ['scalar', [3, 4], [], 3, 4],
    ['batch 1', [1, 33], [33], 1, 33],
  ];
  const fns: Array<[string, (a: Tensor, b: Tensor) => Tensor, (a: number, b: number) => number]> = [
    ['add', ops.add, (a, b) => a + b],
    ['sub', ops.sub, (a, b) => a - b],
    ['mul', ops.mul, (a, b) => a * b],
    ['div', ops.div, (a, b) => a / b],
  ];
  for (const [opName, op, f] of fns) {
    for (const [caseName, as, bs, rows, cols] of cases) {
      it(`${opName}: ${caseName}`, () => {
        const b = opName === 'div' ? rand(bs, 0.5, 2) : rand(bs);
        expectClose(([x, y]) => op(x!, y!), binaryRef(f, as, bs, rows, cols), [rand(as), b]);
      });
    }
  }
  it('rejects shapes that do not broadcast, naming both', () => {
    expect(() => ops.add(rand([2, 3]), rand([4]))).toThrow(/add: shapes \[2, 3\] and \[4\] do not broadcast/);
  });
});

describe('unary ops', () => {
  it('neg', () => expectClose(([x]) => ops.neg(x!), map((v) => -v), [rand([4, 5])]));
  it('relu', () => expectClose(([x]) => ops.relu(x!), map((v) => Math.max(v, 0)), [awayFromZero([9, 7])]));
  it('sigmoid', () => expectClose(([x]) => ops.sigmoid(x!), map((v) => 1 / (1 + Math.exp(-v))), [rand([3, 17], -4, 4)]));
  it('tanh', () => expectClose(([x]) => ops.tanh(x!), map(Math.tanh), [rand([1, 13], -2, 2)]));
  it('exp', () => expectClose(([x]) => ops.exp(x!), map(Math.exp), [rand([6, 5])]));
  it('log', () => expectClose(([x]) => ops.log(x!), map(Math.log), [rand([5, 6], 0.5, 3)]));
  it('sigmoid does not overflow for large |x|', () => {
    const y = ops.sigmoid(Tensor.from([-1000, 1000, 0]));
    expect(y.toArray()).toEqual([0, 1, 0.5]);
  });
});

describe('reductions', () => {
  it('sum of all elements', () => expectClose(([x]) => ops.sum(x!), ([x]) => Float64Array.of(x!.reduce((s, v) => s + v, 0)), [rand([7, 3])]));
  it('mean of all elements', () => expectClose(([x]) => ops.mean(x!), ([x]) => Float64Array.of(x!.reduce((s, v) => s + v, 0) / x!.length), [rand([1, 9])]));
  const [A, B, C] = [3, 5, 4];
  const axisRef = (axis: number, mean: boolean): Ref => ([x]) => {
    const dims = [A, B, C];
    const outShape = dims.filter((_, i) => i !== axis);
    const out = new Float64Array(outShape[0]! * outShape[1]!);
    for (let a = 0; a < A; a++) for (let b = 0; b < B; b++) for (let c = 0; c < C; c++) {
      const idx = [a, b, c].filter((_, i) => i !== axis);
      out[idx[0]! * outShape[1]! + idx[1]!]! += x![(a * B + b) * C + c]! / (mean ? dims[axis]! : 1);
    }
    return out;
  };
  for (const axis of [0, 1, 2]) {
    it(`sum over axis ${axis} of a 3-D tensor`, () => expectClose(([x]) => ops.sum(x!, axis), axisRef(axis, false), [rand([A, B, C])]));
    it(`mean over axis ${axis} with keepDim`, () => {
      const y = ops.mean(rand([A, B, C]), axis, true);
      expect(y.shape).toEqual([A, B, C].map((d, i) => (i === axis ? 1 : d)));
      expectClose(([x]) => ops.mean(x!, axis, true), axisRef(axis, true), [rand([A, B, C])]);
    });
  }
  it('sum over axis -1 equals the last axis', () => {
    const x = rand([2, 3]);
    expect(ops.sum(x, -1).toArray()).toEqual(ops.sum(x, 1).toArray());
  });
  it('rejects an axis out of range', () => expect(() => ops.sum(rand([2, 3]), 2)).toThrow(/sum: axis 2 is out of range for shape \[2, 3\]/));
});

describe('softmax and log-softmax', () => {
  const [R, C] = [5, 7];
  it('logSoftmax', () => expectClose(([x]) => ops.logSoftmax(x!), ([x]) => logSoftmaxRef(x!, R, C), [rand([R, C], -3, 3)]));
  it('softmax', () => expectClose(([x]) => ops.softmax(x!), ([x]) => logSoftmaxRef(x!, R, C).map(Math.exp), [rand([R, C], -3, 3)]));
  it('is stable for large logits', () => {
    const y = ops.logSoftmax(Tensor.from([[1000, 0, -1000]]));
    expect(y.toArray().every(Number.isFinite)).toBe(true);
    expect(y.data[0]).toBeCloseTo(0, 6);
  });
});

describe('matrix products', () => {
  for (const [m, k, n] of [[1, 1, 1], [1, 13, 7], [7, 13, 11], [33, 17, 5]] as const) {
    it(`matmul ${m}×${k} · ${k}×${n}`, () => expectClose(([a, b]) => ops.matmul(a!, b!), matmulRef(m, k, n), [rand([m, k]), rand([k, n])]));
  }
  for (const [n, inF, outF] of [[1, 9, 4], [13, 11, 7], [17, 37, 29]] as const) {
    it(`linear (${n}, ${inF}) → ${outF} with bias`, () => {
      const ref: Ref = ([x, w, b]) => {
        const out = new Float64Array(n * outF);
        for (let i = 0; i < n; i++) for (let o = 0; o < outF; o++) {
          let s = b![o]!;
          for (let p = 0; p < inF; p++) s += x![i * inF + p]! * w![o * inF + p]!;
          out[i * outF + o] = s;
        }
        return out;
      };
      expectClose(([x, w, b]) => ops.linear(x!, w!, b!), ref, [rand([n, inF]), rand([outF, inF]), rand([outF])]);
    });
  }
  for (const [n, inF, outF, bias] of [[1, 9, 4, true], [13, 11, 7, true], [17, 37, 29, false]] as const) {
    it(`linearRelu (${n}, ${inF}) → ${outF} ${bias ? 'with' : 'without'} bias: relu(x·Wᵀ + b)`, () => {
      const ref: Ref = ([x, w, b]) => {
        const out = new Float64Array(n * outF);
        for (let i = 0; i < n; i++) for (let o = 0; o < outF; o++) {
          let s = bias ? b![o]! : 0;
          for (let p = 0; p < inF; p++) s += x![i * inF + p]! * w![o * inF + p]!;
          out[i * outF + o] = Math.max(s, 0);
        }
        return out;
      };
      // Finite differences step by 1e-6: a pre-activation that close to relu's kink is improbable.
      const inputs = bias ? [rand([n, inF]), rand([outF, inF]), awayFromZero([outF])] : [rand([n, inF]), rand([outF, inF])];
      expectClose((xs) => ops.linearRelu(xs[0]!, xs[1]!, bias ? xs[2]! : null), ref, inputs);
    });
  }
  it('linearRelu gives the same bits as relu(linear(…)), forward and backward, negative pre-activations included', () => {
    const x = rand([9, 6]), w = rand([5, 6]), b = rand([5]), g = rand([9, 5]);
    const run = (fused: boolean) => {
      const xs = [x, w, b].map((t) => new Tensor(t.data.slice(), t.shape, true));
      const y = fused ? ops.linearRelu(xs[0]!, xs[1]!, xs[2]!) : ops.relu(ops.linear(xs[0]!, xs[1]!, xs[2]!));
      ops.sum(ops.mul(y, g)).backward();
      return [y.data, ...xs.map((t) => t.grad!.data)];
    };
    const fused = run(true), separate = run(false);
    expect(fused[0]!.some((v) => v === 0) && fused[0]!.some((v) => v > 0)).toBe(true);
    fused.forEach((a, i) => expect([...a]).toEqual([...separate[i]!]));
  });
  it('linear without bias', () => {
    const ref: Ref = ([x, w]) => matmulRef(3, 4, 2)([x!, Float64Array.from({ length: 8 }, (_, i) => w![(i % 2) * 4 + Math.floor(i / 2)]!)]);
    expectClose(([x, w]) => ops.linear(x!, w!), ref, [rand([3, 4]), rand([2, 4])]);
  });
  it('names both shapes when inner dimensions differ', () => {
    expect(() => ops.matmul(rand([2, 3]), rand([4, 5]))).toThrow('matmul: inner dimensions differ: [2, 3] · [4, 5]');
    expect(() => ops.linear(rand([2, 3]), rand([5, 4]))).toThrow(/linear: input has 3 features but the weight \[5, 4\] expects 4/);
  });
});

describe('shapes, embeddings and concatenation', () => {
  it('reshape shares data and passes gradients through', () => {
    const x = rand([4, 6]);
    expect(ops.reshape(x, [2, -1]).data).toBe(x.data);
    expectClose(([x]) => ops.mul(ops.reshape(x!, [3, 8]), 2), map((v) => 2 * v), [x]);
    expect(() => ops.reshape(x, [5, 5])).toThrow(/reshape: cannot reshape \[4, 6\] \(24 elements\) to \[5, 5\]/);
  });
  it('cat along columns', () => {
    const ref: Ref = ([a, b]) => {
      const out = new Float64Array(3 * 7);
      for (let r = 0; r < 3; r++) {
        out.set(a!.subarray(r * 2, r * 2 + 2), r * 7);
        out.set(b!.subarray(r * 5, r * 5 + 5), r * 7 + 2);
      }
      return out;
    };
    expectClose(([a, b]) => ops.cat([a!, b!]), ref, [rand([3, 2]), rand([3, 5])]);
    expect(() => ops.cat([rand([3, 2]), rand([4, 2])])).toThrow(/cat: tensor 1 has shape \[4, 2\]/);
  });
  it('embedding gathers rows and scatters gradients, accumulating repeated indices', () => {
    const idx = IntTensor.from([2, 0, 2, 4, 2], [5]);
    const ref: Ref = ([w]) => {
      const out = new Float64Array(5 * 3);
      idx.data.forEach((row, i) => out.set(w!.subarray(row * 3, row * 3 + 3), i * 3));
      return out;
    };
    expectClose(([w]) => ops.embedding(w!, idx), ref, [rand([6, 3])]);
    expect(() => ops.embedding(rand([6, 3]), IntTensor.from([1, 6]))).toThrow(/embedding: index 6 at position 1 is out of range for 6 rows/);
  });
  it('dropout zeroes with the seeded mask and scales the rest', () => {
    const p = 0.3;
    const maskOf = (seed: number, n: number) => {
      const r = new Random(seed);
      return Array.from({ length: n }, () => (r.next() < p ? 0 : 1 / (1 - p)));
    };
    const mask = maskOf(9, 40);
    expectClose(([x]) => ops.dropout(x!, p, new Random(9)), ([x]) => x!.map((v, i) => v * mask[i]!), [rand([5, 8])]);
    const a = ops.dropout(Tensor.full([1000], 1), p, new Random(3));
    const b = ops.dropout(Tensor.full([1000], 1), p, new Random(3));
    expect(a.toArray()).toEqual(b.toArray());
    const dropped = a.toArray().filter((v) => v === 0).length;
    expect(dropped).toBeGreaterThan(230);
    expect(dropped).toBeLessThan(370);
  });
});

describe('losses', () => {
  it('cross-entropy from logits with integer labels', () => {
    const [n, c] = [9, 10];
    const labels = IntTensor.from(Array.from({ length: n }, (_, i) => (i * 7) % c));
    const ref: Ref = ([x]) => {
      const lsm = logSoftmaxRef(x!, n, c);
      let s = 0;
      for (let i = 0; i < n; i++) s -= lsm[i * c + labels.data[i]!]!;
      return Float64Array.of(s / n);
    };
    expectClose(([x]) => crossEntropy(x!, labels), ref, [rand([n, c], -3, 3)]);
  });
  it('cross-entropy rejects labels out of range and float labels', () => {
    expect(() => crossEntropy(rand([2, 3]), IntTensor.from([0, 3]))).toThrow(/crossEntropy: label 3 at position 1 is out of range for 3 classes/);
    expect(() => crossEntropy(rand([2, 3]), rand([2]) as unknown as IntTensor)).toThrow(/crossEntropy: labels must be an IntTensor .* got a float Tensor of shape \[2\]/);
    expect(() => crossEntropy(rand([2, 3]), IntTensor.from([0, 1, 2]))).toThrow(/labels have shape \[3\] but logits have 2 rows/);
  });
  it('mse', () => {
    const t = rand([4, 3]);
    const ref: Ref = ([x]) => Float64Array.of(x!.reduce((s, v, i) => s + (v - t.data[i]!) ** 2, 0) / 12);
    expectClose(([x]) => mseLoss(x!, t), ref, [rand([4, 3])]);
    expect(() => mseLoss(rand([4, 3]), rand([3, 4]))).toThrow(/mseLoss: input has shape \[4, 3\] but target has shape \[3, 4\]/);
  });
  it('binary cross-entropy with logits', () => {
    const t = rand([6, 2], 0, 1);
    const ref: Ref = ([x]) => {
      let s = 0;
      x!.forEach((v, i) => {
        const p = 1 / (1 + Math.exp(-v));
        s -= t.data[i]! * Math.log(p) + (1 - t.data[i]!) * Math.log(1 - p);
      });
      return Float64Array.of(s / 12);
    };
    expectClose(([x]) => bceWithLogits(x!, t), ref, [rand([6, 2], -4, 4)]);
  });
});

describe('the tape', () => {
  it('accumulates gradients across backward calls until zeroed', () => {
    const w = Tensor.from([1, 2, 3], [3], true);
    ops.sum(ops.mul(w, w)).backward();
    ops.sum(ops.mul(w, w)).backward();
    expect(w.grad!.toArray()).toEqual([4, 8, 12]);
    w.zeroGrad();
    expect(w.grad!.toArray()).toEqual([0, 0, 0]);
  });
  it('handles a tensor used twice (diamond graph)', () => {
    const x = Tensor.from([2], [1], true);
    const y = ops.mul(x, x); // x²
    ops.sum(ops.add(ops.mul(y, x), y)).backward(); // x³ + x² → 3x² + 2x = 16
    expect(x.grad!.toArray()).toEqual([16]);
  });
  it('reshape and add hand their gradient to an intermediate input rather than copy it, and stay right when that input is reached twice', () => {
    const x = Tensor.from([1, 2, 3, 4, 5, 6], [2, 3], true);
    const t = ops.mul(x, 2); // an intermediate: it may take a buffer over
    const r = ops.reshape(t, [3, 2]);
    const u = ops.add(r, ops.reshape(t, [3, 2])); // t reached through two reshapes
    const v = ops.sub(ops.add(u, u), ops.mul(u, 0.5)); // u twice as one add's operands, then a sub
    const w = Tensor.from([1, -1, 2, -2, 3, -3], [3, 2]);
    const tape = ops.sum(ops.mul(v, w));
    tape.backward();
    // v = 2u − u/2 = 1.5u and u = 2t = 4x, so dΣ(v·w)/dx = 6w, read in x's order.
    expect(x.grad!.toArray()).toEqual([6, -6, 12, -12, 18, -18]);
    // A leaf takes no buffer over (its gradient outlives the step): in a pool, a buffer handed to
    // it would be lent again by the next step and overwritten there.
    const leaf = Tensor.from([1, 2], [2], true);
    const pool = new BufferPool();
    reusingBuffers(pool, () => ops.sum(ops.mul(ops.reshape(leaf, [1, 2]), Tensor.from([3, 4], [1, 2]))).backward());
    reusingBuffers(pool, () => ops.mul(Tensor.from([7, 7], [1, 2]), Tensor.from([7, 7], [1, 2]))); // takes (1, 2) buffers again
    expect(leaf.grad!.toArray()).toEqual([3, 4]);
  });
  it('records nothing inside noGrad', () => {
    const w = Tensor.from([1, 2], [2], true);
    const y = noGrad(() => ops.mul(w, 3));
    expect(y.requiresGrad).toBe(false);
    expect(y._parents.length).toBe(0);
    expect(() => y.sum().backward()).toThrow(/does not require grad/);
  });
  it('refuses a second backward through a released graph', () => {
    const w = Tensor.from([1, 2], [2], true);
    const loss = ops.sum(ops.mul(w, w));
    loss.backward();
    expect(() => loss.backward()).toThrow(/backward: trying to backward through the graph a second time/);
    expect(w.grad!.toArray()).toEqual([2, 4]);
  });
  it('needs a gradient for non-scalar outputs', () => {
    const y = ops.mul(Tensor.from([1, 2], [2], true), 2);
    expect(() => y.backward()).toThrow(/backward: a gradient can be created implicitly only for one-element outputs, got shape \[2\]/);
  });
});

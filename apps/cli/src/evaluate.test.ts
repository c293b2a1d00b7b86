// evaluate and precisionRecall on a model whose predictions are known by construction: logits are
// the features plus a small bias, so each row is predicted as the feature set to 2. Every expected
// figure below is counted or computed here by hand, not by the code under test; the confusion
// matrix is deliberately not symmetric, so reading it transposed (predicted, actual) fails.
import { describe, expect, it } from 'vitest';
import { Dropout, Linear, Sequential } from '@loom/tensor-core';
import type { Part } from './datasets.js';
import { argmax, evaluate, precisionRecall } from './evaluate.js';

const C = 3;
const BIAS = [0, 0.25, -0.25];

/** Linear 3→3 with W = I and b = BIAS: logits = x + b. */
function model(): Sequential {
  const layer = new Linear(C, C);
  layer.weight.data.set([1, 0, 0, 0, 1, 0, 0, 0, 1]);
  layer.bias!.data.set(BIAS);
  return new Sequential(layer);
}

// (actual, predicted) for each row of the data, and how many rows of each:
//              predicted 0  1  2
const COUNTS = [/* actual 0 */ [2, 1, 0], /* actual 1 */ [0, 1, 2], /* actual 2 */ [3, 0, 1]];
const ROWS = 10;

/** The rows COUNTS describes, shuffled among decoys that `rows` leaves out (actual 0, predicted 2). */
function data(repeat = 1): Part {
  const pairs: Array<[number, number]> = [];
  for (let a = 0; a < C; a++) for (let p = 0; p < C; p++) for (let k = 0; k < COUNTS[a]![p]!; k++) pairs.push([a, p]);
  const n = pairs.length * repeat;
  const features = new Float32Array(2 * n * C); // (2n, C): row 2i is a decoy, row 2i+1 a counted row
  const labels = new Int32Array(2 * n);
  const rows = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const [actual, predicted] = pairs[(i * 7) % pairs.length]!; // 7 is prime to 10: every pair, out of order
    features[(2 * i) * C + 2] = 2;
    labels[2 * i] = 0;
    features[(2 * i + 1) * C + predicted] = 2;
    labels[2 * i + 1] = actual;
    rows[i] = 2 * i + 1;
  }
  return { features, labels, rows };
}

/** −log softmax(x + b)[actual] for a row predicted as `predicted`, in float64. */
function rowLoss(actual: number, predicted: number): number {
  const z = [0, 1, 2].map((c) => (c === predicted ? 2 : 0) + BIAS[c]!);
  return Math.log(z.reduce((s, v) => s + Math.exp(v), 0)) - z[actual]!;
}

let expectedLossSum = 0;
for (let a = 0; a < C; a++) for (let p = 0; p < C; p++) expectedLossSum += COUNTS[a]![p]! * rowLoss(a, p);

describe('evaluate', () => {
  it('counts confusion[actual][predicted], accuracy and the mean loss over the given rows only', () => {
    const e = evaluate(model(), data(), C, C);
    expect(e.confusion).toEqual([[2, 1, 0], [0, 1, 2], [3, 0, 1]]);
    expect(e.count).toBe(ROWS);
    expect(e.accuracy).toBe(4 / 10); // the diagonal: 2 + 1 + 1
    expect(e.loss).toBeCloseTo(expectedLossSum / ROWS, 5);
  });

  it('gives the same figures across chunk boundaries (2500 rows in chunks of 128)', () => {
    const e = evaluate(model(), data(250), C, C);
    expect(e.confusion).toEqual(COUNTS.map((row) => row.map((v) => 250 * v)));
    expect(e.count).toBe(2500);
    expect(e.accuracy).toBe(0.4);
    expect(e.loss).toBeCloseTo(expectedLossSum / ROWS, 5);
  });

  it('evaluates in eval mode (no dropout) and leaves the model in the mode it found', () => {
    const withDropout = new Sequential(new Dropout(0.9), ...model().layers);
    const e = evaluate(withDropout.train(), data(), C, C);
    expect(e.confusion).toEqual(COUNTS);
    expect(withDropout.training).toBe(true);
    evaluate(withDropout.eval(), data(), C, C);
    expect(withDropout.training).toBe(false);
  });

  it('no rows: NaN loss and accuracy, an all-zero matrix', () => {
    const e = evaluate(model(), { ...data(), rows: new Int32Array(0) }, C, C);
    expect(e).toEqual({ loss: NaN, accuracy: NaN, confusion: [[0, 0, 0], [0, 0, 0], [0, 0, 0]], count: 0 });
  });
});

describe('precisionRecall', () => {
  it('precision = tp / column sum (predicted), recall = tp / row sum (actual)', () => {
    const pr = precisionRecall(COUNTS);
    // class 0: predicted 2+0+3 = 5 times, right twice; 3 rows are class 0.
    // class 1: predicted 1+1+0 = 2 times, right once; 3 rows.
    // class 2: predicted 0+2+1 = 3 times, right once; 4 rows.
    expect(pr).toEqual([
      { precision: 2 / 5, recall: 2 / 3, support: 3 },
      { precision: 1 / 2, recall: 1 / 3, support: 3 },
      { precision: 1 / 3, recall: 1 / 4, support: 4 },
    ]);
  });

  it('NaN where a class is never predicted (precision) or never present (recall)', () => {
    const pr = precisionRecall([[1, 0], [1, 0]]); // class 1: present once, never predicted
    expect(pr[1]).toEqual({ precision: NaN, recall: 0, support: 1 });
    const none = precisionRecall([[1, 1], [0, 0]]); // class 1: predicted once, never present
    expect(none[1]).toEqual({ precision: 0, recall: NaN, support: 0 });
  });
});

describe('argmax', () => {
  it('the first of equal largest values, within its window', () => {
    expect(argmax([9, 1, 3, 3, 0], 1, 3)).toBe(1); // window [1, 3, 3]: index 1 of it
    expect(argmax([5, 5], 0, 2)).toBe(0);
  });
});

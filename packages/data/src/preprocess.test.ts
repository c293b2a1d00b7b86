import { describe, expect, it } from 'vitest';
import { readCsv } from './csv.js';
import { createDataset } from './dataset.js';
import {
  applyFill,
  applyTransform,
  categoriesOf,
  dropDuplicates,
  fillMissing,
  fitFill,
  fitMinMax,
  fitZScore,
  oneHot,
  parseTransform,
  uniqueRows,
} from './preprocess.js';

const log = readCsv(new URL('../fixtures/reading-log.csv', import.meta.url).pathname);
const arr = (c: unknown) => Array.from(c as ArrayLike<number>);

describe('fillMissing', () => {
  it('mean, median, mode and constants, as computed by hand from the fixture', () => {
    // dwell: 35 12 12 NaN 48 60 NaN 35 22 90 → mean 314/8, median of 12 12 22 35 35 48 60 90 = 35
    expect(fitFill(log, { dwellSeconds: 'mean' })).toEqual({ dwellSeconds: 39.25 });
    expect(fitFill(log, { dwellSeconds: 'median' })).toEqual({ dwellSeconds: 35 });
    expect(fitFill(log, { device: 'mode', dwellSeconds: 'mode' })).toEqual({ device: 'mobile', dwellSeconds: 12 });
    const filled = fillMissing(log, { dwellSeconds: 'median', device: { constant: 'unknown' } });
    expect(arr(filled.columns.get('dwellSeconds'))).toEqual([35, 12, 12, 35, 48, 60, 35, 35, 22, 90]);
    expect(filled.columns.get('device')).toEqual(['mobile', 'mobile', 'mobile', 'desktop', 'unknown', 'tablet', 'tablet', 'mobile', 'unknown', 'desktop']);
    expect(arr(log.columns.get('dwellSeconds'))[3]).toBeNaN(); // the input is left alone
    expect(filled.columns.get('title')).toBe(log.columns.get('title')); // untouched columns are shared
  });

  it('statistics from the given (training) rows only', () => {
    // rows 0..3: 35 12 12 NaN → mean 59/3
    const values = fitFill(log, { dwellSeconds: 'mean' }, [0, 1, 2, 3]);
    expect(values.dwellSeconds).toBeCloseTo(59 / 3, 12);
    expect(arr(applyFill(log, values).columns.get('dwellSeconds'))[6]).toBeCloseTo(59 / 3, 12);
  });

  it('rejects a strategy that does not fit the column', () => {
    expect(() => fitFill(log, { device: 'mean' })).toThrow(`fitFill: invalid strategy for categorical column "device": expected 'mode' or { constant: string }, found "mean"`);
    expect(() => fitFill(log, { dwellSeconds: { constant: 'x' } })).toThrow('expected a number, found "x"');
    expect(() => fitFill(log, { nope: 'mean' })).toThrow('no column "nope"');
  });
});

describe('dropDuplicates', () => {
  it('drops the two duplicated rows of the fixture, keeping first occurrences in order', () => {
    expect(arr(uniqueRows(log))).toEqual([0, 1, 3, 4, 5, 6, 8, 9]);
    const d = dropDuplicates(log);
    expect(d.length).toBe(8);
    expect(arr(d.columns.get('articleId'))).toEqual([101, 102, 103, 104, 105, 106, 107, 108]);
    // dwell after dropping: 35 12 NaN 48 60 NaN 22 90 → median of 12 22 35 48 60 90 = 41.5
    expect(fitFill(d, { dwellSeconds: 'median' })).toEqual({ dwellSeconds: 41.5 });
  });

  it('on chosen columns; NaN equals NaN; -0 equals 0; strings do not run together', () => {
    expect(arr(uniqueRows(log, ['userId']))).toEqual([0, 3, 5, 8]);
    const ds = createDataset({ x: new Float64Array([NaN, NaN, 0, -0, 1]), s: ['ab', 'ab', 'c', 'c', ''] });
    expect(arr(uniqueRows(ds))).toEqual([0, 2, 4]);
    const t = createDataset({ a: ['ab', 'a'], b: ['c', 'bc'] });
    expect(arr(uniqueRows(t))).toEqual([0, 1]);
  });

  it('finds every duplicate among many rows (hash collisions are compared, not trusted)', () => {
    const n = 50000;
    const x = new Int32Array(n).map((_, i) => i % 1000);
    const y = new Float64Array(n).map((_, i) => (i % 1000) * 0.5);
    const keep = uniqueRows(createDataset({ x, y }));
    expect(keep.length).toBe(1000);
    expect(arr(keep)).toEqual(Array.from({ length: 1000 }, (_, i) => i));
  });
});

describe('oneHot', () => {
  it('replaces the column in place with sorted categories; missing and unknown values get zeros', () => {
    const cats = categoriesOf(log, 'device');
    expect(cats).toEqual(['desktop', 'mobile', 'tablet']);
    const enc = oneHot(log, 'device', cats);
    expect([...enc.columns.keys()]).toEqual(['userId', 'articleId', 'category', 'dwellSeconds', 'device=desktop', 'device=mobile', 'device=tablet', 'title']);
    expect(arr(enc.columns.get('device=mobile'))).toEqual([1, 1, 1, 0, 0, 0, 0, 1, 0, 0]);
    expect(arr(enc.columns.get('device=desktop'))).toEqual([0, 0, 0, 1, 0, 0, 0, 0, 0, 1]);
    const later = oneHot(createDataset({ device: ['tablet', 'watch'] }), 'device', cats);
    expect(arr(later.columns.get('device=tablet'))).toEqual([1, 0]);
    expect(arr(later.columns.get('device=desktop'))).toEqual([0, 0]);
  });

  it('numeric columns are encoded by their values', () => {
    const enc = oneHot(createDataset({ c: new Int32Array([2, 0, 2]) }), 'c');
    expect([...enc.columns.keys()]).toEqual(['c=0', 'c=2']);
    expect(arr(enc.columns.get('c=2'))).toEqual([1, 0, 1]);
  });
});

describe('normalisation', () => {
  // 4 rows × 3 columns; column 2 is constant.
  const x = () => Float32Array.from([1, 10, 5, 2, 20, 5, 3, 30, 5, 100, -40, 5]);

  it('z-score: population mean and std, fitted on the training rows only', () => {
    const t = fitZScore(x(), 3, [0, 1, 2]);
    expect(t.kind).toBe('zscore');
    expect(t.mean).toEqual([2, 20, 5]);
    expect(t.std[0]).toBeCloseTo(Math.sqrt(2 / 3), 12);
    expect(t.std[1]).toBeCloseTo(Math.sqrt(200 / 3), 12);
    expect(t.std[2]).toBe(0);
    const y = x();
    applyTransform(t, y, 3);
    expect(y[0]).toBeCloseTo(-1 / Math.sqrt(2 / 3), 5);
    expect(y[3]).toBe(0);
    expect(y[9]).toBeCloseTo(98 / Math.sqrt(2 / 3), 3); // the held-out row is transformed with training statistics
    expect(Array.from(y).every(Number.isFinite)).toBe(true);
    expect([y[2], y[5], y[8], y[11]]).toEqual([0, 0, 0, 0]); // constant column: 0, not NaN
  });

  it('z-score of a constant column with an inexact mean is exactly 0', () => {
    const c = new Float32Array(7).fill(0.1);
    const t = fitZScore(c, 1);
    expect(t.std).toEqual([0]);
    applyTransform(t, c, 1);
    expect(Array.from(c)).toEqual(new Array(7).fill(0));
  });

  it('z-score matches a naive float64 computation on random data', () => {
    const n = 1000;
    const d = 4;
    const data = Float32Array.from({ length: n * d }, (_, i) => Math.sin(i * 12.9898) * 43758.5453 % 7 + (i % d));
    const t = fitZScore(data, d);
    for (let j = 0; j < d; j++) {
      const col = Array.from({ length: n }, (_, i) => data[i * d + j]!);
      const m = col.reduce((a, b) => a + b, 0) / n;
      const s = Math.sqrt(col.reduce((a, b) => a + (b - m) ** 2, 0) / n);
      expect(t.mean[j]).toBeCloseTo(m, 9);
      expect(t.std[j]).toBeCloseTo(s, 9);
    }
  });

  it('min-max: to [0, 1] on training rows; a constant column becomes 0', () => {
    const t = fitMinMax(x(), 3, [0, 1, 2]);
    expect(t).toEqual({ kind: 'minmax', min: [1, 10, 5], max: [3, 30, 5] });
    const y = x();
    applyTransform(t, y, 3);
    expect(Array.from(y.subarray(0, 9))).toEqual([0, 0, 0, 0.5, 0.5, 0, 1, 1, 0]);
    expect(Array.from(y.subarray(9))).toEqual([Math.fround(99 / 2), -2.5, 0]);
  });

  it('a transform survives JSON and is validated on load', () => {
    const t = fitZScore(x(), 3);
    expect(parseTransform(JSON.parse(JSON.stringify(t)))).toEqual(t);
    expect(() => parseTransform({ kind: 'pca' })).toThrow(`parseTransform: expected kind 'zscore' or 'minmax', found "pca"`);
    expect(() => parseTransform({ kind: 'zscore', mean: [0, 1], std: [1] })).toThrow('expected mean and std of equal length, found 2 and 1');
    expect(() => parseTransform({ kind: 'zscore', mean: [0], std: [-1] })).toThrow('column 0: expected std ≥ 0');
    expect(() => parseTransform({ kind: 'minmax', min: [0], max: [null] })).toThrow('minmax.max: expected an array of finite numbers');
    expect(() => applyTransform(t, new Float32Array(8), 4)).toThrow('applyTransform: expected a transform of 4 columns, found 3');
  });
});

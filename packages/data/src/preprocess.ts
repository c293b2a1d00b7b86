// Preprocessing as a data team does it, in two halves: `fit*` computes statistics (on the training
// rows only) and returns a plain JSON object; `apply*` uses that object. The object is saved with
// the model, so inference transforms its inputs exactly as training did.

import { type Column, type Dataset, column, isCategorical, takeColumn, take } from './dataset.js';
import { DataError, invalidArgument, show } from './errors.js';

// ---------------------------------------------------------------------------------------------
// Missing values

/** How to fill a column: its mean or median (numeric), its most frequent value, or a constant. */
export type FillStrategy = 'mean' | 'median' | 'mode' | { constant: number | string };

/** The value to put in each column's missing cells. JSON; save it with the model. */
export type FillValues = Record<string, number | string>;

/**
 * Computes fill values from the given rows (the training rows; default all rows). Missing cells
 * (NaN, or '' in a categorical column) are ignored. A column with no values at all gets 0 / ''.
 *
 * ```ts
 * const fill = fitFill(ds, { dwell: 'median', device: { constant: 'unknown' } }, trainRows);
 * const clean = applyFill(ds, fill);
 * ```
 */
export function fitFill(ds: Dataset, spec: Readonly<Record<string, FillStrategy>>, rows?: ArrayLike<number>): FillValues {
  const values: FillValues = {};
  for (const [name, strategy] of Object.entries(spec)) {
    const col = column(ds, name);
    if (typeof strategy === 'object' && strategy !== null && 'constant' in strategy) {
      if (isCategorical(col) !== (typeof strategy.constant === 'string')) {
        throw invalidArgument('fitFill', `constant for column ${JSON.stringify(name)}`, isCategorical(col) ? 'a string' : 'a number', strategy.constant);
      }
      values[name] = strategy.constant;
      continue;
    }
    const present = rows ? takeColumn(col, rows) : col;
    if (strategy === 'mode') values[name] = mode(present);
    else if (strategy === 'mean' || strategy === 'median') {
      if (isCategorical(present)) throw invalidArgument('fitFill', `strategy for categorical column ${JSON.stringify(name)}`, "'mode' or { constant: string }", strategy);
      values[name] = strategy === 'mean' ? nanMean(present) : nanMedian(present);
    } else {
      throw invalidArgument('fitFill', `strategy for column ${JSON.stringify(name)}`, "'mean', 'median', 'mode' or { constant }", strategy);
    }
  }
  return values;
}

/** A new Dataset whose missing cells hold the fill values; columns not named are shared, not copied. */
export function applyFill(ds: Dataset, values: FillValues): Dataset {
  const columns = new Map(ds.columns);
  for (const [name, value] of Object.entries(values)) {
    const col = column(ds, name);
    if (isCategorical(col)) {
      if (typeof value !== 'string') throw invalidArgument('applyFill', `value for categorical column ${JSON.stringify(name)}`, 'a string', value);
      columns.set(name, col.map((v) => (v === '' ? value : v)));
    } else {
      if (typeof value !== 'number') throw invalidArgument('applyFill', `value for numeric column ${JSON.stringify(name)}`, 'a number', value);
      if (col instanceof Int32Array) continue; // integer columns have no missing values
      const out = col.slice();
      for (let i = 0; i < out.length; i++) if (Number.isNaN(out[i])) out[i] = value;
      columns.set(name, out);
    }
  }
  return { length: ds.length, columns, source: ds.source };
}

/** `applyFill(ds, fitFill(ds, spec, rows))`. */
export function fillMissing(ds: Dataset, spec: Readonly<Record<string, FillStrategy>>, rows?: ArrayLike<number>): Dataset {
  return applyFill(ds, fitFill(ds, spec, rows));
}

function nanMean(col: ArrayLike<number>): number {
  let s = 0;
  let n = 0;
  for (let i = 0; i < col.length; i++) {
    const v = col[i]!;
    if (!Number.isNaN(v)) {
      s += v;
      n++;
    }
  }
  return n === 0 ? 0 : s / n;
}

function nanMedian(col: ArrayLike<number>): number {
  const v = Float64Array.from(col).filter((x) => !Number.isNaN(x)).sort();
  if (v.length === 0) return 0;
  const m = v.length >> 1;
  return v.length % 2 ? v[m]! : (v[m - 1]! + v[m]!) / 2;
}

/** Most frequent non-missing value; ties go to the smallest (numbers) or first in sort order (strings). */
function mode(col: Column): number | string {
  const counts = new Map<number | string, number>();
  for (let i = 0; i < col.length; i++) {
    const v = col[i]!;
    if (v === '' || Number.isNaN(v)) continue;
    counts.set(v, (counts.get(v) ?? 0) + 1);
  }
  let best: number | string = isCategorical(col) ? '' : 0;
  let bestCount = 0;
  for (const [v, c] of counts) {
    if (c > bestCount || (c === bestCount && v < best)) {
      best = v;
      bestCount = c;
    }
  }
  return best;
}

// ---------------------------------------------------------------------------------------------
// Duplicates

/**
 * Indices of the rows to keep when duplicates (equal in every column of `cols`, default all) are
 * dropped: the first row of each group, in order. NaN equals NaN here, as in pandas.
 * Rows are hashed into an open-addressing table of row indices and compared on collision, so no
 * per-row key strings are built.
 */
export function uniqueRows(ds: Dataset, cols?: readonly string[]): Int32Array {
  const columns = (cols ?? [...ds.columns.keys()]).map((name) => column(ds, name));
  const n = ds.length;
  let capacity = 16;
  while (capacity < n * 2) capacity *= 2;
  const table = new Int32Array(capacity).fill(-1);
  const mask = capacity - 1;
  const keep = new Int32Array(n);
  let kept = 0;
  const f64 = new Float64Array(1);
  const u32 = new Uint32Array(f64.buffer);
  for (let r = 0; r < n; r++) {
    let h = 0x811c9dc5;
    for (const col of columns) {
      if (isCategorical(col)) {
        const s = col[r]!;
        for (let k = 0; k < s.length; k++) h = Math.imul(h ^ s.charCodeAt(k), 0x01000193);
        h = Math.imul(h ^ 0xff, 0x01000193); // separator, so ['ab', 'c'] ≠ ['a', 'bc']
      } else {
        const v = col[r]!;
        f64[0] = Number.isNaN(v) ? NaN : v === 0 ? 0 : v; // one NaN, and -0 as 0
        h = Math.imul(h ^ u32[0]!, 0x01000193);
        h = Math.imul(h ^ u32[1]!, 0x01000193);
      }
    }
    h ^= h >>> 16;
    h = Math.imul(h, 0x85ebca6b);
    h ^= h >>> 13;
    let slot = h & mask;
    for (;;) {
      const other = table[slot]!;
      if (other < 0) {
        table[slot] = r;
        keep[kept++] = r;
        break;
      }
      if (rowsEqual(columns, r, other)) break;
      slot = (slot + 1) & mask;
    }
  }
  return keep.slice(0, kept);
}

function rowsEqual(columns: Column[], a: number, b: number): boolean {
  for (const col of columns) {
    const x = col[a]!;
    const y = col[b]!;
    if (x !== y && !(Number.isNaN(x) && Number.isNaN(y))) return false;
  }
  return true;
}

/**
 * Drops rows equal to an earlier row in every column of `cols` (default: all columns), keeping the
 * first.
 *
 * ```ts
 * const events = dropDuplicates(log); // exact duplicate events removed
 * ```
 */
export function dropDuplicates(ds: Dataset, cols?: readonly string[]): Dataset {
  const keep = uniqueRows(ds, cols);
  return keep.length === ds.length ? ds : take(ds, keep);
}

// ---------------------------------------------------------------------------------------------
// One-hot encoding

/** Distinct non-missing values of a column as strings, sorted (so the order does not depend on row order). */
export function categoriesOf(ds: Dataset, name: string): string[] {
  const col = column(ds, name);
  const set = new Set<string>();
  for (let i = 0; i < col.length; i++) {
    const v = col[i]!;
    if (v !== '' && !Number.isNaN(v)) set.add(String(v));
  }
  return [...set].sort();
}

/**
 * Replaces column `name` with one Float32Array 0/1 column per category, named `name=category`, in
 * the position of the original. Missing values and values not in `categories` get all zeros. Save
 * `categories` (default: `categoriesOf(ds, name)`) with the model and pass them at inference.
 *
 * ```ts
 * const cats = categoriesOf(train, 'device');      // ['desktop', 'mobile', 'tablet']
 * const encoded = oneHot(train, 'device', cats);    // columns device=desktop, device=mobile, device=tablet
 * ```
 */
export function oneHot(ds: Dataset, name: string, categories: readonly string[] = categoriesOf(ds, name)): Dataset {
  const col = column(ds, name);
  const index = new Map(categories.map((c, i) => [c, i]));
  if (index.size !== categories.length) throw invalidArgument('oneHot', 'categories', 'distinct values', categories);
  const encoded = categories.map(() => new Float32Array(ds.length));
  for (let r = 0; r < ds.length; r++) {
    const k = index.get(String(col[r]));
    if (k !== undefined) encoded[k]![r] = 1;
  }
  const columns = new Map<string, Column>();
  for (const [n, c] of ds.columns) {
    if (n !== name) columns.set(n, c);
    else categories.forEach((cat, k) => columns.set(`${name}=${cat}`, encoded[k]!));
  }
  return { length: ds.length, columns, source: ds.source };
}

// ---------------------------------------------------------------------------------------------
// Normalisation of a row-major feature matrix x: (N, width)

/** x ↦ (x − min) / (max − min), column by column; a constant column (max = min) becomes x − min = 0. */
export interface MinMaxTransform {
  kind: 'minmax';
  min: number[];
  max: number[];
}

/** x ↦ (x − mean) / std, column by column; a constant column has std 0 and becomes x − mean = 0. */
export interface ZScoreTransform {
  kind: 'zscore';
  mean: number[];
  std: number[];
}

/** A fitted normalisation: plain JSON, saved with the model. */
export type Transform = MinMaxTransform | ZScoreTransform;

function checkMatrix(fn: string, x: Float32Array, width: number, rows?: ArrayLike<number>): number {
  if (!(Number.isInteger(width) && width > 0)) throw invalidArgument(fn, 'width', 'a positive integer', width);
  if (x.length % width !== 0) throw invalidArgument(fn, 'features', `a length divisible by width ${width}`, x);
  const n = x.length / width;
  if (rows) {
    for (let i = 0; i < rows.length; i++) {
      const r = rows[i]!;
      if (!(r >= 0 && r < n)) throw invalidArgument(fn, `row index at position ${i}`, `an integer in [0, ${n})`, r);
    }
  }
  return n;
}

/**
 * Fits min-max scaling on the given rows of x (the training rows; default all). NaN is ignored; a
 * column with no values gets min = max = 0.
 *
 * ```ts
 * const t = fitMinMax(x, 100, split.train);   // JSON: { kind: 'minmax', min: [...], max: [...] }
 * applyTransform(t, x, 100);                   // every row, in place
 * ```
 */
export function fitMinMax(x: Float32Array, width: number, rows?: ArrayLike<number>): MinMaxTransform {
  const n = checkMatrix('fitMinMax', x, width, rows);
  const min = new Float64Array(width).fill(Infinity);
  const max = new Float64Array(width).fill(-Infinity);
  const count = rows ? rows.length : n;
  for (let i = 0; i < count; i++) {
    const o = (rows ? rows[i]! : i) * width;
    for (let j = 0; j < width; j++) {
      const v = x[o + j]!;
      if (v < min[j]!) min[j] = v;
      if (v > max[j]!) max[j] = v;
    }
  }
  for (let j = 0; j < width; j++) if (min[j] === Infinity) min[j] = max[j] = 0;
  return { kind: 'minmax', min: Array.from(min), max: Array.from(max) };
}

/**
 * Fits z-score standardisation (population std) on the given rows of x (the training rows; default
 * all), in float64. NaN is ignored. A constant column gets std exactly 0 (detected as min = max, so
 * rounding cannot turn it into noise), and applying maps it to 0 rather than NaN.
 *
 * ```ts
 * const t = fitZScore(x, 100, split.train);    // JSON: { kind: 'zscore', mean: [...], std: [...] }
 * applyTransform(t, x, 100);
 * ```
 */
export function fitZScore(x: Float32Array, width: number, rows?: ArrayLike<number>): ZScoreTransform {
  const n = checkMatrix('fitZScore', x, width, rows);
  const count = rows ? rows.length : n;
  const sum = new Float64Array(width);
  const cnt = new Float64Array(width);
  const min = new Float64Array(width).fill(Infinity);
  const max = new Float64Array(width).fill(-Infinity);
  for (let i = 0; i < count; i++) {
    const o = (rows ? rows[i]! : i) * width;
    for (let j = 0; j < width; j++) {
      const v = x[o + j]!;
      if (Number.isNaN(v)) continue;
      sum[j]! += v;
      cnt[j]!++;
      if (v < min[j]!) min[j] = v;
      if (v > max[j]!) max[j] = v;
    }
  }
  const mean = new Float64Array(width);
  for (let j = 0; j < width; j++) mean[j] = cnt[j]! > 0 ? (min[j] === max[j] ? min[j]! : sum[j]! / cnt[j]!) : 0;
  const ss = new Float64Array(width); // second pass: squared deviations (stable, unlike E[x²] − E[x]²)
  for (let i = 0; i < count; i++) {
    const o = (rows ? rows[i]! : i) * width;
    for (let j = 0; j < width; j++) {
      const v = x[o + j]!;
      if (!Number.isNaN(v)) ss[j]! += (v - mean[j]!) * (v - mean[j]!);
    }
  }
  const std = new Array<number>(width);
  for (let j = 0; j < width; j++) std[j] = cnt[j]! > 0 && min[j] !== max[j] ? Math.sqrt(ss[j]! / cnt[j]!) : 0;
  return { kind: 'zscore', mean: Array.from(mean), std };
}

/**
 * Applies a fitted transform to every row of x (N, width), in place. NaN stays NaN (fill first).
 * Allocates only two small per-column arrays, not per row.
 */
export function applyTransform(t: Transform, x: Float32Array, width: number): void {
  const n = checkMatrix('applyTransform', x, width);
  const [shift, stats] = t.kind === 'minmax' ? [t.min, t.max] : [t.mean, t.std];
  if (shift.length !== width) throw new DataError('applyTransform', `expected a transform of ${width} columns, found ${shift.length}`);
  const offset = Float64Array.from(shift);
  const scale = new Float64Array(width);
  for (let j = 0; j < width; j++) {
    const spread = t.kind === 'minmax' ? stats[j]! - shift[j]! : stats[j]!;
    scale[j] = spread > 0 ? 1 / spread : 1;
  }
  for (let i = 0, o = 0; i < n; i++, o += width) {
    for (let j = 0; j < width; j++) x[o + j] = (x[o + j]! - offset[j]!) * scale[j]!;
  }
}

/**
 * Checks that a value loaded from JSON is a Transform: its kind, two arrays of the same length,
 * finite numbers, non-negative std / max ≥ min. Returns it typed.
 */
export function parseTransform(value: unknown): Transform {
  const where = 'parseTransform';
  const v = value as Record<string, unknown> | null;
  if (typeof v !== 'object' || v === null) throw new DataError(where, `expected a transform object, found ${show(value)}`);
  const keys = v.kind === 'zscore' ? ['mean', 'std'] : v.kind === 'minmax' ? ['min', 'max'] : null;
  if (!keys) throw new DataError(where, `expected kind 'zscore' or 'minmax', found ${show(v.kind)}`);
  const [a, b] = keys.map((k) => {
    const arr = v[k];
    if (!Array.isArray(arr) || !arr.every((x) => typeof x === 'number' && Number.isFinite(x))) {
      throw new DataError(where, `${v.kind}.${k}: expected an array of finite numbers, found ${show(arr)}`);
    }
    return arr as number[];
  }) as [number[], number[]];
  if (a.length !== b.length) throw new DataError(where, `${v.kind}: expected ${keys[0]} and ${keys[1]} of equal length, found ${a.length} and ${b.length}`);
  for (let j = 0; j < a.length; j++) {
    if (v.kind === 'zscore' ? b[j]! < 0 : b[j]! < a[j]!) {
      throw new DataError(where, `${v.kind}, column ${j}: expected ${v.kind === 'zscore' ? 'std ≥ 0' : 'max ≥ min'}, found ${keys[0]} ${a[j]}, ${keys[1]} ${b[j]}`);
    }
  }
  return v.kind === 'zscore' ? { kind: 'zscore', mean: a, std: b } : { kind: 'minmax', min: a, max: b };
}

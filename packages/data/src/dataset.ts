// A Dataset is named columns of equal length. Numeric columns are typed arrays (missing values are
// NaN, so a column that can be missing is a float column); categorical columns are string arrays
// holding the raw values (missing values are ''). Columns keep their order (a Map, so that a column
// named "2019" does not jump to the front as it would in an object).

import { DataError, invalidArgument, missingColumn, wrongColumnType } from './errors.js';

/** A numeric column. Float columns hold NaN for missing values; Int32 columns have none. */
export type NumericColumn = Float32Array | Float64Array | Int32Array;
/** A categorical column: the raw strings, '' where the value is missing. */
export type CategoricalColumn = string[];
export type Column = NumericColumn | CategoricalColumn;

/**
 * Named columns of equal length.
 *
 * ```ts
 * const ds = createDataset({ age: new Float64Array([31, NaN]), city: ['Oslo', ''] });
 * ds.length;              // 2
 * ds.columns.get('city'); // ['Oslo', '']
 * ```
 */
export interface Dataset {
  /** Number of rows. */
  readonly length: number;
  /** Columns by name, in order. Every column has `length` entries. */
  readonly columns: ReadonlyMap<string, Column>;
  /** Where the rows came from (a file name), used in error messages. */
  readonly source: string;
}

/** Builds a Dataset from columns (an object or a Map), checking that all have the same length. */
export function createDataset(columns: Record<string, Column> | ReadonlyMap<string, Column>, source = 'dataset'): Dataset {
  const map = columns instanceof Map ? new Map(columns) : new Map(Object.entries(columns));
  let length = -1;
  let first = '';
  for (const [name, col] of map) {
    if (!Array.isArray(col) && !(col instanceof Float32Array || col instanceof Float64Array || col instanceof Int32Array)) {
      throw invalidArgument('createDataset', `column ${JSON.stringify(name)}`, 'Float32Array, Float64Array, Int32Array or string[]', col);
    }
    if (length < 0) {
      length = col.length;
      first = name;
    } else if (col.length !== length) {
      throw new DataError(source, `column ${JSON.stringify(name)} has ${col.length} rows, expected ${length} like ${JSON.stringify(first)}`);
    }
  }
  return { length: Math.max(length, 0), columns: map, source };
}

/** True for a categorical (string) column. */
export function isCategorical(col: Column): col is CategoricalColumn {
  return Array.isArray(col);
}

/** The column `name`, or a DataError listing the columns there are. */
export function column(ds: Dataset, name: string): Column {
  const col = ds.columns.get(name);
  if (col === undefined) throw missingColumn(ds.source, name, ds.columns.keys());
  return col;
}

/** The numeric column `name`; a DataError if it is missing or categorical. */
export function numericColumn(ds: Dataset, name: string): NumericColumn {
  const col = column(ds, name);
  if (isCategorical(col)) throw wrongColumnType(ds.source, name, 'a numeric column', 'a categorical column');
  return col;
}

/** The categorical column `name`; a DataError if it is missing or numeric. */
export function categoricalColumn(ds: Dataset, name: string): CategoricalColumn {
  const col = column(ds, name);
  if (!isCategorical(col)) throw wrongColumnType(ds.source, name, 'a categorical column', `a ${col.constructor.name}`);
  return col;
}

/** Gathers one column at the given row indices into a new column of the same type. */
export function takeColumn<C extends Column>(col: C, rows: ArrayLike<number>): C {
  const n = rows.length;
  if (isCategorical(col)) {
    const out = new Array<string>(n);
    for (let i = 0; i < n; i++) out[i] = col[rows[i]!]!;
    return out as C;
  }
  const out = new (col.constructor as new (n: number) => NumericColumn)(n);
  for (let i = 0; i < n; i++) out[i] = col[rows[i]!]!;
  return out as C;
}

/** A new Dataset with the given rows, in the given order (indices may repeat). */
export function take(ds: Dataset, rows: ArrayLike<number>): Dataset {
  for (let i = 0; i < rows.length; i++) {
    const r = rows[i]!;
    if (!(r >= 0 && r < ds.length && Number.isInteger(r))) throw invalidArgument('take', `row index at position ${i}`, `an integer in [0, ${ds.length})`, r);
  }
  const cols = new Map<string, Column>();
  for (const [name, col] of ds.columns) cols.set(name, takeColumn(col, rows));
  return { length: rows.length, columns: cols, source: ds.source };
}

/**
 * Copies numeric columns into a row-major matrix: row r is [ds[names[0]][r], ds[names[1]][r], ...].
 *
 * ```ts
 * const x = toMatrix(ds, ['age', 'income']); // Float32Array (ds.length, 2)
 * ```
 */
export function toMatrix(ds: Dataset, names: readonly string[], out?: Float32Array): Float32Array {
  const d = names.length;
  const x = out ?? new Float32Array(ds.length * d); // (N, D)
  if (x.length !== ds.length * d) throw invalidArgument('toMatrix', 'out', `a Float32Array of ${ds.length}×${d} = ${ds.length * d}`, x);
  names.forEach((name, j) => {
    const col = numericColumn(ds, name);
    for (let r = 0; r < ds.length; r++) x[r * d + j] = col[r]!;
  });
  return x;
}

/**
 * Reads class labels from a column. A numeric column must hold integers ≥ 0 (classes '0'..'max');
 * a categorical column is mapped to the index of its value in `classes` (default: the sorted
 * distinct values). A missing value, or a value not in `classes`, is an error naming the row.
 */
export function toLabels(ds: Dataset, name: string, classes?: readonly string[]): { labels: Int32Array; classes: string[] } {
  const col = column(ds, name);
  const labels = new Int32Array(ds.length);
  if (isCategorical(col)) {
    const cls = classes ? [...classes] : [...new Set(col)].filter((v) => v !== '').sort();
    const index = new Map(cls.map((c, i) => [c, i]));
    for (let r = 0; r < ds.length; r++) {
      const k = index.get(col[r]!);
      if (k === undefined) throw new DataError(ds.source, `label column ${JSON.stringify(name)}, row ${r}: expected one of ${cls.length} classes, found ${JSON.stringify(col[r])}`);
      labels[r] = k;
    }
    return { labels, classes: cls };
  }
  let max = -1;
  for (let r = 0; r < ds.length; r++) {
    const v = col[r]!;
    if (!(Number.isInteger(v) && v >= 0 && v < 2 ** 31)) throw new DataError(ds.source, `label column ${JSON.stringify(name)}, row ${r}: expected an integer class ≥ 0, found ${v}`);
    labels[r] = v;
    if (v > max) max = v;
  }
  const cls = classes ? [...classes] : Array.from({ length: max + 1 }, (_, i) => String(i));
  if (max >= cls.length) throw new DataError(ds.source, `label column ${JSON.stringify(name)}: expected classes below ${cls.length}, found ${max}`);
  return { labels, classes: cls };
}

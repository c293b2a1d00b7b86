/**
 * What the sparse optimizers share: the contract of a step over given rows of an embedding table,
 * argument checks, `coalesce` (sort the ids, sum the values of duplicates) and the per-row layout of
 * weights and optimizer state that a parameter server allocates, moves and checkpoints.
 *
 * Dimension letters: V rows in the table (or in a server's store of rows), D values per row, R rows
 * in one step, N ids in one uncoalesced gradient.
 *
 *   table  (V, D)   the weights, row-major; a store may hold any rows of a table in any order
 *   state  { key: (V, stateSize(key, D)) }   per-row optimizer state, aligned with the table
 *   rows   (R)      local row indices into table and state, each in [0, V)
 *   grads  (R, D)   the gradient of each of those rows
 *
 * A step reads and writes only the rows it is given: every other row of the table and of the state
 * keeps its bits, so a server can step whatever rows a push names, and rows never touched cost
 * nothing but their storage.
 */
import { argError } from '../errors.js';
import { f } from './common.js';
import type { StateArrays } from './common.js';

/**
 * One step of a sparse optimizer over `rows` of `table` and of the state arrays, in place.
 * `step` is the 1-based number of this step of the whole table: PyTorch keeps one count per
 * parameter (per table, not per row), incremented on every step in which the table had a gradient.
 */
export type SparseStepFunction<O> = (
  table: Float32Array,
  state: StateArrays,
  rows: ArrayLike<number>,
  grads: Float32Array,
  dim: number,
  options: O,
  step: number,
) => void;

/**
 * A sparse optimizer described for code that manages its own state (a parameter server, a worker):
 * defaults, validation, which state arrays it needs, how many floats each keeps per row, how they
 * start, and the step (with its plain oracle beside it).
 */
export interface SparseAlgorithm<O extends object> {
  /** PyTorch's class name where there is one: 'SparseAdam'. */
  readonly name: string;
  /** Defaults in camelCase. A key whose default is `undefined` must be given (SGD's lr). */
  readonly defaults: Readonly<O>;
  /** Throws an OptimizerError naming the first invalid value. */
  validate(options: O): void;
  /** The state arrays a table needs under these options, in a fixed order. */
  stateKeys(options: O): readonly string[];
  /** Floats per row of a state array: D (Adam's moments, Adagrad's sum) or 1 (row-wise Adagrad). */
  stateSize(key: string, dim: number): number;
  /** The value a new row of a state array starts at (0, or initialAccumulatorValue). */
  initialValue(key: string, options: O): number;
  /**
   * Whether `rows` must be unique (coalesced). False only for SGD, which PyTorch applies once per
   * occurrence of an id, in order, without coalescing.
   */
  readonly uniqueRows: boolean;
  /** The fused step: one pass over each row, no allocation. */
  readonly step: SparseStepFunction<O>;
  /** The plain step, written as PyTorch's sequence of tensor operations: the fused step's oracle. */
  readonly reference: SparseStepFunction<O>;
}

/** One field of a row's record: the weights, or one state array's part of the row. */
export interface RowField {
  readonly name: string;
  readonly offset: number;
  readonly length: number;
}

/**
 * How one row is laid out when its weights and optimizer state travel or are saved together:
 * `weight` (D floats) first, then each state key in `stateKeys` order. `size` floats per row.
 */
export interface RowLayout {
  readonly dim: number;
  readonly size: number;
  readonly fields: readonly RowField[];
}

/**
 * The per-row record layout of a table stepped by `algorithm` under `options`.
 *
 * @example
 * rowLayout(sparseAdam, sparseAdam.defaults, 32);
 * // { dim: 32, size: 96, fields: [ { name: 'weight', offset: 0, length: 32 },
 * //   { name: 'expAvg', offset: 32, length: 32 }, { name: 'expAvgSq', offset: 64, length: 32 } ] }
 * rowLayout(rowwiseAdagrad, rowwiseAdagrad.defaults, 32).size; // 33
 */
export function rowLayout<O extends object>(algorithm: SparseAlgorithm<O>, options: O, dim: number): RowLayout {
  checkDim('rowLayout', dim);
  const fields: RowField[] = [{ name: 'weight', offset: 0, length: dim }];
  let size = dim;
  for (const key of algorithm.stateKeys(options)) {
    const length = algorithm.stateSize(key, dim);
    fields.push({ name: key, offset: size, length });
    size += length;
  }
  return { dim, size, fields };
}

/**
 * Allocates the state arrays for `rowCount` rows, each filled with its initial value.
 *
 * @example
 * const state = allocateSparseState(sparseAdagrad, resolveOptions(sparseAdagrad, { initialAccumulatorValue: 0.1 }), 1000, 16);
 * state.sum.length; // 16000, every value 0.1
 */
export function allocateSparseState<O extends object>(
  algorithm: SparseAlgorithm<O>, options: O, rowCount: number, dim: number,
): Record<string, Float32Array> {
  checkDim('allocateSparseState', dim);
  if (!Number.isInteger(rowCount) || rowCount < 0) throw argError('allocateSparseState', `rowCount must be an integer ≥ 0, got ${rowCount}`);
  const state: Record<string, Float32Array> = {};
  for (const key of algorithm.stateKeys(options)) {
    state[key] = new Float32Array(rowCount * algorithm.stateSize(key, dim)).fill(algorithm.initialValue(key, options));
  }
  return state;
}

/**
 * Copies each of `rows` — its weights and its state, as `layout` says — into `out` (R, layout.size):
 * what a server sends or saves for those rows, so weights and moments of a row never part.
 */
export function gatherRows(layout: RowLayout, table: Float32Array, state: StateArrays, rows: ArrayLike<number>, out: Float32Array): void {
  const arrays = layoutArrays('gatherRows', layout, table, state, rows);
  if (out.length !== rows.length * layout.size) throw argError('gatherRows', `out has length ${out.length}, expected rows (${rows.length}) × row size (${layout.size}) = ${rows.length * layout.size}`);
  for (let j = 0; j < rows.length; j++) {
    const r = rows[j]!, o = j * layout.size;
    for (let k = 0; k < arrays.length; k++) {
      const { offset, length } = layout.fields[k]!;
      out.set(arrays[k]!.subarray(r * length, (r + 1) * length), o + offset);
    }
  }
}

/** The inverse of `gatherRows`: writes the records in `src` (R, layout.size) into the rows named. */
export function scatterRows(layout: RowLayout, table: Float32Array, state: StateArrays, rows: ArrayLike<number>, src: Float32Array): void {
  const arrays = layoutArrays('scatterRows', layout, table, state, rows);
  if (src.length !== rows.length * layout.size) throw argError('scatterRows', `src has length ${src.length}, expected rows (${rows.length}) × row size (${layout.size}) = ${rows.length * layout.size}`);
  for (let j = 0; j < rows.length; j++) {
    const r = rows[j]!, o = j * layout.size;
    for (let k = 0; k < arrays.length; k++) {
      const { offset, length } = layout.fields[k]!;
      arrays[k]!.set(src.subarray(o + offset, o + offset + length), r * length);
    }
  }
}

function layoutArrays(fn: string, layout: RowLayout, table: Float32Array, state: StateArrays, rows: ArrayLike<number>): Float32Array[] {
  const V = checkTable(fn, table, layout.dim);
  const arrays = layout.fields.map((field, k) => {
    const a = k === 0 ? table : state[field.name];
    if (!(a instanceof Float32Array) || a.length !== V * field.length) {
      throw argError(fn, `state.${field.name} must be a Float32Array of length ${V * field.length} (${V} rows × ${field.length}), got ${describe(a)}`);
    }
    return a;
  });
  checkRowIndices(fn, rows, V, false);
  return arrays;
}

// ---------------------------------------------------------------------------------------------
// Argument checks: O(1) for arrays, O(R) for the rows (O(R log R) when they are not sorted and
// must be unique).

export function checkDim(fn: string, dim: number): void {
  if (!Number.isInteger(dim) || dim < 1) throw argError(fn, `dim must be an integer ≥ 1, got ${dim}`);
}

/** Checks the table against dim and returns V, its number of rows. */
export function checkTable(fn: string, table: Float32Array, dim: number): number {
  checkDim(fn, dim);
  if (!(table instanceof Float32Array)) throw argError(fn, `table must be a Float32Array, got ${describe(table)}`);
  if (table.length % dim !== 0) throw argError(fn, `table has length ${table.length}, not a multiple of dim ${dim}`);
  return table.length / dim;
}

/** Every row an integer in [0, V); with `unique`, no row twice. */
export function checkRowIndices(fn: string, rows: ArrayLike<number>, V: number, unique: boolean): void {
  if (rows === null || typeof rows !== 'object' || typeof rows.length !== 'number') throw argError(fn, `rows must be an Int32Array or an array of row indices, got ${describe(rows)}`);
  let sorted = true, prev = -1;
  for (let j = 0; j < rows.length; j++) {
    const r = rows[j]!;
    if (!Number.isInteger(r) || r < 0 || r >= V) {
      throw argError(fn, `row index ${r} at position ${j} is ${Number.isInteger(r) ? `out of range [0, ${V})` : 'not an integer'}`);
    }
    if (r <= prev) sorted = false;
    prev = r;
  }
  if (unique && !sorted) {
    const s = sortScratch(rows.length);
    for (let j = 0; j < rows.length; j++) s[j] = rows[j]!;
    s.sort();
    for (let j = 1; j < s.length; j++) {
      if (s[j] === s[j - 1]) throw argError(fn, `row index ${s[j]} appears more than once: rows must be unique (coalesce the gradient first)`);
    }
  }
}

let sortBuffer = new Int32Array(0);
/** A scratch Int32Array view of length n, grown (never shrunk) as needed: one per thread. */
function sortScratch(n: number): Int32Array {
  if (sortBuffer.length < n) sortBuffer = new Int32Array(Math.max(n, 2 * sortBuffer.length));
  return sortBuffer.subarray(0, n);
}

/**
 * Checks a sparse step's arguments: table and dim, every state array (V × its per-row size), the
 * rows, grads (R × D) and the step number. Returns V.
 */
export function checkSparseStepArgs<O extends object>(
  fn: string, algorithm: SparseAlgorithm<O>, table: Float32Array, state: StateArrays,
  rows: ArrayLike<number>, grads: Float32Array, dim: number, options: O, step: number,
): number {
  const V = checkTable(fn, table, dim);
  algorithm.validate(options);
  for (const key of algorithm.stateKeys(options)) {
    const s = state[key], n = V * algorithm.stateSize(key, dim);
    if (!(s instanceof Float32Array)) throw argError(fn, `state.${key} must be a Float32Array of length ${n}, got ${describe(s)}`);
    if (s.length !== n) throw argError(fn, `state.${key} has length ${s.length}, expected ${n} (${V} rows × ${algorithm.stateSize(key, dim)})`);
  }
  if (!(grads instanceof Float32Array)) throw argError(fn, `grads must be a Float32Array, got ${describe(grads)}`);
  checkRowIndices(fn, rows, V, algorithm.uniqueRows);
  if (grads.length !== rows.length * dim) throw argError(fn, `grads has length ${grads.length}, expected rows (${rows.length}) × dim (${dim}) = ${rows.length * dim}`);
  if (!Number.isInteger(step) || step < 1) throw argError(fn, `step must be an integer ≥ 1 (the number of this step), got ${step}`);
  return V;
}

function describe(v: unknown): string {
  if (v === undefined || v === null) return String(v);
  if (ArrayBuffer.isView(v)) return `${v.constructor.name}(${(v as unknown as ArrayLike<number>).length})`;
  return typeof v;
}

// ---------------------------------------------------------------------------------------------
// coalesce

/** A coalesced gradient: unique rows in increasing order (R) and their summed values (R, D). */
export interface Coalesced {
  rows: Int32Array;
  values: Float32Array;
}

/**
 * Scratch buffers for `coalesce`, grown as needed and reused, so coalescing allocates nothing once
 * they are large enough. The arrays a `coalesce` returns are views into them: valid until the next
 * `coalesce` with the same workspace. Not shared between threads.
 */
export class SparseWorkspace {
  /** @internal (N) sort keys: id · N + position. */
  keys = new Float64Array(0);
  /** @internal (R) */
  rows = new Int32Array(0);
  /** @internal (R, D) */
  values = new Float32Array(0);

  /** @internal */
  reserve(n: number, dim: number): void {
    if (this.keys.length < n) this.keys = new Float64Array(Math.max(n, 2 * this.keys.length));
    if (this.rows.length < n) this.rows = new Int32Array(Math.max(n, 2 * this.rows.length));
    if (this.values.length < n * dim) this.values = new Float32Array(Math.max(n * dim, 2 * this.values.length));
  }
}

const defaultWorkspace = new SparseWorkspace();

function checkCoalesceArgs(fn: string, ids: ArrayLike<number>, values: Float32Array, dim: number): void {
  checkDim(fn, dim);
  if (ids === null || typeof ids !== 'object' || typeof ids.length !== 'number') throw argError(fn, `ids must be an Int32Array or an array of ids, got ${describe(ids)}`);
  if (!(values instanceof Float32Array)) throw argError(fn, `values must be a Float32Array, got ${describe(values)}`);
  if (values.length !== ids.length * dim) throw argError(fn, `values has length ${values.length}, expected ids (${ids.length}) × dim (${dim}) = ${ids.length * dim}`);
  for (let k = 0; k < ids.length; k++) {
    const id = ids[k]!;
    if (!Number.isInteger(id) || id < 0 || id > 0x7fffffff) {
      throw argError(fn, `id ${id} at position ${k} is ${Number.isInteger(id) ? 'out of range [0, 2³¹)' : 'not an integer'}`);
    }
  }
}

/**
 * Sorts `ids` (N) and sums the value rows (N, D) of duplicate ids, as PyTorch's `coalesce()`:
 * unique ids in increasing order, each with the float32 sum of its rows added **in order of
 * occurrence** — ((v₀ + v₁) + v₂)… Summing in another order can change the bits. PyTorch 1.13 on
 * the CPU sorts with `std::sort`, which is stable up to 16 ids, so for N ≤ 16 the bits are
 * PyTorch's; beyond, its order among equal ids is whatever introsort leaves, and sums of three or
 * more duplicates can differ from PyTorch's in the last bits (measured in the tests).
 *
 * The result is views into `workspace` (valid until its next use); no allocation once it is large
 * enough. O(N log N) in a native typed-array sort.
 *
 * @example
 * const { rows, values } = coalesce(Int32Array.of(4, 1, 4), Float32Array.of(1, 2, 10, 20, 100, 200), 2);
 * // rows = [1, 4], values = [10, 20, 101, 202]
 */
export function coalesce(ids: ArrayLike<number>, values: Float32Array, dim: number, workspace: SparseWorkspace = defaultWorkspace): Coalesced {
  checkCoalesceArgs('coalesce', ids, values, dim);
  const n = ids.length;
  // Keys id·n + k sort by id, then by position, exactly in float64 while id·n + k < 2⁵³.
  if (n > 0 && 0x7fffffff * n + n > Number.MAX_SAFE_INTEGER) return coalesceReference(ids, values, dim);
  workspace.reserve(n, dim);
  const keys = workspace.keys.subarray(0, n); // (N)
  for (let k = 0; k < n; k++) keys[k] = ids[k]! * n + k;
  keys.sort();
  const outRows = workspace.rows, out = workspace.values; // (R), (R, D)
  let r = -1, prev = -1;
  for (let j = 0; j < n; j++) {
    const key = keys[j]!;
    const id = Math.floor(key / n), k = key - id * n;
    const src = k * dim;
    if (id !== prev) {
      r++;
      outRows[r] = id;
      const dst = r * dim;
      for (let d = 0; d < dim; d++) out[dst + d] = values[src + d]!;
      prev = id;
    } else {
      const dst = r * dim;
      for (let d = 0; d < dim; d++) out[dst + d] = f(out[dst + d]! + values[src + d]!);
    }
  }
  return { rows: outRows.subarray(0, r + 1), values: out.subarray(0, (r + 1) * dim) };
}

/** The plain coalesce: a stable sort of (id, position) pairs, then a sum per id. `coalesce`'s oracle. */
export function coalesceReference(ids: ArrayLike<number>, values: Float32Array, dim: number): Coalesced {
  checkCoalesceArgs('coalesceReference', ids, values, dim);
  const order = Array.from({ length: ids.length }, (_, k) => k).sort((a, b) => ids[a]! - ids[b]!); // stable
  const rows: number[] = [], sums: number[] = [];
  for (const k of order) {
    const row = Array.from(values.subarray(k * dim, (k + 1) * dim));
    if (rows.length > 0 && rows[rows.length - 1] === ids[k]) {
      const base = sums.length - dim;
      row.forEach((v, d) => (sums[base + d] = f(sums[base + d]! + v)));
    } else {
      rows.push(ids[k]!);
      sums.push(...row);
    }
  }
  return { rows: Int32Array.from(rows), values: Float32Array.from(sums) };
}

/**
 * One step of `algorithm` over `rows` of the table, in place: `algorithm.step` with its name in
 * front, for code that picks the optimizer at run time (a server configured by name).
 *
 * @example
 * const V = 10, D = 4, table = new Float32Array(V * D).fill(1);
 * const options = resolveOptions(sparseAdam, { lr: 0.1 });
 * const state = allocateSparseState(sparseAdam, options, V, D);
 * const { rows, values } = coalesce(Int32Array.of(7, 2, 7), new Float32Array(3 * D).fill(1), D);
 * sparseStep(sparseAdam, table, state, rows, values, D, options, 1); // rows 2 and 7 move by −0.1
 */
export function sparseStep<O extends object>(
  algorithm: SparseAlgorithm<O>, table: Float32Array, state: StateArrays, rows: ArrayLike<number>,
  grads: Float32Array, dim: number, options: O, step: number,
): void {
  algorithm.step(table, state, rows, grads, dim, options, step);
}

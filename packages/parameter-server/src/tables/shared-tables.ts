/**
 * Embedding tables for the worker threads of one machine: each table a (V, D) array of rows with
 * its sparse optimizer's state arrays beside it, all in ONE SharedArrayBuffer that every thread
 * views, so a worker reads and steps rows in place — no copy of a table per thread, no server.
 *
 * Indexed by dense ids: row i of a table is id i, for ids 0 … V−1 (the generated click log's users,
 * articles, categories and subcategories are numbered so). That is what lets a thread find a row
 * without a map. The parameter-server path (RowTable, over the network) is different: it keys rows
 * by 64-bit-safe ids with a dynamic vocabulary (rows made on first pull, admission, eviction). Both
 * start a row with the same value for the same (seed, table, id) — see row-init.ts — so a model
 * trained either way starts from the same bits.
 *
 * Every row is made at allocation (rowInit, in id order), not on first touch: a lazy row would
 * need a per-row flag checked on every pull, and two threads racing to make it. Making all of them
 * costs one pass over the tables, on the allocating thread: measured here, 0.18 s for 120k rows of
 * 32 (scale 10) and 1.7 s for 1.2M (scale 100, 1M users) — a few percent of an epoch at either
 * scale, and the generated data's ids are nearly all in use anyway.
 *
 * Layout of the buffer (f32; every array starts on a 64-byte line):
 *   for each table:  weight (V, D), then each state key of the sparse optimizer (V, stateSize)
 *
 *   ids    (N)      the ids of a pull or push; a push's must be unique (StepTables' are: ascending)
 *   out    (N, D)   what a pull writes
 *   grads  (N, D)   what a push steps the rows with
 */
import { namedSparseOptimizer, rowLayout, type RowLayout, type SparseAlgorithm } from '@loom/optimizer';
import { tableError } from './errors.js';
import { rowInit } from './row-init.js';

/** Floats per 64-byte line. */
const LINE = 16;
const roundToLine = (n: number) => Math.ceil(n / LINE) * LINE;

/** One table of a SharedTablesSpec: its size and where its arrays start (byte offsets). */
export interface SharedTableSpec {
  name: string;
  /** V: ids 0 … V−1. */
  rows: number;
  dim: number;
  at: { weight: number; state: Record<string, number> };
}

/** Shared tables as plain data: what crosses postMessage to a thread (the buffer is shared, not copied). */
export interface SharedTablesSpec {
  buffer: SharedArrayBuffer;
  seed: number;
  /** The sparse optimizer by name (@loom/optimizer's namedSparseOptimizer) and its learning rate. */
  sparse: { name: string; lr: number };
  tables: SharedTableSpec[];
}

export interface SharedTablesOptions {
  tables: readonly { name: string; rows: number; dim: number }[];
  seed: number;
  sparseOptimizer: string;
  sparseLr: number;
  /** Rows start ~ N(0, initStd²); 1 as torch.nn.Embedding (and RowTable). */
  initStd?: number;
}

/**
 * Allocates the tables in one SharedArrayBuffer, every row at its initial value and every state
 * array at the optimizer's. Blocks for one pass over the tables.
 *
 * @example
 * const spec = allocateSharedTables({ tables: [{ name: 'user', rows: 1000, dim: 32 }], seed: 42, sparseOptimizer: 'sparse-adam', sparseLr: 1e-3 });
 * const { user } = sharedTables(spec); // in this thread or any thread the spec is posted to
 */
export function allocateSharedTables(o: SharedTablesOptions): SharedTablesSpec {
  const { algorithm, options } = namedSparseOptimizer(o.sparseOptimizer, { lr: o.sparseLr });
  const names = new Set<string>();
  let floats = 0;
  const tables: SharedTableSpec[] = o.tables.map(({ name, rows, dim }) => {
    if (names.has(name)) throw tableError(name, 'named twice');
    names.add(name);
    if (!(Number.isInteger(rows) && rows >= 1 && rows <= 0x7fffffff)) throw tableError(name, `rows must be an integer in [1, 2^31), got ${rows}`);
    const layout = rowLayout(algorithm, options, dim);
    const weight = 4 * floats;
    floats += roundToLine(rows * dim);
    const state: Record<string, number> = {};
    for (const f of layout.fields.slice(1)) {
      state[f.name] = 4 * floats;
      floats += roundToLine(rows * f.length);
    }
    return { name, rows, dim, at: { weight, state } };
  });
  const spec: SharedTablesSpec = { buffer: new SharedArrayBuffer(4 * floats), seed: o.seed, sparse: { name: o.sparseOptimizer, lr: o.sparseLr }, tables };
  for (const t of Object.values(sharedTables(spec))) {
    const init = rowInit(o.seed, t.name, t.dim, o.initStd ?? 1);
    for (let id = 0; id < t.rows; id++) init(id, t.weights, id * t.dim);
    for (const [key, s] of Object.entries(t.state)) {
      const v = algorithm.initialValue(key, options);
      if (v !== 0) s.fill(v);
    }
  }
  return spec;
}

/** This thread's views of the tables of `spec`, by name. */
export function sharedTables(spec: SharedTablesSpec): Record<string, SharedTable> {
  const { algorithm, options } = namedSparseOptimizer(spec.sparse.name, { lr: spec.sparse.lr });
  return Object.fromEntries(spec.tables.map((t) => [t.name, new SharedTable(spec.buffer, t, algorithm, options)]));
}

/**
 * One table's rows in shared memory, as a thread sees them. pull/read copy rows out; push steps
 * rows in place with the sparse optimizer. Nothing locks: two threads pushing the same row at once
 * race on it (Hogwild!, the accepted semantics of async tables); a push reads and writes only the
 * rows it names, so pushes of different rows never interfere. Nothing allocates per call.
 */
export class SharedTable {
  readonly name: string;
  readonly dim: number;
  /** V: the table holds ids 0 … V−1. */
  readonly rows: number;
  readonly layout: RowLayout;
  /** (V, D) */
  readonly weights: Float32Array;
  /** Per state key: (V, stateSize) */
  readonly state: Record<string, Float32Array>;

  constructor(
    buffer: SharedArrayBuffer,
    spec: SharedTableSpec,
    private readonly algorithm: SparseAlgorithm<any>,
    private readonly options: object,
  ) {
    this.name = spec.name;
    this.dim = spec.dim;
    this.rows = spec.rows;
    this.layout = rowLayout(algorithm, options, spec.dim);
    this.weights = new Float32Array(buffer, spec.at.weight, spec.rows * spec.dim);
    this.state = {};
    for (const f of this.layout.fields.slice(1)) this.state[f.name] = new Float32Array(buffer, spec.at.state[f.name]!, spec.rows * f.length);
  }

  /** Writes the row of each id into `out` (N, D). Throws a TableError naming the first id not in [0, V). */
  read(ids: ArrayLike<number>, out: Float32Array): void {
    const D = this.dim;
    if (out.length !== ids.length * D) throw tableError(this.name, `read of ${ids.length} ids needs out of ${ids.length} × ${D} = ${ids.length * D} floats, got ${out.length}`);
    this.check(ids);
    const w = this.weights;
    for (let k = 0; k < ids.length; k++) {
      const src = ids[k]! * D, dst = k * D;
      for (let d = 0; d < D; d++) out[dst + d] = w[src + d]!;
    }
  }

  /** The same as read: every row exists. (RowStore's pull; `step` is not needed.) */
  pull(ids: ArrayLike<number>, out: Float32Array): void {
    this.read(ids, out);
  }

  /**
   * Steps the rows of `ids` (unique; any order for SGD, which takes repeats too) with `grads`
   * (N, D), in place. `step` is the table's 1-based optimizer step: the global training step, the
   * same for every worker, as PyTorch counts one per step in which the table had a gradient.
   */
  push(ids: ArrayLike<number>, grads: Float32Array, step: number): void {
    this.check(ids);
    this.algorithm.step(this.weights, this.state, ids, grads, this.dim, this.options, step);
  }

  /** Rows held: all V, made at allocation. (RowTable's stats, for metrics.) */
  stats(): { rows: number; created: number; evicted: number } {
    return { rows: this.rows, created: this.rows, evicted: 0 };
  }

  private check(ids: ArrayLike<number>): void {
    const V = this.rows;
    for (let k = 0; k < ids.length; k++) {
      const id = ids[k]!;
      if (!(Number.isInteger(id) && id >= 0 && id < V)) {
        throw tableError(this.name, `id ${id} at position ${k} is not a row of this table: thread tables are indexed by dense ids in [0, ${V})`);
      }
    }
  }
}

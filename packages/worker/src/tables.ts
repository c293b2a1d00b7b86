/**
 * One step's embedding rows, held compactly. A batch of 512 impressions touches a few thousand rows
 * of tables of millions; the step pulls only those, each once, into a local table of the unique
 * rows (U, D), and looks rows up by their position there. Forward and backward then run on the
 * local table, whose ordinary dense gradient IS the row-sparse gradient of the global table at
 * those ids — duplicates already summed by backward — and the transport pushes it back by id.
 * Nothing table-sized is allocated anywhere; the buffers grow to the largest step and are reused.
 *
 *   keys   (N)      the ids a batch names for a table, repeats allowed (Task.keys)
 *   ids    (U)      the unique ones, ascending: what the transport pulls and pushes
 *   local  (N)      each key's row in the local table: ids[local[i]] === keys[i]
 *   rows   (U, D)   their values, written by the transport's pull
 *   grads  (U, D)   their gradient, written by backward, read by the transport's push
 */
import { Tensor, UniqueIds } from '@loom/tensor-core';
import { WorkerError } from './errors.js';

/**
 * The ids of the embedding rows a step reads, by table name: what a transport needs to pull and
 * push only those rows of a row-keyed table instead of the whole of it. Ids appear as the batch
 * holds them (any order, repeats allowed); a transport that wants them sorted and unique sorts
 * them itself. The arrays may be views into the batch's buffers, valid until the next step.
 */
export type TableKeys = Readonly<Record<string, Int32Array>>;

export interface TableSpec {
  name: string;
  dim: number;
}

/** The step's part of one table. Views into buffers reused by the next step. */
export interface StepTable {
  readonly name: string;
  readonly dim: number;
  ids: Int32Array;
  local: Int32Array;
  rows: Float32Array;
  grads: Float32Array;
  /** (U, D) a leaf over `rows` whose gradient is `grads`: what the task's embedding lookups read. */
  weight: Tensor;
}

/**
 * Where a table's rows live, as a transport that steps them in-process needs it (a parameter
 * server's RowTable has this shape). `step` in push is the optimizer's 1-based step count.
 */
export interface RowStore {
  pull(ids: ArrayLike<number>, out: Float32Array, step?: number): void;
  push(ids: ArrayLike<number>, grads: Float32Array, step: number): void;
}

class TableBuffers {
  readonly unique = new UniqueIds();
  rows = new Float32Array(0);
  grads = new Float32Array(0);
  readonly view: StepTable;

  constructor(name: string, dim: number) {
    const none = new Float32Array(0);
    this.view = { name, dim, ids: new Int32Array(0), local: new Int32Array(0), rows: none, grads: none, weight: new Tensor(none, [0, dim]) };
  }
}

export class StepTables implements Iterable<StepTable> {
  private readonly tables = new Map<string, TableBuffers>();

  constructor(specs: readonly TableSpec[]) {
    for (const { name, dim } of specs) {
      if (this.tables.has(name)) throw new WorkerError('StepTables', `table '${name}' is named twice`);
      if (!(Number.isInteger(dim) && dim > 0)) throw new WorkerError('StepTables', `table '${name}': dim must be a positive integer, got ${dim}`);
      this.tables.set(name, new TableBuffers(name, dim));
    }
  }

  /** Dedups this step's keys, table by table, and gives each a zeroed gradient; rows are left for the pull to fill. */
  prepare(keys: TableKeys): void {
    for (const [name, t] of this.tables) {
      const k = keys[name];
      if (k === undefined) throw new WorkerError('StepTables.prepare', `the task gave no keys for table '${name}'`);
      const { unique, inverse } = t.unique.of(k);
      const v = t.view;
      const n = unique.length * v.dim;
      if (t.rows.length < n) {
        t.rows = new Float32Array(Math.max(n, 2 * t.rows.length));
        t.grads = new Float32Array(t.rows.length);
      }
      v.ids = unique;
      v.local = inverse;
      v.rows = t.rows.subarray(0, n);
      v.grads = t.grads.subarray(0, n);
      v.grads.fill(0);
      v.weight = new Tensor(v.rows, [unique.length, v.dim], true);
      v.weight.grad = new Tensor(v.grads, [unique.length, v.dim]);
    }
  }

  get(name: string): StepTable {
    const t = this.tables.get(name);
    if (t === undefined) throw new WorkerError('StepTables', `no table '${name}' (the tables are ${[...this.tables.keys()].join(', ')})`);
    return t.view;
  }

  *[Symbol.iterator](): Iterator<StepTable> {
    for (const t of this.tables.values()) yield t.view;
  }
}

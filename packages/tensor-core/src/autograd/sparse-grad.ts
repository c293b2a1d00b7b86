/**
 * Row-sparse gradients: the gradient of an embedding table (V, D) as the rows a step touched,
 * never as a dense (V, D) array.
 *
 * A backward pass appends one value row per looked-up index (repeats included), as PyTorch's
 * uncoalesced sparse gradient of `nn.Embedding(sparse=True)`; reading `ids`/`values` coalesces
 * them: the touched rows' ids, ascending and unique, and each row's occurrences summed, in the
 * order PyTorch's `coalesce()` sums them (kernels/coalesce.ts), so an optimizer reading them can
 * match PyTorch bit for bit. Gradients accumulate across backward calls until `clear()`
 * (`zeroGrad()`); a second append is merged into the first as PyTorch adds two uncoalesced sparse
 * gradients (`mergeRows`), so accumulated sums round as PyTorch's too.
 *
 * Memory grows with the occurrences of a step (N·D), never with the table; buffers grow by
 * doubling and are reused after `clear()`, so a steady training loop allocates nothing.
 */
import { opError } from '../errors.js';
import { coalesceRows, mergeRows } from '../kernels/coalesce.js';

/**
 * The gradient of a table of `rows` × `dim` as (sorted unique row ids, their summed rows).
 *
 * How an optimizer reads it (a step over given rows, as @loom/optimizer's sparse optimizers):
 *
 * @example
 * const emb = new Embedding(1_000_000, 32, { sparse: true });
 * emb.forward(IntTensor.from([5, 9, 5])).sum().backward();
 * const g = emb.weight.sparseGrad!; // emb.weight.grad stays null
 * g.size;   // 2 unique rows
 * g.ids;    // Int32Array [5, 9]
 * g.values; // Float32Array of 2·32: row 5's gradient (both lookups summed), then row 9's
 * for (let r = 0; r < g.size; r++) {          // plain SGD on the touched rows only
 *   const row = g.ids[r] * 32;
 *   for (let j = 0; j < 32; j++) emb.weight.data[row + j] -= 0.1 * g.values[r * 32 + j];
 * }
 * emb.zeroGrad(); // clears it
 */
export class RowSparseGrad {
  /** V, the number of rows of the table (ids are in [0, V)). */
  readonly rows: number;
  /** D, the width of a row. */
  readonly dim: number;
  private n = 0; // occurrences held since the last clear (after merges)
  private occIds = new Int32Array(0); // (≥ N)
  private occValues = new Float32Array(0); // (≥ N, D)
  private spareIds = new Int32Array(0); // (≥ N) the merge's output, swapped with occ*
  private spareValues = new Float32Array(0);
  private staged = 0; // occurrences written by the pending backward rule
  private stageIds = new Int32Array(0);
  private stageValues = new Float32Array(0);
  private u = 0; // unique rows, valid when `coalesced`
  private coalesced = true;
  private outIds = new Int32Array(0); // (≥ U)
  private outValues = new Float32Array(0); // (≥ U, D)
  private keys = new Int32Array(0); // (≥ N) sort scratch
  private perm = new Int32Array(0); // (≥ N) sort scratch

  constructor(rows: number, dim: number) {
    this.rows = rows;
    this.dim = dim;
  }

  /**
   * The number of occurrences held: looked-up indices, repeats included, except that accumulation
   * merges equal ids met at the same point of two gradients (as PyTorch's sparse add).
   */
  get occurrences(): number {
    return this.n;
  }

  /** U, the number of distinct rows touched since the last clear. */
  get size(): number {
    this.coalesce();
    return this.u;
  }

  /** (U) the touched row ids, ascending and unique. A view, valid until the next append or clear. */
  get ids(): Int32Array {
    this.coalesce();
    return this.outIds.subarray(0, this.u);
  }

  /** (U, D) the gradient of each row of `ids`, repeats summed. A view, valid until the next append or clear. */
  get values(): Float32Array {
    this.coalesce();
    return this.outValues.subarray(0, this.u * this.dim);
  }

  /**
   * Appends n occurrences: row ids[k] gets gradient values(k, :). Ids must be in [0, rows): the
   * ops have checked them when looking the rows up; this checks again for direct callers.
   */
  append(ids: Int32Array, values: Float32Array, n = ids.length): void {
    if (values.length < n * this.dim) {
      throw opError('RowSparseGrad.append', `expected ${n}·${this.dim} = ${n * this.dim} values for ${n} ids, got ${values.length}`);
    }
    for (let i = 0; i < n; i++) {
      const id = ids[i]!;
      if (!(id >= 0 && id < this.rows)) throw opError('RowSparseGrad.append', `row id ${id} at position ${i} is out of range for ${this.rows} rows`);
    }
    const slot = this._stage(n);
    slot.ids.set(ids.subarray(0, n));
    slot.values.set(values.subarray(0, n * this.dim));
    this._commit();
  }

  /**
   * @internal Room for n new occurrences, as views for a backward rule to fill in place (ids
   * already checked); `_commit()` then adds them to the gradient.
   */
  _stage(n: number): { ids: Int32Array; values: Float32Array } {
    if (this.stageIds.length < n) {
      const cap = Math.max(n, 2 * this.stageIds.length);
      this.stageIds = new Int32Array(cap);
      this.stageValues = new Float32Array(cap * this.dim);
    }
    this.staged = n;
    return { ids: this.stageIds.subarray(0, n), values: this.stageValues.subarray(0, n * this.dim) };
  }

  /** @internal Adds the staged occurrences: a copy into an empty gradient, else a merge. */
  _commit(): void {
    const n = this.staged;
    this.staged = 0;
    if (n === 0) return;
    const d = this.dim;
    const need = this.n + n;
    if (this.occIds.length < need) {
      const cap = Math.max(need, 2 * this.occIds.length, 16);
      const ids = new Int32Array(cap);
      const values = new Float32Array(cap * d);
      ids.set(this.occIds.subarray(0, this.n));
      values.set(this.occValues.subarray(0, this.n * d));
      this.occIds = ids;
      this.occValues = values;
      this.spareIds = new Int32Array(cap);
      this.spareValues = new Float32Array(cap * d);
    }
    if (this.n === 0) {
      this.occIds.set(this.stageIds.subarray(0, n));
      this.occValues.set(this.stageValues.subarray(0, n * d));
      this.n = n;
    } else {
      this.n = mergeRows(this.occIds, this.occValues, this.n, this.stageIds, this.stageValues, n, d, this.spareIds, this.spareValues);
      [this.occIds, this.spareIds] = [this.spareIds, this.occIds];
      [this.occValues, this.spareValues] = [this.spareValues, this.occValues];
    }
    this.coalesced = false;
  }

  /** Forgets every occurrence (keeps the buffers). */
  clear(): void {
    this.n = 0;
    this.staged = 0;
    this.u = 0;
    this.coalesced = true;
  }

  private coalesce(): void {
    if (this.coalesced) return;
    const n = this.n;
    if (this.keys.length < n) {
      const cap = this.occIds.length; // ≥ n: grows with the occurrence buffers
      this.keys = new Int32Array(cap);
      this.perm = new Int32Array(cap);
      this.outIds = new Int32Array(cap);
      this.outValues = new Float32Array(cap * this.dim);
    }
    this.u = coalesceRows(this.occIds, this.occValues, n, this.dim, this.keys, this.perm, this.outIds, this.outValues);
    this.coalesced = true;
  }
}

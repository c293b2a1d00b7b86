/**
 * An embedding table keyed by id, as a parameter server holds its share of one: rows are created
 * when first pulled, stepped by a sparse optimizer when pushed, and may be admitted late or
 * evicted. Every process computes a new row's initial value from (seed, table name, id) alone, so
 * servers, workers and a resumed run agree on it without talking.
 *
 * Storage is one weight array (capacity, D) and one array per optimizer state key, aligned with it
 * (see @loom/optimizer's RowLayout), grown by doubling; an IdMap finds an id's slot. A push coalesces
 * the ids it names (duplicates summed, as PyTorch does) and steps only those rows.
 *
 *   ids    (N)      the ids of one pull or push, any order, repeats allowed
 *   out    (N, D)   what a pull writes: each id's row, in the order of `ids`
 *   grads  (N, D)   what a push gives: each id's gradient
 */
import { SparseWorkspace, coalesce, gatherRows, rowLayout, scatterRows, type RowLayout, type SparseAlgorithm } from '@loom/optimizer';
import { tableError } from './errors.js';
import { IdMap, checkId } from './id-map.js';
import { rowInit, type RowInit } from './row-init.js';

export interface RowTableOptions {
  /** The table's name ('user', 'article'): part of every row's seed, and of every error. */
  name: string;
  dim: number;
  seed: number;
  /** The sparse optimizer and its resolved options (see @loom/optimizer's namedSparseOptimizer). */
  algorithm: SparseAlgorithm<any>;
  options: object;
  /** New rows ~ N(0, initStd²); 1 as torch.nn.Embedding. */
  initStd?: number;
  /** An id gets a row at its admitAfter-th pull; before, it reads zeros and its gradients are dropped. Default 1. */
  admitAfter?: number;
  /** Rows not pulled or pushed for this many steps are evicted by `evict(step)`. 0 (default): never. */
  evictAfter?: number;
  /** At most this many rows; creating one more first evicts the least recently touched eighth. 0 (default): no bound. */
  capacity?: number;
}

export interface RowTableStats {
  rows: number;
  created: number;
  evicted: number;
  /** Ids that earned a row after admitAfter pulls (admitAfter > 1 only). */
  admitted: number;
  /** Ids seen but not yet admitted. */
  pending: number;
  /** Gradient rows dropped because their id was not admitted yet. */
  dropped: number;
}

const NONE = -1;

export class RowTable {
  readonly name: string;
  readonly dim: number;
  readonly layout: RowLayout;
  private readonly o: Required<RowTableOptions>;
  private readonly slots: IdMap;
  private readonly pendingCounts = new IdMap(64);
  /** (capacity, D) */
  private weights: Float32Array;
  /** Per state key: (capacity, stateSize) */
  private state: Record<string, Float32Array>;
  /** (capacity) the id in each slot, the step it was last touched, whether it changed since the last checkpoint. */
  private ids: Float64Array;
  private touched: Float64Array;
  private dirty: Uint8Array;
  private free: number[] = [];
  private used = 0;
  private readonly evictedIds: number[] = [];
  private readonly counters = { created: 0, evicted: 0, admitted: 0, dropped: 0 };
  private readonly init: RowInit;
  private readonly workspace = new SparseWorkspace();
  private scratchSlots = new Int32Array(0);
  private scratchGrads = new Float32Array(0);

  constructor(o: RowTableOptions) {
    if (typeof o.name !== 'string' || o.name.length === 0) throw tableError(String(o.name), 'a table needs a name');
    if (!(Number.isInteger(o.dim) && o.dim > 0)) throw tableError(o.name, `dim must be a positive integer, got ${o.dim}`);
    this.o = { initStd: 1, admitAfter: 1, evictAfter: 0, capacity: 0, ...o };
    for (const key of ['admitAfter', 'evictAfter', 'capacity'] as const) {
      const v = this.o[key];
      if (!(Number.isInteger(v) && v >= (key === 'admitAfter' ? 1 : 0))) throw tableError(o.name, `${key} must be an integer ≥ ${key === 'admitAfter' ? 1 : 0}, got ${v}`);
    }
    this.name = o.name;
    this.dim = o.dim;
    this.layout = rowLayout(o.algorithm, o.options, o.dim);
    this.init = rowInit(o.seed, o.name, o.dim, this.o.initStd);
    const initial = 1024;
    this.slots = new IdMap(initial);
    this.weights = new Float32Array(initial * o.dim);
    this.state = {};
    for (const f of this.layout.fields.slice(1)) this.state[f.name] = new Float32Array(initial * f.length).fill(o.algorithm.initialValue(f.name, o.options));
    this.ids = new Float64Array(initial);
    this.touched = new Float64Array(initial);
    this.dirty = new Uint8Array(initial);
  }

  get size(): number {
    return this.slots.size;
  }

  stats(): RowTableStats {
    return { rows: this.slots.size, pending: this.pendingCounts.size, ...this.counters };
  }

  /** Whether `id` has a row. */
  has(id: number): boolean {
    return this.slots.get(id) !== NONE;
  }

  /**
   * Writes the row of each id into `out` (N, D), creating the rows of ids never seen (or counting
   * them towards admission). `step` marks the rows as touched, for eviction.
   */
  pull(ids: ArrayLike<number>, out: Float32Array, step = 0): void {
    const D = this.dim;
    if (out.length !== ids.length * D) throw tableError(this.name, `pull of ${ids.length} ids needs out of ${ids.length} × ${D} = ${ids.length * D} floats, got ${out.length}`);
    for (let k = 0; k < ids.length; k++) checkId(this.name, ids[k]!, k);
    for (let k = 0; k < ids.length; k++) {
      const id = ids[k]!;
      let slot = this.slots.get(id);
      if (slot === NONE) slot = this.admit(id, step);
      if (slot === NONE) {
        out.fill(0, k * D, (k + 1) * D);
        continue;
      }
      this.touched[slot] = step;
      out.set(this.weights.subarray(slot * D, (slot + 1) * D), k * D);
    }
  }

  /**
   * Writes the row of each id into `out` (N, D) without creating, admitting or touching anything:
   * an id without a row reads the initial value it would get (zeros while it awaits admission).
   * For evaluation and serving, which must not grow the table.
   */
  read(ids: ArrayLike<number>, out: Float32Array): void {
    const D = this.dim;
    if (out.length !== ids.length * D) throw tableError(this.name, `read of ${ids.length} ids needs out of ${ids.length} × ${D} = ${ids.length * D} floats, got ${out.length}`);
    for (let k = 0; k < ids.length; k++) {
      const id = ids[k]!;
      checkId(this.name, id, k);
      const slot = this.slots.get(id);
      if (slot !== NONE) out.set(this.weights.subarray(slot * D, (slot + 1) * D), k * D);
      else if (this.o.admitAfter > 1) out.fill(0, k * D, (k + 1) * D);
      else this.initialRow(id, out, k * D);
    }
  }

  /**
   * Steps the rows of `ids` with their gradients (N, D), duplicates summed first. `step` is the
   * optimizer's 1-based step count for this table (one per training step, as PyTorch counts).
   * Ids still waiting for admission are dropped (counted in stats); an id that was never pulled is
   * an error, raised before any row changes.
   */
  push(ids: ArrayLike<number>, grads: Float32Array, step: number): void {
    const D = this.dim;
    const n = ids.length;
    if (grads.length !== n * D) throw tableError(this.name, `push of ${n} ids needs ${n} × ${D} = ${n * D} gradient floats, got ${grads.length}`);
    if (!(Number.isInteger(step) && step >= 1)) throw tableError(this.name, `push needs the optimizer step (an integer ≥ 1), got ${step}`);
    if (this.scratchSlots.length < n) this.scratchSlots = new Int32Array(Math.max(n, 2 * this.scratchSlots.length));
    const slots = this.scratchSlots;
    let kept = 0;
    for (let k = 0; k < n; k++) {
      const id = ids[k]!;
      checkId(this.name, id, k);
      const slot = this.slots.get(id);
      if (slot === NONE) {
        if (this.o.admitAfter > 1 && this.pendingCounts.get(id) !== NONE) continue;
        throw tableError(this.name, `push for id ${id} (position ${k}), which was never pulled: pull a row before pushing its gradient`);
      }
      slots[kept++] = slot;
    }
    for (let k = 0; k < n * D; k++) {
      const g = grads[k]!;
      if (g - g !== 0) throw tableError(this.name, `gradient of id ${ids[Math.floor(k / D)]} (position ${Math.floor(k / D)}) is ${g}: not finite`);
    }
    this.counters.dropped += n - kept;
    let values = grads;
    if (kept < n) {
      // Gather the gradients of the admitted ids only.
      if (this.scratchGrads.length < kept * D) this.scratchGrads = new Float32Array(Math.max(kept * D, 2 * this.scratchGrads.length));
      let j = 0;
      for (let k = 0; k < n; k++) {
        if (this.slots.get(ids[k]!) === NONE) continue;
        this.scratchGrads.set(grads.subarray(k * D, (k + 1) * D), j * D);
        j++;
      }
      values = this.scratchGrads.subarray(0, kept * D);
    }
    const alg = this.o.algorithm;
    if (alg.uniqueRows) {
      const g = coalesce(slots.subarray(0, kept), values, D, this.workspace);
      alg.step(this.weights, this.state, g.rows, g.values, D, this.o.options, step);
    } else {
      alg.step(this.weights, this.state, slots.subarray(0, kept), values, D, this.o.options, step);
    }
    for (let k = 0; k < kept; k++) {
      this.dirty[slots[k]!] = 1;
      this.touched[slots[k]!] = Math.max(this.touched[slots[k]!]!, step);
    }
  }

  /** Evicts rows untouched for `evictAfter` steps before `step`; returns how many. */
  evict(step: number): number {
    if (this.o.evictAfter === 0) return 0;
    let n = 0;
    for (let s = 0; s < this.used; s++) {
      if (this.ids[s]! >= 0 && this.touched[s]! < step - this.o.evictAfter) {
        this.remove(s);
        n++;
      }
    }
    return n;
  }

  /** Ids evicted since the last `takeChanges`, and the rows (ids, records (R, layout.size), the step each was last touched) changed since. */
  takeChanges(): { evicted: number[]; ids: Float64Array; records: Float32Array; touched: Float64Array } {
    const slots: number[] = [];
    for (let s = 0; s < this.used; s++) if (this.dirty[s] && this.ids[s]! >= 0) slots.push(s);
    const out = this.records(slots);
    for (const s of slots) this.dirty[s] = 0;
    const evicted = this.evictedIds.splice(0);
    return { evicted, ...out };
  }

  /** Every row: ids (R) and records (R, layout.size) of weights and state together, and the step each was last touched (R). */
  snapshot(): { ids: Float64Array; records: Float32Array; touched: Float64Array } {
    const slots: number[] = [];
    for (let s = 0; s < this.used; s++) if (this.ids[s]! >= 0) slots.push(s);
    return this.records(slots);
  }

  /**
   * Puts rows back (weights and state together), creating them as needed; `evicted` ids are removed
   * first. `touched` (R), when given, is each row's last-touched step (for eviction); else 0.
   */
  restore(ids: ArrayLike<number>, records: Float32Array, evicted: ArrayLike<number> = [], touched?: ArrayLike<number>): void {
    if (records.length !== ids.length * this.layout.size) {
      throw tableError(this.name, `restore of ${ids.length} rows needs ${ids.length} × ${this.layout.size} floats (weights and optimizer state), got ${records.length}`);
    }
    for (let k = 0; k < evicted.length; k++) {
      const slot = this.slots.get(evicted[k]!);
      if (slot !== NONE) this.remove(slot, false);
    }
    const slots = new Int32Array(ids.length);
    for (let k = 0; k < ids.length; k++) {
      checkId(this.name, ids[k]!, k);
      const slot = this.slots.get(ids[k]!);
      slots[k] = slot !== NONE ? slot : this.create(ids[k]!, 0);
    }
    scatterRows(this.layout, this.weights, this.state, slots, records);
    if (touched !== undefined) for (let k = 0; k < ids.length; k++) this.touched[slots[k]!] = touched[k]!;
    this.evictedIds.length = 0;
    this.dirty.fill(0);
  }

  /** The ids awaiting admission and how many times each was pulled (admitAfter > 1), for checkpoints. */
  pending(): { ids: Float64Array; counts: Int32Array } {
    const { ids, values } = this.pendingCounts.entries();
    return { ids, counts: values };
  }

  /** Replaces the ids awaiting admission and their pull counts (from `pending()`). */
  restorePending(ids: ArrayLike<number>, counts: ArrayLike<number>): void {
    for (const id of this.pendingCounts.entries().ids) this.pendingCounts.delete(id);
    for (let k = 0; k < ids.length; k++) {
      checkId(this.name, ids[k]!, k);
      const c = counts[k]!;
      if (!(Number.isInteger(c) && c >= 1 && c < this.o.admitAfter)) throw tableError(this.name, `pending id ${ids[k]} has ${c} pulls: expected 1 … ${this.o.admitAfter - 1} (admitAfter ${this.o.admitAfter})`);
      this.pendingCounts.set(ids[k]!, c);
    }
  }

  /** The initial value of `id`'s row, as every process computes it, into `out` at `at`. */
  initialRow(id: number, out: Float32Array, at = 0): void {
    this.init(id, out, at);
  }

  private records(slots: number[]): { ids: Float64Array; records: Float32Array; touched: Float64Array } {
    const rows = Int32Array.from(slots);
    const records = new Float32Array(rows.length * this.layout.size);
    gatherRows(this.layout, this.weights, this.state, rows, records);
    return { ids: Float64Array.from(slots, (s) => this.ids[s]!), records, touched: Float64Array.from(slots, (s) => this.touched[s]!) };
  }

  /** A row for `id` when it has earned one (its admitAfter-th pull), else NONE. */
  private admit(id: number, step: number): number {
    if (this.o.admitAfter > 1) {
      const seen = this.pendingCounts.get(id);
      const count = (seen === NONE ? 0 : seen) + 1;
      if (count < this.o.admitAfter) {
        this.pendingCounts.set(id, count);
        return NONE;
      }
      this.pendingCounts.delete(id);
      this.counters.admitted++;
    }
    return this.create(id, step);
  }

  private create(id: number, step: number): number {
    if (this.o.capacity > 0 && this.slots.size >= this.o.capacity) this.evictLeastRecent();
    let slot = this.free.pop();
    if (slot === undefined) {
      if (this.used === this.ids.length) this.grow();
      slot = this.used++;
    }
    this.slots.set(id, slot);
    this.ids[slot] = id;
    this.touched[slot] = step;
    this.dirty[slot] = 1;
    this.initialRow(id, this.weights, slot * this.dim);
    for (const f of this.layout.fields.slice(1)) this.state[f.name]!.fill(this.o.algorithm.initialValue(f.name, this.o.options), slot * f.length, (slot + 1) * f.length);
    this.counters.created++;
    return slot;
  }

  private remove(slot: number, record = true): void {
    this.slots.delete(this.ids[slot]!);
    if (record) this.evictedIds.push(this.ids[slot]!);
    this.ids[slot] = -1;
    this.dirty[slot] = 0;
    this.free.push(slot);
    this.counters.evicted++;
  }

  /** Frees the least recently touched eighth of the rows (at least one): amortised LRU. */
  private evictLeastRecent(): void {
    const live: number[] = [];
    for (let s = 0; s < this.used; s++) if (this.ids[s]! >= 0) live.push(s);
    live.sort((a, b) => this.touched[a]! - this.touched[b]! || a - b);
    const n = Math.max(1, Math.floor(live.length / 8));
    for (let i = 0; i < n; i++) this.remove(live[i]!);
  }

  private grow(): void {
    const cap = this.ids.length * 2;
    const D = this.dim;
    const w = new Float32Array(cap * D);
    w.set(this.weights);
    this.weights = w;
    for (const f of this.layout.fields.slice(1)) {
      const a = new Float32Array(cap * f.length).fill(this.o.algorithm.initialValue(f.name, this.o.options));
      a.set(this.state[f.name]!);
      this.state[f.name] = a;
    }
    for (const key of ['ids', 'touched'] as const) {
      const a = new Float64Array(cap);
      a.set(this[key]);
      this[key] = a;
    }
    const d = new Uint8Array(cap);
    d.set(this.dirty);
    this.dirty = d;
  }
}

/**
 * Unique ids of a batch and where each occurrence went: unique[inverse[i]] === ids[i].
 *
 * A worker pulls only the unique rows a batch touches into a compact local table (U, D), and looks
 * them up with `inverse` instead of the global ids: then forward and backward run on the local
 * table, and its dense gradient IS the row-sparse gradient of the global table at `unique`.
 *
 * Open addressing with Fibonacci hashing and linear probing, O(N); slots are marked with a
 * generation number, so the table is never cleared between calls. Sorting the U unique ids (the
 * default; ps-lite and the parameter server want sorted keys) adds O(U log U).
 *
 * Legend: N ids (with repeats), U unique ids.
 */
import { sortPairsByKey } from './coalesce.js';

export interface Unique {
  /** (U) the distinct ids, ascending (or in order of first occurrence with `sorted: false`). */
  unique: Int32Array;
  /** (N) for each id, its position in `unique`. */
  inverse: Int32Array;
}

/**
 * Reusable scratch for unique ids: its buffers grow to the largest batch seen and are reused, so a
 * training loop allocates nothing per step after the first. The arrays returned by `of` are views
 * into those buffers, valid until the next call on the same instance.
 *
 * @example
 * const u = new UniqueIds();
 * const { unique, inverse } = u.of(Int32Array.of(42, 7, 42, 1000));
 * // unique [7, 42, 1000], inverse [1, 0, 1, 2]
 */
export class UniqueIds {
  private bits = 0;
  private keys = new Int32Array(0); // (capacity) the id in each slot
  private stamp = new Uint32Array(0); // (capacity) the generation that filled each slot
  private pos = new Int32Array(0); // (capacity) the slot's position in `unique`
  private gen = 0;
  private uniq = new Int32Array(0); // (≥ U)
  private slots = new Int32Array(0); // (≥ U) the slot of each unique id
  private inv = new Int32Array(0); // (≥ N)

  /** The unique ids of ids[0..n) (all of `ids` by default) and the inverse map. Never throws. */
  of(ids: Int32Array, { sorted = true, n = ids.length }: { sorted?: boolean; n?: number } = {}): Unique {
    this.reserve(n);
    if (++this.gen === 0x100000000) {
      this.stamp.fill(0);
      this.gen = 1;
    }
    const { keys, stamp, pos, uniq, slots, inv, gen } = this;
    const shift = 32 - this.bits;
    const mask = (1 << this.bits) - 1;
    let u = 0;
    for (let i = 0; i < n; i++) {
      const id = ids[i]!;
      let h = Math.imul(id, 0x9e3779b1) >>> shift;
      while (stamp[h] === gen && keys[h] !== id) h = (h + 1) & mask;
      if (stamp[h] !== gen) {
        stamp[h] = gen;
        keys[h] = id;
        pos[h] = u;
        uniq[u] = id;
        slots[u] = h;
        u++;
      }
      inv[i] = sorted ? h : pos[h]!;
    }
    if (sorted) {
      sortPairsByKey(uniq, slots, u);
      for (let p = 0; p < u; p++) pos[slots[p]!] = p;
      for (let i = 0; i < n; i++) inv[i] = pos[inv[i]!]!;
    }
    return { unique: uniq.subarray(0, u), inverse: inv.subarray(0, n) };
  }

  /** Grows the buffers for batches of n ids: a table at most half full, so probes stay short. */
  private reserve(n: number): void {
    if (this.inv.length < n) {
      this.inv = new Int32Array(n);
      this.uniq = new Int32Array(n);
      this.slots = new Int32Array(n);
    }
    let bits = Math.max(this.bits, 4);
    while (1 << bits < 2 * n) bits++;
    if (bits !== this.bits) {
      this.bits = bits;
      this.keys = new Int32Array(1 << bits);
      this.stamp = new Uint32Array(1 << bits);
      this.pos = new Int32Array(1 << bits);
      this.gen = 0;
    }
  }
}

/**
 * The unique ids of `ids`, ascending, and for each id its position among them, in new arrays.
 * For a loop, keep a `UniqueIds` and call `of`, which reuses its buffers.
 *
 * @example
 * uniqueIds(Int32Array.of(42, 7, 42, 1000)); // { unique: [7, 42, 1000], inverse: [1, 0, 1, 2] }
 */
export function uniqueIds(ids: Int32Array, options: { sorted?: boolean } = {}): Unique {
  const { unique, inverse } = new UniqueIds().of(ids, options);
  return { unique: unique.slice(), inverse: inverse.slice() };
}

/** The oracle: a Set and a Map. */
export function uniqueIdsReference(ids: ArrayLike<number>, sorted = true): { unique: number[]; inverse: number[] } {
  const unique = [...new Set(Array.from(ids))];
  if (sorted) unique.sort((a, b) => a - b);
  const at = new Map(unique.map((id, p) => [id, p]));
  return { unique, inverse: Array.from(ids, (id) => at.get(id)!) };
}

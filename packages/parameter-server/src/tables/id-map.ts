/**
 * A map from 64-bit-safe ids (non-negative integers up to 2⁵³ − 1, as JavaScript numbers hold them
 * exactly) to small integers, by open addressing with linear probing over typed arrays: no object
 * per entry, so tens of millions of ids cost 12 bytes each at most twice over. Deletion shifts the
 * following entries back (no tombstones), so a table that churns does not slow down.
 */
import { tableError } from './errors.js';

const EMPTY = -1;
const TWO32 = 4294967296;

/** Mixes an id's two 32-bit halves (murmur3's finaliser): hot ids that differ in a few bits spread. */
export function hashId(id: number, salt = 0): number {
  let h = Math.imul((id % TWO32) ^ salt, 0xcc9e2d51);
  h ^= Math.imul(Math.floor(id / TWO32), 0x1b873593);
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** Throws unless `id` is an integer in [0, 2⁵³): what a table accepts as a key. */
export function checkId(table: string, id: number, at: number): void {
  if (!(Number.isSafeInteger(id) && id >= 0)) {
    const what = typeof id !== 'number' ? `a ${typeof id}` : !Number.isFinite(id) ? String(id) : !Number.isInteger(id) ? `${id}, not an integer` : id < 0 ? `${id}, negative` : `${id}, beyond 2^53 − 1`;
    throw tableError(table, `id at position ${at} is ${what}: ids are integers in [0, 2^53)`);
  }
}

export class IdMap {
  private keys: Float64Array;
  private values: Int32Array;
  private mask: number;
  size = 0;

  constructor(capacity = 1024) {
    let n = 16;
    while (n < capacity * 2) n *= 2;
    this.keys = new Float64Array(n);
    this.values = new Int32Array(n).fill(EMPTY);
    this.mask = n - 1;
  }

  /** The value of `id`, or −1. */
  get(id: number): number {
    let i = hashId(id) & this.mask;
    for (;;) {
      const v = this.values[i]!;
      if (v === EMPTY || this.keys[i] === id) return v;
      i = (i + 1) & this.mask;
    }
  }

  /** Sets `id` to `value` (≥ 0). */
  set(id: number, value: number): void {
    if ((this.size + 1) * 2 > this.values.length) this.grow();
    let i = hashId(id) & this.mask;
    for (;;) {
      const v = this.values[i]!;
      if (v === EMPTY) {
        this.keys[i] = id;
        this.values[i] = value;
        this.size++;
        return;
      }
      if (this.keys[i] === id) {
        this.values[i] = value;
        return;
      }
      i = (i + 1) & this.mask;
    }
  }

  /** Removes `id`; returns its value, or −1 when it was absent. */
  delete(id: number): number {
    let i = hashId(id) & this.mask;
    for (;;) {
      const v = this.values[i]!;
      if (v === EMPTY) return EMPTY;
      if (this.keys[i] === id) break;
      i = (i + 1) & this.mask;
    }
    const removed = this.values[i]!;
    // Backward-shift: move later entries of the probe run into the hole when their home allows it.
    let hole = i;
    let j = (i + 1) & this.mask;
    while (this.values[j] !== EMPTY) {
      const home = hashId(this.keys[j]!) & this.mask;
      const between = hole <= j ? home > hole && home <= j : home > hole || home <= j;
      if (!between) {
        this.keys[hole] = this.keys[j]!;
        this.values[hole] = this.values[j]!;
        hole = j;
      }
      j = (j + 1) & this.mask;
    }
    this.values[hole] = EMPTY;
    this.size--;
    return removed;
  }

  /** Every (id, value), in slot order: ids (size) and values (size). */
  entries(): { ids: Float64Array; values: Int32Array } {
    const ids = new Float64Array(this.size);
    const values = new Int32Array(this.size);
    let k = 0;
    for (let i = 0; i < this.values.length; i++) {
      if (this.values[i] === EMPTY) continue;
      ids[k] = this.keys[i]!;
      values[k++] = this.values[i]!;
    }
    return { ids, values };
  }

  private grow(): void {
    const keys = this.keys;
    const values = this.values;
    this.keys = new Float64Array(keys.length * 2);
    this.values = new Int32Array(values.length * 2).fill(EMPTY);
    this.mask = this.values.length - 1;
    this.size = 0;
    for (let i = 0; i < values.length; i++) if (values[i] !== EMPTY) this.set(keys[i]!, values[i]!);
  }
}

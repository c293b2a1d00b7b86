/**
 * Memory for the gradients a server receives in parts, reused from push to push. A push's buffer is
 * read until the update that consumes it is stepped, so its lifetime is counted on the store's
 * clock (updates stepped): the store that owns the pool (./store.ts) says until which update each
 * push is held.
 */

/** Where a PayloadPool's buffers come from: ordinary arrays (the default), or the optimizer's memory. */
export interface PayloadMemory {
  alloc(n: number): Float32Array;
  free(a: Float32Array): void;
}

const HEAP: PayloadMemory = { alloc: (n) => new Float32Array(n), free: () => {} };

/**
 * Memory for received payloads, reused: a server copies a gradient sent in parts into one of these
 * instead of a fresh allocation. A buffer is free again after `release`, or after `holdUntil(a, u)`
 * once `reclaim(applied)` sees applied ≥ u (a server keeps a push until the update that reads it is
 * stepped: its clock, in sync and ssp). Holds at most `keep` free buffers; `memory.free`s the rest.
 *
 * With the optimizer's memory (optimizerMemory), a gradient lands where the optimizer's kernel
 * reads it, so an async server steps it in place instead of copying it through a staging area.
 */
export class PayloadPool {
  private free: Float32Array[] = [];
  private held: Array<{ a: Float32Array; until: number }> = [];
  /** The whole buffer behind each view handed out and not yet back. */
  private readonly lent = new Map<Float32Array, Float32Array>();
  constructor(
    private readonly keep = 8,
    private readonly memory: PayloadMemory = HEAP,
  ) {}

  /** n floats (a view of a buffer of n … 2n floats, reused when one is free). */
  take(n: number, applied: number): Float32Array {
    this.reclaim(applied);
    const i = this.free.findIndex((b) => b.length >= n && b.length <= 2 * n);
    const whole = i >= 0 ? this.free.splice(i, 1)[0]! : this.memory.alloc(n);
    const view = whole.subarray(0, n);
    this.lent.set(view, whole);
    return view;
  }

  release(a: Float32Array): void {
    const whole = this.lent.get(a);
    if (whole === undefined) return; // not from this pool
    this.lent.delete(a);
    if (this.free.length < this.keep) this.free.push(whole);
    else this.memory.free(whole);
  }

  holdUntil(a: Float32Array, applied: number): void {
    this.held.push({ a, until: applied });
    if (this.held.length > 4 * this.keep) {
      // Never reclaimed (a dropped clock): forgotten, not freed, since a store may still read it —
      // the garbage collector has an ordinary array; the optimizer's memory is used only where holds
      // end at the next update (async), so this is not reached there.
      this.lent.delete(this.held.shift()!.a);
    }
  }

  reclaim(applied: number): void {
    if (this.held.length === 0) return;
    const still = [];
    for (const h of this.held) if (applied >= h.until) this.release(h.a); else still.push(h);
    this.held = still;
  }

  /** Frees every buffer of the pool, lent or not (when its owner closes: nothing reads them any more). */
  dispose(): void {
    for (const whole of [...this.free, ...this.lent.values()]) this.memory.free(whole);
    this.free = [];
    this.held = [];
    this.lent.clear();
  }
}

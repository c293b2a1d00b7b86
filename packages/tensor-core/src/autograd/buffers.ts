/**
 * Where ops get their output and gradient buffers: fresh arrays normally, or — inside
 * `reusingBuffers(pool, fn)` — arrays lent by a pool and all returned to it when fn returns, in the
 * spirit of TensorFlow.js's `tf.tidy`.
 *
 * Why: a training step allocates a dozen large zero-filled arrays and drops them. In one thread
 * that is cheap; with several threads in one process the allocator's mmap/munmap of large blocks
 * contends on process-wide kernel state, and two worker threads each ran ~30% slower than one
 * alone. Reusing the same arrays every step touches no new memory at all.
 *
 * The contract is the caller's: no tensor created inside the scope may be used after it returns
 * (its data will be someone else's next step). Training loops that own every tensor of a step —
 * forward, loss, backward — are where it belongs.
 */

/** Arrays by length, lent out and taken back. */
export class BufferPool {
  private readonly free = new Map<number, Float32Array[]>();
  private readonly lent: Float32Array[] = [];

  /** A zero-filled array of n elements, lent until the next `reclaim`. */
  take(n: number): Float32Array {
    const b = this.free.get(n)?.pop();
    const out = b === undefined ? new Float32Array(n) : b.fill(0);
    this.lent.push(out);
    return out;
  }

  /** Takes back every array lent since the last reclaim. */
  reclaim(): void {
    for (const b of this.lent) {
      let list = this.free.get(b.length);
      if (list === undefined) this.free.set(b.length, (list = []));
      list.push(b);
    }
    this.lent.length = 0;
  }
}

let active: BufferPool | null = null;

/** A zero-filled array for an op's output or a gradient: from the active pool, else fresh. */
export function scratch(n: number): Float32Array {
  return active === null ? new Float32Array(n) : active.take(n);
}

/**
 * Runs `fn` with op outputs and gradient buffers lent by `pool`, and takes them all back when it
 * returns (or throws). Nothing created inside may be used afterwards: read what you need (for
 * example `loss.item()`) inside.
 *
 * @example
 * const pool = new BufferPool();
 * for (const batch of batches) {
 *   const loss = reusingBuffers(pool, () => {
 *     const l = crossEntropy(model.forward(batch.x), batch.y);
 *     l.backward();
 *     return l.item();
 *   });
 *   optimizer.step();
 * }
 */
export function reusingBuffers<T>(pool: BufferPool, fn: () => T): T {
  const previous = active;
  active = pool;
  try {
    return fn();
  } finally {
    active = previous;
    pool.reclaim();
  }
}

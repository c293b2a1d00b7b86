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

  /** An array of n elements, zero-filled unless `zeroed` is false, lent until the next `reclaim`. */
  take(n: number, zeroed = true): Float32Array {
    const b = this.free.get(n)?.pop();
    const out = b === undefined ? new Float32Array(n) : zeroed ? b.fill(0) : b;
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

/**
 * Outside a pool, arrays the tape knows are dead wait here for the next scratch() of their length:
 * an intermediate tensor's gradient once backward has gone past it, a buffer an op saved for its
 * gradient rule once that rule has run (see `recycle`).
 *
 * Why: a fresh array is not just zeroed memory. V8 frees array buffers only when it collects them,
 * in batches, and the allocator hands the freed pages back to the kernel, so every fresh array of
 * more than a few pages is page-faulted in again: 26 µs for a (512, 50) array where zeroing one
 * takes 1–2 µs. That was a third of the reference model's step at batch 512.
 *
 * Only arrays scratch() made outside a pool are taken back (`ours`), each once, so neither a pool's
 * array, nor a view, nor an array recycled twice can be handed out to two tensors. At most
 * RECYCLED_PER_LENGTH arrays per length and RECYCLED_FLOATS floats in all are kept; the rest are
 * left to the garbage collector as before.
 */
const recycled = new Map<number, Float32Array[]>();
const ours = new WeakSet<Float32Array>();
let recycledFloats = 0;
const RECYCLED_PER_LENGTH = 8;
const RECYCLED_FLOATS = 16 << 20; // 64 MiB

/**
 * A zero-filled array for an op's output or a gradient: from the active pool, else recycled or fresh.
 * `zeroed: false` skips the fill of a reused array, for a kernel that writes every element before it
 * reads any (im2col's columns, a product's output): the fill was 8% of the cnn model's step.
 */
export function scratch(n: number, zeroed = true): Float32Array {
  if (active !== null) return active.take(n, zeroed);
  const b = recycled.get(n)?.pop();
  let out: Float32Array;
  if (b === undefined) out = new Float32Array(n);
  else {
    recycledFloats -= n;
    out = zeroed ? b.fill(0) : b;
  }
  ours.add(out);
  return out;
}

/**
 * Gives back an array from scratch() that nothing will read or write again, for a later scratch()
 * of the same length to reuse. Anything else (a pool's array, a view, a parameter's gradient, an
 * array already given back) is ignored. Callers are the tape (an intermediate gradient after
 * backward has passed it) and gradient rules (what they saved, once they have run: a rule runs once).
 */
export function recycle(b: Float32Array): void {
  if (!ours.delete(b)) return;
  const n = b.length;
  if (n === 0 || recycledFloats + n > RECYCLED_FLOATS) return;
  let list = recycled.get(n);
  if (list === undefined) recycled.set(n, (list = []));
  if (list.length >= RECYCLED_PER_LENGTH) return;
  list.push(b);
  recycledFloats += n;
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

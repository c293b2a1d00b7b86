/**
 * Coalescing a row-sparse gradient: (ids, one value row per id, with repeats) → (sorted unique ids,
 * the value rows of each id summed) — what PyTorch's `SparseTensor.coalesce()` does to the gradient
 * of `nn.Embedding(sparse=True)` before an optimizer reads it.
 *
 * Bit-for-bit with PyTorch 1.13 on CPU. Float addition is not associative, so the order in which an
 * id's repeats are summed decides the last bits. PyTorch sorts (id, position) pairs by id with
 * `std::sort` (libstdc++'s introsort, which is NOT stable above 16 elements), then sums each id's
 * rows in the sorted order, starting from a copy of the first. `sortPairsByKey` is a line-by-line
 * port of libstdc++'s `std::sort`, so the same input gives the same permutation, repeats included;
 * `coalesceRowsReference` (stable order) is the obviously-correct oracle for everything but the
 * order of a sum.
 *
 * Legend: N occurrences (ids with repeats), U unique ids, D the row width.
 */

/** libstdc++'s _S_threshold: introsort leaves runs of at most 16 to a final insertion sort. */
const THRESHOLD = 16;

/**
 * Sorts keys[0..n) ascending, moving vals along with them, exactly as libstdc++'s
 * `std::sort(first, last, comp)` on pairs compared by key only (equal keys may be reordered).
 * Allocates nothing.
 */
export function sortPairsByKey(keys: Int32Array, vals: Int32Array, n: number): void {
  if (n < 2) return;
  introsortLoop(keys, vals, 0, n, 2 * (31 - Math.clz32(n))); // 2·⌊log₂ n⌋, as std::__lg
  finalInsertionSort(keys, vals, 0, n);
}

function swap(keys: Int32Array, vals: Int32Array, a: number, b: number): void {
  const k = keys[a]!;
  keys[a] = keys[b]!;
  keys[b] = k;
  const v = vals[a]!;
  vals[a] = vals[b]!;
  vals[b] = v;
}

function introsortLoop(keys: Int32Array, vals: Int32Array, first: number, last: number, depth: number): void {
  while (last - first > THRESHOLD) {
    if (depth === 0) {
      _heapSortPairs(keys, vals, first, last); // std::__partial_sort(first, last, last)
      return;
    }
    depth--;
    // __unguarded_partition_pivot: median of (first+1, mid, last−1) moved to first, then partition.
    const mid = first + ((last - first) >> 1);
    moveMedianToFirst(keys, vals, first, first + 1, mid, last - 1);
    const cut = unguardedPartition(keys, vals, first + 1, last, first);
    introsortLoop(keys, vals, cut, last, depth);
    last = cut;
  }
}

function moveMedianToFirst(keys: Int32Array, vals: Int32Array, result: number, a: number, b: number, c: number): void {
  const ka = keys[a]!;
  const kb = keys[b]!;
  const kc = keys[c]!;
  if (ka < kb) {
    if (kb < kc) swap(keys, vals, result, b);
    else if (ka < kc) swap(keys, vals, result, c);
    else swap(keys, vals, result, a);
  } else if (ka < kc) swap(keys, vals, result, a);
  else if (kb < kc) swap(keys, vals, result, c);
  else swap(keys, vals, result, b);
}

function unguardedPartition(keys: Int32Array, vals: Int32Array, first: number, last: number, pivot: number): number {
  const p = keys[pivot]!; // the pivot stays at `pivot` (outside [first, last)) throughout
  for (;;) {
    while (keys[first]! < p) first++;
    last--;
    while (p < keys[last]!) last--;
    if (!(first < last)) return first;
    swap(keys, vals, first, last);
    first++;
  }
}

function finalInsertionSort(keys: Int32Array, vals: Int32Array, first: number, last: number): void {
  if (last - first > THRESHOLD) {
    insertionSort(keys, vals, first, first + THRESHOLD);
    for (let i = first + THRESHOLD; i < last; i++) unguardedLinearInsert(keys, vals, i);
  } else {
    insertionSort(keys, vals, first, last);
  }
}

function insertionSort(keys: Int32Array, vals: Int32Array, first: number, last: number): void {
  if (first === last) return;
  for (let i = first + 1; i < last; i++) {
    const k = keys[i]!;
    if (k < keys[first]!) {
      const v = vals[i]!;
      keys.copyWithin(first + 1, first, i); // move_backward(first, i, i + 1)
      vals.copyWithin(first + 1, first, i);
      keys[first] = k;
      vals[first] = v;
    } else {
      unguardedLinearInsert(keys, vals, i);
    }
  }
}

function unguardedLinearInsert(keys: Int32Array, vals: Int32Array, last: number): void {
  const k = keys[last]!;
  const v = vals[last]!;
  let next = last - 1;
  while (k < keys[next]!) {
    keys[last] = keys[next]!;
    vals[last] = vals[next]!;
    last = next;
    next--;
  }
  keys[last] = k;
  vals[last] = v;
}

/**
 * @internal std::__make_heap, __adjust_heap, __push_heap and __sort_heap: introsort's fallback past
 * its depth limit (exported for its test: ordinary inputs rarely reach it).
 */
export function _heapSortPairs(keys: Int32Array, vals: Int32Array, first: number, last: number): void {
  const len = last - first;
  if (len >= 2) {
    for (let parent = (len - 2) >> 1; ; parent--) {
      adjustHeap(keys, vals, first, parent, len, keys[first + parent]!, vals[first + parent]!);
      if (parent === 0) break;
    }
  }
  while (last - first > 1) {
    last--;
    const k = keys[last]!; // __pop_heap(first, last, last)
    const v = vals[last]!;
    keys[last] = keys[first]!;
    vals[last] = vals[first]!;
    adjustHeap(keys, vals, first, 0, last - first, k, v);
  }
}

function adjustHeap(keys: Int32Array, vals: Int32Array, first: number, hole: number, len: number, k: number, v: number): void {
  const top = hole;
  let child = hole;
  while (child < (len - 1) >> 1) {
    child = 2 * (child + 1);
    if (keys[first + child]! < keys[first + child - 1]!) child--;
    keys[first + hole] = keys[first + child]!;
    vals[first + hole] = vals[first + child]!;
    hole = child;
  }
  if ((len & 1) === 0 && child === (len - 2) >> 1) {
    child = 2 * (child + 1);
    keys[first + hole] = keys[first + child - 1]!;
    vals[first + hole] = vals[first + child - 1]!;
    hole = child - 1;
  }
  let parent = (hole - 1) >> 1;
  while (hole > top && keys[first + parent]! < k) {
    keys[first + hole] = keys[first + parent]!;
    vals[first + hole] = vals[first + parent]!;
    hole = parent;
    parent = (hole - 1) >> 1;
  }
  keys[first + hole] = k;
  vals[first + hole] = v;
}

/**
 * Coalesces n occurrences: writes the sorted unique ids to outIds and each one's summed row to
 * outValues, and returns U. `keys` and `perm` are scratch of at least n elements (overwritten).
 * Each sum starts from a copy of the first row in sorted order and adds the rest in that order, in
 * float32, as PyTorch's _coalesce_sparse_cpu. Allocates nothing.
 */
export function coalesceRows(
  ids: Int32Array, // (N)
  values: Float32Array, // (N, D)
  n: number,
  d: number,
  keys: Int32Array, // (≥ N) scratch
  perm: Int32Array, // (≥ N) scratch
  outIds: Int32Array, // (≥ U)
  outValues: Float32Array, // (≥ U, D)
): number {
  for (let i = 0; i < n; i++) {
    keys[i] = ids[i]!;
    perm[i] = i;
  }
  sortPairsByKey(keys, perm, n);
  let u = -1;
  for (let j = 0; j < n; j++) {
    const src = perm[j]! * d;
    if (u >= 0 && keys[j] === outIds[u]) {
      const dst = u * d;
      for (let c = 0; c < d; c++) outValues[dst + c]! += values[src + c]!;
    } else {
      u++;
      outIds[u] = keys[j]!;
      const dst = u * d;
      for (let c = 0; c < d; c++) outValues[dst + c] = values[src + c]!;
    }
  }
  return u + 1;
}

/**
 * The oracle: the same coalesce with a stable sort and sums in occurrence order, in float64 then
 * rounded once. Allocates freely; for tests.
 */
export function coalesceRowsReference(ids: ArrayLike<number>, values: ArrayLike<number>, d: number): { ids: number[]; values: number[] } {
  const rows = new Map<number, Float64Array>();
  for (let i = 0; i < ids.length; i++) {
    let row = rows.get(ids[i]!);
    if (row === undefined) rows.set(ids[i]!, (row = new Float64Array(d)));
    for (let c = 0; c < d; c++) row[c]! += values[i * d + c]!;
  }
  const sorted = [...rows.keys()].sort((a, b) => a - b);
  return { ids: sorted, values: sorted.flatMap((id) => Array.from(rows.get(id)!, Math.fround)) };
}

/**
 * Adds two uncoalesced row-sparse gradients a (M occurrences) and b (N) as PyTorch 1.13's
 * add_out_sparse_cpu does when a backward pass accumulates into an existing sparse `.grad`: one
 * merge pass comparing only the current heads — the smaller id goes first; equal heads become one
 * row, a + b — with every output row computed as (0 + a) + b in float32. Neither input needs to be
 * sorted, so the output is generally not sorted either (coalesce it to read it). Writes up to
 * M + N rows to out and returns how many. Allocates nothing.
 */
export function mergeRows(
  aIds: Int32Array, // (M)
  aValues: Float32Array, // (M, D)
  m: number,
  bIds: Int32Array, // (N)
  bValues: Float32Array, // (N, D)
  n: number,
  d: number,
  outIds: Int32Array, // (≥ M + N)
  outValues: Float32Array, // (≥ M + N, D)
): number {
  let i = 0;
  let j = 0;
  let r = 0;
  while (i < m || j < n) {
    const cmp = i >= m ? -1 : j >= n ? 1 : aIds[i]! < bIds[j]! ? 1 : aIds[i]! > bIds[j]! ? -1 : 0;
    const o = r * d;
    for (let c = 0; c < d; c++) outValues[o + c] = 0;
    if (cmp >= 0) {
      outIds[r] = aIds[i]!;
      const src = i * d;
      for (let c = 0; c < d; c++) outValues[o + c]! += aValues[src + c]!;
      i++;
    }
    if (cmp <= 0) {
      outIds[r] = bIds[j]!;
      const src = j * d;
      for (let c = 0; c < d; c++) outValues[o + c]! += bValues[src + c]!;
      j++;
    }
    r++;
  }
  return r;
}

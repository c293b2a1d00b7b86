/**
 * The portable matmul: plain TypeScript, the fallback when WebAssembly SIMD is unavailable.
 *
 *   out (M, N) = op(a) · op(b)   or   out += op(a) · op(b)
 *
 * op(a) and op(b) are read in place through strides, so the four transpose combinations run the
 * same code at the same speed:
 *
 *   op(a)[i, p] = a[i·ars + p·acs]    (ars, acs) = (K, 1), or (1, M) when transA
 *   op(b)[p, j] = b[p·brs + j·bcs]    (brs, bcs) = (N, 1), or (1, K) when transB
 *
 * The work is a 4 × 4 register tile: 16 accumulators in local variables, and per k-step 4 reads of
 * op(a) and 4 of op(b) for 16 multiply-adds. Edges use 4 × 1, 1 × 4 and 1 × 1 tiles. K is cut into
 * blocks of KC so the 4 rows of op(a) and 4 columns of op(b) a tile walks stay in L1.
 *
 * Why no packing: in V8 every typed-array read costs an index computation and a bounds check, and
 * that instruction count, not memory traffic, is what limits this loop (≈ 4 GFLOP/s on the
 * development machine against ≈ 0.8 for the naive triple loop). Copying panels into contiguous
 * scratch (Float32Array or Float64Array) measured no faster for large shapes and up to 2× slower
 * for the small ones a model actually runs, so the kernel allocates nothing and keeps no scratch.
 *
 * Sums are accumulated in float64 (JavaScript numbers) within a K block, so results differ from a
 * float32 BLAS in the last bits, usually by being closer to the exact product.
 */
import type { KernelBackend } from './backend.js';

/**
 * Depth of a K block. The 4 rows of op(a) and 4 columns of op(b) a tile walks then stay in L1 even
 * when a transposed layout puts every k-step on its own cache line (256 lines × 64 B = 16 KiB).
 */
const KC = 256;

/** out = op(a)·op(b), or out += op(a)·op(b) when `accumulate`. See KernelBackend.matmul. */
export function matmul(
  a: Float32Array, // (M, K), or (K, M) when transA
  b: Float32Array, // (K, N), or (N, K) when transB
  out: Float32Array, // (M, N)
  m: number,
  k: number,
  n: number,
  transA: boolean,
  transB: boolean,
  accumulate: boolean,
): void {
  if (k === 0) {
    if (!accumulate) out.fill(0, 0, m * n);
    return;
  }
  const ars = transA ? 1 : k;
  const acs = transA ? m : 1;
  const brs = transB ? 1 : n;
  const bcs = transB ? k : 1;
  for (let pc = 0; pc < k; pc += KC) {
    const kc = Math.min(KC, k - pc);
    // The first K block overwrites out unless accumulating; later blocks add to it.
    const add = accumulate || pc > 0;
    block(a, b, out, m, n, kc, pc * acs, pc * brs, ars, acs, brs, bcs, add);
  }
}

/** The portable backend: `matmul` above. */
export const jsBackend: KernelBackend = { name: 'js', matmul };

/** One K block [pc, pc + kc) of the product, tiled 4 × 4 with narrower tiles at the edges. */
function block(
  a: Float32Array,
  b: Float32Array,
  out: Float32Array,
  m: number,
  n: number,
  kc: number,
  aOff: number, // index of op(a)[0, pc]
  bOff: number, // index of op(b)[pc, 0]
  ars: number,
  acs: number,
  brs: number,
  bcs: number,
  add: boolean,
): void {
  const m4 = m & ~3;
  const n4 = n & ~3;
  for (let i = 0; i < m4; i += 4) {
    const ai = aOff + i * ars;
    for (let j = 0; j < n4; j += 4) tile4x4(a, b, out, n, kc, ai, bOff + j * bcs, i * n + j, ars, acs, brs, bcs, add);
    for (let j = n4; j < n; j++) tile4x1(a, b, out, n, kc, ai, bOff + j * bcs, i * n + j, ars, acs, brs, add);
  }
  for (let i = m4; i < m; i++) {
    const ai = aOff + i * ars;
    for (let j = 0; j < n4; j += 4) tile1x4(a, b, out, kc, ai, bOff + j * bcs, i * n + j, acs, brs, bcs, add);
    for (let j = n4; j < n; j++) tile1x1(a, b, out, kc, ai, bOff + j * bcs, i * n + j, acs, brs, add);
  }
}

/** out[o : o+4, :4] (row stride n) (=|+=) op(a)[4 rows from ia] · op(b)[4 columns from ib], over kc steps. */
function tile4x4(
  a: Float32Array,
  b: Float32Array,
  out: Float32Array,
  n: number,
  kc: number,
  ia: number,
  ib: number,
  o: number,
  ars: number,
  acs: number,
  brs: number,
  bcs: number,
  add: boolean,
): void {
  const ar2 = 2 * ars, ar3 = 3 * ars;
  const bc2 = 2 * bcs, bc3 = 3 * bcs;
  const o1 = o + n, o2 = o1 + n, o3 = o2 + n;
  let c00 = 0, c01 = 0, c02 = 0, c03 = 0;
  let c10 = 0, c11 = 0, c12 = 0, c13 = 0;
  let c20 = 0, c21 = 0, c22 = 0, c23 = 0;
  let c30 = 0, c31 = 0, c32 = 0, c33 = 0;
  for (let p = 0; p < kc; p++) {
    const a0 = a[ia]!, a1 = a[ia + ars]!, a2 = a[ia + ar2]!, a3 = a[ia + ar3]!;
    const b0 = b[ib]!, b1 = b[ib + bcs]!, b2 = b[ib + bc2]!, b3 = b[ib + bc3]!;
    c00 += a0 * b0; c01 += a0 * b1; c02 += a0 * b2; c03 += a0 * b3;
    c10 += a1 * b0; c11 += a1 * b1; c12 += a1 * b2; c13 += a1 * b3;
    c20 += a2 * b0; c21 += a2 * b1; c22 += a2 * b2; c23 += a2 * b3;
    c30 += a3 * b0; c31 += a3 * b1; c32 += a3 * b2; c33 += a3 * b3;
    ia += acs;
    ib += brs;
  }
  // Adding here rather than starting the accumulators from out measured 15–30% faster in V8.
  if (add) {
    out[o] = out[o]! + c00; out[o + 1] = out[o + 1]! + c01; out[o + 2] = out[o + 2]! + c02; out[o + 3] = out[o + 3]! + c03;
    out[o1] = out[o1]! + c10; out[o1 + 1] = out[o1 + 1]! + c11; out[o1 + 2] = out[o1 + 2]! + c12; out[o1 + 3] = out[o1 + 3]! + c13;
    out[o2] = out[o2]! + c20; out[o2 + 1] = out[o2 + 1]! + c21; out[o2 + 2] = out[o2 + 2]! + c22; out[o2 + 3] = out[o2 + 3]! + c23;
    out[o3] = out[o3]! + c30; out[o3 + 1] = out[o3 + 1]! + c31; out[o3 + 2] = out[o3 + 2]! + c32; out[o3 + 3] = out[o3 + 3]! + c33;
  } else {
    out[o] = c00; out[o + 1] = c01; out[o + 2] = c02; out[o + 3] = c03;
    out[o1] = c10; out[o1 + 1] = c11; out[o1 + 2] = c12; out[o1 + 3] = c13;
    out[o2] = c20; out[o2 + 1] = c21; out[o2 + 2] = c22; out[o2 + 3] = c23;
    out[o3] = c30; out[o3 + 1] = c31; out[o3 + 2] = c32; out[o3 + 3] = c33;
  }
}

/** A 4-row, 1-column tile: the right edge when N is not a multiple of 4. */
function tile4x1(
  a: Float32Array,
  b: Float32Array,
  out: Float32Array,
  n: number,
  kc: number,
  ia: number,
  ib: number,
  o: number,
  ars: number,
  acs: number,
  brs: number,
  add: boolean,
): void {
  const ar2 = 2 * ars, ar3 = 3 * ars;
  let c0 = 0, c1 = 0, c2 = 0, c3 = 0;
  for (let p = 0; p < kc; p++) {
    const bv = b[ib]!;
    c0 += a[ia]! * bv;
    c1 += a[ia + ars]! * bv;
    c2 += a[ia + ar2]! * bv;
    c3 += a[ia + ar3]! * bv;
    ia += acs;
    ib += brs;
  }
  if (add) {
    out[o] = out[o]! + c0;
    out[o + n] = out[o + n]! + c1;
    out[o + 2 * n] = out[o + 2 * n]! + c2;
    out[o + 3 * n] = out[o + 3 * n]! + c3;
  } else {
    out[o] = c0;
    out[o + n] = c1;
    out[o + 2 * n] = c2;
    out[o + 3 * n] = c3;
  }
}

/** A 1-row, 4-column tile: the bottom edge when M is not a multiple of 4. */
function tile1x4(
  a: Float32Array,
  b: Float32Array,
  out: Float32Array,
  kc: number,
  ia: number,
  ib: number,
  o: number,
  acs: number,
  brs: number,
  bcs: number,
  add: boolean,
): void {
  const bc2 = 2 * bcs, bc3 = 3 * bcs;
  let c0 = 0, c1 = 0, c2 = 0, c3 = 0;
  for (let p = 0; p < kc; p++) {
    const av = a[ia]!;
    c0 += av * b[ib]!;
    c1 += av * b[ib + bcs]!;
    c2 += av * b[ib + bc2]!;
    c3 += av * b[ib + bc3]!;
    ia += acs;
    ib += brs;
  }
  if (add) {
    out[o] = out[o]! + c0;
    out[o + 1] = out[o + 1]! + c1;
    out[o + 2] = out[o + 2]! + c2;
    out[o + 3] = out[o + 3]! + c3;
  } else {
    out[o] = c0;
    out[o + 1] = c1;
    out[o + 2] = c2;
    out[o + 3] = c3;
  }
}

/** A single element: the bottom-right corner. */
function tile1x1(
  a: Float32Array,
  b: Float32Array,
  out: Float32Array,
  kc: number,
  ia: number,
  ib: number,
  o: number,
  acs: number,
  brs: number,
  add: boolean,
): void {
  let c = 0;
  for (let p = 0; p < kc; p++) {
    c += a[ia]! * b[ib]!;
    ia += acs;
    ib += brs;
  }
  out[o] = add ? out[o]! + c : c;
}

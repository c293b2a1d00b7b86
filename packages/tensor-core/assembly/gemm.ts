// Single-precision GEMM for WebAssembly SIMD (f32x4), compiled by scripts/build-wasm.js.
//
//   C (M, N) = op(A) · op(B)   or   C += op(A) · op(B)
//
// op(A) is (M, K): A is (M, K) row-major, or (K, M) when transA. op(B) is (K, N): B is (K, N), or
// (N, K) when transB. Every operand lives in this module's linear memory; the caller (the JS side,
// src/kernels/wasm-backend.ts) copies them in, calls gemm(), and copies C out.
//
// The loop nest is the classic Goto/BLIS one. Blocks of op(B) (KC × NC) and op(A) (MC × KC) are
// packed into contiguous panels, which is also where the transposes are absorbed, so the
// micro-kernel only ever sees one layout:
//
//   packed B: NR-column panels, each (KC, NR): the NR values of one k-step are adjacent
//   packed A: MR-row panels,    each (KC, MR): the MR values of one k-step are adjacent
//
// The micro-kernel keeps an MR × NR tile of C in MR·NR/4 f32x4 registers and, per k-step, loads
// one row of the B panel (NR/4 vectors), broadcasts each of the MR values of the A panel and
// multiplies-adds. The tile is 4 × 8: 8 accumulators + 2 B vectors + 4 broadcasts + 1 temporary
// fit x64's 16 xmm registers with room to spare, and V8 compiles the loop without spills. 6 × 8
// (15 live registers) and 8 × 8 or 4 × 12 measured 30–40% slower under V8 on this machine, and so
// did unrolling the k loop. Every multiply-add goes through madd() (at the end): built with
// relaxed SIMD (wasm/gemm-relaxed.wasm) it is one fused f32x4.relaxed_madd, ~25% faster here,
// else a multiply then an add (wasm/gemm.wasm, for engines without relaxed SIMD).
//
// Packing a transposed layout (A row-major, the usual case, or B stored (N, K), as nn.Linear's
// weight is) moves 4 × 4 blocks through registers with shuffles, so all four transpose combinations
// run within a few percent of each other.
//
// Tiles at the right and bottom edges are computed in full against zero-padded panels into a small
// scratch tile, and only their valid part is written to C. A last B panel of at most 4 columns (N =
// 10 or 50 in the reference model) is packed 4 wide and runs a 4 × 4 kernel instead of wasting half
// of a 4 × 8 one.
//
// Packing pays only when a packed panel is used more than once. With fewer than MR rows (batch-1
// inference) or a single column it would not be, and fewRows() computes C a row at a time from B in
// place instead: 3× faster than the packed path at 1×100×50.

/** Rows of the micro-tile (the broadcast side). */
const MR: i32 = 4;
/** Columns of the micro-tile: two f32x4 vectors. */
const NR: i32 = 8;
/** Depth of a packed block: one (KC, NR) B panel (8 KiB) stays in L1 across the MR-row sweep. */
const KC: i32 = 256;
/** Rows of a packed A block: (MC, KC) = 96 KiB, kept in L2. A multiple of MR. */
const MC: i32 = 96;
/** Columns of a packed B block: (KC, NC) = 512 KiB, kept in L2/L3. A multiple of NR. */
const NC: i32 = 512;

/** First free byte of linear memory: the caller lays its buffers out from here. */
export function heapBase(): usize {
  return __heap_base;
}

/**
 * Bytes of scratch gemm() needs at `work` for this problem: packed A and B blocks and an edge tile,
 * or one row of op(A) on the few-rows path.
 */
export function workspaceBytes(m: i32, k: i32, n: i32): usize {
  const kc = min(k, KC);
  const mc = roundUp(min(m, MC), MR);
  const nc = roundUp(min(n, NC), NR);
  return (<usize>(mc * kc + kc * nc + MR * NR + k)) << 2;
}

/**
 * C = op(A)·op(B), or C += op(A)·op(B) when `accumulate`. a, b, c, work are byte addresses of
 * f32 arrays in linear memory; work must hold workspaceBytes(m, k, n) bytes, 16-byte aligned.
 */
export function gemm(
  a: usize, // (M, K), or (K, M) when transA
  b: usize, // (K, N), or (N, K) when transB
  c: usize, // (M, N)
  m: i32,
  k: i32,
  n: i32,
  transA: bool,
  transB: bool,
  accumulate: bool,
  work: usize,
): void {
  if (m <= 0 || n <= 0) return;
  if (k <= 0) {
    if (!accumulate) memory.fill(c, 0, (<usize>(m * n)) << 2);
    return;
  }
  // Fewer rows than a micro-tile (batch-1 inference): packed B would be used once, so packing it
  // would cost as much as the product. A single column is the same problem transposed, since a
  // (M, 1) and a (1, M) matrix have the same layout: Cᵀ = op(B)ᵀ·op(A)ᵀ, where op(B)ᵀ is the
  // contiguous (1, K) vector b and op(A)ᵀ is a read as (K, M), i.e. transposed unless transA.
  if (m < MR) {
    fewRows(a, b, c, m, k, n, transA, transB, accumulate, work);
    return;
  }
  if (n == 1) {
    fewRows(b, a, c, 1, k, m, false, !transA, accumulate, work);
    return;
  }
  const kcMax = min(k, KC);
  const packA = work; // (MC, KC) as MR-row panels
  const packB = packA + ((<usize>(roundUp(min(m, MC), MR) * kcMax)) << 2); // (KC, NC) as NR-column panels
  const tile = packB + ((<usize>(kcMax * roundUp(min(n, NC), NR))) << 2); // (MR, NR) edge tile
  const ldc = <usize>n << 2; // bytes per row of C

  for (let jc = 0; jc < n; jc += NC) {
    const nc = min(NC, n - jc);
    for (let pc = 0; pc < k; pc += KC) {
      const kc = min(KC, k - pc);
      // The first K block overwrites C unless accumulating; later blocks add to it.
      const add = accumulate || pc > 0;
      packB_(b, packB, k, n, pc, kc, jc, nc, transB);
      for (let ic = 0; ic < m; ic += MC) {
        const mc = min(MC, m - ic);
        packA_(a, packA, m, k, ic, mc, pc, kc, transA);
        for (let jr = 0; jr < nc; jr += NR) {
          const nr = min(NR, nc - jr);
          const pb = packB + ((<usize>(jr * kc)) << 2);
          for (let ir = 0; ir < mc; ir += MR) {
            const mr = min(MR, mc - ir);
            const pa = packA + ((<usize>(ir * kc)) << 2);
            const cp = c + ((<usize>((ic + ir) * n + jc + jr)) << 2);
            if (nr > 4) {
              if (mr == MR && nr == NR) {
                kernel(pa, pb, kc, cp, ldc, add);
              } else {
                kernel(pa, pb, kc, tile, <usize>NR << 2, false);
                storeEdge(tile, NR, cp, ldc, mr, nr, add);
              }
            } else {
              // The last panel is at most 4 wide and packed 4 wide: half the work of a full one.
              if (mr == MR && nr == 4) {
                kernelNarrow(pa, pb, kc, cp, ldc, add);
              } else {
                kernelNarrow(pa, pb, kc, tile, 4 << 2, false);
                storeEdge(tile, 4, cp, ldc, mr, nr, add);
              }
            }
          }
        }
      }
    }
  }
}

// @ts-ignore: decorator
@inline function roundUp(x: i32, to: i32): i32 {
  return ((x + to - 1) / to) * to;
}

/**
 * Packs op(B)[pc : pc+kc, jc : jc+nc] into NR-column panels at `dst`: panel j holds, for each of the
 * kc k-steps, the NR values op(B)[p, jc + j·NR + 0..NR), zero past column n. A last panel of at
 * most 4 columns is packed 4 wide, for kernelNarrow.
 */
function packB_(b: usize, dst: usize, k: i32, n: i32, pc: i32, kc: i32, jc: i32, nc: i32, transB: bool): void {
  for (let jr = 0; jr < nc; jr += NR) {
    const nr = min(NR, nc - jr);
    const j = jc + jr;
    const panel = dst + ((<usize>(jr * kc)) << 2);
    if (!transB) {
      // B (K, N): a k-step of the panel is a contiguous run of row p.
      const src = b + ((<usize>(pc * n + j)) << 2);
      if (nr == NR) copyRows8(src, <usize>n << 2, panel, kc);
      else if (nr == 4) copyRows4(src, <usize>n << 2, panel, kc);
      else gather(src, <usize>n << 2, 4, panel, nr < 4 ? 4 : NR, nr, kc);
    } else {
      // B (N, K): column q of the panel is a contiguous run of row j+q, so the panel is a transpose.
      const src = b + ((<usize>(j * k + pc)) << 2);
      const ld = <usize>k << 2;
      if (nr == NR) {
        transpose4s(src, ld, panel, NR, kc);
        transpose4s(src + 4 * ld, ld, panel + 16, NR, kc);
      } else if (nr == 4) {
        transpose4s(src, ld, panel, 4, kc);
      } else {
        gather(src, 4, ld, panel, nr < 4 ? 4 : NR, nr, kc);
      }
    }
  }
}

/**
 * Packs op(A)[ic : ic+mc, pc : pc+kc] into MR-row panels at `dst`: panel i holds, for each of the
 * kc k-steps, the MR values op(A)[ic + i·MR + 0..MR), p], zero past row m.
 */
function packA_(a: usize, dst: usize, m: i32, k: i32, ic: i32, mc: i32, pc: i32, kc: i32, transA: bool): void {
  for (let ir = 0; ir < mc; ir += MR) {
    const mr = min(MR, mc - ir);
    const i = ic + ir;
    const panel = dst + ((<usize>(ir * kc)) << 2);
    if (transA) {
      // A (K, M): a k-step of the panel is a contiguous run of row p.
      const src = a + ((<usize>(pc * m + i)) << 2);
      if (mr == MR) copyRows4(src, <usize>m << 2, panel, kc);
      else gather(src, <usize>m << 2, 4, panel, MR, mr, kc);
    } else {
      // A (M, K): row r of the panel is a contiguous run of row i+r, so the panel is a transpose.
      const src = a + ((<usize>(i * k + pc)) << 2);
      if (mr == MR) transpose4s(src, <usize>k << 2, panel, MR, kc);
      else gather(src, 4, <usize>k << 2, panel, MR, mr, kc);
    }
  }
}

/** dst[p, 0:8] = src[p·ld : p·ld + 8] for p < kc (dst rows are 32 bytes). */
function copyRows8(src: usize, ld: usize, dst: usize, kc: i32): void {
  for (let p = 0; p < kc; p++) {
    v128.store(dst, v128.load(src));
    v128.store(dst, v128.load(src, 16), 16);
    src += ld;
    dst += 32;
  }
}

/** dst[p, 0:4] = src[p·ld : p·ld + 4] for p < kc (dst rows are 16 bytes). */
function copyRows4(src: usize, ld: usize, dst: usize, kc: i32): void {
  for (let p = 0; p < kc; p++) {
    v128.store(dst, v128.load(src));
    src += ld;
    dst += 16;
  }
}

/**
 * Transposes 4 source rows (byte stride `ld`, kc floats each) into 4 columns of a panel whose rows
 * are `width` floats: dst[p·width + r] = src_r[p]. 4 × 4 blocks go through registers.
 */
function transpose4s(src: usize, ld: usize, dst: usize, width: i32, kc: i32): void {
  const s1 = src + ld, s2 = s1 + ld, s3 = s2 + ld;
  const row = <usize>width << 2; // bytes per panel row
  let p = 0;
  for (; p + 4 <= kc; p += 4) {
    const o = <usize>p << 2;
    const r0 = v128.load(src + o), r1 = v128.load(s1 + o), r2 = v128.load(s2 + o), r3 = v128.load(s3 + o);
    const t0 = i32x4.shuffle(r0, r1, 0, 4, 1, 5); // r0[0] r1[0] r0[1] r1[1]
    const t1 = i32x4.shuffle(r2, r3, 0, 4, 1, 5); // r2[0] r3[0] r2[1] r3[1]
    const t2 = i32x4.shuffle(r0, r1, 2, 6, 3, 7); // r0[2] r1[2] r0[3] r1[3]
    const t3 = i32x4.shuffle(r2, r3, 2, 6, 3, 7); // r2[2] r3[2] r2[3] r3[3]
    const d = dst + <usize>p * row;
    v128.store(d, i32x4.shuffle(t0, t1, 0, 1, 4, 5)); // column p:   r0[0] r1[0] r2[0] r3[0]
    v128.store(d + row, i32x4.shuffle(t0, t1, 2, 3, 6, 7)); // p+1
    v128.store(d + 2 * row, i32x4.shuffle(t2, t3, 0, 1, 4, 5)); // p+2
    v128.store(d + 3 * row, i32x4.shuffle(t2, t3, 2, 3, 6, 7)); // p+3
  }
  for (; p < kc; p++) {
    const o = <usize>p << 2;
    const d = dst + <usize>p * row;
    store<f32>(d, load<f32>(src + o));
    store<f32>(d, load<f32>(s1 + o), 4);
    store<f32>(d, load<f32>(s2 + o), 8);
    store<f32>(d, load<f32>(s3 + o), 12);
  }
}

/**
 * The scalar packing for a partial panel: dst[p·width + q] = src[p·stepP + q·stepQ] for q < count,
 * and 0 for count ≤ q < width, over kc k-steps. Steps are in bytes.
 */
function gather(src: usize, stepP: usize, stepQ: usize, dst: usize, width: i32, count: i32, kc: i32): void {
  for (let p = 0; p < kc; p++) {
    const s = src + <usize>p * stepP;
    for (let q = 0; q < width; q++) {
      store<f32>(dst + (<usize>q << 2), q < count ? load<f32>(s + <usize>q * stepQ) : 0);
    }
    dst += <usize>width << 2;
  }
}

/** Writes the valid (mr, nr) corner of a tile with rows `width` floats into C, overwriting or adding. */
function storeEdge(tile: usize, width: i32, c: usize, ldc: usize, mr: i32, nr: i32, add: bool): void {
  for (let r = 0; r < mr; r++) {
    const t = tile + ((<usize>(r * width)) << 2);
    const row = c + <usize>r * ldc;
    for (let q = 0; q < nr; q++) {
      const o = <usize>q << 2;
      const v = load<f32>(t + o);
      store<f32>(row + o, add ? load<f32>(row + o) + v : v);
    }
  }
}

/**
 * The MR × NR micro-kernel: C[0:4, 0:8] (=|+=) Apanel (kc, 4) · Bpanel (kc, 8).
 * `ldc` is the byte stride between rows of C.
 */
// @ts-ignore: decorator
@inline function kernel(pa: usize, pb: usize, kc: i32, c: usize, ldc: usize, add: bool): void {
  let c00 = f32x4.splat(0), c01 = f32x4.splat(0); // row 0, columns 0..3 and 4..7
  let c10 = f32x4.splat(0), c11 = f32x4.splat(0);
  let c20 = f32x4.splat(0), c21 = f32x4.splat(0);
  let c30 = f32x4.splat(0), c31 = f32x4.splat(0);
  for (let p = 0; p < kc; p++) {
    const b0 = v128.load(pb); // op(B)[p, 0..3]
    const b1 = v128.load(pb, 16); // op(B)[p, 4..7]
    let x = v128.load32_splat(pa); // op(A)[0, p] in every lane
    c00 = madd(x, b0, c00);
    c01 = madd(x, b1, c01);
    x = v128.load32_splat(pa, 4);
    c10 = madd(x, b0, c10);
    c11 = madd(x, b1, c11);
    x = v128.load32_splat(pa, 8);
    c20 = madd(x, b0, c20);
    c21 = madd(x, b1, c21);
    x = v128.load32_splat(pa, 12);
    c30 = madd(x, b0, c30);
    c31 = madd(x, b1, c31);
    pa += MR << 2;
    pb += NR << 2;
  }
  const c1 = c + ldc, c2 = c1 + ldc, c3 = c2 + ldc;
  if (add) {
    c00 = f32x4.add(c00, v128.load(c));
    c01 = f32x4.add(c01, v128.load(c, 16));
    c10 = f32x4.add(c10, v128.load(c1));
    c11 = f32x4.add(c11, v128.load(c1, 16));
    c20 = f32x4.add(c20, v128.load(c2));
    c21 = f32x4.add(c21, v128.load(c2, 16));
    c30 = f32x4.add(c30, v128.load(c3));
    c31 = f32x4.add(c31, v128.load(c3, 16));
  }
  v128.store(c, c00);
  v128.store(c, c01, 16);
  v128.store(c1, c10);
  v128.store(c1, c11, 16);
  v128.store(c2, c20);
  v128.store(c2, c21, 16);
  v128.store(c3, c30);
  v128.store(c3, c31, 16);
}

/** The micro-kernel for a last panel of at most 4 columns: C[0:4, 0:4] (=|+=) Apanel (kc, 4) · Bpanel (kc, 4). */
// @ts-ignore: decorator
@inline function kernelNarrow(pa: usize, pb: usize, kc: i32, c: usize, ldc: usize, add: bool): void {
  let c0 = f32x4.splat(0), c1 = f32x4.splat(0), c2 = f32x4.splat(0), c3 = f32x4.splat(0);
  for (let p = 0; p < kc; p++) {
    const b0 = v128.load(pb); // op(B)[p, 0..3]
    c0 = madd(v128.load32_splat(pa), b0, c0);
    c1 = madd(v128.load32_splat(pa, 4), b0, c1);
    c2 = madd(v128.load32_splat(pa, 8), b0, c2);
    c3 = madd(v128.load32_splat(pa, 12), b0, c3);
    pa += MR << 2;
    pb += 16;
  }
  const c1p = c + ldc, c2p = c1p + ldc, c3p = c2p + ldc;
  if (add) {
    c0 = f32x4.add(c0, v128.load(c));
    c1 = f32x4.add(c1, v128.load(c1p));
    c2 = f32x4.add(c2, v128.load(c2p));
    c3 = f32x4.add(c3, v128.load(c3p));
  }
  v128.store(c, c0);
  v128.store(c1p, c1);
  v128.store(c2p, c2);
  v128.store(c3p, c3);
}

/**
 * C (=|+=) op(A)·op(B) one row of C at a time, with B read in place: for m < MR rows. Row i of
 * op(A) is contiguous unless transA, when it is first gathered into `work` (k floats).
 */
function fewRows(a: usize, b: usize, c: usize, m: i32, k: i32, n: i32, transA: bool, transB: bool, add: bool, work: usize): void {
  for (let i = 0; i < m; i++) {
    let row = a + ((<usize>(i * k)) << 2); // op(A)[i, 0:k]
    if (transA) {
      for (let p = 0; p < k; p++) store<f32>(work + (<usize>p << 2), load<f32>(a + ((<usize>(p * m + i)) << 2)));
      row = work;
    }
    const out = c + ((<usize>(i * n)) << 2);
    if (transB) rowTimesBt(row, b, out, k, n, add);
    else rowTimesB(row, b, out, k, n, add);
  }
}

/** out[0:n] (=|+=) row[0:k] · B, B (K, N): 16 then 4 columns at a time, each a sum of scaled rows of B. */
function rowTimesB(row: usize, b: usize, out: usize, k: i32, n: i32, add: bool): void {
  const ldb = <usize>n << 2;
  let j = 0;
  for (; j + 16 <= n; j += 16) {
    let s0 = f32x4.splat(0), s1 = f32x4.splat(0), s2 = f32x4.splat(0), s3 = f32x4.splat(0);
    let bp = b + (<usize>j << 2);
    for (let p = 0; p < k; p++) {
      const x = v128.load32_splat(row + (<usize>p << 2)); // op(A)[i, p] in every lane
      s0 = madd(x, v128.load(bp), s0);
      s1 = madd(x, v128.load(bp, 16), s1);
      s2 = madd(x, v128.load(bp, 32), s2);
      s3 = madd(x, v128.load(bp, 48), s3);
      bp += ldb;
    }
    const o = out + (<usize>j << 2);
    if (add) {
      s0 = f32x4.add(s0, v128.load(o));
      s1 = f32x4.add(s1, v128.load(o, 16));
      s2 = f32x4.add(s2, v128.load(o, 32));
      s3 = f32x4.add(s3, v128.load(o, 48));
    }
    v128.store(o, s0);
    v128.store(o, s1, 16);
    v128.store(o, s2, 32);
    v128.store(o, s3, 48);
  }
  for (; j + 4 <= n; j += 4) {
    let s0 = f32x4.splat(0);
    let bp = b + (<usize>j << 2);
    for (let p = 0; p < k; p++) {
      s0 = madd(v128.load32_splat(row + (<usize>p << 2)), v128.load(bp), s0);
      bp += ldb;
    }
    const o = out + (<usize>j << 2);
    v128.store(o, add ? f32x4.add(s0, v128.load(o)) : s0);
  }
  for (; j < n; j++) {
    let sum: f32 = 0;
    let bp = b + (<usize>j << 2);
    for (let p = 0; p < k; p++) {
      sum += load<f32>(row + (<usize>p << 2)) * load<f32>(bp);
      bp += ldb;
    }
    const o = out + (<usize>j << 2);
    store<f32>(o, add ? load<f32>(o) + sum : sum);
  }
}

/**
 * out[0:n] (=|+=) row[0:k] · Bᵀ, B (N, K): each output is the dot product of two contiguous rows,
 * 4 rows of B at a time, 4 k-steps per vector.
 */
function rowTimesBt(row: usize, b: usize, out: usize, k: i32, n: i32, add: bool): void {
  const ldb = <usize>k << 2;
  const k4 = k & ~3;
  let j = 0;
  for (; j + 4 <= n; j += 4) {
    const b0 = b + <usize>j * ldb, b1 = b0 + ldb, b2 = b1 + ldb, b3 = b2 + ldb;
    let s0 = f32x4.splat(0), s1 = f32x4.splat(0), s2 = f32x4.splat(0), s3 = f32x4.splat(0);
    for (let p = 0; p < k4; p += 4) {
      const o = <usize>p << 2;
      const x = v128.load(row + o); // op(A)[i, p : p+4]
      s0 = madd(x, v128.load(b0 + o), s0);
      s1 = madd(x, v128.load(b1 + o), s1);
      s2 = madd(x, v128.load(b2 + o), s2);
      s3 = madd(x, v128.load(b3 + o), s3);
    }
    let d0 = hsum(s0), d1 = hsum(s1), d2 = hsum(s2), d3 = hsum(s3);
    for (let p = k4; p < k; p++) {
      const o = <usize>p << 2;
      const x = load<f32>(row + o);
      d0 += x * load<f32>(b0 + o);
      d1 += x * load<f32>(b1 + o);
      d2 += x * load<f32>(b2 + o);
      d3 += x * load<f32>(b3 + o);
    }
    const o = out + (<usize>j << 2);
    if (add) {
      d0 += load<f32>(o);
      d1 += load<f32>(o, 4);
      d2 += load<f32>(o, 8);
      d3 += load<f32>(o, 12);
    }
    store<f32>(o, d0);
    store<f32>(o, d1, 4);
    store<f32>(o, d2, 8);
    store<f32>(o, d3, 12);
  }
  for (; j < n; j++) {
    const bj = b + <usize>j * ldb;
    let s = f32x4.splat(0);
    for (let p = 0; p < k4; p += 4) {
      const o = <usize>p << 2;
      s = madd(v128.load(row + o), v128.load(bj + o), s);
    }
    let d = hsum(s);
    for (let p = k4; p < k; p++) d += load<f32>(row + (<usize>p << 2)) * load<f32>(bj + (<usize>p << 2));
    const o = out + (<usize>j << 2);
    store<f32>(o, add ? load<f32>(o) + d : d);
  }
}

/**
 * c + a·b in every lane: one fused multiply-add when compiled with relaxed SIMD (rounded once, or
 * twice where the hardware has no FMA), else a multiply then an add.
 */
// @ts-ignore: decorator
@inline function madd(a: v128, b: v128, c: v128): v128 {
  if (ASC_FEATURE_RELAXED_SIMD) return f32x4.relaxed_madd(a, b, c);
  return f32x4.add(c, f32x4.mul(a, b));
}

/** The sum of the 4 lanes. */
// @ts-ignore: decorator
@inline function hsum(v: v128): f32 {
  return f32x4.extract_lane(v, 0) + f32x4.extract_lane(v, 1) + (f32x4.extract_lane(v, 2) + f32x4.extract_lane(v, 3));
}

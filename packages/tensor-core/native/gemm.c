/*
 * The blocked GEMM driver: five loops around a micro-kernel, as in BLIS.
 *
 *   for jc in N by NC:                      a block of op(B) columns
 *     for pc in K by KC:                    a block of K
 *       pack op(B)[pc:, jc:] into Bp        KC × NC, as NR-column slivers (L3 → stays in L2/L3)
 *       for ic in M by MC:
 *         pack op(A)[ic:, pc:] into Ap      MC × KC, as MR-row slivers, only if transA and M ≥ 1024
 *         for jr in NC by NR:               one B sliver (KC × NR) stays in L1 ...
 *           for ir in MC by MR:             ... while A slivers stream past it from L2
 *             micro-kernel: C[ic+ir : +MR, jc+jr : +NR] (+)= Ap sliver · Bp sliver
 *
 * Packing op(B) makes every transpose the same speed: the micro-kernel always loads contiguous,
 * aligned B slivers, so transB only changes the strides pack_b reads with. op(A) is only
 * broadcast from, one float per row and k-step, so it is mostly read in place (see pack_a_min_m).
 * Slivers at the edges are padded with zeros, and their tiles computed into a scratch tile and
 * merged, so the micro-kernel has one shape.
 */
#include "gemm.h"

#include <string.h>
#if defined(__SSE2__)
#include <xmmintrin.h>
#endif

/*
 * Unlike BLIS, op(A) is read in place by the micro-kernel (MR row pointers, or one run of MR floats
 * per k-step when transA) and packed only for a transposed A with M ≥ pack_a_min_m, whose k-steps
 * are then ≥ 4 KiB apart and thrash the TLB and cache sets. Only partial edge slivers are packed
 * otherwise. Measured on the development machine (Zen 5, AVX-512, GFLOP/s packed → in place):
 * 512³ NN 181 → 194, TN 189 → 199; 128×784×256 NN 167 → 193; 512×100×50 NT 109 → 155;
 * 64×50×10 NN 29 → 50; but 1024³ TN 189 → 173 and 2048³ TN 185 → 168. Packing costs a pass over
 * the A block per NC columns, and the narrow products of small models cannot amortise it.
 */
static const long pack_a_min_m = 1024;

static long min_l(long a, long b) { return a < b ? a : b; }
static long round_up(long x, long to) { return (x + to - 1) / to * to; }

size_t loom_workspace_floats(const loom_isa *isa, long m, long n, long k) {
  long kc = min_l(isa->kc, k > 0 ? k : 1);
  long ap = round_up(min_l(isa->mc, m), isa->mr) * kc;
  long bp = round_up(min_l(isa->nc, n), isa->nr) * kc;
  /* Each region starts 64-byte aligned (16 floats). */
  return (size_t)(round_up(ap, 16) + round_up(bp, 16) + round_up((long)isa->mr * isa->nr, 16));
}

/*
 * dst (slivers of MR rows, each kc steps of MR floats) = op(A)[0 : mc, 0 : kc], where
 * op(A)[i, p] = a[i·rs + p·cs]; rows past mc are zero.
 */
static void pack_a(int MR, long mc, long kc, const float *a, long rs, long cs, float *dst) {
  for (long i0 = 0; i0 < mc; i0 += MR) {
    long mr = min_l(MR, mc - i0);
    const float *src = a + i0 * rs;
    if (rs == 1) { /* transA: a column of op(A) is contiguous */
      for (long p = 0; p < kc; p++, dst += MR) {
        const float *s = src + p * cs;
        long i = 0;
        for (; i < mr; i++) dst[i] = s[i];
        for (; i < MR; i++) dst[i] = 0.0f;
      }
    } else {
      for (long i = 0; i < MR; i++) {
        const float *s = src + i * rs;
        if (i < mr)
          for (long p = 0; p < kc; p++) dst[p * MR + i] = s[p * cs];
        else
          for (long p = 0; p < kc; p++) dst[p * MR + i] = 0.0f;
      }
      dst += kc * MR;
    }
  }
}

/*
 * dst (slivers of NR columns, each kc steps of NR floats) = op(B)[0 : kc, 0 : nc], where
 * op(B)[p, j] = b[p·rs + j·cs]; columns past nc are zero.
 */
static void pack_b(int NR, long kc, long nc, const float *b, long rs, long cs, float *dst) {
  for (long j0 = 0; j0 < nc; j0 += NR) {
    long nr = min_l(NR, nc - j0);
    const float *src = b + j0 * cs;
    if (cs == 1) { /* a row of op(B) is contiguous */
      for (long p = 0; p < kc; p++, dst += NR) {
        const float *s = src + p * rs;
        long j = 0;
        for (; j < nr; j++) dst[j] = s[j];
        for (; j < NR; j++) dst[j] = 0.0f;
      }
    } else { /* transB: a column of op(B) is contiguous */
#if defined(__SSE2__)
      if (rs == 1) {
        /* 4 × 4 blocks, transposed in registers: 4 loads and 4 stores for 16 floats, ~3× faster than one
           float at a time (the forward pass x·Wᵀ packs Wᵀ on every call). Columns past the last whole
           block of 4 are copied one at a time, and padding columns zeroed. */
        long nr4 = nr & ~3L, p = 0;
        for (; p + 4 <= kc; p += 4)
          for (long j = 0; j < nr4; j += 4) {
            __m128 r0 = _mm_loadu_ps(src + j * cs + p), r1 = _mm_loadu_ps(src + (j + 1) * cs + p);
            __m128 r2 = _mm_loadu_ps(src + (j + 2) * cs + p), r3 = _mm_loadu_ps(src + (j + 3) * cs + p);
            _MM_TRANSPOSE4_PS(r0, r1, r2, r3);
            _mm_store_ps(dst + p * NR + j, r0);
            _mm_store_ps(dst + (p + 1) * NR + j, r1);
            _mm_store_ps(dst + (p + 2) * NR + j, r2);
            _mm_store_ps(dst + (p + 3) * NR + j, r3);
          }
        for (; p < kc; p++)
          for (long j = 0; j < nr4; j++) dst[p * NR + j] = src[j * cs + p];
        for (long j = nr4; j < NR; j++) {
          const float *s = src + j * cs;
          if (j < nr)
            for (long q = 0; q < kc; q++) dst[q * NR + j] = s[q];
          else
            for (long q = 0; q < kc; q++) dst[q * NR + j] = 0.0f;
        }
        dst += kc * NR;
        continue;
      }
#endif
      for (long j = 0; j < NR; j++) {
        const float *s = src + j * cs;
        if (j < nr)
          for (long p = 0; p < kc; p++) dst[p * NR + j] = s[p * rs];
        else
          for (long p = 0; p < kc; p++) dst[p * NR + j] = 0.0f;
      }
      dst += kc * NR;
    }
  }
}

void loom_sgemm(const loom_isa *isa, float *work, int transA, int transB, long m, long n, long k,
                const float *A, long lda, const float *B, long ldb, float *C, long ldc, int accumulate) {
  if (m <= 0 || n <= 0) return;
  if (k <= 0) {
    if (!accumulate)
      for (long i = 0; i < m; i++) memset(C + i * ldc, 0, (size_t)n * sizeof(float));
    return;
  }
  if (m == 1 && isa->gemv != NULL) { /* op(A) is one contiguous row whether transA or not */
    isa->gemv(n, k, A, B, ldb, transB, C, accumulate);
    return;
  }
  const int MR = isa->mr, NR = isa->nr;
  const long ars = transA ? 1 : lda, acs = transA ? lda : 1;
  const long brs = transB ? 1 : ldb, bcs = transB ? ldb : 1;
  const long KC0 = min_l(isa->kc, k);
  float *ap = work;
  float *bp = ap + round_up(round_up(min_l(isa->mc, m), MR) * KC0, 16);
  float *tile = bp + round_up(round_up(min_l(isa->nc, n), NR) * KC0, 16); /* (MR, NR) */

  const int packA = transA && m >= pack_a_min_m; /* see pack_a_min_m */
  for (long jc = 0; jc < n; jc += isa->nc) {
    long nc = min_l(isa->nc, n - jc);
    for (long pc = 0; pc < k; pc += isa->kc) {
      long kc = min_l(isa->kc, k - pc);
      /* The first K block overwrites C unless accumulating; later blocks add to it. */
      int add = accumulate || pc > 0;
      pack_b(NR, kc, nc, B + pc * brs + jc * bcs, brs, bcs, bp);
      for (long ic = 0; ic < m; ic += isa->mc) {
        long mc = min_l(isa->mc, m - ic);
        const float *a0 = A + ic * ars + pc * acs; /* op(A)[ic, pc] */
        long edge = mc % MR;                       /* rows in a last, partial sliver */
        if (packA)
          pack_a(MR, mc, kc, a0, ars, acs, ap);
        else if (edge && isa->edge == NULL)
          pack_a(MR, edge, kc, a0 + (mc - edge) * ars, ars, acs, ap); /* zero-padded, at ap */
        for (long jr = 0; jr < nc; jr += NR) {
          long nr = min_l(NR, nc - jr);
          const float *bs = bp + jr * kc;
          for (long ir = 0; ir < mc; ir += MR) {
            long mr = min_l(MR, mc - ir);
            const float *as = packA ? ap + ir * kc : mr == MR ? a0 + ir * ars : ap;
            long rsa = packA || mr < MR ? 1 : ars, csa = packA || mr < MR ? MR : acs;
            float *c = C + (ic + ir) * ldc + jc + jr;
            if (mr == MR && nr == NR) {
              isa->kernel(kc, as, rsa, csa, bs, c, ldc, add);
            } else if (isa->edge != NULL) {
              isa->edge(kc, mr < MR && !packA ? a0 + ir * ars : as, mr < MR && !packA ? ars : rsa, mr < MR && !packA ? acs : csa, bs, c, ldc, add, (int)mr, (int)nr);
            } else {
              isa->kernel(kc, as, rsa, csa, bs, tile, NR, 0);
              for (long i = 0; i < mr; i++)
                for (long j = 0; j < nr; j++) c[i * ldc + j] = add ? c[i * ldc + j] + tile[i * NR + j] : tile[i * NR + j];
            }
          }
        }
      }
    }
  }
}

/*
 * The micro-kernels, one per instruction set, and the run-time choice among them.
 *
 * The whole addon is compiled for baseline x86-64 (SSE2); the AVX2 and AVX-512 kernels carry GCC/
 * Clang target attributes, so one binary runs on any x86-64 and uses what the CPU it runs on has
 * (__builtin_cpu_supports also checks that the OS saves the wide registers). Each kernel keeps a
 * register tile of accumulators, and per k-step loads one row of the B sliver and broadcasts one
 * value of the A sliver per tile row:
 *
 *   avx512  8 × 32   16 zmm accumulators, 2 loads of B, 8 broadcasts of A, 16 FMAs per k-step
 *   avx2    6 × 16   12 ymm accumulators, 2 loads of B, 6 broadcasts,     12 FMAs
 *   sse     4 × 8     8 xmm accumulators, 2 loads of B, 4 broadcasts,      8 multiplies + 8 adds
 *   generic 4 × 16   plain C the compiler vectorises (any other architecture, e.g. aarch64)
 *
 * The AVX-512 tile is 8 rows rather than the 12–14 that fill the register file, because Loom's
 * products are mostly small (batch 64 × 100 × 50): 8 divides the batch sizes models use, and the
 * 16 accumulators already cover the FMA latency (4 cycles × 2 pipes).
 */
#include "gemm.h"

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>

#define TILE_STORE(STORE, LOAD, ADD, c, ldc, i, off, v, add)                  \
  do {                                                                        \
    float *cp_ = (c) + (i) * (ldc) + (off);                                   \
    STORE(cp_, (add) ? ADD(LOAD(cp_), (v)) : (v));                            \
  } while (0)

__attribute__((target("avx512f"))) static void kernel_avx512(long kc, const float *a, long rsa, long csa, const float *b, float *c, long ldc, int add) {
  __m512 c00 = _mm512_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00, c30 = c00, c31 = c00;
  __m512 c40 = c00, c41 = c00, c50 = c00, c51 = c00, c60 = c00, c61 = c00, c70 = c00, c71 = c00;
  for (long p = 0; p < kc; p++) {
    __m512 b0 = _mm512_load_ps(b), b1 = _mm512_load_ps(b + 16);
    __m512 x;
    x = _mm512_set1_ps(a[0 * rsa]); c00 = _mm512_fmadd_ps(x, b0, c00); c01 = _mm512_fmadd_ps(x, b1, c01);
    x = _mm512_set1_ps(a[1 * rsa]); c10 = _mm512_fmadd_ps(x, b0, c10); c11 = _mm512_fmadd_ps(x, b1, c11);
    x = _mm512_set1_ps(a[2 * rsa]); c20 = _mm512_fmadd_ps(x, b0, c20); c21 = _mm512_fmadd_ps(x, b1, c21);
    x = _mm512_set1_ps(a[3 * rsa]); c30 = _mm512_fmadd_ps(x, b0, c30); c31 = _mm512_fmadd_ps(x, b1, c31);
    x = _mm512_set1_ps(a[4 * rsa]); c40 = _mm512_fmadd_ps(x, b0, c40); c41 = _mm512_fmadd_ps(x, b1, c41);
    x = _mm512_set1_ps(a[5 * rsa]); c50 = _mm512_fmadd_ps(x, b0, c50); c51 = _mm512_fmadd_ps(x, b1, c51);
    x = _mm512_set1_ps(a[6 * rsa]); c60 = _mm512_fmadd_ps(x, b0, c60); c61 = _mm512_fmadd_ps(x, b1, c61);
    x = _mm512_set1_ps(a[7 * rsa]); c70 = _mm512_fmadd_ps(x, b0, c70); c71 = _mm512_fmadd_ps(x, b1, c71);
    a += csa;
    b += 32;
  }
#define S(i, v0, v1)                                                                     \
  TILE_STORE(_mm512_storeu_ps, _mm512_loadu_ps, _mm512_add_ps, c, ldc, i, 0, v0, add);  \
  TILE_STORE(_mm512_storeu_ps, _mm512_loadu_ps, _mm512_add_ps, c, ldc, i, 16, v1, add)
  S(0, c00, c01); S(1, c10, c11); S(2, c20, c21); S(3, c30, c31);
  S(4, c40, c41); S(5, c50, c51); S(6, c60, c61); S(7, c70, c71);
#undef S
}

/*
 * AVX-512 edge kernels: a partial tile of R ≤ 8 rows and V ≤ 2 vectors of columns, the last one
 * masked, computed and stored in place. Small models are mostly edges (64×50×10 is one 8 × 32 tile
 * column that is 10/32 full; 10 rows of a weight gradient are 8 + 2), and the full-tile kernel
 * through a scratch tile spends most of its multiply-adds on padding there.
 */
#define EDGE512(R, V)                                                                                          \
  __attribute__((target("avx512f"))) static void edge512_##R##_##V(long kc, const float *a, long rsa, long csa, \
                                                                  const float *b, float *c, long ldc, int add,  \
                                                                  __mmask16 m0, __mmask16 m1) {                 \
    __m512 acc[R][V];                                                                                          \
    for (int i = 0; i < R; i++)                                                                                \
      for (int v = 0; v < V; v++) acc[i][v] = _mm512_setzero_ps();                                             \
    for (long p = 0; p < kc; p++, a += csa, b += 32) {                                                         \
      __m512 bv[V];                                                                                            \
      for (int v = 0; v < V; v++) bv[v] = _mm512_load_ps(b + 16 * v);                                          \
      for (int i = 0; i < R; i++) {                                                                            \
        __m512 x = _mm512_set1_ps(a[i * rsa]);                                                                 \
        for (int v = 0; v < V; v++) acc[i][v] = _mm512_fmadd_ps(x, bv[v], acc[i][v]);                          \
      }                                                                                                        \
    }                                                                                                          \
    for (int i = 0; i < R; i++)                                                                                \
      for (int v = 0; v < V; v++) {                                                                            \
        float *cp = c + i * ldc + 16 * v;                                                                      \
        __mmask16 m = v == V - 1 ? (V == 1 ? m0 : m1) : m0;                                                    \
        __m512 r = add ? _mm512_add_ps(_mm512_maskz_loadu_ps(m, cp), acc[i][v]) : acc[i][v];                   \
        _mm512_mask_storeu_ps(cp, m, r);                                                                       \
      }                                                                                                        \
  }
EDGE512(1, 1) EDGE512(2, 1) EDGE512(3, 1) EDGE512(4, 1) EDGE512(5, 1) EDGE512(6, 1) EDGE512(7, 1) EDGE512(8, 1)
EDGE512(1, 2) EDGE512(2, 2) EDGE512(3, 2) EDGE512(4, 2) EDGE512(5, 2) EDGE512(6, 2) EDGE512(7, 2) EDGE512(8, 2)
#undef EDGE512

typedef void (*edge512_fn)(long, const float *, long, long, const float *, float *, long, int, __mmask16, __mmask16);
static const edge512_fn edges512[2][8] = {
    {edge512_1_1, edge512_2_1, edge512_3_1, edge512_4_1, edge512_5_1, edge512_6_1, edge512_7_1, edge512_8_1},
    {edge512_1_2, edge512_2_2, edge512_3_2, edge512_4_2, edge512_5_2, edge512_6_2, edge512_7_2, edge512_8_2},
};

static void edge_avx512(long kc, const float *a, long rsa, long csa, const float *b, float *c, long ldc, int add, int mr, int nr) {
  __mmask16 m0 = nr >= 16 ? 0xFFFF : (__mmask16)((1u << nr) - 1);
  __mmask16 m1 = nr >= 32 ? 0xFFFF : nr > 16 ? (__mmask16)((1u << (nr - 16)) - 1) : 0;
  edges512[nr > 16][mr - 1](kc, a, rsa, csa, b, c, ldc, add, m0, m1);
}

/*
 * M = 1 on AVX-512: with transB, N dot products of contiguous rows, four rows at a time; without,
 * rows of B scaled by a[p] and summed into 64 columns of c at a time. Tails are masked.
 */
__attribute__((target("avx512f"))) static void gemv_avx512(long n, long k, const float *a, const float *b, long ldb, int transB, float *c, int add) {
  if (transB) {
    long j = 0;
    for (; j < n; j += 4) {
      long rows = n - j < 4 ? n - j : 4;
      const float *b0 = b + j * ldb, *b1 = b0 + (rows > 1) * ldb, *b2 = b0 + (rows > 2) * 2 * ldb, *b3 = b0 + (rows > 3) * 3 * ldb;
      __m512 s0 = _mm512_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
      for (long p = 0; p < k; p += 16) {
        __mmask16 m = k - p >= 16 ? 0xFFFF : (__mmask16)((1u << (k - p)) - 1);
        __m512 x = _mm512_maskz_loadu_ps(m, a + p);
        s0 = _mm512_fmadd_ps(x, _mm512_maskz_loadu_ps(m, b0 + p), s0);
        s1 = _mm512_fmadd_ps(x, _mm512_maskz_loadu_ps(m, b1 + p), s1);
        s2 = _mm512_fmadd_ps(x, _mm512_maskz_loadu_ps(m, b2 + p), s2);
        s3 = _mm512_fmadd_ps(x, _mm512_maskz_loadu_ps(m, b3 + p), s3);
      }
      float r[4] = {_mm512_reduce_add_ps(s0), _mm512_reduce_add_ps(s1), _mm512_reduce_add_ps(s2), _mm512_reduce_add_ps(s3)};
      for (long i = 0; i < rows; i++) c[j + i] = add ? c[j + i] + r[i] : r[i];
    }
    return;
  }
  for (long j = 0; j < n; j += 64) {
    __mmask16 m[4];
    for (int v = 0; v < 4; v++) {
      long left = n - j - 16 * v;
      m[v] = left >= 16 ? 0xFFFF : left > 0 ? (__mmask16)((1u << left) - 1) : 0;
    }
    __m512 s0 = _mm512_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    const float *row = b + j;
    for (long p = 0; p < k; p++, row += ldb) {
      __m512 x = _mm512_set1_ps(a[p]);
      s0 = _mm512_fmadd_ps(x, _mm512_maskz_loadu_ps(m[0], row), s0);
      s1 = _mm512_fmadd_ps(x, _mm512_maskz_loadu_ps(m[1], row + 16), s1);
      s2 = _mm512_fmadd_ps(x, _mm512_maskz_loadu_ps(m[2], row + 32), s2);
      s3 = _mm512_fmadd_ps(x, _mm512_maskz_loadu_ps(m[3], row + 48), s3);
    }
    __m512 s[4] = {s0, s1, s2, s3};
    for (int v = 0; v < 4; v++) {
      float *cp = c + j + 16 * v;
      _mm512_mask_storeu_ps(cp, m[v], add ? _mm512_add_ps(_mm512_maskz_loadu_ps(m[v], cp), s[v]) : s[v]);
    }
  }
}

__attribute__((target("avx2,fma"))) static void kernel_avx2(long kc, const float *a, long rsa, long csa, const float *b, float *c, long ldc, int add) {
  __m256 c00 = _mm256_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00;
  __m256 c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;
  for (long p = 0; p < kc; p++) {
    __m256 b0 = _mm256_load_ps(b), b1 = _mm256_load_ps(b + 8);
    __m256 x;
    x = _mm256_broadcast_ss(a + 0 * rsa); c00 = _mm256_fmadd_ps(x, b0, c00); c01 = _mm256_fmadd_ps(x, b1, c01);
    x = _mm256_broadcast_ss(a + 1 * rsa); c10 = _mm256_fmadd_ps(x, b0, c10); c11 = _mm256_fmadd_ps(x, b1, c11);
    x = _mm256_broadcast_ss(a + 2 * rsa); c20 = _mm256_fmadd_ps(x, b0, c20); c21 = _mm256_fmadd_ps(x, b1, c21);
    x = _mm256_broadcast_ss(a + 3 * rsa); c30 = _mm256_fmadd_ps(x, b0, c30); c31 = _mm256_fmadd_ps(x, b1, c31);
    x = _mm256_broadcast_ss(a + 4 * rsa); c40 = _mm256_fmadd_ps(x, b0, c40); c41 = _mm256_fmadd_ps(x, b1, c41);
    x = _mm256_broadcast_ss(a + 5 * rsa); c50 = _mm256_fmadd_ps(x, b0, c50); c51 = _mm256_fmadd_ps(x, b1, c51);
    a += csa;
    b += 16;
  }
#define S(i, v0, v1)                                                                     \
  TILE_STORE(_mm256_storeu_ps, _mm256_loadu_ps, _mm256_add_ps, c, ldc, i, 0, v0, add);  \
  TILE_STORE(_mm256_storeu_ps, _mm256_loadu_ps, _mm256_add_ps, c, ldc, i, 8, v1, add)
  S(0, c00, c01); S(1, c10, c11); S(2, c20, c21); S(3, c30, c31); S(4, c40, c41); S(5, c50, c51);
#undef S
}

/* SSE2 is part of x86-64 itself: no target attribute, no FMA (multiply, then add). */
static void kernel_sse(long kc, const float *a, long rsa, long csa, const float *b, float *c, long ldc, int add) {
  __m128 c00 = _mm_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00, c30 = c00, c31 = c00;
  for (long p = 0; p < kc; p++) {
    __m128 b0 = _mm_load_ps(b), b1 = _mm_load_ps(b + 4);
    __m128 x;
    x = _mm_set1_ps(a[0 * rsa]); c00 = _mm_add_ps(c00, _mm_mul_ps(x, b0)); c01 = _mm_add_ps(c01, _mm_mul_ps(x, b1));
    x = _mm_set1_ps(a[1 * rsa]); c10 = _mm_add_ps(c10, _mm_mul_ps(x, b0)); c11 = _mm_add_ps(c11, _mm_mul_ps(x, b1));
    x = _mm_set1_ps(a[2 * rsa]); c20 = _mm_add_ps(c20, _mm_mul_ps(x, b0)); c21 = _mm_add_ps(c21, _mm_mul_ps(x, b1));
    x = _mm_set1_ps(a[3 * rsa]); c30 = _mm_add_ps(c30, _mm_mul_ps(x, b0)); c31 = _mm_add_ps(c31, _mm_mul_ps(x, b1));
    a += csa;
    b += 8;
  }
#define S(i, v0, v1)                                                         \
  TILE_STORE(_mm_storeu_ps, _mm_loadu_ps, _mm_add_ps, c, ldc, i, 0, v0, add); \
  TILE_STORE(_mm_storeu_ps, _mm_loadu_ps, _mm_add_ps, c, ldc, i, 4, v1, add)
  S(0, c00, c01); S(1, c10, c11); S(2, c20, c21); S(3, c30, c31);
#undef S
}

/* Blocking: KC·NR floats of B (the L1-resident sliver) ≤ 32 KiB; MC·KC of A ≤ ~256 KiB of L2. */
static const loom_isa isa_avx512 = {"avx512", 8, 32, 256, 256, 4096, kernel_avx512, edge_avx512, gemv_avx512};
static const loom_isa isa_avx2 = {"avx2", 6, 16, 192, 256, 4096, kernel_avx2, NULL, NULL};
static const loom_isa isa_sse = {"sse", 4, 8, 128, 256, 4096, kernel_sse, NULL, NULL};

const loom_isa *const *loom_isas(int *count) {
  /* Computed on every call (a few cpuid reads, once per addon instance): no shared mutable state. */
  static const loom_isa *const all[] = {&isa_avx512, &isa_avx2, &isa_sse};
  __builtin_cpu_init();
  int first = __builtin_cpu_supports("avx512f") ? 0 : (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) ? 1 : 2;
  *count = 3 - first;
  return all + first;
}

#else /* not x86-64: one portable kernel, vectorised by the compiler (NEON on aarch64) */

static void kernel_generic(long kc, const float *a, long rsa, long csa, const float *b, float *c, long ldc, int add) {
  float acc[4][16] = {{0}};
  for (long p = 0; p < kc; p++, a += csa, b += 16)
    for (int i = 0; i < 4; i++)
      for (int j = 0; j < 16; j++) acc[i][j] += a[i * rsa] * b[j];
  for (int i = 0; i < 4; i++)
    for (int j = 0; j < 16; j++) c[i * ldc + j] = add ? c[i * ldc + j] + acc[i][j] : acc[i][j];
}

static const loom_isa isa_generic = {"generic", 4, 16, 128, 256, 4096, kernel_generic, NULL, NULL};

const loom_isa *const *loom_isas(int *count) {
  static const loom_isa *const all[] = {&isa_generic};
  *count = 1;
  return all;
}
#endif

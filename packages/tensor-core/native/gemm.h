/*
 * Loom's native GEMM: a packed, cache-blocked single-precision matrix product in the style of BLIS
 * (Van Zee & van de Geijn, "BLIS: A Framework for Rapidly Instantiating BLAS Functionality"), with
 * one register-tile micro-kernel per instruction set, chosen at run time (kernels.c).
 *
 *   C (M, N) = op(A) · op(B)   or   C += op(A) · op(B)
 *
 *   op(A)[i, p] = A[i·lda + p]  or, when transA, A[p·lda + i]     (A is (M, K) or (K, M))
 *   op(B)[p, j] = B[p·ldb + j]  or, when transB, B[j·ldb + p]     (B is (K, N) or (N, K))
 *   C[i, j]     = C[i·ldc + j]
 *
 * Leading dimensions are explicit so that products on sub-matrices (a head of an attention tensor,
 * one image's im2col columns) run in place without copies. Single-threaded: one compute thread per
 * core is the caller's business (Loom's worker threads), never the kernel's.
 */
#ifndef LOOM_GEMM_H
#define LOOM_GEMM_H

#include <stddef.h>

/*
 * A micro-kernel: the MR × NR tile c (row stride ldc) = (or +=, when add) the product of MR rows of
 * op(A), element (i, p) at a[i·rsa + p·csa] (a packed sliver has rsa = 1, csa = MR), and a packed
 * NR-column sliver of op(B) (kc steps of NR floats, 64-byte aligned).
 */
typedef void (*loom_ukernel)(long kc, const float *a, long rsa, long csa, const float *b, float *c, long ldc, int add);

/*
 * An edge kernel: as a micro-kernel, for the mr ≤ MR rows and nr ≤ NR columns of a partial tile,
 * reading only those rows of op(A) and writing only those elements of c (masked stores).
 */
typedef void (*loom_edge_kernel)(long kc, const float *a, long rsa, long csa, const float *b, float *c, long ldc, int add, int mr, int nr);

/*
 * A one-row product (M = 1: a single sample's forward pass), c (1, N) (+)= a (1, K) · op(B), with a
 * contiguous: nothing is packed, since every element of B is used once.
 */
typedef void (*loom_gemv)(long n, long k, const float *a, const float *b, long ldb, int transB, float *c, int add);

/* One code path: its register tile, its cache blocking, its micro-kernels. */
typedef struct {
  const char *name; /* "avx512", "avx2", "sse", "generic" */
  int mr, nr;       /* register tile */
  int mc, kc, nc;   /* blocks of op(A) rows (L2), of K (the slivers stay in L1), of op(B) columns (L3) */
  loom_ukernel kernel;
  loom_edge_kernel edge; /* NULL: partial tiles go through a scratch tile */
  loom_gemv gemv;        /* NULL: M = 1 takes the general path */
} loom_isa;

/* The code paths this CPU runs, best first; *count is set to how many. Never empty. */
const loom_isa *const *loom_isas(int *count);

/* Floats of workspace loom_sgemm needs for this product (packed panels and an edge tile). */
size_t loom_workspace_floats(const loom_isa *isa, long m, long n, long k);

/*
 * The product described above. `work` holds loom_workspace_floats(isa, m, n, k) floats, 64-byte
 * aligned. k == 0 zeroes C unless accumulating; m == 0 or n == 0 does nothing.
 */
void loom_sgemm(const loom_isa *isa, float *work, int transA, int transB, long m, long n, long k,
                const float *A, long lda, const float *B, long ldb, float *C, long ldc, int accumulate);

#endif

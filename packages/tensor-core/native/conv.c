/* A whole convolution, a chunk of images at a time (see conv.h). */
#include "conv.h"

#include <string.h>

/* Floats of (C·kh·kw, G·P) columns a chunk may hold: half of a 1 MiB L2, the rest for the panels. */
static const long chunk_floats = 128 * 1024;

static size_t max_z(size_t a, size_t b) { return a > b ? a : b; }
static size_t up16(size_t x) { return (x + 15) / 16 * 16; }

/* Images per chunk: as many as keep the chunk's columns under chunk_floats, at least one. */
static long chunk_images(const loom_conv_shape *s) {
  const long columns = s->c * s->kh * s->kw * s->oh * s->ow;
  long g = columns > 0 ? chunk_floats / columns : s->n;
  if (g < 1) g = 1;
  return g < s->n ? g : s->n;
}

/* ---- direct convolution (AVX-512): output channels in vectors, pixels broadcast ---- */
#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define DIRECT_PIXELS 14 /* output pixels a tile: 14 × 2 accumulator vectors, 2 weights, 1 broadcast = 31 of 32 registers */

/* Transposes a 16 × 16 block held as 16 row vectors, in registers (four rounds of shuffles). */
__attribute__((target("avx512f"))) static inline void transpose16(__m512 r[16]) {
  __m512 t[16], u[16], v[16];
  for (int i = 0; i < 8; i++) { /* interleave floats of row pairs */
    t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
  for (int i = 0; i < 4; i++) { /* then pairs of floats: each 128-bit lane holds a 4 × 4 block transposed */
    __m512d a = _mm512_castps_pd(t[4 * i]), b = _mm512_castps_pd(t[4 * i + 1]), c = _mm512_castps_pd(t[4 * i + 2]), d = _mm512_castps_pd(t[4 * i + 3]);
    u[4 * i] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, c));
    u[4 * i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, c));
    u[4 * i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(b, d));
    u[4 * i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(b, d));
  }
  for (int i = 0; i < 4; i++) { /* then the 128-bit lanes, in two rounds */
    v[i] = _mm512_shuffle_f32x4(u[i], u[i + 4], 0x88);
    v[i + 4] = _mm512_shuffle_f32x4(u[i], u[i + 4], 0xdd);
    v[i + 8] = _mm512_shuffle_f32x4(u[i + 8], u[i + 12], 0x88);
    v[i + 12] = _mm512_shuffle_f32x4(u[i + 8], u[i + 12], 0xdd);
  }
  for (int i = 0; i < 8; i++) {
    r[i] = _mm512_shuffle_f32x4(v[i], v[i + 8], 0x88);
    r[i + 8] = _mm512_shuffle_f32x4(v[i], v[i + 8], 0xdd);
  }
}

/*
 * For 32 output channels and 14 output pixels: Σ over steps t < steps of x[off[t] + p] · w[t·ldw + o]
 * (the pixels' inputs at step t — channel, kernel row, kernel column — start at x + off[t]), written
 * (plus bias[o], if given) or, when accumulate, added to out[o·plane + p] for the first `pixels`.
 * The accumulators hold (pixel, channel); they are transposed in registers into channel rows.
 */
__attribute__((target("avx512f"))) static void direct_tile(long steps, const float *x, const long *off, const float *w, long ldw, float *out, long plane,
                                                           long pixels, const float *bias, int accumulate) {
  __m512 a[DIRECT_PIXELS][2];
  for (int p = 0; p < DIRECT_PIXELS; p++) a[p][0] = a[p][1] = _mm512_setzero_ps();
  for (long t = 0; t < steps; t++, w += ldw) {
    const __m512 w0 = _mm512_loadu_ps(w), w1 = _mm512_loadu_ps(w + 16);
    const float *xs = x + off[t];
#pragma GCC unroll 14
    for (int p = 0; p < DIRECT_PIXELS; p++) {
      const __m512 v = _mm512_set1_ps(xs[p]);
      a[p][0] = _mm512_fmadd_ps(v, w0, a[p][0]);
      a[p][1] = _mm512_fmadd_ps(v, w1, a[p][1]);
    }
  }
  const __mmask16 valid = (__mmask16)((1u << pixels) - 1);
  for (int half = 0; half < 2; half++) {
    __m512 r[16];
    for (int p = 0; p < DIRECT_PIXELS; p++) r[p] = a[p][half];
    r[14] = r[15] = _mm512_setzero_ps();
    transpose16(r); /* r[c] = channel 16·half + c over the pixels */
    for (int c = 0; c < 16; c++) {
      const long o = 16 * half + c;
      float *dst = out + o * plane;
      __m512 base = accumulate ? _mm512_maskz_loadu_ps(valid, dst) : bias != NULL ? _mm512_set1_ps(bias[o]) : _mm512_setzero_ps();
      _mm512_mask_storeu_ps(dst, valid, _mm512_add_ps(base, r[c]));
    }
  }
}

/*
 * One stride-1 convolution of every image of `in` (n, cin, h, w), zero-padded by (ph, pw), into
 * `out` (n, cout, oh, ow) — written (plus bias, if given) or, when accumulate, added — with
 * weights wp ((cin, kh, kw), cout), on direct_tile: each image padded once into xp, no columns.
 * Uses work for xp and the step offsets.
 */
__attribute__((target("avx512f"))) static void direct_conv(float *work, const float *in, long n, long cin, long h, long w, long kh, long kw, long ph, long pw,
                                                           const float *wp, long cout, const float *bias, float *out, long oh, long ow, int accumulate) {
  const long blocks = (ow + DIRECT_PIXELS - 1) / DIRECT_PIXELS, wpad = blocks * DIRECT_PIXELS + kw - 1, hpad = oh + kh - 1, plane = hpad * wpad;
  const long steps = cin * kh * kw;
  float *xp = work;
  long *off = (long *)(xp + up16((size_t)cin * plane));
  for (long c = 0, t = 0; c < cin; c++)
    for (long i = 0; i < kh; i++)
      for (long j = 0; j < kw; j++) off[t++] = c * plane + i * wpad + j;
  memset(xp, 0, (size_t)(cin * plane) * sizeof *xp); /* the padding: no image's copy below writes it */
  for (long img = 0; img < n; img++) {
    for (long c = 0; c < cin; c++)
      for (long y = 0; y < h; y++) { /* rows of 14: a loop, not a call to memcpy each */
        float *d = xp + c * plane + (y + ph) * wpad + pw;
        const float *r = in + ((img * cin + c) * h + y) * w;
        for (long q = 0; q < w; q++) d[q] = r[q];
      }
    float *o = out + img * cout * oh * ow;
    for (long oy = 0; oy < oh; oy++) {
      for (long b = 0; b < blocks; b++) {
        const long x0 = b * DIRECT_PIXELS, pixels = ow - x0 < DIRECT_PIXELS ? ow - x0 : DIRECT_PIXELS;
        for (long ob = 0; ob < cout; ob += 32) {
          direct_tile(steps, xp + oy * wpad + x0, off, wp + ob, cout, o + (ob * oh + oy) * ow + x0, oh * ow, pixels, bias != NULL ? bias + ob : NULL, accumulate);
        }
      }
    }
  }
}

/* Floats of work direct_conv needs: the padded image and the step offsets (longs). */
static size_t direct_floats(long cin, long kh, long kw, long oh, long ow) {
  const long blocks = (ow + DIRECT_PIXELS - 1) / DIRECT_PIXELS, plane = (oh + kh - 1) * (blocks * DIRECT_PIXELS + kw - 1);
  return up16((size_t)cin * plane) + 2 * (size_t)cin * kh * kw;
}
#endif

/* Whether this convolution's forward (forward) or input gradient (!forward) runs on direct_conv. */
static int direct_ok(const loom_isa *isa, const loom_conv_shape *s, long o, int forward) {
#if defined(__x86_64__) && defined(__GNUC__)
  const long cout = forward ? o : s->c, steps = (forward ? s->c : o) * s->kh * s->kw;
  return strcmp(isa->name, "avx512") == 0 && s->sh == 1 && s->sw == 1 && cout % 32 == 0 && steps >= 32 &&
         (forward || (s->ph < s->kh && s->pw < s->kw));
#else
  (void)isa, (void)s, (void)o, (void)forward;
  return 0;
#endif
}

/*
 * The workspace: [columns (K, G·P)][dWᵀ (K, O)][the panels of the larger of the three products, one
 * image each: the forward (O, P, K), dWᵀ (K, O, P) and dcols (K, P, O)], then, where the direct
 * convolution is built, its weights ((C, kh, kw), O) or ((O, kh, kw), C) and its work.
 */
static size_t gemm_floats(const loom_isa *isa, const loom_conv_shape *s, long o) {
  const long k = s->c * s->kh * s->kw, p = s->oh * s->ow;
  size_t panels = max_z(loom_workspace_floats(isa, o, p, k), max_z(loom_workspace_floats(isa, k, o, p), loom_workspace_floats(isa, k, p, o)));
  return up16((size_t)k * chunk_images(s) * p) + up16((size_t)k * o) + panels;
}

size_t loom_conv_workspace_floats(const loom_isa *isa, const loom_conv_shape *s, long o) {
  size_t direct = 0;
#if defined(__x86_64__) && defined(__GNUC__)
  direct = up16((size_t)s->c * s->kh * s->kw * o) + max_z(direct_floats(s->c, s->kh, s->kw, s->oh, s->ow), direct_floats(o, s->kh, s->kw, s->h, s->w));
#endif
  return gemm_floats(isa, s, o) + direct;
}

void loom_conv2d(const loom_isa *isa, float *work, const float *x, const float *w, const float *bias, float *out, const loom_conv_shape *s, long o) {
  const long k = s->c * s->kh * s->kw, p = s->oh * s->ow, g = chunk_images(s), image = s->c * s->h * s->w;
  float *cols = work, *panels = cols + up16((size_t)k * g * p) + up16((size_t)k * o);
#if defined(__x86_64__) && defined(__GNUC__)
  if (direct_ok(isa, s, o, 1)) {
    float *wp = work + gemm_floats(isa, s, o);
    loom_swap01(w, wp, o, k, 1, 0); /* (O, K) → (K, O) */
    direct_conv(wp + up16((size_t)k * o), x, s->n, s->c, s->h, s->w, s->kh, s->kw, s->ph, s->pw, wp, o, bias, out, s->oh, s->ow, 0);
    return;
  }
#endif
  for (long n0 = 0; n0 < s->n; n0 += g) {
    const long gi = s->n - n0 < g ? s->n - n0 : g, gp = gi * p;
    loom_conv_shape chunk = *s;
    chunk.n = gi;
    loom_im2col(x + n0 * image, cols, &chunk);
    for (long img = 0; img < gi; img++) {
      float *yi = out + (n0 + img) * o * p;
      if (bias != NULL) /* the product starts from the bias */
        for (long r = 0; r < o; r++)
          for (long q = 0; q < p; q++) yi[r * p + q] = bias[r];
      loom_sgemm(isa, panels, 0, 0, o, p, k, w, k, cols + img * p, gp, yi, p, bias != NULL);
    }
  }
}

void loom_conv2d_backward(const loom_isa *isa, float *work, const float *x, const float *w, const float *dy, float *dx, float *dw, float *db,
                          const loom_conv_shape *s, long o) {
  const long k = s->c * s->kh * s->kw, p = s->oh * s->ow, g = chunk_images(s), image = s->c * s->h * s->w;
  float *cols = work, *dwt = cols + up16((size_t)k * g * p), *panels = dwt + up16((size_t)k * o);
  const int direct_dx = dx != NULL && direct_ok(isa, s, o, 0);
  for (long n0 = 0; n0 < s->n && (dw != NULL || db != NULL || (dx != NULL && !direct_dx)); n0 += g) {
    const long gi = s->n - n0 < g ? s->n - n0 : g, gp = gi * p;
    loom_conv_shape chunk = *s;
    chunk.n = gi;
    if (dw != NULL) loom_im2col(x + n0 * image, cols, &chunk); /* dcols needs no columns: it overwrites them */
    for (long img = 0; img < gi; img++) {
      const float *dyi = dy + (n0 + img) * o * p; /* (O, P) */
      if (db != NULL) loom_add_row_sums(dyi, db, o, p);
      if (dw != NULL) loom_sgemm(isa, panels, 0, 1, k, o, p, cols + img * p, gp, dyi, p, dwt, o, n0 + img > 0); /* dWᵀ (+)= cols·dyᵀ */
      if (dx != NULL && !direct_dx) loom_sgemm(isa, panels, 1, 0, k, p, o, w, k, dyi, p, cols + img * p, gp, 0); /* dcols = Wᵀ·dy */
    }
    if (dx != NULL && !direct_dx) loom_col2im_consuming(cols, dx + n0 * image, &chunk);
  }
  if (dw != NULL) loom_swap01(dwt, dw, k, o, 1, 1); /* dW += (dWᵀ)ᵀ */
#if defined(__x86_64__) && defined(__GNUC__)
  if (direct_dx) {
    /* dx = the full convolution of dy with the flipped kernel, channels swapped: W'[(o, i, j), c] = W[o, c, kh−1−i, kw−1−j]. */
    float *wp = work + gemm_floats(isa, s, o);
    for (long oc = 0; oc < o; oc++)
      for (long c = 0; c < s->c; c++)
        for (long i = 0; i < s->kh; i++)
          for (long j = 0; j < s->kw; j++)
            wp[((oc * s->kh + i) * s->kw + j) * s->c + c] = w[((oc * s->c + c) * s->kh + (s->kh - 1 - i)) * s->kw + (s->kw - 1 - j)];
    direct_conv(wp + up16((size_t)k * o), dy, s->n, o, s->oh, s->ow, s->kh, s->kw, s->kh - 1 - s->ph, s->kw - 1 - s->pw, wp, s->c, NULL, dx, s->h, s->w, 1);
  }
#endif
}

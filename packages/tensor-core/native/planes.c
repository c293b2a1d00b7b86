/*
 * Convolution's and pooling's layout kernels (see planes.h): the loops of conv.ts and pool.ts,
 * element for element, so each gives its oracle's bits.
 */
#include "planes.h"
#include "sums.h"
#include "wide.h"

#include <string.h>

/*
 * The output columns ox whose input column ox·sw − pw + j lies inside [0, w): [*first, *end).
 * Computed once per kernel column so the copies below run without a bounds test per element.
 */
static void valid_range(long w, long ow, long sw, long pw, long j, long *first, long *end) {
  long lo = pw - j; /* ox·sw ≥ pw − j */
  long f = lo <= 0 ? 0 : (lo + sw - 1) / sw;
  if (f > ow) f = ow;
  long hi = w - 1 + pw - j; /* ox·sw ≤ w − 1 + pw − j */
  long e = hi < 0 ? 0 : hi / sw + 1;
  if (e > ow) e = ow;
  *first = f;
  *end = e < f ? f : e;
}

/*
 * A "same"-width, stride-1 convolution (OW = W: the cnn's layers) shifts whole planes: the rows of
 * column (c, i, j) are the input's rows iy = oy − ph + i, each moved by j − pw. One copy (or add) of
 * the span from the first valid element to the last then moves every valid row at once; the span's
 * elements that fall in the padding columns read the neighbouring row instead, and are zeroed after
 * (im2col) or before (col2im's scratch variant). The runs were 14 floats: the loop overhead per run,
 * not memory, bounded these kernels.
 */
static int plane_shift(const loom_conv_shape *s) { return s->sh == 1 && s->sw == 1 && s->ow == s->w; }

/*
 * Where kernel position (i, j) of a plane-shifting convolution reads: output rows [oy0, oy1) and
 * columns [first, end) fall inside the input (the rest is padding); the valid block is one span.
 */
typedef struct {
  long oy0, oy1, first, end;
} shift_span;

static shift_span span_of(const loom_conv_shape *s, long i, long j) {
  shift_span v;
  long f = s->ph - i, e = s->h + s->ph - i; /* oy − ph + i ∈ [0, h) */
  v.oy0 = f < 0 ? 0 : f > s->oh ? s->oh : f;
  v.oy1 = e > s->oh ? s->oh : e < v.oy0 ? v.oy0 : e;
  valid_range(s->w, s->ow, 1, s->pw, j, &v.first, &v.end);
  return v;
}

/*
 * Zeroes columns [0, first) and [end, ow) of rows [oy0, oy1) of a (·, ow) block: a column or two.
 * Column by column, since a loop along a row is turned into a call to memset per row, which cost
 * more than the copy it fixes.
 */
static inline void zero_padding_columns(float *col, long ow, long oy0, long oy1, long first, long end) {
  for (long ox = 0; ox < first; ox++)
    for (long oy = oy0; oy < oy1; oy++) col[oy * ow + ox] = 0;
  for (long ox = end; ox < ow; ox++)
    for (long oy = oy0; oy < oy1; oy++) col[oy * ow + ox] = 0;
}

WIDE_CLONES void loom_im2col(const float *x, float *cols, const loom_conv_shape *s) {
  const long p = s->oh * s->ow, np = s->n * p, ow = s->ow, sw = s->sw;
  if (plane_shift(s)) {
    for (long ci = 0; ci < s->c; ci++) {
      for (long i = 0; i < s->kh; i++) {
        for (long j = 0; j < s->kw; j++) {
          const shift_span v = span_of(s, i, j);
          const long oy0 = v.oy0, oy1 = v.oy1, first = v.first, end = v.end, row = ((ci * s->kh + i) * s->kw + j) * np;
          for (long img = 0; img < s->n; img++) {
            float *col = cols + row + img * p;
            if (oy0 >= oy1 || first >= end) {
              memset(col, 0, (size_t)p * sizeof *col);
              continue;
            }
            if (oy0 > 0) memset(col, 0, (size_t)(oy0 * ow) * sizeof *col);
            if (oy1 < s->oh) memset(col + oy1 * ow, 0, (size_t)((s->oh - oy1) * ow) * sizeof *col);
            const float *src = x + (img * s->c + ci) * s->h * s->w + (oy0 - s->ph + i) * s->w + (j - s->pw);
            memcpy(col + oy0 * ow + first, src + first, (size_t)((oy1 - 1 - oy0) * ow + end - first) * sizeof *col);
            zero_padding_columns(col, ow, oy0, oy1, first, end);
          }
        }
      }
    }
    return;
  }
  for (long ci = 0; ci < s->c; ci++) {
    for (long i = 0; i < s->kh; i++) {
      for (long j = 0; j < s->kw; j++) {
        const long row = ((ci * s->kh + i) * s->kw + j) * np;
        long first, end;
        valid_range(s->w, ow, sw, s->pw, j, &first, &end);
        for (long img = 0; img < s->n; img++) {
          const long plane = (img * s->c + ci) * s->h * s->w;
          float *col = cols + row + img * p;
          for (long oy = 0; oy < s->oh; oy++, col += ow) {
            const long iy = oy * s->sh - s->ph + i;
            if (iy < 0 || iy >= s->h) {
              for (long ox = 0; ox < ow; ox++) col[ox] = 0;
              continue;
            }
            const long src = plane + iy * s->w + j - s->pw; /* + ox·sw, for ox in [first, end) */
            for (long ox = 0; ox < first; ox++) col[ox] = 0;
            /* Runs are a row of the output (14 floats in the cnn): a loop, not a call to memcpy. */
            if (sw == 1) for (long ox = first; ox < end; ox++) col[ox] = x[src + ox];
            else for (long ox = first; ox < end; ox++) col[ox] = x[src + ox * sw];
            for (long ox = end; ox < ow; ox++) col[ox] = 0;
          }
        }
      }
    }
  }
}

WIDE_CLONES void loom_col2im(const float *dcols, float *dx, const loom_conv_shape *s) {
  const long p = s->oh * s->ow, np = s->n * p, ow = s->ow, sw = s->sw;
  for (long ci = 0; ci < s->c; ci++) {
    for (long i = 0; i < s->kh; i++) {
      for (long j = 0; j < s->kw; j++) {
        const long row = ((ci * s->kh + i) * s->kw + j) * np;
        long first, end;
        valid_range(s->w, ow, sw, s->pw, j, &first, &end);
        for (long img = 0; img < s->n; img++) {
          const long plane = (img * s->c + ci) * s->h * s->w;
          const float *col = dcols + row + img * p;
          for (long oy = 0; oy < s->oh; oy++, col += ow) {
            const long iy = oy * s->sh - s->ph + i;
            if (iy < 0 || iy >= s->h) continue;
            const long dst = plane + iy * s->w + j - s->pw;
            if (sw == 1) {
              float *d = dx + dst;
              for (long ox = first; ox < end; ox++) d[ox] += col[ox];
            } else {
              for (long ox = first; ox < end; ox++) dx[dst + ox * sw] += col[ox];
            }
          }
        }
      }
    }
  }
}

WIDE_CLONES void loom_col2im_consuming(float *dcols, float *dx, const loom_conv_shape *s) {
  if (!plane_shift(s)) {
    loom_col2im(dcols, dx, s);
    return;
  }
  const long p = s->oh * s->ow, np = s->n * p, ow = s->ow;
  for (long ci = 0; ci < s->c; ci++) {
    for (long i = 0; i < s->kh; i++) {
      for (long j = 0; j < s->kw; j++) {
        const shift_span v = span_of(s, i, j);
        const long oy0 = v.oy0, oy1 = v.oy1, first = v.first, end = v.end;
        if (oy0 >= oy1 || first >= end) continue;
        const long row = ((ci * s->kh + i) * s->kw + j) * np, span = (oy1 - 1 - oy0) * ow + end - first;
        for (long img = 0; img < s->n; img++) {
          float *col = dcols + row + img * p;
          zero_padding_columns(col, ow, oy0, oy1, first, end); /* what lands in the padding is dropped */
          float *d = dx + (img * s->c + ci) * s->h * s->w + (oy0 - s->ph + i) * s->w + (j - s->pw) + first;
          const float *c = col + oy0 * ow + first;
          for (long q = 0; q < span; q++) d[q] += c[q];
        }
      }
    }
  }
}

void loom_swap01(const float *x, float *out, long a, long b, long inner, int accumulate) {
  for (long i = 0; i < a; i++) {
    for (long j = 0; j < b; j++) {
      const float *src = x + (i * b + j) * inner;
      float *dst = out + (j * a + i) * inner;
      if (accumulate) for (long k = 0; k < inner; k++) dst[k] += src[k];
      else if (inner >= 16) memcpy(dst, src, (size_t)inner * sizeof *dst);
      else for (long k = 0; k < inner; k++) dst[k] = src[k]; /* a transpose (inner 1): no call per element */
    }
  }
}

/* conv.ts's one float64 sum a row rounds differently in the last bits, far inside float32's. */
void loom_add_row_sums(const float *x, float *out, long rows, long cols) {
  for (long r = 0; r < rows; r++) out[r] += (float)sum_f64(x + r * cols, cols);
}

/*
 * Output row by output row, with the window's positions outside and the row's outputs inside, so
 * the inner loop runs over independent outputs and vectorises. Each output still sees its window in
 * row-major order, so ties and NaN go as in pool.ts: a candidate replaces the maximum when it is
 * bigger or NaN, and nothing replaces a NaN. (One output at a time, the comparison chain through
 * the running maximum cost 10 ns an output.)
 */
#define MAX_HOISTED 16

/* The candidate rule for one output: v at position i replaces (b, a) when bigger or NaN, unless b is NaN. */
static inline void consider(float v, int32_t i, float *b, int32_t *a) {
  const int take = ((v > *b) | (v != v)) & (*b == *b);
  *b = take ? v : *b;
  *a = take ? i : *a;
}

#ifdef __SSE2__
#include <emmintrin.h>

/* consider() for four outputs at once: masks instead of branches. */
static inline void consider4(__m128 v, __m128i i, __m128 *b, __m128i *a) {
  const __m128 take = _mm_and_ps(_mm_or_ps(_mm_cmpgt_ps(v, *b), _mm_cmpunord_ps(v, v)), _mm_cmpord_ps(*b, *b));
  *b = _mm_or_ps(_mm_and_ps(take, v), _mm_andnot_ps(take, *b));
  const __m128i t = _mm_castps_si128(take);
  *a = _mm_or_si128(_mm_and_si128(t, i), _mm_andnot_si128(t, *a));
}
#endif

/*
 * MaxPool2d(2), the pooling CNNs use, with every window inside the plane: four outputs at a time
 * from two pairs of four-float loads, split into even and odd columns (on SSE2, which every x86-64
 * has). The general loop below, with its ranges and short rows, took 1.9 of the cnn model's 12 ms.
 */
static void max_pool_2x2(const float *x, float *out, int32_t *argmax, long planes, long h, long w, long oh, long ow) {
  for (long pl = 0; pl < planes; pl++) {
    const float *base = x + pl * h * w;
    for (long oy = 0; oy < oh; oy++) {
      const float *r0 = base + 2 * oy * w, *r1 = r0 + w;
      float *best = out + (pl * oh + oy) * ow;
      int32_t *at = argmax + (pl * oh + oy) * ow;
      const int32_t top = (int32_t)(2 * oy * w), wide = (int32_t)w;
      long ox = 0;
#ifdef __SSE2__
      const __m128i step = _mm_setr_epi32(0, 2, 4, 6);
      /* The last four outputs again rather than a scalar tail, whose branches mispredicted: a row
       * of 14 is 0, 4, 8 and 10. */
      for (; ox < ow && ow >= 4; ox = ox + 8 <= ow ? ox + 4 : ox + 4 < ow ? ow - 4 : ow) {
        const __m128 a0 = _mm_loadu_ps(r0 + 2 * ox), a1 = _mm_loadu_ps(r0 + 2 * ox + 4);
        const __m128 c0 = _mm_loadu_ps(r1 + 2 * ox), c1 = _mm_loadu_ps(r1 + 2 * ox + 4);
        const __m128i left = _mm_add_epi32(_mm_set1_epi32(top + (int32_t)(2 * ox)), step); /* iy·W + ix of each window's first */
        __m128 b = _mm_shuffle_ps(a0, a1, _MM_SHUFFLE(2, 0, 2, 0));
        __m128i a = left;
        consider4(_mm_shuffle_ps(a0, a1, _MM_SHUFFLE(3, 1, 3, 1)), _mm_add_epi32(left, _mm_set1_epi32(1)), &b, &a);
        consider4(_mm_shuffle_ps(c0, c1, _MM_SHUFFLE(2, 0, 2, 0)), _mm_add_epi32(left, _mm_set1_epi32(wide)), &b, &a);
        consider4(_mm_shuffle_ps(c0, c1, _MM_SHUFFLE(3, 1, 3, 1)), _mm_add_epi32(left, _mm_set1_epi32(wide + 1)), &b, &a);
        _mm_storeu_ps(best + ox, b);
        _mm_storeu_si128((__m128i *)(at + ox), a);
      }
#endif
      for (; ox < ow; ox++) {
        float b = -__builtin_inff();
        int32_t a = top + (int32_t)(2 * ox);
        consider(r0[2 * ox], a, &b, &a);
        consider(r0[2 * ox + 1], top + (int32_t)(2 * ox + 1), &b, &a);
        consider(r1[2 * ox], top + wide + (int32_t)(2 * ox), &b, &a);
        consider(r1[2 * ox + 1], top + wide + (int32_t)(2 * ox + 1), &b, &a);
        best[ox] = b;
        at[ox] = a;
      }
    }
  }
}

void loom_max_pool2d(const float *x, float *out, int32_t *argmax, const loom_pool_shape *s) {
  const long h = s->h, w = s->w, ow = s->ow, sw = s->sw;
  if (s->kh == 2 && s->kw == 2 && s->sh == 2 && sw == 2 && s->ph == 0 && s->pw == 0 && 2 * s->oh <= h && 2 * ow <= w) {
    max_pool_2x2(x, out, argmax, s->planes, h, w, s->oh, ow);
    return;
  }
  /* valid_range divides; a 2×2 pool over 14 outputs a row would call it more often than it pools. */
  long firsts[MAX_HOISTED], ends[MAX_HOISTED];
  for (long j = 0; j < s->kw && j < MAX_HOISTED; j++) valid_range(w, ow, sw, s->pw, j, &firsts[j], &ends[j]);
  for (long pl = 0; pl < s->planes; pl++) {
    const float *base = x + pl * h * w;
    for (long oy = 0; oy < s->oh; oy++) {
      float *restrict best = out + (pl * s->oh + oy) * ow;
      int32_t *restrict at = argmax + (pl * s->oh + oy) * ow;
      const long y0 = oy * s->sh - s->ph < 0 ? 0 : oy * s->sh - s->ph;
      const long y1 = oy * s->sh - s->ph + s->kh > h ? h : oy * s->sh - s->ph + s->kh;
      for (long ox = 0; ox < ow; ox++) {
        const long x0 = ox * sw - s->pw < 0 ? 0 : ox * sw - s->pw;
        best[ox] = -__builtin_inff();
        at[ox] = (int32_t)(y0 * w + x0); /* a window of −∞ (or none) reports its first position */
      }
      for (long iy = y0; iy < y1; iy++) {
        for (long j = 0; j < s->kw; j++) {
          long first, end;
          if (j < MAX_HOISTED) first = firsts[j], end = ends[j];
          else valid_range(w, ow, sw, s->pw, j, &first, &end);
          const long row = iy * w + j - s->pw; /* + ox·sw */
          for (long ox = first; ox < end; ox++) {
            const float v = base[row + ox * sw];
            consider(v, (int32_t)(row + ox * sw), &best[ox], &at[ox]);
          }
        }
      }
    }
  }
}

void loom_max_pool2d_backward(const float *dy, const int32_t *argmax, float *dx, const loom_pool_shape *s) {
  const long hw = s->h * s->w, p = s->oh * s->ow;
  for (long pl = 0; pl < s->planes; pl++) {
    float *base = dx + pl * hw;
    for (long q = pl * p, end = q + p; q < end; q++) base[argmax[q]] += dy[q];
  }
}

/* A whole convolution, a chunk of images at a time (see conv.h). */
#include "conv.h"

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

/*
 * The workspace: [columns (K, G·P)][dWᵀ (K, O)][the panels of the larger of the three products, one
 * image each: the forward (O, P, K), dWᵀ (K, O, P) and dcols (K, P, O)].
 */
size_t loom_conv_workspace_floats(const loom_isa *isa, const loom_conv_shape *s, long o) {
  const long k = s->c * s->kh * s->kw, p = s->oh * s->ow;
  size_t panels = max_z(loom_workspace_floats(isa, o, p, k), max_z(loom_workspace_floats(isa, k, o, p), loom_workspace_floats(isa, k, p, o)));
  return up16((size_t)k * chunk_images(s) * p) + up16((size_t)k * o) + panels;
}

void loom_conv2d(const loom_isa *isa, float *work, const float *x, const float *w, const float *bias, float *out, const loom_conv_shape *s, long o) {
  const long k = s->c * s->kh * s->kw, p = s->oh * s->ow, g = chunk_images(s), image = s->c * s->h * s->w;
  float *cols = work, *panels = cols + up16((size_t)k * g * p) + up16((size_t)k * o);
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
  for (long n0 = 0; n0 < s->n; n0 += g) {
    const long gi = s->n - n0 < g ? s->n - n0 : g, gp = gi * p;
    loom_conv_shape chunk = *s;
    chunk.n = gi;
    if (dw != NULL) loom_im2col(x + n0 * image, cols, &chunk); /* dcols needs no columns: it overwrites them */
    for (long img = 0; img < gi; img++) {
      const float *dyi = dy + (n0 + img) * o * p; /* (O, P) */
      if (db != NULL) loom_add_row_sums(dyi, db, o, p);
      if (dw != NULL) loom_sgemm(isa, panels, 0, 1, k, o, p, cols + img * p, gp, dyi, p, dwt, o, n0 + img > 0); /* dWᵀ (+)= cols·dyᵀ */
      if (dx != NULL) loom_sgemm(isa, panels, 1, 0, k, p, o, w, k, dyi, p, cols + img * p, gp, 0);         /* dcols = Wᵀ·dy */
    }
    if (dx != NULL) loom_col2im_consuming(cols, dx + n0 * image, &chunk);
  }
  if (dw != NULL) loom_swap01(dwt, dw, k, o, 1, 1); /* dW += (dWᵀ)ᵀ */
}

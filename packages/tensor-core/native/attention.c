/* Causal self-attention's core (see attention.h). */
#include "attention.h"

#include <math.h>

#include "vexp.h"

static size_t max_z(size_t a, size_t b) { return a > b ? a : b; }

/* Where the (T, T) tile starts in the workspace: after the panels of the (T, T, D) and (T, D, T)
 * products, 64-byte aligned. */
static size_t tile_at(const loom_isa *isa, long t, long d) {
  size_t panels = max_z(loom_workspace_floats(isa, t, t, d), loom_workspace_floats(isa, t, d, t));
  return (panels + 15) / 16 * 16;
}

size_t loom_attention_workspace_floats(const loom_isa *isa, long t, long d) { return tile_at(isa, t, d) + (size_t)t * t; }

void loom_causal_attention(const loom_isa *isa, float *work, const float *qkv, float *out, float *probs, long b, long t, long h, long d) {
  const long c = h * d, row3 = 3 * c;
  const float scale = (float)(1.0 / sqrt((double)d));
  for (long bi = 0; bi < b; bi++) {
    for (long hi = 0; hi < h; hi++) {
      const float *q = qkv + bi * t * row3 + hi * d, *k = q + c, *v = q + 2 * c;
      float *p = probs + (bi * h + hi) * t * t;
      loom_sgemm(isa, work, 0, 1, t, t, d, q, row3, k, row3, p, t, 0); /* Q·Kᵀ */
      for (long i = 0; i < t; i++) {
        float *r = p + i * t;
        float m = -INFINITY;
        for (long j = 0; j <= i; j++) {
          r[j] *= scale;
          m = r[j] > m ? r[j] : m;
        }
        float sum = 0;
        for (long j = 0; j <= i; j++) {
          r[j] = exp_poly(r[j] - m);
          sum += r[j];
        }
        const float inv = 1.0f / sum;
        for (long j = 0; j <= i; j++) r[j] *= inv;
        for (long j = i + 1; j < t; j++) r[j] = 0.0f; /* e^−∞: the future is never attended */
      }
      loom_sgemm(isa, work, 0, 0, t, d, t, p, t, v, row3, out + bi * t * c + hi * d, c, 0); /* P·V */
    }
  }
}

void loom_causal_attention_backward(const loom_isa *isa, float *work, const float *qkv, const float *probs, const float *dout, float *dqkv,
                                    long b, long t, long h, long d) {
  const long c = h * d, row3 = 3 * c;
  const float scale = (float)(1.0 / sqrt((double)d));
  float *ds = work + tile_at(isa, t, d); /* (T, T): dP, then dS in place */
  for (long bi = 0; bi < b; bi++) {
    for (long hi = 0; hi < h; hi++) {
      const long at = bi * t * row3 + hi * d;
      const float *q = qkv + at, *k = q + c, *v = q + 2 * c;
      float *dq = dqkv + at, *dk = dq + c, *dv = dq + 2 * c;
      const float *p = probs + (bi * h + hi) * t * t;
      const float *dy = dout + bi * t * c + hi * d;
      loom_sgemm(isa, work, 1, 0, t, d, t, p, t, dy, c, dv, row3, 1);   /* dV += Pᵀ·dY */
      loom_sgemm(isa, work, 0, 1, t, t, d, dy, c, v, row3, ds, t, 0);   /* dP = dY·Vᵀ */
      for (long i = 0; i < t; i++) {
        const float *pr = p + i * t;
        float *r = ds + i * t;
        float dot = 0;
        for (long j = 0; j <= i; j++) dot += pr[j] * r[j];
        for (long j = 0; j <= i; j++) r[j] = pr[j] * (r[j] - dot) * scale; /* softmax's, then the scale's gradient */
        for (long j = i + 1; j < t; j++) r[j] = 0.0f;
      }
      loom_sgemm(isa, work, 0, 0, t, d, t, ds, t, k, row3, dq, row3, 1); /* dQ += dS·K */
      loom_sgemm(isa, work, 1, 0, t, d, t, ds, t, q, row3, dk, row3, 1); /* dK += dSᵀ·Q */
    }
  }
}

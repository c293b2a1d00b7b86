/*
 * ReLU and softmax + cross-entropy, forward and backward (see rows.h). Plain C loops written so the
 * compiler vectorises them: no branches in the element loops (selects instead), no calls (exp is
 * the polynomial below), bits moved between float and int with memcpy.
 */
#include "rows.h"
#include "sums.h"
#include "wide.h"
#include "vexp.h"

#include <math.h>
#include <string.h>

/* 0xffffffff when the float with bits b is above +0 or a NaN with the sign bit clear, else 0:
 * (b − 1) | b has its top bit set exactly when b is +0 or has its sign bit set. */
static inline uint32_t positive_mask(uint32_t b) { return (((b - 1u) | b) >> 31) - 1u; }

void loom_relu(const uint32_t *x, uint32_t *out, long n) {
  for (long i = 0; i < n; i++) out[i] = x[i] & positive_mask(x[i]);
}

void loom_relu_backward(const uint32_t *y, const uint32_t *dy, uint32_t *dx, long n) {
  for (long i = 0; i < n; i++) dx[i] = dy[i] & positive_mask(y[i]);
}

static void exp_inplace(float *v, long n) {
  for (long i = 0; i < n; i++) v[i] = exp_poly(v[i]);
}

/* Rows per block: their maxima are kept here while the block's exponentials are taken in one pass. */
#define BLOCK 64

double loom_softmax_xent(const float *x, const int32_t *labels, float *probs, long rows, long cols) {
  double total = 0;
  float max[BLOCK];
  for (long r0 = 0; r0 < rows; r0 += BLOCK) {
    long nr = rows - r0 < BLOCK ? rows - r0 : BLOCK;
    const float *xb = x + r0 * cols; /* (nr, C) */
    float *pb = probs + r0 * cols;   /* (nr, C) */
    for (long r = 0; r < nr; r++) {
      float m = -INFINITY;
      for (long c = 0; c < cols; c++) m = xb[r * cols + c] > m ? xb[r * cols + c] : m;
      max[r] = m;
      for (long c = 0; c < cols; c++) pb[r * cols + c] = xb[r * cols + c] - m;
    }
    exp_inplace(pb, nr * cols);
    for (long r = 0; r < nr; r++) {
      double sum = 0;
      for (long c = 0; c < cols; c++) sum += pb[r * cols + c];
      float inv = (float)(1.0 / sum);
      for (long c = 0; c < cols; c++) pb[r * cols + c] *= inv;
      total += (double)max[r] + log(sum) - (double)xb[r * cols + labels[r0 + r]];
    }
  }
  return total;
}

void loom_softmax_xent_backward(const float *probs, const int32_t *labels, float *dx, long rows, long cols, float g) {
  long n = rows * cols;
  for (long i = 0; i < n; i++) dx[i] += probs[i] * g;
  for (long r = 0; r < rows; r++) dx[r * cols + labels[r]] -= g;
}

/*
 * GELU through erfc(z) = t·exp(−z² + P(t)), t = 1/(1 + z/2), z = |x|/√2 ≥ 0: the fit gelu.ts uses
 * (relative error < 1.2e-7 in exact arithmetic). Here in float32, where −z² itself carries a
 * rounding error of up to ulp(z²)/2, which exp turns into a relative one: measured against the
 * float64 series on a 1e-4 grid, gelu and its gradient are within 5e-7 + 1e-7·x² of their size
 * (5e-7 for |x| < 2, 7e-6 at |x| = 10, where gelu(x) is −8e-23). Below x ≈ −13 gelu(x) is a
 * float32 denormal; exp_poly gives 0 there.
 */
static inline float erfc_scale(float z) { /* t·exp(P(t)) = erfc(z)·e^(z²) */
  float t = 1.0f / (1.0f + 0.5f * z);
  float p = 0.17087277f;
  p = p * t - 0.82215223f;
  p = p * t + 1.48851587f;
  p = p * t - 1.13520398f;
  p = p * t + 0.27886807f;
  p = p * t - 0.18628806f;
  p = p * t + 0.09678418f;
  p = p * t + 0.37409196f;
  p = p * t + 1.00002368f;
  p = p * t - 1.26551223f;
  return t * exp_poly(p);
}

/*
 * GELU's ~40 flops an element are worth the wide registers: built for SSE2 alone these loops ran at
 * 7 ns an element, with AVX-512 at 0.9 (wide.h).
 */

WIDE_CLONES void loom_gelu(const float *x, float *out, long n) {
  for (long i = 0; i < n; i++) {
    float v = x[i];
    float z = fabsf(v) * 0.70710678118654752f;
    float half = 0.5f * erfc_scale(z) * exp_poly(-z * z); /* Φ(−|v|) */
    out[i] = v * (v < 0 ? half : 1.0f - half);
  }
}

WIDE_CLONES void loom_gelu_backward(const float *x, const float *dy, float *dx, long n) {
  for (long i = 0; i < n; i++) {
    float v = x[i];
    float z = fabsf(v) * 0.70710678118654752f;
    float e = exp_poly(-z * z); /* e^(−x²/2) */
    float half = 0.5f * erfc_scale(z) * e;
    dx[i] += dy[i] * ((v < 0 ? half : 1.0f - half) + v * 0.39894228040143268f * e);
  }
}

void loom_layer_norm(const float *x, const float *weight, const float *bias, float *out, float *mean, float *rstd, long rows, long d, double eps) {
  for (long r = 0; r < rows; r++) {
    const float *xr = x + r * d;
    float *yr = out + r * d;
    const double m = sum_f64(xr, d) / (double)d;
    double part[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    long i = 0;
    for (; i + 8 <= d; i += 8)
      for (int l = 0; l < 8; l++) part[l] += ((double)xr[i + l] - m) * ((double)xr[i + l] - m);
    double v = ((part[0] + part[1]) + (part[2] + part[3])) + ((part[4] + part[5]) + (part[6] + part[7]));
    for (; i < d; i++) v += ((double)xr[i] - m) * ((double)xr[i] - m);
    const double rs = 1.0 / sqrt(v / (double)d + eps);
    mean[r] = (float)m;
    rstd[r] = (float)rs;
    const float mf = (float)m, rf = (float)rs;
    if (weight != NULL && bias != NULL) for (long j = 0; j < d; j++) yr[j] = (xr[j] - mf) * rf * weight[j] + bias[j];
    else if (weight != NULL) for (long j = 0; j < d; j++) yr[j] = (xr[j] - mf) * rf * weight[j];
    else if (bias != NULL) for (long j = 0; j < d; j++) yr[j] = (xr[j] - mf) * rf + bias[j];
    else for (long j = 0; j < d; j++) yr[j] = (xr[j] - mf) * rf;
  }
}

void loom_layer_norm_backward(const float *x, const float *weight, const float *mean, const float *rstd, const float *dy, float *dx, float *dweight,
                              float *dbias, long rows, long d) {
  for (long r = 0; r < rows; r++) {
    const float *xr = x + r * d, *gr = dy + r * d;
    const float m = mean[r], rs = rstd[r];
    double sg[8] = {0, 0, 0, 0, 0, 0, 0, 0}, sgx[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    long i = 0;
    for (; i + 8 <= d; i += 8)
      for (int l = 0; l < 8; l++) {
        const float xh = (xr[i + l] - m) * rs, g = weight != NULL ? gr[i + l] * weight[i + l] : gr[i + l];
        sg[l] += g;
        sgx[l] += (double)g * xh;
      }
    double s1 = ((sg[0] + sg[1]) + (sg[2] + sg[3])) + ((sg[4] + sg[5]) + (sg[6] + sg[7]));
    double s2 = ((sgx[0] + sgx[1]) + (sgx[2] + sgx[3])) + ((sgx[4] + sgx[5]) + (sgx[6] + sgx[7]));
    for (; i < d; i++) {
      const float xh = (xr[i] - m) * rs, g = weight != NULL ? gr[i] * weight[i] : gr[i];
      s1 += g;
      s2 += (double)g * xh;
    }
    if (dweight != NULL) for (long j = 0; j < d; j++) dweight[j] += gr[j] * ((xr[j] - m) * rs);
    if (dbias != NULL) for (long j = 0; j < d; j++) dbias[j] += gr[j];
    if (dx == NULL) continue;
    const float mg = (float)(s1 / (double)d), mgx = (float)(s2 / (double)d);
    float *dr = dx + r * d;
    for (long j = 0; j < d; j++) {
      const float xh = (xr[j] - m) * rs, g = weight != NULL ? gr[j] * weight[j] : gr[j];
      dr[j] += rs * (g - mg - xh * mgx);
    }
  }
}

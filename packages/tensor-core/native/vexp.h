/*
 * e^x in float32 for the kernels' inner loops: Cephes' expf. x = n·ln 2 + r with n an integer and
 * |r| ≤ ln 2 / 2, e^r by a degree-7 polynomial, 2^n from the exponent bits. Relative error ≤ 2 ulp
 * for x in [−87.3, 88.3]; 0 below (where e^x leaves the normal floats), NaN stays NaN. Softmax calls
 * it with x − max ≤ 0 and GELU with −x²/2 ≤ 0; above 88.3 it would return e^88.3. Inline and
 * branch-free, so the loops that call it vectorise.
 */
#ifndef LOOM_VEXP_H
#define LOOM_VEXP_H

#include <stdint.h>
#include <string.h>

static inline float exp_poly(float x) {
  float c = x < -87.33654f ? -87.33654f : x > 88.37626f ? 88.37626f : x; /* NaN passes through */
  /* n = round(c / ln 2): adding and subtracting 1.5·2²³ rounds to an integer (|c / ln 2| < 2²²). */
  float fn = (c * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
  float r = c - fn * 0.693359375f + fn * 2.12194440e-4f; /* ln 2 in two parts: c − n·ln 2 exactly */
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  uint32_t bits = (uint32_t)((int32_t)fn + 127) << 23; /* 2^n, n in [−126, 127] */
  float scale;
  memcpy(&scale, &bits, sizeof scale);
  return x < -87.33654f ? 0.0f : p * scale;
}

#endif

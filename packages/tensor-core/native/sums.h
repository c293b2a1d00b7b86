/*
 * Σ of n floats in double, in eight partial sums: the loop vectorises without -ffast-math (which
 * may reorder a single sum), and the result is within float32's rounding of one sequential sum.
 * Shared by the bias gradient's row sums (planes.c) and layer norm's statistics (rows.c).
 */
#ifndef LOOM_SUMS_H
#define LOOM_SUMS_H

static inline double sum_f64(const float *x, long n) {
  double part[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  long i = 0;
  for (; i + 8 <= n; i += 8)
    for (int l = 0; l < 8; l++) part[l] += x[i + l];
  double s = ((part[0] + part[1]) + (part[2] + part[3])) + ((part[4] + part[5]) + (part[6] + part[7]));
  for (; i < n; i++) s += x[i];
  return s;
}

#endif

/*
 * The kernels besides the GEMM that a training step spends its time in once its products are fast:
 * ReLU and its gradient, the fused softmax + cross-entropy over rows with its gradient, GELU and
 * layer norm with their gradients. Each is the C twin of a TypeScript kernel that stays its oracle
 * (src/kernels/unary.ts, softmax.ts, gelu.ts, norm.ts), with the same arguments, reading and writing the
 * typed arrays in place.
 *
 * Why native: a JavaScript loop costs 1–2 ns per element (2.3 for relu's bit masks, ≈ 7 for a
 * softmax element, most of it Math.exp), and at batch 512 the reference model has 25 600 hidden
 * units and 5 120 logits per step. Here a pass over them is a few microseconds.
 *
 * Compiled for the baseline of the target (SSE2 on x86-64, NEON on aarch64): these loops read and
 * write each element once, so they run at the speed of the cache, and the wider registers of the
 * GEMM's run-time paths would buy little (GELU, ~25 flops an element, is the exception worth
 * measuring). Dimension letters: N rows, C columns (classes).
 */
#ifndef LOOM_ROWS_H
#define LOOM_ROWS_H

#include <stdint.h>

/*
 * out = max(x, 0) over n elements, on the floats' bits as unary.ts's relu: a NaN with its sign bit
 * clear stays NaN, anything with the sign bit set (−0, negative NaN) becomes +0. out may be x.
 */
void loom_relu(const uint32_t *x, uint32_t *out, long n);

/* dx = dy where y > 0 (y's bits, as loom_relu decides), else +0: unary.ts's reluBackwardInto. dx may be dy. */
void loom_relu_backward(const uint32_t *y, const uint32_t *dy, uint32_t *dx, long n);

/*
 * probs (N, C) = softmax of each row of x (N, C); returns Σ_r −log softmax(x_r)[labels[r]], taken as
 * max + log Σ exp(x − max) − x[label] (never log of a probability, which underflows). Labels must
 * lie in [0, C). softmax.ts's softmaxCrossEntropy, with a float32 exp (≤ 2 ulp) instead of a float64 one.
 */
double loom_softmax_xent(const float *x, const int32_t *labels, float *probs, long rows, long cols);

/* dx (N, C) += (probs − onehot(labels)) · g: cross-entropy's gradient, g = dLoss · scale. */
void loom_softmax_xent_backward(const float *probs, const int32_t *labels, float *dx, long rows, long cols, float g);

/*
 * out = x·Φ(x), the exact GELU, Φ by a fitted erfc (see rows.c for its error): gelu.ts's gelu.
 * out may be x.
 */
void loom_gelu(const float *x, float *out, long n);

/* dx += dy·(Φ(x) + x·φ(x)), φ the standard normal density: gelu.ts's geluBackward. */
void loom_gelu_backward(const float *x, const float *dy, float *dx, long n);

/*
 * out (R, D) = each row of x normalised to zero mean and unit (biased) variance, · weight (D) +
 * bias (D) where given (NULL: none); mean and rstd (R) kept for the backward, statistics in double:
 * norm.ts's layerNorm.
 */
void loom_layer_norm(const float *x, const float *weight, const float *bias, float *out, float *mean, float *rstd, long rows, long d, double eps);

/* Its gradients, each added into its array where given (NULL: not wanted): norm.ts's layerNormBackward. */
void loom_layer_norm_backward(const float *x, const float *weight, const float *mean, const float *rstd, const float *dy, float *dx, float *dweight,
                              float *dbias, long rows, long d);

#endif

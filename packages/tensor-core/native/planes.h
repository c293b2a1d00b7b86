/*
 * The layout kernels of convolution and pooling over NCHW planes: im2col and col2im, the swap of
 * two outer axes between the GEMM's (O, N·P) and NCHW's (N, O, P), the bias gradient's row sums,
 * and max pooling with its gradient. Each is the C twin of a TypeScript kernel that stays its oracle (src/kernels/conv.ts,
 * pool.ts), with the same arguments, reading and writing the typed arrays in place.
 *
 * Why native: these loops move every activation of a convolutional network once or twice a step
 * and do no arithmetic; in JavaScript (a bounds-checked element at a time, 1–5 ns each) they took
 * 60% of the cnn model's step while its products ran at PyTorch's speed. Here they run at the speed
 * of memory. Compiled for the baseline target, as rows.c.
 */
#ifndef LOOM_PLANES_H
#define LOOM_PLANES_H

#include <stdint.h>

/* One convolution's dimensions, as conv.ts's Conv2dShape (O is unused by the layout kernels). */
typedef struct {
  long n, c, h, w, kh, kw, sh, sw, ph, pw, oh, ow;
} loom_conv_shape;

/* cols (C·kh·kw, N·OH·OW) = every receptive field of x (N, C, H, W) as a column, zeros in the padding. */
void loom_im2col(const float *x, float *cols, const loom_conv_shape *s);

/* dx (N, C, H, W) += each column of dcols (C·kh·kw, N·OH·OW) added back where im2col read it. */
void loom_col2im(const float *dcols, float *dx, const loom_conv_shape *s);

/*
 * As loom_col2im, for a dcols the caller discards afterwards: its entries that fall in the padding
 * may be zeroed, which lets a stride-1 "same" convolution add whole spans at a time.
 */
void loom_col2im_consuming(float *dcols, float *dx, const loom_conv_shape *s);

/* out (B, A, inner) (=|+=) x (A, B, inner). */
void loom_swap01(const float *x, float *out, long a, long b, long inner, int accumulate);

/* out (R) += the sum of each row of x (R, C), in double: a convolution's bias gradient. */
void loom_add_row_sums(const float *x, float *out, long rows, long cols);

/* One pooling's dimensions, as pool.ts's Pool2dShape. */
typedef struct {
  long planes, h, w, kh, kw, sh, sw, ph, pw, oh, ow;
} loom_pool_shape;

/*
 * out (planes, OH, OW) = each window's maximum, argmax its position iy·W + ix in the plane; the
 * first maximum in row-major window order wins ties, and the first NaN is the maximum (PyTorch).
 */
void loom_max_pool2d(const float *x, float *out, int32_t *argmax, const loom_pool_shape *s);

/* dx (planes, H, W) += dy (planes, OH, OW) routed to each window's argmax. */
void loom_max_pool2d_backward(const float *dy, const int32_t *argmax, float *dx, const loom_pool_shape *s);

#endif

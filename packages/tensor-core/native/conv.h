/*
 * A whole convolution in one call, forward and backward, over NCHW: what conv.ts's conv2d and
 * conv2dBackward compose from im2col, one batch-wide product, swap01 and col2im (which stays the
 * oracle and the path of the other backends), done a few images at a time so that the columns stay
 * in the core's L2 cache, with one product per image written straight into NCHW.
 *
 *   forward, per chunk of G images:  cols (K, G·P) = im2col(x chunk)
 *                                     out[n] (O, P) = bias + W (O, K) · cols[:, n·P : (n+1)·P]
 *   backward, per chunk:              cols = im2col(x chunk) again (only for dW)
 *                                     dWᵀ (K, O) += cols[:, n] · dy[n]ᵀ;  db += Σ_P dy[n]
 *                                     cols[:, n] = Wᵀ · dy[n];  dx chunk += col2im(cols)
 *
 * On AVX-512, a stride-1 convolution with output channels in multiples of 32 (and at least 32
 * multiply-adds per output) runs as a direct convolution instead, its forward and its input gradient
 * (the full convolution of dy with the flipped kernel): each image padded once, then tiles of 14
 * output pixels × 32 channels accumulated in registers over (channel, kernel row, kernel column) —
 * no columns, no packing, no col2im. The weight gradient stays the product above.
 *
 * Why: the batch-wide composition moved (K, N·P) columns through memory three times a step, 7 MB
 * for the cnn's second layer at batch 32 (past L2), and swapped the output and dy between the
 * product's (O, N·P) and NCHW's (N, O, P). Computing the chunk's columns again from x in the
 * backward is cheaper than storing and reloading them. dWᵀ rather than dW: its product reads the
 * columns in place as its left operand, where dW's would transpose them while packing. On the cnn's
 * second layer the products ran at the GEMM's speed but the layout passes around them (im2col,
 * packing, col2im, edge tiles) were a quarter of the time; the direct tiles have none of them.
 */
#ifndef LOOM_CONV_H
#define LOOM_CONV_H

#include <stddef.h>

#include "gemm.h"
#include "planes.h"

/* Floats of workspace the two calls below need for this shape and O output channels. */
size_t loom_conv_workspace_floats(const loom_isa *isa, const loom_conv_shape *s, long o);

/* out (N, O, OH, OW) = conv2d(x (N, C, H, W), w (O, C, kh, kw)) + bias (O) (bias may be NULL). */
void loom_conv2d(const loom_isa *isa, float *work, const float *x, const float *w, const float *bias, float *out, const loom_conv_shape *s, long o);

/*
 * The gradients from dy (N, O, OH, OW), each added (+=) into its array when it is not NULL:
 * dx (N, C, H, W), dw (O, C, kh, kw), db (O).
 */
void loom_conv2d_backward(const loom_isa *isa, float *work, const float *x, const float *w, const float *dy, float *dx, float *dw, float *db,
                          const loom_conv_shape *s, long o);

#endif

/*
 * Causal self-attention's core in one call, forward and backward, over the fused projection
 * qkv (B, T, 3C) that CausalSelfAttention's c_attn gives (q, k, v side by side, C = H·D):
 *
 *   per batch b and head h, Q, K, V = the (T, D) columns of head h in q, k, v (read in place, row
 *   stride 3C), P = softmax(Q·Kᵀ/√D with −∞ above the diagonal) (T, T), saved in probs (B, H, T, T)
 *   for the backward, and out (B, T, C)[b, :, h·D : (h+1)·D] = P·V.
 *
 * It is the composition CausalSelfAttention builds from split, reshape, transpose, matmul, mul,
 * maskedFill and softmax (src/nn/transformer.ts), which stays its oracle and the path of the other
 * backends, with five passes over (B, H, T, T) and six over (B, T, C) gone: in JavaScript those
 * passes were a third of a GPT step. The products run on loom_sgemm with leading dimensions, so no
 * head is ever copied out.
 */
#ifndef LOOM_ATTENTION_H
#define LOOM_ATTENTION_H

#include <stddef.h>

#include "gemm.h"

/* Floats of workspace the two calls below need for T and D: the products' panels and a (T, T) tile. */
size_t loom_attention_workspace_floats(const loom_isa *isa, long t, long d);

void loom_causal_attention(const loom_isa *isa, float *work, const float *qkv, float *out, float *probs, long b, long t, long h, long d);

/* dqkv (B, T, 3C) += the gradient through the core, given dout (B, T, C) and the forward's probs. */
void loom_causal_attention_backward(const loom_isa *isa, float *work, const float *qkv, const float *probs, const float *dout, float *dqkv,
                                    long b, long t, long h, long d);

#endif

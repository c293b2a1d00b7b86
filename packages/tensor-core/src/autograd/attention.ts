/**
 * The core of causal self-attention as one op: qkv (B, T, 3C), the fused q, k, v projection that
 * CausalSelfAttention's c_attn gives, → (B, T, C), per head softmax(q·kᵀ/√D with −∞ above the
 * diagonal)·v, the heads side by side (C = H·D).
 *
 * Where the backend has the fused kernel (the native one: native/attention.c) the op is one call
 * forward and one backward, the heads read in place and the (B, H, T, T) probabilities kept for the
 * gradient. Elsewhere it is `composedAttention`, the same maths from split, transpose, matmul,
 * maskedFill and softmax, which is also its oracle and the path that can drop attention weights out.
 */
import { fmtShape, opError } from '../errors.js';
import { backend } from '../kernels/select.js';
import * as ops from './ops.js';
import { causalMask, maskedFill, split, transpose } from './layout.js';
import { Tensor, gradBuffer, record } from './tensor.js';
import { scratch } from './buffers.js';

/** B, T, H, D from qkv (B, T, 3C) and the heads, or a clear error. */
function dims(op: string, qkv: Tensor, heads: number): [number, number, number, number] {
  if (!(qkv instanceof Tensor) || qkv.ndim !== 3) {
    throw opError(op, `qkv must be a (B, T, 3C) float Tensor, got ${qkv instanceof Tensor ? fmtShape(qkv.shape) : typeof qkv}`);
  }
  const [b, t, c3] = qkv.shape as [number, number, number];
  if (!Number.isInteger(heads) || heads < 1) throw opError(op, `heads must be a positive integer, got ${heads}`);
  if (c3 % (3 * heads) !== 0) throw opError(op, `qkv ${fmtShape(qkv.shape)} does not hold q, k and v of ${heads} equal heads (3C = ${c3} is not a multiple of 3·${heads})`);
  return [b, t, heads, c3 / 3 / heads];
}

/**
 * Causal self-attention's core (see the top of this file): the fused kernel where the backend has
 * one, else `composedAttention`.
 *
 * @example
 * causalAttention(Tensor.zeros([8, 32, 3 * 64]), 4).shape; // [8, 32, 64]
 */
export function causalAttention(qkv: Tensor, heads: number): Tensor {
  const [b, t, h, d] = dims('causalAttention', qkv, heads);
  const forward = backend.causalAttention, backward = backend.causalAttentionBackward;
  if (forward === undefined || backward === undefined) return composedAttention(qkv, heads);
  const out = new Tensor(scratch(b * t * h * d, false), [b, t, h * d]); // every element written
  const probs = scratch(b * h * t * t, false);
  forward.call(backend, qkv.data, out.data, probs, b, t, h, d);
  return record(out, 'causalAttention', [qkv], () => backward.call(backend, qkv.data, probs, out.grad!.data, gradBuffer(qkv), b, t, h, d));
}

/**
 * The same maths from the general ops, as nanoGPT writes it: q, k, v split off, each head
 * transposed to (B, H, T, D), q·kᵀ scaled, the future masked to −∞, softmax, `dropout` on the
 * weights (when given), times v, the heads transposed back. The oracle of the fused kernel.
 */
export function composedAttention(qkv: Tensor, heads: number, dropout?: (weights: Tensor) => Tensor): Tensor {
  const [b, t, h, d] = dims('composedAttention', qkv, heads);
  const c = h * d;
  const [q, k, v] = split(qkv, c, 2); // each (B, T, C)
  const perHead = (y: Tensor) => transpose(ops.reshape(y, [b, t, h, d]), 1, 2); // (B, H, T, D)
  const kT = transpose(perHead(k!), 2, 3); // (B, H, D, T)
  let att = ops.mul(ops.matmul(perHead(q!), kT), 1 / Math.sqrt(d)); // (B, H, T, T)
  att = ops.softmax(maskedFill(att, causalMask(t), -Infinity));
  if (dropout !== undefined) att = dropout(att);
  const y = transpose(ops.matmul(att, perHead(v!)), 1, 2); // (B, T, H, D)
  return ops.reshape(y, [b, t, c]);
}

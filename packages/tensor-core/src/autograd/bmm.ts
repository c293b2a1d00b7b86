/**
 * Batched matrix products over leading dimensions, (…, M, K) · (…, K, N) → (…, M, N), as
 * PyTorch's `torch.matmul` for tensors of 3 or more dimensions. `matmul` in ops.ts sends such
 * operands here. One backend product per batch element, forward and backward, on views of the
 * operands (no copies).
 *
 * Supported batch layouts: equal leading dimensions; b 2-D (a weight shared by every batch
 * element: folded into one (…·M, K) · (K, N) product); a 2-D (shared, its gradient summed).
 */
import { fmtShape, opError } from '../errors.js';
import { backend } from '../kernels/select.js';
import { IntTensor, Tensor, gradBuffer, numel, record } from './tensor.js';
import { scratch } from './buffers.js';

function requireTensor(x: unknown, what: string): asserts x is Tensor {
  if (!(x instanceof Tensor)) {
    throw opError('matmul', `${what} must be a float Tensor, got ${x instanceof IntTensor ? 'an IntTensor' : typeof x}`);
  }
}

/**
 * The batched product of a (…, M, K) and b (…, K, N) → (…, M, N); either may be 2-D (shared by
 * every batch element).
 *
 * @example
 * const q = Tensor.zeros([2, 4, 5, 8]), kT = Tensor.zeros([2, 4, 8, 5]); // (B, H, T, D), (B, H, D, T)
 * bmm(q, kT).shape; // [2, 4, 5, 5]: attention scores
 */
export function bmm(a: Tensor, b: Tensor): Tensor {
  requireTensor(a, 'the first operand');
  requireTensor(b, 'the second operand');
  if (a.ndim < 2 || b.ndim < 2) {
    throw opError('matmul', `operands must have at least 2 dimensions, got ${fmtShape(a.shape)} · ${fmtShape(b.shape)}`);
  }
  const m = a.shape[a.ndim - 2]!;
  const k = a.shape[a.ndim - 1]!;
  const k2 = b.shape[b.ndim - 2]!;
  const n = b.shape[b.ndim - 1]!;
  if (k !== k2) throw opError('matmul', `inner dimensions differ: ${fmtShape(a.shape)} · ${fmtShape(b.shape)} (${k} vs ${k2})`);
  const aLead = a.shape.slice(0, -2);
  const bLead = b.shape.slice(0, -2);
  if (aLead.length > 0 && bLead.length > 0 && (aLead.length !== bLead.length || aLead.some((d, i) => d !== bLead[i]))) {
    throw opError('matmul', `batch dimensions differ: ${fmtShape(a.shape)} · ${fmtShape(b.shape)} (${fmtShape(aLead)} vs ${fmtShape(bLead)}); they must be equal, or one operand 2-D`);
  }
  const lead = aLead.length > 0 ? aLead : bLead;
  const batches = numel(lead);
  // A shared b: one tall product, (batches·M, K) · (K, N).
  const rows = bLead.length === 0 ? batches * m : m;
  const count = bLead.length === 0 ? 1 : batches;
  const aStep = aLead.length === 0 ? 0 : rows * k;
  const bStep = bLead.length === 0 ? 0 : k * n;
  const oStep = rows * n;
  const out = new Tensor(scratch(batches * m * n), [...lead, m, n]);
  const view = (x: Float32Array, i: number, step: number, len: number) => (step === 0 && len === x.length ? x : x.subarray(i * step, i * step + len));
  for (let i = 0; i < count; i++) {
    backend.matmul(view(a.data, i, aStep, rows * k), view(b.data, i, bStep, k * n), view(out.data, i, oStep, oStep), rows, k, n, false, false, false);
  }
  return record(out, 'matmul', [a, b], () => {
    const dy = out.grad!.data; // (…, M, N)
    const da = a.requiresGrad ? gradBuffer(a) : null;
    const db = b.requiresGrad ? gradBuffer(b) : null;
    for (let i = 0; i < count; i++) {
      const dyi = view(dy, i, oStep, oStep);
      if (da !== null) backend.matmul(dyi, view(b.data, i, bStep, k * n), view(da, i, aStep, rows * k), rows, n, k, false, true, true); // dA += dy·Bᵀ
      if (db !== null) backend.matmul(view(a.data, i, aStep, rows * k), dyi, view(db, i, bStep, k * n), k, rows, n, true, false, true); // dB += Aᵀ·dy
    }
  });
}

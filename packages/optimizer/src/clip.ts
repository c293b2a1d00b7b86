/**
 * Gradient clipping, as torch.nn.utils.clip_grad_norm_ and clip_grad_value_, over parameters or
 * over flat array slices.
 *
 * By global norm, with p = normType and c = maxNorm:
 *   ‖g‖ = (Σᵢ |gᵢ|ᵖ)^(1/p)   (max |gᵢ| when p = ∞),   g ← g · min(1, c / (‖g‖ + 10⁻⁶))
 * By value: gᵢ ← clamp(gᵢ, −c, c).
 *
 * A sharded caller (threads each owning a slice, or parameter servers each owning a key range)
 * computes `gradNormPartial` on its slice, combines the partials with `totalNorm`, and scales its
 * slice by `clipCoefficient(total, maxNorm)` with `scaleSlice`. Norms are summed in float64, so
 * the total can differ from a whole-buffer sum in its last bits (addition order); the float32
 * scaling that follows almost never sees the difference.
 */
import { OptimizerError, argError, invalidValue } from './errors.js';
import type { ParamLike } from './optimizer.js';

function checkSlice(fn: string, a: Float32Array, start: number, end: number): void {
  if (!(a instanceof Float32Array)) throw argError(fn, `grads must be a Float32Array`);
  if (!Number.isInteger(start) || !Number.isInteger(end) || start < 0 || start > end || end > a.length) {
    throw argError(fn, `slice [${start}, ${end}) is not within [0, ${a.length}]`);
  }
}

function checkNormType(normType: number): void {
  if (typeof normType !== 'number' || !(normType > 0)) throw invalidValue('norm type', normType, 'must be > 0 or Infinity');
}

/** Σ |gᵢ|^normType over grads[start, end) in float64, or max |gᵢ| when normType is Infinity. */
export function gradNormPartial(grads: Float32Array, normType = 2, start = 0, end = grads.length): number {
  checkNormType(normType);
  checkSlice('gradNormPartial', grads, start, end);
  let acc = 0;
  if (normType === Infinity) {
    for (let i = start; i < end; i++) {
      const a = Math.abs(grads[i]!);
      if (!(a <= acc)) acc = a; // NaN propagates, as torch.max does
    }
  } else if (normType === 2) {
    for (let i = start; i < end; i++) acc += grads[i]! * grads[i]!;
  } else if (normType === 1) {
    for (let i = start; i < end; i++) acc += Math.abs(grads[i]!);
  } else {
    for (let i = start; i < end; i++) acc += Math.abs(grads[i]!) ** normType;
  }
  return acc;
}

/** Combines `gradNormPartial` results into the norm. */
export function totalNorm(partials: readonly number[], normType = 2): number {
  checkNormType(normType);
  if (normType === Infinity) return partials.reduce((m, x) => (x <= m ? m : x), 0);
  const sum = partials.reduce((s, x) => s + x, 0);
  return normType === 1 ? sum : normType === 2 ? Math.sqrt(sum) : sum ** (1 / normType);
}

/** The factor gradients are multiplied by: min(1, maxNorm / (norm + 1e-6)). */
export function clipCoefficient(norm: number, maxNorm: number): number {
  if (typeof maxNorm !== 'number' || !(maxNorm >= 0)) throw invalidValue('max norm', maxNorm, 'must be ≥ 0');
  const coef = maxNorm / (norm + 1e-6);
  return coef < 1 ? coef : Number.isNaN(coef) ? NaN : 1;
}

/** grads[start, end) ← grads · coef (coef rounded to float32, as PyTorch's mul_ by a float32 tensor). */
export function scaleSlice(grads: Float32Array, coef: number, start = 0, end = grads.length): void {
  checkSlice('scaleSlice', grads, start, end);
  const c = Math.fround(coef);
  if (c === 1) return;
  for (let i = start; i < end; i++) grads[i] = grads[i]! * c;
}

/** grads[start, end) ← clamp(grads, −clipValue, clipValue). */
export function clipValueSlice(grads: Float32Array, clipValue: number, start = 0, end = grads.length): void {
  if (typeof clipValue !== 'number' || !(clipValue >= 0)) throw invalidValue('clip value', clipValue, 'must be ≥ 0');
  checkSlice('clipValueSlice', grads, start, end);
  const hi = Math.fround(clipValue), lo = -hi;
  for (let i = start; i < end; i++) {
    const g = grads[i]!;
    if (g > hi) grads[i] = hi;
    else if (g < lo) grads[i] = lo;
  }
}

function gradsOf(params: Iterable<ParamLike> | ParamLike): Float32Array[] {
  const list = Symbol.iterator in Object(params) ? [...(params as Iterable<ParamLike>)] : [params as ParamLike];
  return list.flatMap((p) => (p.grad ? [p.grad.data] : []));
}

/**
 * Scales the gradients of `params` so that their global norm is at most `maxNorm`, and returns the
 * norm before clipping. Parameters without a gradient are ignored.
 *
 * @example
 * const p = { data: new Float32Array(2), grad: { data: Float32Array.of(3, 4) } };
 * clipGradNorm([p], 1); // returns 5; p.grad.data ≈ [0.6, 0.8]
 */
export function clipGradNorm(params: Iterable<ParamLike> | ParamLike, maxNorm: number, normType = 2, errorIfNonfinite = false): number {
  const grads = gradsOf(params);
  if (grads.length === 0) return 0;
  const norm = totalNorm(grads.map((g) => gradNormPartial(g, normType)), normType);
  if (errorIfNonfinite && !Number.isFinite(norm)) {
    throw new OptimizerError(`clipGradNorm: the total norm of order ${normType} of the gradients is ${norm}, so it cannot be clipped`);
  }
  const coef = clipCoefficient(norm, maxNorm);
  for (const g of grads) scaleSlice(g, coef);
  return norm;
}

/** Clamps every gradient element of `params` to [−clipValue, clipValue]. */
export function clipGradValue(params: Iterable<ParamLike> | ParamLike, clipValue: number): void {
  for (const g of gradsOf(params)) clipValueSlice(g, clipValue);
}

/**
 * Adagrad with a sparse gradient (PyTorch 1.13's torch/optim/adagrad.py, `_single_tensor_adagrad`,
 * its `grad.is_sparse` branch): only the given rows and their sums move.
 *
 * For each given row, element by element, with t = step (the table's count), g = ∇θ (−∇θ when
 * maximize), γ = lr, η = lrDecay:
 *
 *   γₜ = γ / (1 + (t − 1)η)
 *   S ← S + g²                        (S starts at initialAccumulatorValue)
 *   θ ← θ − γₜ · (g / (√S + ε))
 *
 * PyTorch rejects weight decay with sparse gradients ("weight_decay option is not compatible with
 * sparse gradients"), and so does this. The rounding differs from dense Adagrad's: g² is rounded
 * before the sum (`add_(g.pow(2))`, not `addcmul_`), and g / (√S + ε) before it is scaled by −γₜ in
 * a fused multiply-add (`add_(…, alpha=−γₜ)`).
 *
 * Buffers: table θ (V, D), sum S (V, D), rows (R) unique, grads (R, D).
 */
import { invalidValue } from '../errors.js';
import { adagrad, adagradDefaults, type AdagradOptions } from './adagrad.js';
import { f, fma } from './common.js';
import type { StateArrays } from './common.js';
import { checkSparseStepArgs, type SparseAlgorithm } from './sparse.js';

/** Adagrad's options (see adagrad.ts); weightDecay must stay 0, as PyTorch allows no weight decay with sparse gradients. */
export type SparseAdagradOptions = AdagradOptions;

export type SparseAdagradState = { sum: Float32Array };

export const sparseAdagradDefaults: Readonly<SparseAdagradOptions> = adagradDefaults;

function validate(o: SparseAdagradOptions): void {
  adagrad.validate(o);
  if (o.weightDecay !== 0) throw invalidValue('weightDecay value', o.weightDecay, 'weight decay is not compatible with sparse gradients, as in PyTorch');
}

const STATE_KEYS = ['sum'] as const;

function scalars(o: SparseAdagradOptions, step: number) {
  const clr = o.lr / (1 + (step - 1) * o.lrDecay);
  return { eps: f(o.eps), nclr: f(-clr) };
}

/** The fused step: one pass per element of each given row, no allocation. */
function sparseAdagradFused(
  table: Float32Array, state: SparseAdagradState | StateArrays, rows: ArrayLike<number>, grads: Float32Array,
  dim: number, o: SparseAdagradOptions, step: number,
): void {
  checkSparseStepArgs('sparseAdagradStep', sparseAdagrad, table, state, rows, grads, dim, o, step);
  const { eps, nclr } = scalars(o, step);
  const sign = o.maximize ? -1 : 1;
  const sum = state.sum!;
  for (let j = 0; j < rows.length; j++) {
    const base = rows[j]! * dim, gbase = j * dim;
    for (let d = 0; d < dim; d++) {
      const i = base + d;
      const g = sign * grads[gbase + d]!;
      const s = f(sum[i]! + f(g * g)); // S ← S + g²
      sum[i] = s;
      const std = f(f(Math.sqrt(s)) + eps); // √S + ε
      table[i] = fma(f(g / std), nclr, table[i]!); // θ ← θ − γₜ · g / (√S + ε)
    }
  }
}

/**
 * The plain step, as PyTorch's sparse branch reads: add g² into the sums of the rows, read the
 * sums back (`sparse_mask`), divide, add −γₜ times the result. Allocates; the fused step's oracle.
 */
export function sparseAdagradReference(
  table: Float32Array, state: SparseAdagradState | StateArrays, rows: ArrayLike<number>, grads: Float32Array,
  dim: number, o: SparseAdagradOptions, step: number,
): void {
  checkSparseStepArgs('sparseAdagradReference', sparseAdagrad, table, state, rows, grads, dim, o, step);
  const { eps, nclr } = scalars(o, step);
  const sum = state.sum!;
  const at = (k: number) => rows[Math.floor(k / dim)]! * dim + (k % dim);
  const g = grads.map((x) => (o.maximize ? -x : x));
  g.forEach((x, k) => (sum[at(k)] = f(sum[at(k)]! + f(x * x))));
  const std = g.map((_, k) => f(f(Math.sqrt(sum[at(k)]!)) + eps));
  const update = g.map((x, k) => f(x / std[k]!));
  update.forEach((u, k) => (table[at(k)] = fma(u, nclr, table[at(k)]!)));
}

/**
 * One Adagrad step with a sparse gradient over `rows` (unique) of the table, in place; `step` is
 * the table's 1-based step count, which lrDecay reads.
 *
 * @example
 * const D = 2, table = new Float32Array(3 * D), state = { sum: new Float32Array(3 * D) };
 * sparseAdagradStep(table, state, Int32Array.of(1), Float32Array.of(2, -2), D, { ...sparseAdagradDefaults, lr: 0.1 }, 1);
 * // table = [0, 0, -0.1, 0.1, 0, 0], state.sum = [0, 0, 4, 4, 0, 0]
 */
export const sparseAdagradStep: (
  table: Float32Array, state: SparseAdagradState | StateArrays, rows: ArrayLike<number>, grads: Float32Array,
  dim: number, options: SparseAdagradOptions, step: number,
) => void = sparseAdagradFused;

export const sparseAdagrad: SparseAlgorithm<SparseAdagradOptions> = {
  name: 'Adagrad',
  defaults: sparseAdagradDefaults,
  validate,
  stateKeys: () => STATE_KEYS,
  stateSize: (_key, dim) => dim,
  initialValue: (key, o) => (key === 'sum' ? o.initialAccumulatorValue : 0),
  uniqueRows: true,
  step: sparseAdagradStep,
  reference: sparseAdagradReference,
};

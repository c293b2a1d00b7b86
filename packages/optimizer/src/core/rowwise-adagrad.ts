/**
 * Row-wise Adagrad: one accumulator per row instead of one per element, as FBGEMM's
 * EXACT_ROWWISE_ADAGRAD (fbgemm_gpu, `rowwise_adagrad` in codegen/genscript/optimizers.py; TorchRec's
 * default for embedding tables) defines it, without its weight-decay modes and max-norm clipping:
 *
 *   ḡ² = (1/D) Σ_d g_d²                (the mean over the row of the squared gradient)
 *   A ← A + ḡ²                         (A starts at initialAccumulatorValue)
 *   θ_d ← θ_d − (γ / (√A + ε)) · g_d
 *
 * Like FBGEMM (which accumulates in float32 on its CPU and GPU kernels alike), every operation is
 * one float32 rounding: the squares summed in order d = 0..D−1, the sum divided by D, and the
 * multiplier γ/(√A + ε) computed once per row. There is no PyTorch optimizer for it: the tests hold
 * it to the plain loop below and to a numpy float32 computation of the same formula in
 * fixtures/make_sparse_fixtures.py.
 *
 * State: D times less than Adagrad's — one float per row.
 *
 * Buffers: table θ (V, D), sum A (V), rows (R) unique, grads (R, D).
 */
import { checkBoolean, checkNonNegative, checkPositive } from '../options.js';
import { f } from './common.js';
import type { StateArrays } from './common.js';
import { checkSparseStepArgs, type SparseAlgorithm } from './sparse.js';

export interface RowwiseAdagradOptions {
  /** Learning rate γ ≥ 0. Default 1e-2. */
  lr: number;
  /** Added to √A, > 0. Default 1e-8 (FBGEMM's). */
  eps: number;
  /** The value every row's A starts at, ≥ 0. Default 0. */
  initialAccumulatorValue: number;
  /** Maximise the objective instead of minimising it. Default false. */
  maximize: boolean;
}

export type RowwiseAdagradState = { sum: Float32Array };

export const rowwiseAdagradDefaults: Readonly<RowwiseAdagradOptions> = Object.freeze({
  lr: 1e-2,
  eps: 1e-8,
  initialAccumulatorValue: 0,
  maximize: false,
});

function validate(o: RowwiseAdagradOptions): void {
  checkNonNegative('learning rate', o.lr);
  checkPositive('epsilon value', o.eps);
  checkNonNegative('initialAccumulatorValue', o.initialAccumulatorValue);
  checkBoolean('maximize value', o.maximize);
}

const STATE_KEYS = ['sum'] as const;

/** The step: one pass over each row for ḡ², one to update it; no allocation. */
function rowwiseAdagradFused(
  table: Float32Array, state: RowwiseAdagradState | StateArrays, rows: ArrayLike<number>, grads: Float32Array,
  dim: number, o: RowwiseAdagradOptions, step: number,
): void {
  checkSparseStepArgs('rowwiseAdagradStep', rowwiseAdagrad, table, state, rows, grads, dim, o, step);
  const lr = f(o.lr), eps = f(o.eps), sign = o.maximize ? -1 : 1;
  const acc = state.sum!;
  for (let j = 0; j < rows.length; j++) {
    const r = rows[j]!, base = r * dim, gbase = j * dim;
    let sq = 0;
    for (let d = 0; d < dim; d++) {
      const g = grads[gbase + d]!; // the sign does not change g²
      sq = f(sq + f(g * g));
    }
    const a = f(acc[r]! + f(sq / dim)); // A ← A + ḡ²
    acc[r] = a;
    const mult = f(sign * f(lr / f(f(Math.sqrt(a)) + eps))); // ±γ / (√A + ε)
    for (let d = 0; d < dim; d++) table[base + d] = f(table[base + d]! - f(grads[gbase + d]! * mult));
  }
}

/** The plain loop, statement by statement as the formula reads: the step's oracle. */
export function rowwiseAdagradReference(
  table: Float32Array, state: RowwiseAdagradState | StateArrays, rows: ArrayLike<number>, grads: Float32Array,
  dim: number, o: RowwiseAdagradOptions, step: number,
): void {
  checkSparseStepArgs('rowwiseAdagradReference', rowwiseAdagrad, table, state, rows, grads, dim, o, step);
  const acc = state.sum!;
  for (let j = 0; j < rows.length; j++) {
    const r = rows[j]!;
    const g = Array.from(grads.subarray(j * dim, (j + 1) * dim), (x) => (o.maximize ? -x : x));
    const meanSquare = f(g.reduce((s, x) => f(s + f(x * x)), 0) / dim);
    acc[r] = f(acc[r]! + meanSquare);
    const multiplier = f(f(o.lr) / f(f(Math.sqrt(acc[r]!)) + f(o.eps)));
    g.forEach((x, d) => (table[r * dim + d] = f(table[r * dim + d]! - f(x * multiplier))));
  }
}

/**
 * One row-wise Adagrad step over `rows` (unique) of the table, in place. `state.sum` has one float
 * per row (V). `step` is checked only: the update does not depend on it.
 *
 * @example
 * const D = 4, table = new Float32Array(2 * D), state = { sum: new Float32Array(2) };
 * rowwiseAdagradStep(table, state, Int32Array.of(1), Float32Array.of(1, -1, 1, -1), D, { ...rowwiseAdagradDefaults, lr: 0.1 }, 1);
 * // state.sum = [0, 1]; row 1 of table = [-0.1, 0.1, -0.1, 0.1]
 */
export const rowwiseAdagradStep: (
  table: Float32Array, state: RowwiseAdagradState | StateArrays, rows: ArrayLike<number>, grads: Float32Array,
  dim: number, options: RowwiseAdagradOptions, step: number,
) => void = rowwiseAdagradFused;

export const rowwiseAdagrad: SparseAlgorithm<RowwiseAdagradOptions> = {
  name: 'RowwiseAdagrad',
  defaults: rowwiseAdagradDefaults,
  validate,
  stateKeys: () => STATE_KEYS,
  stateSize: () => 1,
  initialValue: (key, o) => (key === 'sum' ? o.initialAccumulatorValue : 0),
  uniqueRows: true,
  step: rowwiseAdagradStep,
  reference: rowwiseAdagradReference,
};

/**
 * SparseAdam (PyTorch 1.13's torch/optim/sparse_adam.py and `sparse_adam` in _functional.py): the
 * "lazy" Adam of embedding tables. Only the rows in the gradient move, and only their moments are
 * updated; a row not in this step's gradient keeps its weights and moments bit for bit, however
 * many steps pass. The step count t is the table's (PyTorch keeps one per parameter), so a row
 * first touched at step 20 is bias-corrected with t = 20, not 1.
 *
 * For each given row, element by element, with g = ∇θ (−∇θ when maximize), γ = lr:
 *
 *   m ← m + (1 − β₁)(g − m)           (= β₁m + (1 − β₁)g, PyTorch's form, rounded as PyTorch rounds it)
 *   v ← v + (1 − β₂)(g² − v)
 *   θ ← θ − (γ √(1 − β₂ᵗ) / (1 − β₁ᵗ)) · m / (√v + ε)
 *
 * Note ε is added to √v before the bias correction, unlike dense Adam (PyTorch's SparseAdam does
 * the same).
 *
 * Buffers: table θ (V, D), expAvg m (V, D), expAvgSq v (V, D), rows (R), grads (R, D) — coalesced:
 * PyTorch coalesces before this step ("the update is non-linear so indices must be unique").
 */
import { checkBetas, checkBoolean, checkPositive } from '../options.js';
import { f } from './common.js';
import type { StateArrays } from './common.js';
import { checkSparseStepArgs, type SparseAlgorithm } from './sparse.js';

export interface SparseAdamOptions {
  /** Learning rate γ, > 0 (PyTorch's SparseAdam rejects 0). Default 1e-3. */
  lr: number;
  /** Decay rates (β₁, β₂), each in [0, 1). Default [0.9, 0.999]. */
  betas: readonly [number, number];
  /** Added to √v, > 0. Default 1e-8. */
  eps: number;
  /** Maximise the objective instead of minimising it. Default false. */
  maximize: boolean;
}

export type SparseAdamState = { expAvg: Float32Array; expAvgSq: Float32Array };

export const sparseAdamDefaults: Readonly<SparseAdamOptions> = Object.freeze({
  lr: 1e-3,
  betas: Object.freeze([0.9, 0.999]) as unknown as readonly [number, number],
  eps: 1e-8,
  maximize: false,
});

function validate(o: SparseAdamOptions): void {
  checkPositive('learning rate', o.lr);
  checkPositive('epsilon value', o.eps);
  checkBetas(o.betas);
  checkBoolean('maximize value', o.maximize);
}

const STATE_KEYS = ['expAvg', 'expAvgSq'] as const;

/** The per-step scalars: float64 in Python, rounded to float32 where a tensor op takes them. */
function scalars(o: SparseAdamOptions, step: number) {
  const [beta1, beta2] = o.betas;
  const biasCorrection1 = 1 - beta1 ** step;
  const biasCorrection2 = 1 - beta2 ** step;
  const stepSize = (o.lr * Math.sqrt(biasCorrection2)) / biasCorrection1;
  return { omb1: f(1 - beta1), omb2: f(1 - beta2), eps: f(o.eps), nss: f(-stepSize) };
}

/**
 * The fused step: one pass per element of each given row, every operation one float32 rounding
 * in PyTorch's order, no allocation.
 */
function sparseAdamFused(
  table: Float32Array, state: SparseAdamState | StateArrays, rows: ArrayLike<number>, grads: Float32Array,
  dim: number, o: SparseAdamOptions, step: number,
): void {
  checkSparseStepArgs('sparseAdamStep', sparseAdam, table, state, rows, grads, dim, o, step);
  const { omb1, omb2, eps, nss } = scalars(o, step);
  const sign = o.maximize ? -1 : 1;
  const m = state.expAvg!, v = state.expAvgSq!;
  for (let j = 0; j < rows.length; j++) {
    const base = rows[j]! * dim, gbase = j * dim;
    for (let d = 0; d < dim; d++) {
      const i = base + d;
      const g = sign * grads[gbase + d]!;
      const om = m[i]!, ov = v[i]!;
      const mu = f(f(g - om) * omb1); // (g − m)(1 − β₁)
      const vu = f(f(f(g * g) - ov) * omb2); // (g² − v)(1 − β₂)
      const mNew = f(om + mu), vNew = f(ov + vu);
      m[i] = mNew;
      v[i] = vNew;
      const denom = f(f(Math.sqrt(vNew)) + eps); // √v + ε
      table[i] = f(table[i]! + f(nss * f(mNew / denom))); // θ ← θ − step_size · m / denom
    }
  }
}

/**
 * The plain step, as PyTorch's `sparse_adam` reads: gather the old moments of the rows
 * (`sparse_mask`), compute the update values, add them back (`add_` of a sparse tensor), then the
 * parameter update. Allocates; the fused step's oracle.
 */
export function sparseAdamReference(
  table: Float32Array, state: SparseAdamState | StateArrays, rows: ArrayLike<number>, grads: Float32Array,
  dim: number, o: SparseAdamOptions, step: number,
): void {
  checkSparseStepArgs('sparseAdamReference', sparseAdam, table, state, rows, grads, dim, o, step);
  const { omb1, omb2, eps, nss } = scalars(o, step);
  const m = state.expAvg!, v = state.expAvgSq!;
  const gather = (a: Float32Array) => Float32Array.from({ length: rows.length * dim }, (_, k) => a[rows[Math.floor(k / dim)]! * dim + (k % dim)]!);
  const addRows = (a: Float32Array, vals: ArrayLike<number>) => {
    for (let k = 0; k < vals.length; k++) {
      const i = rows[Math.floor(k / dim)]! * dim + (k % dim);
      a[i] = f(a[i]! + vals[k]!);
    }
  };
  const g = grads.map((x) => (o.maximize ? -x : x));
  const oldM = gather(m);
  const mUpdate = g.map((x, k) => f(f(x - oldM[k]!) * omb1));
  addRows(m, mUpdate);
  const oldV = gather(v);
  const vUpdate = g.map((x, k) => f(f(f(x * x) - oldV[k]!) * omb2));
  addRows(v, vUpdate);
  const numer = mUpdate.map((x, k) => f(x + oldM[k]!));
  const denom = vUpdate.map((x, k) => f(f(Math.sqrt(f(x + oldV[k]!))) + eps));
  addRows(table, numer.map((x, k) => f(nss * f(x / denom[k]!))));
}

/**
 * One SparseAdam step over `rows` (unique, e.g. from `coalesce`) of the table, in place. `step` is
 * the table's 1-based step count (see the file's comment); `options` complete
 * (`resolveOptions(sparseAdam, {...})`).
 *
 * @example
 * const D = 2, table = new Float32Array(3 * D), state = { expAvg: new Float32Array(3 * D), expAvgSq: new Float32Array(3 * D) };
 * sparseAdamStep(table, state, Int32Array.of(2), Float32Array.of(1, -1), D, { ...sparseAdamDefaults, lr: 0.1 }, 1);
 * // table = [0, 0, 0, 0, -0.1, 0.1]: rows 0 and 1 and their moments untouched
 */
export const sparseAdamStep: (
  table: Float32Array, state: SparseAdamState | StateArrays, rows: ArrayLike<number>, grads: Float32Array,
  dim: number, options: SparseAdamOptions, step: number,
) => void = sparseAdamFused;

export const sparseAdam: SparseAlgorithm<SparseAdamOptions> = {
  name: 'SparseAdam',
  defaults: sparseAdamDefaults,
  validate,
  stateKeys: () => STATE_KEYS,
  stateSize: (_key, dim) => dim,
  initialValue: () => 0,
  uniqueRows: true,
  step: sparseAdamStep,
  reference: sparseAdamReference,
};

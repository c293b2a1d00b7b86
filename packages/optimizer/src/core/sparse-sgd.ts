/**
 * SGD with a sparse gradient (PyTorch 1.13's torch/optim/sgd.py, `_single_tensor_sgd`, whose
 * `param.add_(d_p, alpha=−lr)` adds a sparse gradient into the dense table).
 *
 * PyTorch does not coalesce here: it adds the value row of every occurrence of an id, in order, so
 * a repeated id moves its row once per occurrence:
 *
 *   for each k in order:  θ[ids[k]] ← θ[ids[k]] − γ · g[k]     (one fused multiply-add per element)
 *
 * So `rows` may repeat here, and this step gives PyTorch's bits on an uncoalesced gradient (as
 * nn.Embedding's sparse backward makes it). On a coalesced gradient it is θ − γ·Σg, which can
 * differ from the uncoalesced result in the last bit where an id repeats.
 *
 * What PyTorch 1.13 rejects or does differently with sparse gradients:
 *  - weight decay: rejected by PyTorch (`add(sparse, dense) is not supported`), and here;
 *  - momentum (and so Nesterov, dampening): PyTorch accepts it but keeps a *sparse* momentum buffer
 *    holding every row ever touched and moves all of them on every step — not a step over the given
 *    rows, and its cost grows with every row ever seen. Rejected here; use SparseAdam or Adagrad.
 *
 * Buffers: table θ (V, D), rows (R), grads (R, D). No state.
 */
import { argError, invalidValue } from '../errors.js';
import { sgd, sgdDefaults, type SGDOptions } from './sgd.js';
import { f, fma } from './common.js';
import type { StateArrays } from './common.js';
import { checkSparseStepArgs, type SparseAlgorithm } from './sparse.js';

/** SGD's options (see sgd.ts); momentum, dampening, weightDecay and nesterov must stay off with sparse gradients. */
export type SparseSGDOptions = SGDOptions;

export const sparseSgdDefaults: Readonly<SparseSGDOptions> = sgdDefaults;

function validate(o: SparseSGDOptions): void {
  if (o.lr === undefined) throw argError('SparseSGD', 'options.lr is required');
  sgd.validate(o);
  if (o.momentum !== 0) {
    throw invalidValue('momentum value', o.momentum, "sparse SGD supports momentum 0 only: PyTorch 1.13's sparse momentum buffer moves every row ever touched on every step; use SparseAdam or Adagrad");
  }
  if (o.dampening !== 0) throw invalidValue('dampening value', o.dampening, 'sparse SGD has no momentum, so no dampening');
  if (o.weightDecay !== 0) throw invalidValue('weightDecay value', o.weightDecay, 'weight decay is not compatible with sparse gradients, as in PyTorch');
}

/** The fused step: one fused multiply-add per element of each occurrence, in order. */
function sparseSgdFused(
  table: Float32Array, _state: StateArrays, rows: ArrayLike<number>, grads: Float32Array,
  dim: number, o: SparseSGDOptions, step: number,
): void {
  checkSparseStepArgs('sparseSgdStep', sparseSgd, table, _state, rows, grads, dim, o, step);
  const nlr = f(o.maximize ? o.lr : -o.lr); // −γ·(−g) = γ·g: negating the rate is exact
  for (let j = 0; j < rows.length; j++) {
    const base = rows[j]! * dim, gbase = j * dim;
    for (let d = 0; d < dim; d++) table[base + d] = fma(grads[gbase + d]!, nlr, table[base + d]!);
  }
}

/** The plain step: negate for maximize, then add −γ times each occurrence's row. The fused step's oracle. */
export function sparseSgdReference(
  table: Float32Array, _state: StateArrays, rows: ArrayLike<number>, grads: Float32Array,
  dim: number, o: SparseSGDOptions, step: number,
): void {
  checkSparseStepArgs('sparseSgdReference', sparseSgd, table, _state, rows, grads, dim, o, step);
  const g = grads.map((x) => (o.maximize ? -x : x));
  const nlr = f(-o.lr);
  g.forEach((x, k) => {
    const i = rows[Math.floor(k / dim)]! * dim + (k % dim);
    table[i] = fma(x, nlr, table[i]!);
  });
}

/**
 * One SGD step with a sparse gradient: each occurrence in `rows` (repeats allowed, applied in
 * order, as PyTorch does) moves its row by −γ·g. `state` is unused (`{}`); `step` is checked only.
 *
 * @example
 * const table = Float32Array.of(1, 1, 1, 1);
 * sparseSgdStep(table, {}, Int32Array.of(1, 1), Float32Array.of(1, 2, 1, 2), 2, { ...sparseSgdDefaults, lr: 0.5 }, 1);
 * // table = [1, 1, 0, -1]
 */
export const sparseSgdStep: (
  table: Float32Array, state: StateArrays, rows: ArrayLike<number>, grads: Float32Array,
  dim: number, options: SparseSGDOptions, step: number,
) => void = sparseSgdFused;

export const sparseSgd: SparseAlgorithm<SparseSGDOptions> = {
  name: 'SGD',
  defaults: sparseSgdDefaults,
  validate,
  stateKeys: () => [],
  stateSize: () => 0,
  initialValue: () => 0,
  uniqueRows: false,
  step: sparseSgdStep,
  reference: sparseSgdReference,
};

/**
 * A small stateful shell around the sparse functional core, for a single process that owns a whole
 * table: it holds the table's state arrays, its step count and a coalescing workspace. Over plain
 * arrays (ids + values), not tensors, so a parameter server, a worker and a training loop can all
 * use it; and sparse optimizers by name, as `--sparse-optimizer` spells them.
 */
import { OptimizerError, argError } from './errors.js';
import { resolveOptions } from './options.js';
import { allocateSparseState, checkTable, coalesce, rowLayout, SparseWorkspace, type RowLayout, type SparseAlgorithm } from './core/sparse.js';
import { sparseAdam } from './core/sparse-adam.js';
import { sparseAdagrad } from './core/sparse-adagrad.js';
import { sparseSgd } from './core/sparse-sgd.js';
import { rowwiseAdagrad } from './core/rowwise-adagrad.js';

/**
 * One table (V, D) and its optimizer state. `step(ids, values)` takes a gradient as given — ids (N)
 * with repeats, value rows (N, D) — coalesces it when the algorithm needs unique rows (as PyTorch
 * does), and steps the rows it names; the step count is the table's, as PyTorch keeps it.
 *
 * @example
 * const D = 4, table = new Float32Array(100 * D).fill(0.5);
 * const opt = new SparseRowOptimizer(sparseAdam, table, D, { lr: 0.01 });
 * opt.step(Int32Array.of(3, 7, 3), new Float32Array(3 * D).fill(1)); // rows 3 and 7 move; 3's gradient is 2
 * opt.stepCount; // 1
 */
export class SparseRowOptimizer<O extends object> {
  readonly options: O;
  readonly state: Record<string, Float32Array>;
  /** The number of steps taken (PyTorch's `state['step']`); set it when restoring a checkpoint. */
  stepCount = 0;
  readonly rowCount: number;
  private readonly workspace = new SparseWorkspace();

  constructor(readonly algorithm: SparseAlgorithm<O>, readonly table: Float32Array, readonly dim: number, options: Partial<O> = {}) {
    this.rowCount = checkTable(`${algorithm.name}`, table, dim);
    this.options = resolveOptions(algorithm, options);
    this.state = allocateSparseState(algorithm, this.options, this.rowCount, dim);
  }

  /** The per-row record layout of weights and state (see `rowLayout`). */
  get layout(): RowLayout {
    return rowLayout(this.algorithm, this.options, this.dim);
  }

  /** One step with the gradient (ids (N), values (N, D)); throws before changing anything on bad arguments. */
  step(ids: ArrayLike<number>, values: Float32Array): void {
    const t = this.stepCount + 1;
    if (this.algorithm.uniqueRows) {
      const g = coalesce(ids, values, this.dim, this.workspace);
      this.algorithm.step(this.table, this.state, g.rows, g.values, this.dim, this.options, t);
    } else {
      this.algorithm.step(this.table, this.state, ids, values, this.dim, this.options, t);
    }
    this.stepCount = t;
  }
}

export const SPARSE_OPTIMIZER_NAMES = ['sparse-adam', 'adagrad', 'rowwise-adagrad', 'sgd'] as const;
export type SparseOptimizerName = (typeof SPARSE_OPTIMIZER_NAMES)[number];

const SPARSE: Record<SparseOptimizerName, SparseAlgorithm<any>> = {
  'sparse-adam': sparseAdam,
  adagrad: sparseAdagrad,
  'rowwise-adagrad': rowwiseAdagrad,
  sgd: sparseSgd,
};

/**
 * The sparse algorithm and resolved, validated options of a `--sparse-optimizer` name.
 *
 * @example
 * const { algorithm, options } = namedSparseOptimizer('rowwise-adagrad', { lr: 0.05 });
 * const state = allocateSparseState(algorithm, options, V, D); // { sum: Float32Array(V) }
 */
export function namedSparseOptimizer(name: string, overrides: Record<string, unknown> = {}): { algorithm: SparseAlgorithm<any>; options: Record<string, unknown> } {
  const algorithm = SPARSE[name as SparseOptimizerName];
  if (algorithm === undefined) throw new OptimizerError(`Unknown sparse optimizer '${name}' (expected one of: ${SPARSE_OPTIMIZER_NAMES.join(', ')})`);
  if (typeof overrides !== 'object' || overrides === null) throw argError('namedSparseOptimizer', 'overrides must be an object');
  return { algorithm, options: resolveOptions(algorithm, overrides) as Record<string, unknown> };
}

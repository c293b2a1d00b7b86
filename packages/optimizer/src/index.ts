/**
 * @loom/optimizer — SGD (with momentum and Nesterov), RMSprop, Adam, AdamW and Adagrad with
 * PyTorch 1.13's hyperparameters, defaults and update rules, over flat Float32Arrays.
 *
 * Two layers:
 *  - the functional core (`sgdStep`, `rmspropStep`, `adamStep`, `adamwStep`, `adagradStep`): one
 *    step over a slice [start, end) of flat arrays. Stepping a buffer in slices, in any order, gives
 *    the same bits as one call over the whole buffer, so threads and parameter servers each step
 *    their own range with the same function.
 *  - the class API (`new Adam(model.parameters(), { lr: 1e-3 })`): parameter groups, state,
 *    `step`, `zeroGrad`, `stateDict` / `loadStateDict`; plus schedulers and gradient clipping.
 *
 * And for embedding tables, the sparse core (`sparseAdamStep`, `sparseAdagradStep`, `sparseSgdStep`,
 * `rowwiseAdagradStep`): one step over given rows of a table and its per-row state, reading and
 * writing nothing else; `coalesce` for gradients with repeated ids; `SparseRowOptimizer` around it.
 */
export { OptimizerError } from './errors.js';
export {
  setKernelBackend,
  getKernelBackend,
  type KernelBackend,
  type Algorithm,
  type StepFunction,
  type SumStepFunction,
  type StateArrays,
} from './core/common.js';
export { resolveOptions } from './options.js';
export { optimizerMemory, allocateFlat, type ThreadMemoryHandle } from './simd/memory.js';
export { fmaLowering, setFmaLowering, type FmaLowering } from './simd/kernel.js';
export { sgd, sgdStep, sgdDefaults, type SGDOptions, type SGDState } from './core/sgd.js';
export { rmsprop, rmspropStep, rmspropDefaults, type RMSpropOptions, type RMSpropState } from './core/rmsprop.js';
export { adam, adamw, adamStep, adamwStep, adamDefaults, adamwDefaults, type AdamOptions, type AdamState } from './core/adam.js';
export { weightedSum, stepWithSum } from './core/weighted-sum.js';
export { allFinite } from './core/finite.js';
export { adagrad, adagradStep, adagradDefaults, type AdagradOptions, type AdagradState } from './core/adagrad.js';
export {
  coalesce,
  coalesceReference,
  sparseStep,
  rowLayout,
  allocateSparseState,
  gatherRows,
  scatterRows,
  SparseWorkspace,
  type SparseAlgorithm,
  type SparseStepFunction,
  type Coalesced,
  type RowLayout,
  type RowField,
} from './core/sparse.js';
export { sparseAdam, sparseAdamStep, sparseAdamReference, sparseAdamDefaults, type SparseAdamOptions, type SparseAdamState } from './core/sparse-adam.js';
export { sparseAdagrad, sparseAdagradStep, sparseAdagradReference, sparseAdagradDefaults, type SparseAdagradOptions, type SparseAdagradState } from './core/sparse-adagrad.js';
export { sparseSgd, sparseSgdStep, sparseSgdReference, sparseSgdDefaults, type SparseSGDOptions } from './core/sparse-sgd.js';
export { rowwiseAdagrad, rowwiseAdagradStep, rowwiseAdagradReference, rowwiseAdagradDefaults, type RowwiseAdagradOptions, type RowwiseAdagradState } from './core/rowwise-adagrad.js';
export { SparseRowOptimizer, namedSparseOptimizer, SPARSE_OPTIMIZER_NAMES, type SparseOptimizerName } from './sparse-optimizer.js';
export { Optimizer, type ParamLike, type ParamGroup, type ParamGroupSpec, type StateDict, type SavedParamState } from './optimizer.js';
export { SGD, RMSprop, Adam, AdamW, Adagrad } from './optimizers.js';
export {
  LRScheduler,
  StepLR,
  MultiStepLR,
  ExponentialLR,
  CosineAnnealingLR,
  LinearLR,
  SequentialLR,
  linearWarmup,
  stepLr,
  multiStepLr,
  exponentialLr,
  cosineAnnealingLr,
  linearLr,
  type SchedulableOptimizer,
  type SchedulerStateDict,
} from './schedulers.js';
export { clipGradNorm, clipGradValue, gradNormPartial, totalNorm, clipCoefficient, scaleSlice, clipValueSlice } from './clip.js';
export { namedOptimizer, OPTIMIZER_NAMES, type OptimizerName } from './presets.js';

/** The optimizers `loom` offers by name (--optimizer); the table itself lives in @loom/optimizer. */
import { OPTIMIZER_NAMES, Optimizer, namedOptimizer, type OptimizerName, type ParamLike } from '@loom/optimizer';

export const OPTIMIZERS = OPTIMIZER_NAMES;
export type { OptimizerName };

/** What the training loop needs of an optimizer. */
export interface StepOptimizer {
  step(): void;
  zeroGrad(): void;
}

/** Builds a named optimizer over `params`; "momentum" is SGD with momentum 0.9. */
export function makeOptimizer(name: OptimizerName, params: ParamLike[], lr: number): StepOptimizer {
  const { algorithm, options } = namedOptimizer(name, { lr });
  return new Optimizer(algorithm, params, options);
}

/** The optimizers `loom` offers by name (--optimizer), with PyTorch's defaults otherwise. */
import { Adagrad, Adam, AdamW, RMSprop, SGD, type ParamLike } from '@loom/optimizer';

export const OPTIMIZERS = ['sgd', 'momentum', 'rmsprop', 'adam', 'adamw', 'adagrad'] as const;
export type OptimizerName = (typeof OPTIMIZERS)[number];

/** What the training loop needs of an optimizer. */
export interface StepOptimizer {
  step(): void;
  zeroGrad(): void;
}

/** Builds a named optimizer; "momentum" is SGD with momentum 0.9. */
export function makeOptimizer(name: OptimizerName, params: ParamLike[], lr: number): StepOptimizer {
  switch (name) {
    case 'sgd':
      return new SGD(params, { lr });
    case 'momentum':
      return new SGD(params, { lr, momentum: 0.9 });
    case 'rmsprop':
      return new RMSprop(params, { lr });
    case 'adam':
      return new Adam(params, { lr });
    case 'adamw':
      return new AdamW(params, { lr });
    case 'adagrad':
      return new Adagrad(params, { lr });
  }
}

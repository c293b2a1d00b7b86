/**
 * The optimizer classes. Each is the shared Optimizer shell around one algorithm; the maths, the
 * defaults and the checks live in core/.
 */
import { adagrad, type AdagradOptions } from './core/adagrad.js';
import { adam, adamw, type AdamOptions } from './core/adam.js';
import { rmsprop, type RMSpropOptions } from './core/rmsprop.js';
import { sgd, type SGDOptions } from './core/sgd.js';
import { Optimizer, type ParamGroupSpec, type ParamLike } from './optimizer.js';

type Params<O> = Iterable<ParamLike> | Iterable<ParamGroupSpec<O>>;

/**
 * Stochastic gradient descent, with optional momentum, Nesterov momentum and weight decay.
 * `lr` is required (here or in every group), as in PyTorch.
 *
 * @example
 * const opt = new SGD(model.parameters(), { lr: 0.1, momentum: 0.9, nesterov: true });
 */
export class SGD extends Optimizer<SGDOptions> {
  constructor(params: Params<SGDOptions>, options: Partial<SGDOptions> = {}) {
    super(sgd, params, options);
  }
}

/** RMSprop, optionally centered and with momentum. @example new RMSprop(model.parameters(), { lr: 1e-3, centered: true }) */
export class RMSprop extends Optimizer<RMSpropOptions> {
  constructor(params: Params<RMSpropOptions>, options: Partial<RMSpropOptions> = {}) {
    super(rmsprop, params, options);
  }
}

/** Adam with L2 weight decay, optionally AMSGrad. @example new Adam(model.parameters(), { lr: 1e-3 }) */
export class Adam extends Optimizer<AdamOptions> {
  constructor(params: Params<AdamOptions>, options: Partial<AdamOptions> = {}) {
    super(adam, params, options);
  }
}

/** AdamW: Adam with decoupled weight decay (default 1e-2). @example new AdamW(model.parameters(), { lr: 1e-3, weightDecay: 0.1 }) */
export class AdamW extends Optimizer<AdamOptions> {
  constructor(params: Params<AdamOptions>, options: Partial<AdamOptions> = {}) {
    super(adamw, params, options);
  }
}

/** Adagrad. @example new Adagrad(model.parameters(), { lr: 0.1, lrDecay: 1e-3 }) */
export class Adagrad extends Optimizer<AdagradOptions> {
  constructor(params: Params<AdagradOptions>, options: Partial<AdagradOptions> = {}) {
    super(adagrad, params, options);
  }
}

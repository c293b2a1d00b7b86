/** Multi-layer perceptrons, the model family of Loom's reference workloads. */
import { opError } from '../errors.js';
import type { Random } from '../random.js';
import { Linear, ReLU, Sequential, Sigmoid, Tanh } from './layers.js';
import { defaultGenerator, xavierUniform, zeros } from './init.js';
import type { Module } from './module.js';

export interface MlpOptions {
  /** The nonlinearity between layers. */
  activation?: 'relu' | 'tanh' | 'sigmoid';
  /**
   * 'xavier': Xavier-uniform weights and zero biases; 'default': PyTorch's nn.Linear default;
   * 'none': all zeros, untouched (for a model that will adopt shared parameters).
   */
  init?: 'xavier' | 'default' | 'none';
  rng?: Random;
}

/**
 * A Sequential of Linear layers with an activation between them: sizes [100, 50, 10] gives
 * Linear(100, 50), ReLU, Linear(50, 10) — Loom's reference model with `init: 'xavier'`.
 *
 * @example
 * const model = mlp([100, 50, 10], { init: 'xavier' });
 * model.namedParameters().map(([n]) => n); // ['0.weight', '0.bias', '2.weight', '2.bias']
 */
export function mlp(sizes: readonly number[], { activation = 'relu', init = 'default', rng = defaultGenerator() }: MlpOptions = {}): Sequential {
  if (sizes.length < 2) throw opError('mlp', `needs at least an input and an output size, got [${sizes.join(', ')}]`);
  if (init !== 'xavier' && init !== 'default' && init !== 'none') throw opError('mlp', `init must be 'xavier', 'default' or 'none', got '${init}'`);
  const act = { relu: ReLU, tanh: Tanh, sigmoid: Sigmoid }[activation];
  if (act === undefined) throw opError('mlp', `activation must be relu, tanh or sigmoid, got '${activation}'`);
  const layers: Module<any>[] = [];
  for (let i = 0; i + 1 < sizes.length; i++) {
    const layer = new Linear(sizes[i]!, sizes[i + 1]!, { rng, skipInit: init === 'none' });
    if (init === 'xavier') {
      xavierUniform(layer.weight, { rng });
      zeros(layer.bias!);
    }
    if (i > 0) layers.push(new act());
    layers.push(layer);
  }
  return new Sequential(...layers);
}

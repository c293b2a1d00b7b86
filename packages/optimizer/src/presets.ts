/**
 * Optimizers by name, as command lines and configs spell them: "momentum" is SGD with momentum
 * 0.9, and the rest are the algorithms with PyTorch's defaults. One table, so a single-process
 * trainer, worker threads and parameter servers resolve a name to the same algorithm and options.
 */
import type { Algorithm } from './core/common.js';
import { sgd } from './core/sgd.js';
import { rmsprop } from './core/rmsprop.js';
import { adam, adamw } from './core/adam.js';
import { adagrad } from './core/adagrad.js';
import { resolveOptions } from './options.js';
import { OptimizerError } from './errors.js';

export const OPTIMIZER_NAMES = ['sgd', 'momentum', 'rmsprop', 'adam', 'adamw', 'adagrad'] as const;
export type OptimizerName = (typeof OPTIMIZER_NAMES)[number];

const PRESETS: Record<OptimizerName, { algorithm: Algorithm<any>; options: object }> = {
  sgd: { algorithm: sgd, options: {} },
  momentum: { algorithm: sgd, options: { momentum: 0.9 } },
  rmsprop: { algorithm: rmsprop, options: {} },
  adam: { algorithm: adam, options: {} },
  adamw: { algorithm: adamw, options: {} },
  adagrad: { algorithm: adagrad, options: {} },
};

/**
 * The algorithm and fully resolved, validated options of a named optimizer.
 *
 * @example
 * const { algorithm, options } = namedOptimizer('momentum', { lr: 0.01 });
 * algorithm.step(params, grads, state, options, 1); // state from algorithm.stateKeys(options)
 */
export function namedOptimizer(name: string, overrides: Record<string, unknown> = {}): { algorithm: Algorithm<any>; options: Record<string, unknown> } {
  const preset = PRESETS[name as OptimizerName];
  if (preset === undefined) throw new OptimizerError(`Unknown optimizer '${name}' (expected one of: ${OPTIMIZER_NAMES.join(', ')})`);
  const options = resolveOptions(preset.algorithm, { ...preset.options, ...overrides }) as Record<string, unknown>;
  return { algorithm: preset.algorithm, options };
}

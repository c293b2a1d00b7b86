/** The models `loom` trains, named by the --model flag. */
import { Random, mlp, type Sequential } from '@loom/tensor-core';
import { UsageError } from './errors.js';

/** Loom's reference model: Linear 100→50, ReLU, Linear 50→10, Xavier-uniform weights, zero biases. */
export const REFERENCE_SIZES = [100, 50, 10] as const;

/** The layer sizes a --model value names: `reference` or `mlp:784,256,128,10`. */
export function modelSizes(spec: string): number[] {
  if (spec === 'reference') return [...REFERENCE_SIZES];
  const m = /^mlp:(\d+(?:,\d+)+)$/.exec(spec);
  if (!m) throw new UsageError(`--model must be reference or mlp:IN,HIDDEN,…,OUT (e.g. mlp:784,256,128,10), got '${spec}'`);
  const sizes = m[1]!.split(',').map(Number);
  if (sizes.some((s) => s <= 0)) throw new UsageError(`--model ${spec}: every layer size must be positive`);
  return sizes;
}

/** Checks that a model fits a dataset's features and classes, naming both when not. */
export function checkModelFits(spec: string, sizes: readonly number[], width: number, numClasses: number, dataset: string): void {
  const [first, last] = [sizes[0]!, sizes[sizes.length - 1]!];
  if (first !== width || last !== numClasses) {
    throw new UsageError(
      `--model ${spec} takes ${first} features and predicts ${last} classes, but --dataset ${dataset} has ${width} features and ${numClasses} classes` +
        ` (try --model mlp:${width},${Math.max(16, Math.round(Math.sqrt(width * numClasses)))},${numClasses})`,
    );
  }
}

/** Builds the MLP with Xavier-uniform weights and zero biases, seeded. */
export function buildModel(sizes: readonly number[], seed: number): Sequential {
  return mlp(sizes, { init: 'xavier', rng: new Random(seed) });
}

/**
 * Which model a run trains, as every thread and process of it builds it: a --model spec of
 * @loom/worker's registry, or (as before the registry) an MLP's layer sizes.
 */
import { Random, type Module } from '@loom/tensor-core';
import { parseModelSpec, type ModelSpec } from '@loom/worker';

/** A run's model: `model`, a spec (`cnn`, `gpt:2,64,4,64,60`, …), else the MLP of `sizes`. */
export interface ModelChoice {
  /** MLP layer sizes (Xavier-uniform weights, zero biases): the same model as the spec `mlp:A,B,…`. */
  sizes?: number[];
  /** A --model spec of @loom/worker's registry; wins over `sizes`. */
  model?: string;
}

/** The spec string of a choice: `model`, or `mlp:` + sizes. */
export function specOf(o: ModelChoice, where: string): string {
  if (o.model !== undefined) return o.model;
  if (o.sizes === undefined || o.sizes.length < 2) throw new Error(`${where}: expected a model spec or at least two layer sizes, found neither`);
  return `mlp:${o.sizes.join(',')}`;
}

/**
 * The parsed spec and its model with the initial weights drawn from `seed` (as every process draws
 * them), or, when `adopting` (a thread about to adopt the shared parameters), its skeleton.
 */
export function buildChoice(spec: string, seed: number, o: { adopting?: boolean } = {}): { spec: ModelSpec; model: Module<any> } {
  const s = parseModelSpec(spec);
  return { spec: s, model: o.adopting === true && s.skeleton !== undefined ? s.skeleton() : s.build(new Random(seed)) };
}

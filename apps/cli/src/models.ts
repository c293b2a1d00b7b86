/**
 * The models `loom` trains, named by the --model flag: @loom/worker's registry (reference,
 * mlp:A,B,…, cnn, gpt:L,C,H,T), with its errors as usage errors. Every path builds its model here
 * or, in threads and server processes, from the same spec string.
 */
import { Random, type Module } from '@loom/tensor-core';
import { REFERENCE_SIZES, WorkerError, checkModelFits as registryFits, parseModelSpec, withVocab, type ModelSpec } from '@loom/worker';
import type { TrainingData } from './datasets.js';
import { UsageError } from './errors.js';

export { REFERENCE_SIZES };

function usage<T>(f: () => T): T {
  try {
    return f();
  } catch (e) {
    if (e instanceof WorkerError) throw new UsageError(e.message);
    throw e;
  }
}

/** The parsed --model spec; a UsageError naming the spec when it is not one. */
export function resolveModel(spec: string): ModelSpec {
  return usage(() => parseModelSpec(spec));
}

/** The layer sizes an MLP spec names (`reference` or `mlp:784,256,128,10`); a UsageError for any other model. */
export function modelSizes(spec: string): number[] {
  const m = resolveModel(spec);
  if (m.sizes === undefined) throw new UsageError(`--model ${spec}: this path trains MLPs only (reference or mlp:A,B,…)`);
  return m.sizes;
}

/**
 * The spec every process of a run is given: a GPT's with the data's vocabulary filled in
 * (gpt:2,64,4,64 → gpt:2,64,4,64,60), after checking the model fits the data, naming both sides when not.
 */
export function fitModel(spec: string, data: TrainingData): string {
  return usage(() => {
    const m = parseModelSpec(spec);
    registryFits(m, data.text
      ? { dataset: data.spec, kind: 'tokens', vocab: data.text.vocab.size }
      : { dataset: data.spec, kind: 'features', width: data.width, classes: data.numClasses });
    if (m.kind === 'gpt' && data.text && data.text.context !== m.gpt!.context) throw new WorkerError('--model', `${spec} has context ${m.gpt!.context}, but the windows of --dataset ${data.spec} are ${data.text.context} tokens`);
    return data.text ? withVocab(spec, data.text.vocab.size) : spec;
  });
}

/** Checks that an MLP's sizes fit a dataset's features and classes, naming both when not (kept for the MLP-only paths). */
export function checkModelFits(spec: string, _sizes: readonly number[], width: number, numClasses: number, dataset: string): void {
  usage(() => registryFits(parseModelSpec(spec), { dataset, kind: 'features', width, classes: numClasses }));
}

/** Builds the model of a spec (or of MLP layer sizes) with its initial weights drawn from `seed`. */
export function buildModel(spec: string | readonly number[], seed: number): Module<any> {
  const s = typeof spec === 'string' ? spec : `mlp:${spec.join(',')}`;
  return resolveModel(s).build(new Random(seed));
}

/**
 * What a parameter server needs to build a spec's model: an MLP's sizes as before (so its
 * checkpoints read as they always did), any other model as a builder from the seeded rng.
 */
export function serverModel(spec: string): { sizes: number[]; model?: (rng: Random) => Module<any> } {
  const m = resolveModel(spec);
  return m.sizes !== undefined ? { sizes: m.sizes } : { sizes: [], model: (rng) => m.build(rng) };
}

/**
 * Defaults that depend on the task, so they cannot sit in the flag table: one place for every
 * command that builds a training (train, launch, the argv of cluster children).
 */
import type { Mode } from '@loom/parameter-server';
import { parseModelSpec } from '@loom/worker';

/** The global batch of a dense (classification) step; `--task ctr` uses CTR_BATCH_SIZE. */
export const DENSE_BATCH_SIZE = 64;

/**
 * The global batch of a dense step when --batch-size is not given: the model's own where the
 * registry names one (cnn: 32), else DENSE_BATCH_SIZE. A spec that does not parse gets the
 * default here; it is reported where the model is built.
 */
export function denseBatchSize(model: string): number {
  try {
    return parseModelSpec(model).batchSize ?? DENSE_BATCH_SIZE;
  } catch {
    return DENSE_BATCH_SIZE;
  }
}
/** The global batch of a CTR step: PyTorch's reference uses 512. */
export const CTR_BATCH_SIZE = 512;
/** How a dense model's workers combine their gradients when --mode is not given. */
export const DENSE_MODE: Mode = 'sync';

/**
 * Defaults that depend on the task, so they cannot sit in the flag table: one place for every
 * command that builds a training (train, launch, the argv of cluster children).
 */
import type { Mode } from '@loom/parameter-server';

/** The global batch of a dense (classification) step; `--task ctr` uses CTR_BATCH_SIZE. */
export const DENSE_BATCH_SIZE = 64;
/** The global batch of a CTR step: PyTorch's reference uses 512. */
export const CTR_BATCH_SIZE = 512;
/** How a dense model's workers combine their gradients when --mode is not given. */
export const DENSE_MODE: Mode = 'sync';

/**
 * Single-thread training: @loom/worker's loop over an in-process transport whose push steps the
 * optimizer, on the schedule of a worker of rank 0 among 1 (the batches a BatchIterator with the
 * same seed gives), then validation after every epoch.
 */
import { GlobalBatchSchedule, inProcessTransport, runEpoch, type EpochMetrics, type Task, type WorkerBatch } from '@loom/worker';
import { flattenParameters, type FlatParameters, type Module } from '@loom/tensor-core';
import { allocateFlat } from '@loom/optimizer';
import type { Part } from './datasets.js';
import { evaluate } from './evaluate.js';
import { makeOptimizer, type OptimizerName } from './optimizers.js';
import type { Progress } from './progress.js';
import type { StepLog } from './step-log.js';

// Kept for callers that imported it from here; it lives in @loom/worker.
export type { EpochMetrics };

/** An epoch's metrics once validated: what `loom train` logs and writes to metrics.jsonl. */
export type ValidatedEpochMetrics = EpochMetrics & Required<Pick<EpochMetrics, 'validLoss' | 'validAccuracy'>>;

export interface TrainOptions {
  optimizer: OptimizerName;
  lr: number;
  batchSize: number;
  epochs: number;
  seed: number;
  width: number;
  numClasses: number;
  /** What a step computes (default: classification over `width` features). */
  task?: Task<WorkerBatch>;
  /** Validation after each epoch (default: loss and accuracy of a classifier on data.valid); extra fields go to metrics.jsonl. */
  validate?: (model: Module<any>) => { loss: number; accuracy: number; [k: string]: number };
  /** Where the loss between epochs goes (DIR/steps.jsonl), at its bounded rate. */
  stepLog?: StepLog;
}

/**
 * Trains `model` in place; calls `onEpoch` after each epoch's validation. `shouldStop` is asked
 * before every step: once true, the epoch under way ends there, is validated, and training ends.
 */
export async function train(
  model: Module<any>,
  data: { train: Part; valid: Part },
  o: TrainOptions,
  onEpoch: (m: ValidatedEpochMetrics) => void,
  progress?: Progress,
  shouldStop: () => boolean = () => false,
): Promise<FlatParameters> {
  // The flat parameters and gradients live in the optimizer's WebAssembly memory, so its SIMD
  // step runs in place instead of copying every array in and out (the state follows them there).
  const initial = flattenParameters(model);
  const inPlace = allocateFlat(initial.size);
  inPlace.params.set(initial.params);
  const flat = flattenParameters(model, inPlace);
  const transport = inProcessTransport(makeOptimizer(o.optimizer, model.parameters(), o.lr), { shouldStop });
  const schedule = new GlobalBatchSchedule({ features: data.train.features, labels: data.train.labels, width: o.width }, data.train.rows, o.batchSize, o.seed, 0, 1);
  const perEpoch = schedule.batchesPerEpoch;
  for (let epoch = 1; epoch <= o.epochs && !shouldStop(); epoch++) {
    const t0 = performance.now();
    const label = `epoch ${epoch}/${o.epochs}`;
    const r = await runEpoch({
      model, flat, transport, schedule, epoch: epoch - 1, firstStep: (epoch - 1) * perEpoch, ...(o.task ? { task: o.task } : {}),
      onStep: (progress || o.stepLog) && ((soFar) => {
        o.stepLog?.step(epoch, perEpoch, soFar);
        progress?.update(label, soFar.steps, perEpoch, `loss ${(soFar.lossSum / soFar.rows).toFixed(4)}`);
      }),
    });
    const { loss: vl, accuracy: va, ...extra } = o.validate ? o.validate(model) : evaluate(model, data.valid, o.width, o.numClasses);
    const v = { loss: vl, accuracy: va };
    progress?.clear();
    onEpoch({
      epoch,
      trainLoss: r.lossSum / Math.max(r.rows, 1),
      validLoss: v.loss,
      validAccuracy: v.accuracy,
      ...(o.validate ? extra : {}),
      samplesPerSec: r.rows / r.seconds,
      seconds: (performance.now() - t0) / 1000,
    });
    if (r.stopped) break;
  }
  return flat;
}

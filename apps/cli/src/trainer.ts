/**
 * Single-thread training: mini-batches over the training rows, forward, cross-entropy, backward and
 * an optimizer step over the flat parameters, then validation after every epoch.
 */
import { BatchIterator } from '@loom/data';
import { BufferPool, IntTensor, Tensor, crossEntropy, flattenParameters, reusingBuffers, type FlatParameters, type Sequential } from '@loom/tensor-core';
import type { Part } from './datasets.js';
import { evaluate } from './evaluate.js';
import { makeOptimizer, type OptimizerName } from './optimizers.js';
import { allocateFlat } from '@loom/optimizer';
import type { Progress } from './progress.js';
import type { WorkerMetrics } from '@loom/parameter-server';

export interface TrainOptions {
  optimizer: OptimizerName;
  lr: number;
  batchSize: number;
  epochs: number;
  seed: number;
  width: number;
  numClasses: number;
}

export interface EpochMetrics {
  epoch: number;
  trainLoss: number;
  validLoss: number;
  validAccuracy: number;
  samplesPerSec: number;
  seconds: number;
  /** With worker threads: each worker's throughput and, for async and ssp, observed staleness. */
  workers?: WorkerMetrics[];
}

/** Lets signal handlers (Ctrl-C) run: the training loop is otherwise synchronous. */
const yieldToEventLoop = () => new Promise<void>((r) => setImmediate(r));
const YIELD_EVERY_MS = 50;

/** Trains `model` in place; calls `onEpoch` after each epoch's validation. */
export async function train(
  model: Sequential,
  data: { train: Part; valid: Part },
  o: TrainOptions,
  onEpoch: (m: EpochMetrics) => void,
  progress?: Progress,
  shouldStop: () => boolean = () => false,
): Promise<FlatParameters> {
  // The flat parameters and gradients live in the optimizer's WebAssembly memory, so its SIMD
  // step runs in place instead of copying every array in and out (the state follows them there).
  const initial = flattenParameters(model);
  const inPlace = allocateFlat(initial.size);
  inPlace.params.set(initial.params);
  const flat = flattenParameters(model, inPlace);
  const opt = makeOptimizer(o.optimizer, model.parameters(), o.lr);
  const batches = new BatchIterator(
    { features: data.train.features, labels: data.train.labels, width: o.width },
    { batchSize: o.batchSize, rows: data.train.rows, shuffle: true, seed: o.seed },
  );
  const pool = new BufferPool(); // a step's buffers are reused by the next (see reusingBuffers)
  model.train();
  for (let epoch = 1; epoch <= o.epochs && !shouldStop(); epoch++) {
    const t0 = performance.now();
    let lossSum = 0;
    let seen = 0;
    let yieldedAt = t0;
    for (const batch of batches.epoch(epoch - 1)) {
      if (performance.now() - yieldedAt > YIELD_EVERY_MS) {
        await yieldToEventLoop();
        yieldedAt = performance.now();
      }
      opt.zeroGrad();
      const loss = reusingBuffers(pool, () => {
        const l = crossEntropy(model.forward(new Tensor(batch.x, [batch.size, o.width])), new IntTensor(batch.y));
        l.backward();
        return l.item();
      });
      opt.step();
      lossSum += loss * batch.size;
      seen += batch.size;
      progress?.update(`epoch ${epoch}/${o.epochs}`, batch.index + 1, batches.batchesPerEpoch, `loss ${(lossSum / seen).toFixed(4)}`);
      if (shouldStop()) break;
    }
    const trainSeconds = (performance.now() - t0) / 1000;
    const v = evaluate(model, data.valid, o.width, o.numClasses);
    progress?.clear();
    onEpoch({
      epoch,
      trainLoss: lossSum / Math.max(seen, 1),
      validLoss: v.loss,
      validAccuracy: v.accuracy,
      samplesPerSec: seen / trainSeconds,
      seconds: (performance.now() - t0) / 1000,
    });
  }
  return flat;
}

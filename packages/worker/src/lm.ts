/**
 * Language modelling: next-token cross-entropy over windows of T + 1 tokens (@loom/data's
 * tokenWindows), each a row of a GlobalBatchSchedule — the model reads tokens 0 … T−1 of a row and
 * is scored on predicting tokens 1 … T.
 */
import { BufferPool, IntTensor, Tensor, crossEntropy, noGrad, reshape, reusingBuffers, type Module } from '@loom/tensor-core';
import type { Task } from './task.js';
import type { WorkerBatch } from './schedule.js';

/**
 * The mean next-token cross-entropy of a batch of windows (rows of T + 1 ids), over its rows·T
 * predictions. The loop weights it by rows, so workers' parts average to the global batch's mean.
 *
 * @example
 * await runEpoch({ model: gpt, flat, transport, schedule, epoch: 0, firstStep: 0, task: lmTask(64) });
 */
export function lmTask(context: number): Task<WorkerBatch> {
  let inputs = new Float32Array(0);
  let targets = new Int32Array(0);
  return {
    loss: (model, b) => {
      const n = b.rows * context;
      if (inputs.length < n) {
        inputs = new Float32Array(n);
        targets = new Int32Array(n);
      }
      splitWindows(b.x, b.rows, context, inputs, targets);
      const logits = model.forward(new Tensor(inputs.subarray(0, n), [b.rows, context])); // (B, T, V)
      const v = logits.shape[2]!;
      return crossEntropy(reshape(logits, [n, v]), new IntTensor(targets.subarray(0, n)));
    },
  };
}

/** Rows of T + 1 ids → inputs (rows, T) and targets (rows·T): the row shifted by one. */
export function splitWindows(x: Float32Array, rows: number, context: number, inputs: Float32Array, targets: Int32Array): void {
  const w = context + 1;
  for (let r = 0; r < rows; r++) {
    for (let j = 0; j < context; j++) {
      inputs[r * context + j] = x[r * w + j]!;
      targets[r * context + j] = x[r * w + j + 1]!;
    }
  }
}

export interface LmEvaluation {
  /** Mean next-token cross-entropy in nats. */
  loss: number;
  /** exp(loss) */
  perplexity: number;
  /** The fraction of next tokens predicted exactly (argmax). */
  accuracy: number;
  /** Predictions scored (windows · T). */
  count: number;
}

/**
 * Evaluates a language model on windows `rows` of `features` (rows of T + 1 ids), in chunks,
 * without recording a graph.
 */
export function evaluateLm(model: Module<any>, features: Float32Array, rows: Int32Array, context: number, chunk = 64): LmEvaluation {
  const w = context + 1;
  const x = new Float32Array(chunk * w);
  const inputs = new Float32Array(chunk * context);
  const targets = new Int32Array(chunk * context);
  let lossSum = 0;
  let correct = 0;
  let count = 0;
  const wasTraining = model.training;
  const pool = new BufferPool(); // every chunk's activations in the same buffers
  model.eval();
  noGrad(() => {
    for (let start = 0; start < rows.length; start += chunk) {
      const size = Math.min(chunk, rows.length - start);
      for (let i = 0; i < size; i++) x.set(features.subarray(rows[start + i]! * w, (rows[start + i]! + 1) * w), i * w);
      splitWindows(x, size, context, inputs, targets);
      const n = size * context;
      reusingBuffers(pool, () => {
        const logits = model.forward(new Tensor(inputs.subarray(0, n), [size, context])) as Tensor;
        const v = logits.shape[2]!;
        lossSum += crossEntropy(reshape(logits, [n, v]), new IntTensor(targets.subarray(0, n)), 'sum').item();
        for (let i = 0; i < n; i++) {
          let best = 0;
          for (let j = 1; j < v; j++) if (logits.data[i * v + j]! > logits.data[i * v + best]!) best = j;
          if (best === targets[i]) correct++;
        }
      });
      count += n;
    }
  });
  model.train(wasTraining);
  const loss = count > 0 ? lossSum / count : NaN;
  return { loss, perplexity: Math.exp(loss), accuracy: count > 0 ? correct / count : NaN, count };
}

/**
 * The unigram baseline: the cross-entropy of predicting every token with the training tokens'
 * frequencies (add-one smoothed), on `tokens` — what a model must beat to have learnt anything
 * beyond character counts.
 */
export function unigramLoss(train: ArrayLike<number>, tokens: ArrayLike<number>, vocab: number): number {
  const counts = new Float64Array(vocab).fill(1);
  for (let i = 0; i < train.length; i++) counts[train[i]!]!++;
  const total = counts.reduce((a, b) => a + b, 0);
  let s = 0;
  for (let i = 0; i < tokens.length; i++) s -= Math.log(counts[tokens[i]!]! / total);
  return tokens.length > 0 ? s / tokens.length : NaN;
}

/** Loss, accuracy and the confusion matrix of a classifier over some rows, without recording a graph. */
import { BufferPool, IntTensor, Tensor, crossEntropy, noGrad, reusingBuffers, type Module } from '@loom/tensor-core';
import { evaluateLm } from '@loom/worker';
import type { Part } from './datasets.js';

export interface Evaluation {
  loss: number;
  accuracy: number;
  /** confusion[actual][predicted] counts. */
  confusion: number[][];
  count: number;
}

/**
 * Rows per forward pass. Every chunk's activations come from a buffer pool kept per model, so after
 * the first validation (a chunk's buffers, and the last chunk's) no evaluation touches new memory:
 * at 2048 rows without one, the cnn's im2col columns alone were 460 MB a chunk, fresh each time,
 * and validation page-faulted more than it computed. At 128 rows the cnn's pool holds ~50 MB.
 */
const CHUNK = 128;
const pools = new WeakMap<Module, BufferPool>();

/** Evaluates `model` on `part` in chunks of rows (so memory stays flat on large splits). */
export function evaluate(model: Module, part: Part, width: number, numClasses: number): Evaluation {
  const confusion = Array.from({ length: numClasses }, () => new Array<number>(numClasses).fill(0));
  const x = new Float32Array(CHUNK * width); // (CHUNK, width)
  const y = new Int32Array(CHUNK);
  let lossSum = 0;
  let correct = 0;
  const n = part.rows.length;
  const wasTraining = model.training;
  let pool = pools.get(model);
  if (pool === undefined) pools.set(model, (pool = new BufferPool()));
  model.eval();
  noGrad(() => {
    for (let start = 0; start < n; start += CHUNK) {
      const size = Math.min(CHUNK, n - start);
      for (let i = 0; i < size; i++) {
        const r = part.rows[start + i]!;
        x.set(part.features.subarray(r * width, (r + 1) * width), i * width);
        y[i] = part.labels[r]!;
      }
      const labels = new IntTensor(y.subarray(0, size));
      reusingBuffers(pool, () => {
        const logits = model.forward(new Tensor(x.subarray(0, size * width), [size, width]));
        lossSum += crossEntropy(logits, labels, 'sum').item();
        for (let i = 0; i < size; i++) {
          const pred = argmax(logits.data, i * numClasses, numClasses);
          confusion[y[i]!]![pred]!++;
          if (pred === y[i]) correct++;
        }
      });
    }
  });
  model.train(wasTraining);
  return { loss: n > 0 ? lossSum / n : NaN, accuracy: n > 0 ? correct / n : NaN, confusion, count: n };
}

/** The index of the largest of `n` values starting at `offset`. */
export function argmax(v: ArrayLike<number>, offset: number, n: number): number {
  let best = 0;
  for (let j = 1; j < n; j++) if (v[offset + j]! > v[offset + best]!) best = j;
  return best;
}

/** Per-class precision and recall from a confusion matrix (NaN where undefined). */
export function precisionRecall(confusion: number[][]): Array<{ precision: number; recall: number; support: number }> {
  return confusion.map((row, c) => {
    const tp = row[c]!;
    const support = row.reduce((s, v) => s + v, 0);
    const predicted = confusion.reduce((s, r) => s + r[c]!, 0);
    return { precision: predicted > 0 ? tp / predicted : NaN, recall: support > 0 ? tp / support : NaN, support };
  });
}

/**
 * What `loom train` records per epoch for any model: loss and accuracy for a classifier; for a
 * language model (text data) the next-token loss, its perplexity and next-token accuracy.
 */
export function evaluatePart(model: Module<any>, data: { width: number; numClasses: number; text?: { context: number } }, part: Part): { loss: number; accuracy: number; perplexity?: number } {
  if (data.text) {
    const e = evaluateLm(model, part.features, part.rows, data.text.context);
    return { loss: e.loss, accuracy: e.accuracy, perplexity: e.perplexity };
  }
  const e = evaluate(model, part, data.width, data.numClasses);
  return { loss: e.loss, accuracy: e.accuracy };
}

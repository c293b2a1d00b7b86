// The two baselines the reference model must beat, computed on the same examples as the model.

import { invalidArgument } from '../errors.js';

/** Fraction of positions where pred equals labels. */
export function accuracy(pred: ArrayLike<number>, labels: ArrayLike<number>): number {
  if (pred.length !== labels.length) throw invalidArgument('accuracy', 'pred', `${labels.length} predictions (one per label)`, pred.length);
  let hit = 0;
  for (let i = 0; i < labels.length; i++) if (pred[i] === labels[i]) hit++;
  return labels.length === 0 ? 0 : hit / labels.length;
}

/** values[rows[i]] for each i. */
export function gather(values: Int32Array, rows: ArrayLike<number>): Int32Array {
  const out = new Int32Array(rows.length);
  for (let i = 0; i < rows.length; i++) out[i] = values[rows[i]!]!;
  return out;
}

/**
 * Accuracy on evalLabels of always predicting the most frequent class of trainLabels (ties: the
 * lowest class).
 *
 * ```ts
 * majorityClassAccuracy(gather(data.labels, data.split.train), gather(data.labels, data.split.valid));
 * ```
 */
export function majorityClassAccuracy(trainLabels: ArrayLike<number>, evalLabels: ArrayLike<number>): number {
  const counts = new Map<number, number>();
  for (let i = 0; i < trainLabels.length; i++) counts.set(trainLabels[i]!, (counts.get(trainLabels[i]!) ?? 0) + 1);
  let best = -1;
  let bestCount = 0;
  for (const [c, n] of counts) if (n > bestCount || (n === bestCount && c < best)) [best, bestCount] = [c, n];
  let hit = 0;
  for (let i = 0; i < evalLabels.length; i++) if (evalLabels[i] === best) hit++;
  return evalLabels.length === 0 ? 0 : hit / evalLabels.length;
}

/**
 * Accuracy of predicting, for each example, the user's most-read category so far. `mostRead` is
 * computed from the user's history when the examples are built (NewsExamples.mostRead: most past
 * clicks, ties to the category read most recently), for the same rows as `labels`.
 */
export function mostReadCategoryAccuracy(mostRead: ArrayLike<number>, labels: ArrayLike<number>): number {
  return accuracy(mostRead, labels);
}

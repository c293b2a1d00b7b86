// How well click prediction can be done without a model, and the two measures it is judged by.
// A CTR model is worth training only where it beats both baselines on the later, held-out impressions.

import { invalidArgument } from '../errors.js';
import type { ClickLog } from './generate.js';
import { CLICK_CATEGORIES } from './model.js';

/**
 * Area under the ROC curve: the probability that a clicked impression scores above an unclicked
 * one, ties counting half (the Mann–Whitney U statistic over average ranks). 0.5 is chance.
 */
export function auc(scores: ArrayLike<number>, labels: ArrayLike<number>): number {
  const n = scores.length;
  if (labels.length !== n) throw invalidArgument('auc', 'labels', `${n} labels, one per score`, labels.length);
  const order = Int32Array.from({ length: n }, (_, i) => i).sort((a, b) => scores[a]! - scores[b]!);
  let positives = 0;
  let rankSum = 0;
  for (let i = 0; i < n; ) {
    let j = i;
    while (j < n && scores[order[j]!] === scores[order[i]!]) j++;
    const rank = (i + 1 + j) / 2; // average 1-based rank of the tie group [i, j)
    for (let k = i; k < j; k++) {
      if (labels[order[k]!]! > 0.5) {
        positives++;
        rankSum += rank;
      }
    }
    i = j;
  }
  const negatives = n - positives;
  if (positives === 0 || negatives === 0) return NaN;
  return (rankSum - (positives * (positives + 1)) / 2) / (positives * negatives);
}

/** Mean binary cross-entropy of probabilities p against 0/1 labels, p clamped to [1e-7, 1 − 1e-7]. */
export function logLoss(p: ArrayLike<number>, labels: ArrayLike<number>): number {
  const n = p.length;
  if (labels.length !== n) throw invalidArgument('logLoss', 'labels', `${n} labels, one per probability`, labels.length);
  let s = 0;
  for (let i = 0; i < n; i++) {
    const q = Math.min(1 - 1e-7, Math.max(1e-7, p[i]!));
    s -= labels[i]! > 0.5 ? Math.log(q) : Math.log(1 - q);
  }
  return s / Math.max(n, 1);
}

export interface ClickBaselines {
  /** Scores each held-out impression by its article's clicks in training (an unseen article by its popularity feature). */
  popularityAuc: number;
  /** Scores it by the share of the user's training clicks that fell in the article's category. */
  userCategoryAuc: number;
  /** Log loss of predicting the training click rate for every impression. */
  constantLogLoss: number;
}

/** The baselines on the held-out impressions [log.validStart, numImpressions), learned from the ones before. */
export function clickBaselines(log: ClickLog): ClickBaselines {
  const K = CLICK_CATEGORIES;
  const articleClicks = new Float64Array(log.numArticles);
  const userCat = new Float32Array(log.numUsers * K);
  const userClicks = new Float32Array(log.numUsers);
  let trainClicks = 0;
  const valid = log.numImpressions - log.validStart;
  const labels = new Float32Array(valid);
  const popularity = new Float64Array(valid);
  const category = new Float64Array(valid);
  for (const c of log.chunks()) {
    for (let i = 0; i < c.rows; i++) {
      const row = c.start + i;
      const u = c.user[i]!;
      const a = c.article[i]!;
      if (row < log.validStart) {
        if (c.label[i]! > 0.5) {
          articleClicks[a]!++;
          userCat[u * K + c.category[i]!]!++;
          userClicks[u]!++;
          trainClicks++;
        }
      } else {
        const v = row - log.validStart;
        labels[v] = c.label[i]!;
        // Clicks dominate; the popularity feature (in [0, 1]) orders articles never clicked in training.
        popularity[v] = articleClicks[a]! + log.articles.popularity[a]!;
        category[v] = userClicks[u]! > 0 ? userCat[u * K + c.category[i]!]! / userClicks[u]! : 0;
      }
    }
  }
  const rate = trainClicks / Math.max(log.validStart, 1);
  return {
    popularityAuc: auc(popularity, labels),
    userCategoryAuc: auc(category, labels),
    constantLogLoss: logLoss(new Float32Array(valid).fill(rate), labels),
  };
}

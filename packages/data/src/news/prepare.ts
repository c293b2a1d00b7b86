// The whole preprocessing of the showcase in one call: generate → split users → drop duplicate
// events → fill missing values (statistics from training users only) → features → standardise
// (fitted on training examples only). The CLI calls this; each step is also exported on its own.

import { categoricalColumn, numericColumn } from '../dataset.js';
import { type FillValues, type ZScoreTransform, applyFill, applyTransform, dropDuplicates, fitFill, fitZScore, parseTransform } from '../preprocess.js';
import { type Split, groupPart, splitByGroup } from '../split.js';
import { accuracy, gather, majorityClassAccuracy } from './baselines.js';
import { NewsCatalog } from './catalog.js';
import { NEWS_FEATURE_NAMES, NUM_NEWS_FEATURES, newsExamples } from './features.js';
import { type NewsOptions, generateNews } from './generate.js';
import { NEWS_CATEGORIES } from './model.js';

export interface PrepareNewsOptions extends NewsOptions {
  /** Fraction of users held out for validation. Default 0.1. */
  valid?: number;
  /** Fraction of users held out for test. Default 0.1. */
  test?: number;
  /** Past clicks a user needs before their next click becomes an example. Default 2. */
  minHistory?: number;
  /**
   * Use these fill values / this transform instead of fitting them: for workers that prepare only
   * their own `users` but must share the coordinator's statistics, or for new data at inference.
   */
  fill?: FillValues;
  transform?: ZScoreTransform;
}

/** The built-in news dataset, ready to train on. */
export interface NewsData {
  /** (length, 100) standardised with `transform`. */
  features: Float32Array;
  /** (length) category of the next click, 0..9. */
  labels: Int32Array;
  /** (length) */
  userIds: Int32Array;
  /** (length) the user's most-read category before the click: the baseline's prediction. */
  mostRead: Int32Array;
  length: number;
  width: number;
  numClasses: number;
  featureNames: readonly string[];
  categories: readonly string[];
  /** Example rows by held-out users: a user's examples are all in one part. */
  split: Split;
  /** z-score fitted on split.train only, already applied to `features`. Save it with the model. */
  transform: ZScoreTransform;
  /** Values that filled missing dwell/device, from training users' events. Save it with the model. */
  fill: FillValues;
  /** Histories and articles, for recommending. */
  catalog: NewsCatalog;
  stats: {
    seed: number;
    scale: number;
    users: number;
    articles: number;
    events: number;
    duplicatesDropped: number;
    missingDwell: number;
    missingDevice: number;
    /** Milliseconds spent generating the log, and cleaning + extracting + standardising. */
    generateMs: number;
    featuresMs: number;
  };
}

/**
 * Generates the news log and turns it into standardised examples, split by user.
 *
 * ```ts
 * const data = prepareNews({ seed: 42 });          // scale 1: ≈ 80k examples in ≈ 1 s
 * data.features;                                    // Float32Array (data.length, 100)
 * newsBaselines(data);                              // { majorityClass: 0.18, mostRead: 0.33 } (see README)
 * ```
 * Deterministic: the same options give bitwise the same arrays in every process.
 */
export function prepareNews(options: PrepareNewsOptions = {}): NewsData {
  const t0 = performance.now();
  const log = generateNews(options);
  const t1 = performance.now();
  const seed = log.seed;
  const fractions = { valid: options.valid ?? 0.1, test: options.test ?? 0.1, seed };

  // Exact duplicates are logging retries: drop them before anything counts clicks.
  const events = dropDuplicates(log.events);
  // Fill values come from the training users' events only, like every fitted statistic.
  const users = numericColumn(events, 'userId');
  const trainEvents: number[] = [];
  if (!options.fill) {
    for (let i = 0; i < events.length; i++) if (groupPart(users[i]!, seed, fractions.valid, fractions.test) === 0) trainEvents.push(i);
  }
  const fill = options.fill ?? fitFill(events, { dwellSeconds: 'median', device: { constant: 'unknown' } }, trainEvents);
  const clean = applyFill(events, fill);
  let missingDwell = 0;
  let missingDevice = 0;
  const dwell = numericColumn(events, 'dwellSeconds');
  const device = categoricalColumn(events, 'device');
  for (let i = 0; i < events.length; i++) {
    if (Number.isNaN(dwell[i])) missingDwell++;
    if (device[i] === '') missingDevice++;
  }

  const ex = newsExamples(clean, { minHistory: options.minHistory ?? 2 });
  const split = splitByGroup(ex.userIds, fractions);
  if (options.transform) parseTransform(options.transform);
  const transform = options.transform ?? fitZScore(ex.features, NUM_NEWS_FEATURES, split.train);
  applyTransform(transform, ex.features, NUM_NEWS_FEATURES);
  const t2 = performance.now();

  return {
    features: ex.features,
    labels: ex.labels,
    userIds: ex.userIds,
    mostRead: ex.mostRead,
    length: ex.length,
    width: NUM_NEWS_FEATURES,
    numClasses: NEWS_CATEGORIES.length,
    featureNames: NEWS_FEATURE_NAMES,
    categories: NEWS_CATEGORIES,
    split,
    transform,
    fill,
    catalog: new NewsCatalog(log.articles, clean),
    stats: {
      seed,
      scale: log.scale,
      users: log.users[1] - log.users[0],
      articles: log.articles.length,
      events: log.events.length,
      duplicatesDropped: log.events.length - events.length,
      missingDwell,
      missingDevice,
      generateMs: t1 - t0,
      featuresMs: t2 - t1,
    },
  };
}

/**
 * The two baselines on the given rows (default: validation), computed from the same examples as
 * the model: always the training set's majority class; and each user's most-read category so far.
 */
export function newsBaselines(data: NewsData, rows: Int32Array = data.split.valid): { majorityClass: number; mostRead: number } {
  const labels = gather(data.labels, rows);
  return {
    majorityClass: majorityClassAccuracy(gather(data.labels, data.split.train), labels),
    mostRead: accuracy(gather(data.mostRead, rows), labels),
  };
}

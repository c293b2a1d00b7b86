// What recommendation needs at inference time: each user's history (to compute their features
// now) and the articles by category (to turn predicted categories into articles they have not read).

import { type Dataset, categoricalColumn, numericColumn } from '../dataset.js';
import { DataError, invalidArgument } from '../errors.js';
import { NEWS_FEATURE_NAMES, NUM_NEWS_FEATURES, NewsHistory, deviceIndex, orderByUserTime } from './features.js';
import { DEVICES, NEWS_CATEGORIES, WINDOW_DAYS, WINDOW_START } from './model.js';

/** The moment a recommendation is asked for. */
export interface RequestContext {
  /** Unix seconds. Default: the end of the generated window. */
  timestamp?: number;
  /** 'mobile' | 'desktop' | 'tablet'. Default: the device of the user's last click. */
  device?: string;
}

/**
 * Users' histories and the articles, for recommending.
 *
 * ```ts
 * const { catalog, transform } = prepareNews({ seed: 42 });
 * const x = catalog.featuresFor(17);                 // (100) raw features of user 17, now
 * applyTransform(transform, x, 100);                 // as in training
 * const probs = model.predict(x);                    // (10)
 * catalog.pickUnread(17, topCategories(probs, 3), 5); // 5 article ids user 17 has not read
 * ```
 */
export class NewsCatalog {
  readonly categories: readonly string[] = NEWS_CATEGORIES;
  readonly featureNames: readonly string[] = NEWS_FEATURE_NAMES;
  /** Article ids of each category, most popular first. */
  readonly articlesByCategory: readonly Int32Array[];
  /** The end of the generated window: the default time of a request. */
  readonly now = WINDOW_START + WINDOW_DAYS * 86400;
  private readonly publishedAt: ArrayLike<number>;
  private readonly user: ArrayLike<number>;
  private readonly order: Int32Array | null;
  private readonly userStart = new Map<number, [number, number]>(); // user → [first, end) in sorted order

  /**
   * @param articles the articles table of a NewsLog
   * @param events a clean event log (no duplicates, no missing dwell), as prepareNews keeps it
   */
  constructor(
    readonly articles: Dataset,
    readonly events: Dataset,
  ) {
    const category = numericColumn(articles, 'category');
    const popularity = numericColumn(articles, 'popularity');
    this.publishedAt = numericColumn(articles, 'publishedAt');
    this.articlesByCategory = NEWS_CATEGORIES.map((_, c) => {
      const ids: number[] = [];
      for (let a = 0; a < articles.length; a++) if (category[a] === c) ids.push(a);
      return Int32Array.from(ids.sort((x, y) => popularity[y]! - popularity[x]! || x - y));
    });
    this.user = numericColumn(events, 'userId');
    this.order = orderByUserTime(events);
    for (let i = 0; i < events.length; ) {
      const u = this.user[this.row(i)]!;
      let j = i + 1;
      while (j < events.length && this.user[this.row(j)] === u) j++;
      this.userStart.set(u, [i, j]);
      i = j;
    }
  }

  private row(i: number): number {
    return this.order ? this.order[i]! : i;
  }

  /** Ids of the users with at least one click. */
  users(): number[] {
    return [...this.userStart.keys()];
  }

  /** The user's event rows (into `events`), oldest first; empty for an unknown user. */
  history(userId: number): Int32Array {
    const span = this.userStart.get(userId);
    if (!span) return new Int32Array(0);
    return Int32Array.from({ length: span[1] - span[0] }, (_, i) => this.row(span[0] + i));
  }

  /** Ids of the articles the user has read. */
  readBy(userId: number): Set<number> {
    const article = numericColumn(this.events, 'articleId');
    return new Set(Array.from(this.history(userId), (r) => article[r]!));
  }

  /**
   * The user's 100 raw features for a request now (or at `context.timestamp`, counting only clicks
   * before it). Apply the model's saved transform before predicting. Writes into `out` if given.
   */
  featuresFor(userId: number, context: RequestContext = {}, out = new Float32Array(NUM_NEWS_FEATURES)): Float32Array {
    const rows = this.history(userId);
    if (rows.length === 0) throw new DataError('NewsCatalog.featuresFor', `user ${userId}: expected a user with at least one click, found none`);
    const category = numericColumn(this.events, 'category');
    const time = numericColumn(this.events, 'timestamp');
    const dwell = numericColumn(this.events, 'dwellSeconds');
    const device = categoricalColumn(this.events, 'device');
    const at = context.timestamp ?? this.now;
    const h = new NewsHistory();
    let lastDevice = -1;
    for (const r of rows) {
      if (time[r]! >= at) break;
      h.add(category[r]!, time[r]!, dwell[r]!, deviceIndex(device[r]!));
      lastDevice = deviceIndex(device[r]!);
    }
    if (h.clicks === 0) throw new DataError('NewsCatalog.featuresFor', `user ${userId}: expected a click before timestamp ${at}, found none`);
    if (context.device !== undefined && deviceIndex(context.device) < 0) {
      throw invalidArgument('NewsCatalog.featuresFor', 'context.device', DEVICES.map((d) => `'${d}'`).join(' | '), context.device);
    }
    h.write(out, 0, at, context.device !== undefined ? deviceIndex(context.device) : lastDevice);
    return out;
  }

  /**
   * Up to k articles the user has not read, published by `now`: the most popular unread articles
   * of the first category, then of the second, and so on (pass categories ranked by the model).
   */
  pickUnread(userId: number, categories: readonly number[], k: number, now = this.now): number[] {
    if (!(Number.isInteger(k) && k >= 0)) throw invalidArgument('NewsCatalog.pickUnread', 'k', 'an integer ≥ 0', k);
    const read = this.readBy(userId);
    const picked: number[] = [];
    for (const c of categories) {
      const ids = this.articlesByCategory[c];
      if (!ids) throw invalidArgument('NewsCatalog.pickUnread', 'category', `an integer in [0, ${NEWS_CATEGORIES.length})`, c);
      for (let i = 0; i < ids.length && picked.length < k; i++) {
        const a = ids[i]!;
        if (!read.has(a) && this.publishedAt[a]! <= now) picked.push(a);
      }
      if (picked.length >= k) break;
    }
    return picked;
  }
}

/** Indices of the k largest scores, largest first (ties: lower index first). */
export function topCategories(scores: ArrayLike<number>, k = scores.length): number[] {
  return Array.from({ length: scores.length }, (_, i) => i)
    .sort((a, b) => scores[b]! - scores[a]! || a - b)
    .slice(0, k);
}

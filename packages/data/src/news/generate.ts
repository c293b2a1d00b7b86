// A seeded generator of a news site's reading log. Each user's clicks come from a stream seeded by
// (seed, userId), so a user's history is the same whether all users or only a range of them are
// generated (a worker can generate just its own users), and the same in every process.

import { type Dataset, createDataset } from '../dataset.js';
import { invalidArgument } from '../errors.js';
import { Random, hashSeed } from '../random.js';
import * as M from './model.js';

export interface NewsOptions {
  /** Default 42. */
  seed?: number;
  /** Multiplies the number of users (5000 at scale 1). Articles grow as √scale. Default 1. */
  scale?: number;
  /** Generate only users [start, end) of the full population (for one worker's share). Default all. */
  users?: readonly [number, number];
}

/** A generated reading log. */
export interface NewsLog {
  /**
   * One row per click, ordered by user then time. Columns:
   * userId Int32Array, articleId Int32Array, category Int32Array (index into NEWS_CATEGORIES),
   * timestamp Float64Array (Unix seconds), dwellSeconds Float64Array (NaN when missing),
   * device string[] ('mobile' | 'desktop' | 'tablet', '' when missing), hourOfDay Int32Array (UTC).
   * About 2% of rows are exact duplicates of the row before (a logging retry).
   */
  events: Dataset;
  /**
   * One row per article: articleId Int32Array (= row), category Int32Array,
   * popularity Float64Array (Zipf weight, sums to 1 within a category), publishedAt Float64Array.
   */
  articles: Dataset;
  /** Users in the whole population (ids 0..numUsers-1), whether or not all were generated. */
  numUsers: number;
  /** The users generated: [start, end). */
  users: [number, number];
  seed: number;
  scale: number;
}

/** The articles, with per-category indices for sampling a click by popularity among those published. */
interface ArticleTable {
  category: Int32Array;
  popularity: Float64Array;
  publishedAt: Float64Array;
  /** Per category: article ids by publish time, their publish times, cumulative popularity. */
  byCategory: { ids: Int32Array; published: Float64Array; cum: Float64Array }[];
}

function makeArticles(seed: number, scale: number): ArticleTable {
  const rng = new Random(hashSeed(seed, 1));
  const n = Math.max(M.NEWS_CATEGORIES.length * 10, Math.round(M.ARTICLES_PER_SCALE * Math.sqrt(scale)));
  const k = M.NEWS_CATEGORIES.length;
  // Editors publish more of what is read, but less skewed than demand.
  const supply = M.CATEGORY_DEMAND.map((d) => 0.5 * d + 0.5 / k);
  const category = new Int32Array(n);
  const publishedAt = new Float64Array(n);
  const popularity = new Float64Array(n);
  const windowSeconds = M.WINDOW_DAYS * 86400;
  for (let a = 0; a < n; a++) {
    category[a] = a < k * 10 ? a % k : rng.categorical(supply); // every category has ≥ 10 articles
    publishedAt[a] = Math.round(M.WINDOW_START - 7 * 86400 + rng.next() * (windowSeconds + 7 * 86400));
  }
  const byCategory = [];
  for (let c = 0; c < k; c++) {
    const ids: number[] = [];
    for (let a = 0; a < n; a++) if (category[a] === c) ids.push(a);
    // Zipf popularity by a random rank, independent of publish time.
    const ranks = Int32Array.from(ids.keys());
    for (let i = ranks.length - 1; i > 0; i--) {
      const j = rng.int(i + 1);
      [ranks[i], ranks[j]] = [ranks[j]!, ranks[i]!];
    }
    let total = 0;
    ids.forEach((a, i) => (total += popularity[a] = 1 / Math.pow(ranks[i]! + 1, M.ZIPF_EXPONENT)));
    for (const a of ids) popularity[a]! /= total;
    ids.sort((x, y) => publishedAt[x]! - publishedAt[y]! || x - y);
    const published = Float64Array.from(ids, (a) => publishedAt[a]!);
    const cum = new Float64Array(ids.length);
    let s = 0;
    ids.forEach((a, i) => (cum[i] = s += popularity[a]!));
    byCategory.push({ ids: Int32Array.from(ids), published, cum });
  }
  return { category, popularity, publishedAt, byCategory };
}

/** Picks an article of category c published by time t, by popularity. */
function pickArticle(t: ArticleTable, c: number, time: number, rng: Random): number {
  const { ids, published, cum } = t.byCategory[c]!;
  let lo = 0;
  let hi = published.length; // count published ≤ time
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (published[mid]! <= time) lo = mid + 1;
    else hi = mid;
  }
  const p = Math.max(lo, 1);
  const u = rng.next() * cum[p - 1]!;
  lo = 0;
  hi = p - 1;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (cum[mid]! > u) hi = mid;
    else lo = mid + 1;
  }
  return ids[lo]!;
}

/** Growable columns of the event log. */
class EventColumns {
  size = 0;
  userId: Int32Array;
  articleId: Int32Array;
  category: Int32Array;
  timestamp: Float64Array;
  dwell: Float64Array;
  hour: Int32Array;
  device: string[] = [];

  constructor(capacity: number) {
    this.userId = new Int32Array(capacity);
    this.articleId = new Int32Array(capacity);
    this.category = new Int32Array(capacity);
    this.timestamp = new Float64Array(capacity);
    this.dwell = new Float64Array(capacity);
    this.hour = new Int32Array(capacity);
  }

  push(u: number, a: number, c: number, t: number, dwell: number, device: string): void {
    if (this.size === this.userId.length) this.grow();
    const i = this.size++;
    this.userId[i] = u;
    this.articleId[i] = a;
    this.category[i] = c;
    this.timestamp[i] = t;
    this.dwell[i] = dwell;
    this.hour[i] = Math.floor((t % 86400) / 3600);
    this.device.push(device);
  }

  private grow(): void {
    const n = this.userId.length * 2;
    const g = <T extends Int32Array | Float64Array>(a: T): T => {
      const b = new (a.constructor as new (n: number) => T)(n);
      b.set(a);
      return b;
    };
    this.userId = g(this.userId);
    this.articleId = g(this.articleId);
    this.category = g(this.category);
    this.timestamp = g(this.timestamp);
    this.dwell = g(this.dwell);
    this.hour = g(this.hour);
  }

  toDataset(): Dataset {
    const n = this.size;
    return createDataset(
      {
        userId: this.userId.slice(0, n),
        articleId: this.articleId.slice(0, n),
        category: this.category.slice(0, n),
        timestamp: this.timestamp.slice(0, n),
        dwellSeconds: this.dwell.slice(0, n),
        device: this.device,
        hourOfDay: this.hour.slice(0, n),
      },
      'news events',
    );
  }
}

function hourEffect(hour: number): readonly number[] {
  for (const [from, to, m] of M.HOUR_EFFECT) if (hour >= from && hour < to) return m;
  return M.HOUR_EFFECT[0]![2];
}

/**
 * Generates the built-in news dataset: a reading log of `5000·scale` users over 28 days. See
 * README.md for the assumptions; they are the constants of model.ts.
 *
 * ```ts
 * const { events, articles } = generateNews({ seed: 42 });
 * events.length;   // ≈ 90 000 clicks at scale 1
 * ```
 * Deterministic: the same options give bitwise the same columns in every process.
 */
export function generateNews(options: NewsOptions = {}): NewsLog {
  const seed = options.seed ?? 42;
  const scale = options.scale ?? 1;
  if (!Number.isInteger(seed)) throw invalidArgument('generateNews', 'seed', 'an integer', seed);
  if (!(scale > 0 && Number.isFinite(scale))) throw invalidArgument('generateNews', 'scale', 'a number > 0', scale);
  const numUsers = Math.max(1, Math.round(M.USERS_PER_SCALE * scale));
  const [start, end] = options.users ?? [0, numUsers];
  if (!(Number.isInteger(start) && Number.isInteger(end) && 0 <= start && start <= end && end <= numUsers)) {
    throw invalidArgument('generateNews', 'users', `[start, end) with 0 ≤ start ≤ end ≤ ${numUsers}`, `[${start}, ${end})`);
  }
  const articles = makeArticles(seed, scale);
  const log = new EventColumns(Math.max(1024, (end - start) * 20));
  const k = M.NEWS_CATEGORIES.length;
  const rng = new Random(0);
  const alpha = M.CATEGORY_DEMAND.map((d) => d * M.TASTE_CONCENTRATION);
  const tasteA = new Float64Array(k);
  const tasteB = new Float64Array(k);
  const taste = new Float64Array(k);
  const weights = new Float64Array(k);
  const follow = M.RELATED.map((related, c) => {
    const w = M.CATEGORY_DEMAND.map((d) => d * M.GO_ANYWHERE);
    w[c]! += M.STAY;
    related.forEach((r, i) => (w[r]! += (M.GO_RELATED * M.RELATED_SPLIT[related.length - 1]![i]!)));
    return w;
  });
  const windowSeconds = M.WINDOW_DAYS * 86400;
  const read = new Set<number>();
  const starts = new Float64Array(M.MAX_SESSIONS);

  for (let u = start; u < end; u++) {
    rng.reseed(hashSeed(seed, 2, u));
    rng.dirichlet(alpha, tasteA);
    rng.dirichlet(alpha, tasteB);
    // Drifting users switch from taste A to taste B around `shift`; the others keep A.
    const shift = rng.next() < M.DRIFTING_USERS ? M.WINDOW_START + rng.next() * windowSeconds : Infinity;
    const peak = M.PEAK_HOURS[rng.categorical(M.PEAK_SHARE)]!;
    const mainDevice = rng.categorical(M.DEVICE_SHARE);
    const sessions = Math.min(M.MAX_SESSIONS, 1 + rng.poisson(rng.gamma(M.ACTIVITY_SHAPE) * M.ACTIVITY_SCALE));
    for (let s = 0; s < sessions; s++) {
      const day = rng.int(M.WINDOW_DAYS);
      const hour = (((peak + M.PEAK_SPREAD_HOURS * rng.normal()) % 24) + 24) % 24;
      starts[s] = M.WINDOW_START + day * 86400 + Math.round(hour * 3600);
    }
    const order = starts.subarray(0, sessions).sort();
    read.clear();
    let t = -Infinity;
    for (let s = 0; s < sessions; s++) {
      t = Math.max(order[s]!, t + M.SESSION_GAP_SECONDS + 60); // sessions do not overlap
      const device = rng.next() < M.OTHER_DEVICE ? rng.categorical(M.DEVICE_SHARE) : mainDevice;
      let prev = -1;
      do {
        const f = shift === Infinity ? 0 : 1 / (1 + Math.exp(-(t - shift) / M.DRIFT_SECONDS));
        for (let c = 0; c < k; c++) taste[c] = (1 - f) * tasteA[c]! + f * tasteB[c]!;
        let c: number;
        if (prev >= 0 && rng.next() < M.FOLLOW_PREVIOUS) {
          c = rng.categorical(follow[prev]!);
        } else {
          const hm = hourEffect(Math.floor((t % 86400) / 3600));
          const dm = M.DEVICE_EFFECT[device]!;
          for (let j = 0; j < k; j++) weights[j] = taste[j]! * hm[j]! * dm[j]!;
          c = rng.categorical(weights);
        }
        let a = pickArticle(articles, c, t, rng);
        for (let tries = 0; tries < 4 && read.has(a); tries++) a = pickArticle(articles, c, t, rng);
        read.add(a);
        const median = M.DWELL_MEDIAN_SECONDS * (0.5 + 6 * taste[c]!) * M.DWELL_DEVICE_FACTOR[device]!;
        const dwell = Math.min(1800, Math.max(1, Math.round(median * Math.exp(M.DWELL_SIGMA * rng.normal()))));
        const loggedDwell = rng.next() < M.MISSING_DWELL ? NaN : dwell;
        const loggedDevice = rng.next() < M.MISSING_DEVICE ? '' : M.DEVICES[device]!;
        log.push(u, a, c, t, loggedDwell, loggedDevice);
        if (rng.next() < M.DUPLICATED_EVENT) log.push(u, a, c, t, loggedDwell, loggedDevice);
        t += dwell + 3 + Math.round(-15 * Math.log(1 - rng.next()));
        prev = c;
      } while (rng.next() < M.CONTINUE_SESSION);
    }
  }
  const n = articles.category.length;
  return {
    events: log.toDataset(),
    articles: createDataset(
      {
        articleId: Int32Array.from({ length: n }, (_, i) => i),
        category: articles.category,
        popularity: articles.popularity,
        publishedAt: articles.publishedAt,
      },
      'news articles',
    ),
    numUsers,
    users: [start, end],
    seed,
    scale,
  };
}

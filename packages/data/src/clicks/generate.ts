// A seeded generator of a news site's impression log, at recommender scale: which article was
// shown to which user when, whether it was clicked, and the user's recent clicks at that moment.
// Impressions come out in time order, a chunk at a time into buffers the caller reuses, so a log of
// ten million impressions never has to be in memory at once. The same seed gives the same log in
// every process, whatever the chunk size.

import { invalidArgument } from '../errors.js';
import { Random, hashSeed } from '../random.js';
import * as M from './model.js';

export interface ClickLogOptions {
  /** Default 42. */
  seed?: number;
  /** Multiplies users (10,000), articles (2,000) and impressions (100,000). Scale 100: 1M × 200k × 10M. Default 1. */
  scale?: number;
  /** Zipf exponent of article popularity. Default 1.1. */
  alpha?: number;
}

/** A run of consecutive impressions. Every array is a view of buffers reused by the next chunk. */
export interface ClickChunk {
  /** Index in the log of the chunk's first impression. */
  start: number;
  rows: number;
  /** (rows) user id, 0 … numUsers−1 */
  user: Int32Array;
  /** (rows) article id, 0 … numArticles−1, in publish order: a larger id is a newer article. */
  article: Int32Array;
  /** (rows) the article's category, 0 … 17, and subcategory, 0 … 269. */
  category: Int32Array;
  subcategory: Int32Array;
  /** (rows, HISTORY_LENGTH) the user's last clicked articles before this impression, oldest first. */
  history: Int32Array;
  /** (rows, 4) hourSin, hourCos, articleAge, popularity (see CLICK_DENSE_FEATURES), each in [−1, 1]. */
  dense: Float32Array;
  /** (rows) 1 when clicked, else 0. */
  label: Float32Array;
  /** (rows) seconds since the window started. */
  time: Float32Array;
}

/** The articles, indexed by id. */
export interface ClickArticles {
  category: Int32Array;
  subcategory: Int32Array;
  /** Seconds since the window started; negative for the stock published before it. */
  publishedAt: Float64Array;
  /** The popularity feature in [0, 1]: 1 + log(base weight) / (α·log(numArticles)). */
  popularity: Float32Array;
}

const DAY = 86400;
/** Articles become showable at the first half-day boundary after they are published. */
const BUCKET_SECONDS = DAY / 2;
const K = M.CLICK_CATEGORIES;
const H = M.HISTORY_LENGTH;
const DENSE = M.CLICK_DENSE_FEATURES.length;

/** The first index i with cum[lo + i] > u among cum[lo, hi): a draw from cumulative weights. */
function search(cum: Float64Array, lo: number, hi: number, u: number): number {
  let a = lo;
  let b = hi - 1;
  while (a < b) {
    const m = (a + b) >> 1;
    if (cum[m]! > u) b = m;
    else a = m + 1;
  }
  return a;
}

/**
 * The articles showable in each half-day, grouped by category with cumulative shown-weights, so that
 * drawing an article of a category is one binary search. Bucket b's category c occupies
 * ids/cum[offset[b·(K+1) + c], offset[b·(K+1) + c + 1]).
 */
interface ShowTable {
  ids: Int32Array;
  cum: Float64Array;
  offset: Int32Array;
  /** (buckets, K) cumulative over categories of each category's total weight in the bucket. */
  catCum: Float64Array;
}

function sigmoid(x: number): number {
  return 1 / (1 + Math.exp(-x));
}

/** A generated log: the tables (users' tastes, articles) and a way to stream its impressions. */
export class ClickLog {
  readonly seed: number;
  readonly scale: number;
  readonly alpha: number;
  readonly numUsers: number;
  readonly numArticles: number;
  readonly numImpressions: number;
  readonly historyLength = H;
  readonly denseWidth = DENSE;
  /** Impressions [validStart, numImpressions) are the last VALID_DAYS days: the held-out later ones. */
  readonly validStart: number;
  readonly articles: ClickArticles;
  /** Seconds in the window: impressions have times in [0, windowSeconds). */
  readonly windowSeconds = M.CLICK_WINDOW_DAYS * DAY;
  /** The intercept of the click model that makes the mean click rate TARGET_CTR. */
  readonly intercept: number;

  private readonly base: Float64Array;
  private readonly userCum: Float64Array;
  /** (users, K) cumulative taste over categories; the last of each row is 1. */
  private readonly tasteCum: Float32Array;
  /** (users, FAVOURITE_SUBCATEGORIES) */
  private readonly favourites: Int32Array;
  private readonly userBias: Float32Array;
  private readonly show: ShowTable;

  constructor(o: ClickLogOptions = {}) {
    const seed = o.seed ?? 42;
    const scale = o.scale ?? 1;
    const alpha = o.alpha ?? M.POPULARITY_ALPHA;
    if (!Number.isInteger(seed)) throw invalidArgument('generateClickLog', 'seed', 'an integer', seed);
    if (!(scale > 0 && Number.isFinite(scale))) throw invalidArgument('generateClickLog', 'scale', 'a positive number', scale);
    if (!(alpha > 0 && alpha < 4)) throw invalidArgument('generateClickLog', 'alpha', 'a number in (0, 4)', alpha);
    this.seed = seed;
    this.scale = scale;
    this.alpha = alpha;
    this.numUsers = Math.max(10, Math.round(M.USERS_PER_SCALE * scale));
    this.numArticles = Math.max(4 * K, Math.round(M.ARTICLES_PER_SCALE * scale));
    this.numImpressions = Math.max(100, Math.round(M.IMPRESSIONS_PER_SCALE * scale));
    this.validStart = Math.ceil((this.numImpressions * (M.CLICK_WINDOW_DAYS - M.VALID_DAYS)) / M.CLICK_WINDOW_DAYS);

    const { articles, base } = this.makeArticles();
    this.articles = articles;
    this.base = base;
    this.show = this.makeShowTable();
    const users = this.makeUsers();
    this.userCum = users.cum;
    this.tasteCum = users.tasteCum;
    this.favourites = users.favourites;
    this.userBias = users.bias;
    this.intercept = this.calibrate();
  }

  private makeArticles(): { articles: ClickArticles; base: Float64Array } {
    const n = this.numArticles;
    const rng = new Random(hashSeed(this.seed, 1));
    // Publish times, sorted so that ids are in publish order (new ids keep arriving).
    const publishedAt = new Float64Array(n);
    const stock = Math.max(K, Math.round(n * M.STOCK_SHARE));
    for (let a = 0; a < n; a++) publishedAt[a] = a < stock ? -7 * DAY * rng.next() : this.windowSeconds * rng.next();
    publishedAt.sort();
    // Categories are skewed (a few lead, as politics and sports do); every category has stock.
    const catWeight = Float64Array.from({ length: K }, (_, c) => 1 / Math.pow(c + 1, 0.7));
    const subWeight = Float64Array.from({ length: M.SUBCATEGORIES_PER_CATEGORY }, (_, s) => 1 / (s + 1));
    const category = new Int32Array(n);
    const subcategory = new Int32Array(n);
    for (let a = 0; a < n; a++) {
      const c = a < K ? a : rng.categorical(catWeight);
      category[a] = c;
      subcategory[a] = c * M.SUBCATEGORIES_PER_CATEGORY + rng.categorical(subWeight);
    }
    // Zipf popularity by a random rank, independent of publish time and category.
    const rank = Int32Array.from({ length: n }, (_, i) => i);
    for (let i = n - 1; i > 0; i--) {
      const j = rng.int(i + 1);
      const t = rank[i]!;
      rank[i] = rank[j]!;
      rank[j] = t;
    }
    const base = new Float64Array(n);
    const popularity = new Float32Array(n);
    const logN = this.alpha * Math.log(n);
    for (let a = 0; a < n; a++) {
      base[a] = Math.pow(rank[a]! + 1, -this.alpha);
      popularity[a] = 1 + Math.log(base[a]!) / logN;
    }
    return { articles: { category, subcategory, publishedAt, popularity }, base };
  }

  private makeShowTable(): ShowTable {
    const { category, publishedAt } = this.articles;
    const buckets = Math.ceil(this.windowSeconds / BUCKET_SECONDS);
    // Articles sorted by category, then id: each bucket takes, per category, the prefix published by its start.
    const byCat: number[][] = Array.from({ length: K }, () => []);
    for (let a = 0; a < this.numArticles; a++) byCat[category[a]!]!.push(a);
    const counts = new Int32Array(buckets * K);
    let total = 0;
    for (let b = 0; b < buckets; b++) {
      const start = b * BUCKET_SECONDS;
      for (let c = 0; c < K; c++) {
        const list = byCat[c]!;
        let m = 0;
        while (m < list.length && publishedAt[list[m]!]! <= start) m++;
        counts[b * K + c] = m;
        total += m;
      }
    }
    const ids = new Int32Array(total);
    const cum = new Float64Array(total);
    const offset = new Int32Array(buckets * (K + 1));
    const catCum = new Float64Array(buckets * K);
    let at = 0;
    for (let b = 0; b < buckets; b++) {
      const mid = (b + 0.5) * BUCKET_SECONDS;
      let catTotal = 0;
      for (let c = 0; c < K; c++) {
        offset[b * (K + 1) + c] = at;
        const list = byCat[c]!;
        let s = 0;
        for (let i = 0; i < counts[b * K + c]!; i++) {
          const a = list[i]!;
          const ageDays = (mid - publishedAt[a]!) / DAY;
          s += this.base[a]! * (M.FRESHNESS_FLOOR + (1 - M.FRESHNESS_FLOOR) * Math.pow(2, -ageDays / M.FRESHNESS_HALF_LIFE_DAYS));
          ids[at] = a;
          cum[at++] = s;
        }
        catCum[b * K + c] = catTotal += s;
      }
      offset[b * (K + 1) + K] = at;
    }
    return { ids, cum, offset, catCum };
  }

  private makeUsers() {
    const u = this.numUsers;
    const f = M.FAVOURITE_SUBCATEGORIES;
    const cum = new Float64Array(u);
    const tasteCum = new Float32Array(u * K);
    const favourites = new Int32Array(u * f);
    const bias = new Float32Array(u);
    const alpha = new Float64Array(K).fill(M.TASTE_CONCENTRATION);
    const taste = new Float64Array(K);
    const rng = new Random(hashSeed(this.seed, 2));
    let s = 0;
    for (let i = 0; i < u; i++) {
      cum[i] = s += Math.exp(M.USER_ACTIVITY_SIGMA * rng.normal());
      rng.dirichlet(alpha, taste);
      let t = 0;
      for (let c = 0; c < K; c++) tasteCum[i * K + c] = t += taste[c]!;
      tasteCum[i * K + K - 1] = 1;
      for (let j = 0; j < f; j++) favourites[i * f + j] = rng.categorical(taste) * M.SUBCATEGORIES_PER_CATEGORY + rng.int(M.SUBCATEGORIES_PER_CATEGORY);
      bias[i] = M.USER_BIAS_SIGMA * rng.normal();
    }
    return { cum, tasteCum, favourites, bias };
  }

  /** A category drawn from user u's taste. */
  private tasteCategory(u: number, r: number): number {
    const row = u * K;
    let c = 0;
    while (c < K - 1 && this.tasteCum[row + c]! <= r) c++;
    return c;
  }

  /** A category drawn by the total shown-weight of its articles in bucket b. */
  private trendingCategory(b: number, r: number): number {
    const catCum = this.show.catCum;
    return search(catCum, b * K, b * K + K, r * catCum[b * K + K - 1]!) - b * K;
  }

  /** An article of category c showable in bucket b, by shown-weight; −1 when the category has none yet. */
  private pickArticle(b: number, c: number, r: number): number {
    const o = this.show.offset;
    const lo = o[b * (K + 1) + c]!;
    const hi = o[b * (K + 1) + c + 1]!;
    if (hi === lo) return -1;
    const cum = this.show.cum;
    return this.show.ids[search(cum, lo, hi, r * cum[hi - 1]!)]!;
  }

  /**
   * Draws one impression at time t into `out` (user, article) and returns the click model's logit
   * without its intercept; `dense` gets the features at `d`.
   */
  private impression(rng: Random, t: number, out: Int32Array, dense: Float32Array, d: number): number {
    const b = Math.min(Math.floor(t / BUCKET_SECONDS), this.show.catCum.length / K - 1);
    const u = search(this.userCum, 0, this.numUsers, rng.next() * this.userCum[this.numUsers - 1]!);
    let c = rng.next() < M.PERSONALISED_SHARE ? this.tasteCategory(u, rng.next()) : this.trendingCategory(b, rng.next());
    let a = this.pickArticle(b, c, rng.next());
    if (a < 0) a = this.pickArticle(b, (c = this.trendingCategory(b, rng.next())), rng.next());
    out[0] = u;
    out[1] = a;
    this.denseFeatures(a, t, dense, d);
    const hour = (t % DAY) / 3600;
    const ageDays = (t - this.articles.publishedAt[a]!) / DAY;
    const popularity = this.articles.popularity[a]!;
    const taste = this.tasteCum[u * K + c]! - (c > 0 ? this.tasteCum[u * K + c - 1]! : 0);
    const sub = this.articles.subcategory[a]!;
    let favourite = 0;
    for (let j = 0; j < M.FAVOURITE_SUBCATEGORIES; j++) if (this.favourites[u * M.FAVOURITE_SUBCATEGORIES + j] === sub) favourite = 1;
    const w = M.CLICK_WEIGHTS;
    return (
      w.taste * Math.max(M.TASTE_FLOOR, Math.log(K * taste)) +
      w.favourite * favourite +
      w.popularity * popularity +
      w.age * Math.min(3, ageDays) +
      w.evening * Math.cos((2 * Math.PI * (hour - 20)) / 24) +
      this.userBias[u]!
    );
  }

  /**
   * The dense features of showing article `a` at time `t` (seconds since the window started) into
   * `out` at `at`: hourSin, hourCos, articleAge, popularity (CLICK_DENSE_FEATURES). What an
   * impression carries, and what a recommender computes for a candidate it scores.
   */
  denseFeatures(a: number, t: number, out: Float32Array, at = 0): void {
    const hour = (t % DAY) / 3600;
    const ageDays = (t - this.articles.publishedAt[a]!) / DAY;
    out[at] = Math.sin((2 * Math.PI * hour) / 24);
    out[at + 1] = Math.cos((2 * Math.PI * hour) / 24);
    out[at + 2] = Math.min(1, Math.log1p(Math.max(0, ageDays) * 24) / Math.log1p(72));
    out[at + 3] = this.articles.popularity[a]!;
  }

  /** The intercept that makes the mean click probability over 20,000 sampled impressions TARGET_CTR (bisection). */
  private calibrate(): number {
    const rng = new Random(hashSeed(this.seed, 9));
    const n = 20_000;
    const logits = new Float64Array(n);
    const pair = new Int32Array(2);
    const dense = new Float32Array(DENSE);
    for (let i = 0; i < n; i++) logits[i] = this.impression(rng, rng.next() * this.windowSeconds, pair, dense, 0);
    let lo = -20;
    let hi = 10;
    for (let it = 0; it < 60; it++) {
      const mid = (lo + hi) / 2;
      let s = 0;
      for (let i = 0; i < n; i++) s += sigmoid(mid + logits[i]!);
      if (s / n > M.TARGET_CTR) hi = mid;
      else lo = mid;
    }
    return (lo + hi) / 2;
  }

  /**
   * The impressions [start, end) in time order, `rows` at a time. Each chunk's arrays are views of
   * buffers that the next chunk overwrites: copy what you keep. Impressions before `start` are
   * still simulated (users' histories depend on them), but not written.
   */
  *chunks(rows = 65536, range: readonly [number, number] = [0, this.numImpressions]): Generator<ClickChunk> {
    const [start, end] = range;
    if (!(Number.isInteger(rows) && rows > 0)) throw invalidArgument('ClickLog.chunks', 'rows', 'a positive integer', rows);
    if (!(Number.isInteger(start) && Number.isInteger(end) && 0 <= start && start <= end && end <= this.numImpressions)) {
      throw invalidArgument('ClickLog.chunks', 'range', `integers 0 ≤ start ≤ end ≤ ${this.numImpressions}`, `[${start}, ${end}]`);
    }
    const cap = Math.min(rows, Math.max(end - start, 1));
    const buf = {
      user: new Int32Array(cap),
      article: new Int32Array(cap),
      category: new Int32Array(cap),
      subcategory: new Int32Array(cap),
      history: new Int32Array(cap * H),
      dense: new Float32Array(cap * DENSE),
      label: new Float32Array(cap),
      time: new Float32Array(cap),
    };
    const chunk: ClickChunk = { start, rows: 0, ...buf };
    // Each user's last H clicks as a ring (head = the oldest), first filled from the stock as if
    // clicked before the window started.
    const ring = new Int32Array(this.numUsers * H);
    const head = new Uint8Array(this.numUsers);
    const rng = new Random(hashSeed(this.seed, 3));
    for (let u = 0; u < this.numUsers; u++) {
      for (let j = 0; j < H; j++) {
        const c = this.tasteCategory(u, rng.next());
        let a = this.pickArticle(0, c, rng.next());
        if (a < 0) a = this.pickArticle(0, this.articles.category[0]!, rng.next());
        ring[u * H + j] = a;
      }
    }
    const pair = new Int32Array(2);
    const scratch = new Float32Array(DENSE);
    const step = this.windowSeconds / this.numImpressions;
    let k = 0;
    for (let i = 0; i < end; i++) {
      const t = (i + rng.next()) * step;
      const writing = i >= start;
      const logit = this.impression(rng, t, pair, writing ? buf.dense : scratch, writing ? k * DENSE : 0);
      const clicked = rng.next() < sigmoid(this.intercept + logit);
      const u = pair[0]!;
      const a = pair[1]!;
      if (writing) {
        buf.user[k] = u;
        buf.article[k] = a;
        buf.category[k] = this.articles.category[a]!;
        buf.subcategory[k] = this.articles.subcategory[a]!;
        const h0 = head[u]!;
        for (let j = 0; j < H; j++) buf.history[k * H + j] = ring[u * H + ((h0 + j) % H)]!;
        buf.label[k] = clicked ? 1 : 0;
        buf.time[k] = t;
        k++;
      }
      if (clicked) {
        ring[u * H + head[u]!] = a;
        head[u] = (head[u]! + 1) % H;
      }
      if (k === cap || (writing && i === end - 1)) {
        chunk.start = i + 1 - k;
        chunk.rows = k;
        if (k < cap) {
          for (const key of Object.keys(buf) as (keyof typeof buf)[]) {
            const width = key === 'history' ? H : key === 'dense' ? DENSE : 1;
            (chunk as unknown as Record<string, ArrayLike<number>>)[key] = buf[key].subarray(0, k * width);
          }
        }
        yield chunk;
        k = 0;
      }
    }
  }

  /** Every impression of [start, end) in one chunk of arrays of its own. */
  materialize(range: readonly [number, number] = [0, this.numImpressions]): ClickChunk {
    for (const c of this.chunks(Math.max(1, range[1] - range[0]), range)) return c;
    const none = new Int32Array(0);
    const empty = new Float32Array(0);
    return { start: range[0], rows: 0, user: none, article: none, category: none, subcategory: none, history: none, dense: empty, label: empty, time: empty };
  }
}

/** Generates the tables of a click log; impressions stream from `log.chunks()`. */
export function generateClickLog(o: ClickLogOptions = {}): ClickLog {
  return new ClickLog(o);
}

// From a user's history to the reference model's 100 features. One class, NewsHistory, is both the
// training-time extractor (fed a user's clicks one by one, asked for features before each next
// click) and the serving-time one (fed the whole history, asked for features now), so training and
// inference cannot compute features differently.

import { type Dataset, categoricalColumn, numericColumn } from '../dataset.js';
import { DataError, invalidArgument } from '../errors.js';
import { DEVICES, NEWS_CATEGORIES, SESSION_GAP_SECONDS } from './model.js';

const K = NEWS_CATEGORIES.length; // 10
const perCategory = (group: string) => NEWS_CATEGORIES.map((c) => `${group}:${c}`);

/** Half-life of the recency weighting of share_recent (3 days). */
export const RECENCY_HALF_LIFE_SECONDS = 3 * 86400;

/**
 * The 100 feature names, in order. `group:category` names come in groups of 10 (one per category,
 * in NEWS_CATEGORIES order). "The request" is the moment of the click being predicted: its device
 * and time are known to the site when it serves a recommendation.
 */
export const NEWS_FEATURE_NAMES: readonly string[] = [
  ...perCategory('share_all'), //      0–9   share of all past clicks
  ...perCategory('share_last5'), //   10–19  share of the last 5 clicks (fewer if the history is shorter)
  ...perCategory('share_recent'), //  20–29  share with each click weighted 2^(−age / 3 days)
  ...perCategory('share_dwell'), //   30–39  share of total dwell time
  ...perCategory('last1'), //         40–49  one-hot: category of the last click
  ...perCategory('last2'), //         50–59  one-hot: category of the second-to-last click
  ...perCategory('session'), //       60–69  share of clicks in the last session (the one of the last click)
  ...perCategory('log_dwell'), //     70–79  mean log(1 + dwell s) of past clicks in the category, 0 if none
  ...DEVICES.map((d) => `device:${d}`), // 80–82  one-hot: device of the request (all 0 if unknown)
  'hour_sin', //                      83     sin(2π·hour/24), hour of the request (UTC, fractional)
  'hour_cos', //                      84     cos(2π·hour/24)
  'same_session', //                  85     1 if the request comes ≤ 30 min after the last click
  'log_gap', //                       86     log(1 + seconds since the last click)
  'log_clicks', //                    87     log(1 + past clicks)
  'log_sessions', //                  88     log(1 + past sessions)
  'log_days_active', //               89     log(1 + days from the first click to the request)
  'log_session_clicks', //            90     log(1 + clicks in the last session)
  'distinct_categories', //           91     categories ever read / 10
  'entropy', //                       92     entropy of share_all / ln 10 (0 = one category, 1 = uniform)
  'log_last_dwell', //                93     log(1 + dwell s of the last click)
  'mean_log_dwell', //                94     mean log(1 + dwell s) over past clicks
  ...DEVICES.map((d) => `past_device:${d}`), // 95–97  share of past clicks on each device
  'log_last_run', //                  98     log(1 + consecutive last clicks in the last click's category)
  'top_share', //                     99     share of the most-read category
];
export const NUM_NEWS_FEATURES = 100;
if (NEWS_FEATURE_NAMES.length !== NUM_NEWS_FEATURES) throw new Error(`features.ts: ${NEWS_FEATURE_NAMES.length} feature names, expected 100`);

/** Device name → index in DEVICES, −1 for missing or unknown. */
export function deviceIndex(device: string): number {
  return device === 'mobile' ? 0 : device === 'desktop' ? 1 : device === 'tablet' ? 2 : -1;
}

/** What one user has done so far, kept as running sums so that adding a click is O(10). */
export class NewsHistory {
  clicks = 0;
  private readonly counts = new Float64Array(K);
  private readonly dwellSum = new Float64Array(K);
  private readonly logDwellSum = new Float64Array(K);
  private readonly recent = new Float64Array(K); // recency-weighted counts, as of recentTime
  private recentTime = 0;
  private readonly last5 = new Int32Array(5); // ring buffer of categories
  private readonly sessionCounts = new Float64Array(K);
  private sessionClicks = 0;
  private sessions = 0;
  private readonly deviceCounts = new Float64Array(3);
  private readonly lastSeen = new Float64Array(K); // click number of the latest click per category
  private logDwellTotal = 0;
  private last1 = -1;
  private last2 = -1;
  private run = 0;
  private firstTime = 0;
  private lastTime = 0;
  private lastDwell = 0;

  /** Forgets everything (for the next user). */
  reset(): void {
    this.clicks = this.sessionClicks = this.sessions = this.logDwellTotal = this.run = 0;
    this.last1 = this.last2 = -1;
    for (const a of [this.counts, this.dwellSum, this.logDwellSum, this.recent, this.sessionCounts, this.deviceCounts, this.lastSeen]) a.fill(0);
  }

  /** Adds a click, in time order. dwell must not be NaN (fill missing values first). */
  add(category: number, timestamp: number, dwellSeconds: number, device: number): void {
    const c = category;
    if (this.clicks === 0 || timestamp - this.lastTime > SESSION_GAP_SECONDS) {
      this.sessions++;
      this.sessionCounts.fill(0);
      this.sessionClicks = 0;
    }
    if (this.clicks > 0) {
      const decay = Math.pow(2, -(timestamp - this.recentTime) / RECENCY_HALF_LIFE_SECONDS);
      for (let j = 0; j < K; j++) this.recent[j]! *= decay;
    } else {
      this.firstTime = timestamp;
    }
    this.recent[c]!++;
    this.recentTime = timestamp;
    const logDwell = Math.log1p(dwellSeconds);
    this.counts[c]!++;
    this.dwellSum[c]! += dwellSeconds;
    this.logDwellSum[c]! += logDwell;
    this.logDwellTotal += logDwell;
    this.last5[this.clicks % 5] = c;
    this.run = c === this.last1 ? this.run + 1 : 1;
    this.last2 = this.last1;
    this.last1 = c;
    this.sessionCounts[c]!++;
    this.sessionClicks++;
    if (device >= 0) this.deviceCounts[device]!++;
    this.lastSeen[c] = this.clicks;
    this.lastTime = timestamp;
    this.lastDwell = dwellSeconds;
    this.clicks++;
  }

  /** The category with most past clicks; a tie goes to the one read most recently. −1 with no history. */
  mostRead(): number {
    let best = -1;
    for (let c = 0; c < K; c++) {
      if (this.counts[c]! === 0) continue;
      if (best < 0 || this.counts[c]! > this.counts[best]! || (this.counts[c]! === this.counts[best]! && this.lastSeen[c]! > this.lastSeen[best]!)) best = c;
    }
    return best;
  }

  /**
   * Writes the 100 features for a request at `timestamp` from `device` (index, −1 unknown) into
   * out[offset, offset + 100). Needs at least one past click.
   */
  write(out: Float32Array, offset: number, timestamp: number, device: number): void {
    const n = this.clicks;
    if (n === 0) throw new DataError('NewsHistory.write', 'expected at least one past click, found none');
    const o = offset;
    let recentTotal = 0;
    let dwellTotal = 0;
    let distinct = 0;
    let entropy = 0;
    let top = 0;
    for (let c = 0; c < K; c++) {
      recentTotal += this.recent[c]!;
      dwellTotal += this.dwellSum[c]!;
    }
    const m5 = Math.min(n, 5);
    for (let c = 0; c < K; c++) {
      const cnt = this.counts[c]!;
      const share = cnt / n;
      out[o + c] = share;
      out[o + 10 + c] = 0;
      out[o + 20 + c] = this.recent[c]! / recentTotal;
      out[o + 30 + c] = dwellTotal > 0 ? this.dwellSum[c]! / dwellTotal : 0;
      out[o + 40 + c] = c === this.last1 ? 1 : 0;
      out[o + 50 + c] = c === this.last2 ? 1 : 0;
      out[o + 60 + c] = this.sessionCounts[c]! / this.sessionClicks;
      out[o + 70 + c] = cnt > 0 ? this.logDwellSum[c]! / cnt : 0;
      if (cnt > 0) {
        distinct++;
        entropy -= share * Math.log(share);
        if (share > top) top = share;
      }
    }
    for (let i = 0; i < m5; i++) out[o + 10 + this.last5[i]!]! += 1 / m5;
    for (let d = 0; d < 3; d++) out[o + 80 + d] = d === device ? 1 : 0;
    const hour = (((timestamp % 86400) + 86400) % 86400) / 3600;
    out[o + 83] = Math.sin((2 * Math.PI * hour) / 24);
    out[o + 84] = Math.cos((2 * Math.PI * hour) / 24);
    const gap = Math.max(0, timestamp - this.lastTime);
    out[o + 85] = gap <= SESSION_GAP_SECONDS ? 1 : 0;
    out[o + 86] = Math.log1p(gap);
    out[o + 87] = Math.log1p(n);
    out[o + 88] = Math.log1p(this.sessions);
    out[o + 89] = Math.log1p(Math.max(0, timestamp - this.firstTime) / 86400);
    out[o + 90] = Math.log1p(this.sessionClicks);
    out[o + 91] = distinct / K;
    out[o + 92] = entropy / Math.log(K);
    out[o + 93] = Math.log1p(this.lastDwell);
    out[o + 94] = this.logDwellTotal / n;
    for (let d = 0; d < 3; d++) out[o + 95 + d] = this.deviceCounts[d]! / n;
    out[o + 98] = Math.log1p(this.run);
    out[o + 99] = top;
  }
}

/**
 * Row order of the events by (userId, timestamp), stable. Returns null when they are already in
 * that order (as generateNews writes them), so the common case costs one pass.
 */
export function orderByUserTime(events: Dataset): Int32Array | null {
  const user = numericColumn(events, 'userId');
  const time = numericColumn(events, 'timestamp');
  let sorted = true;
  for (let i = 1; i < events.length && sorted; i++) {
    sorted = user[i - 1]! < user[i]! || (user[i - 1] === user[i] && time[i - 1]! <= time[i]!);
  }
  if (sorted) return null;
  const rows = Int32Array.from({ length: events.length }, (_, i) => i);
  return rows.sort((a, b) => user[a]! - user[b]! || time[a]! - time[b]! || a - b);
}

/** Training examples from a reading log. */
export interface NewsExamples {
  /** (length, 100) raw (not standardised) features; names in NEWS_FEATURE_NAMES. */
  features: Float32Array;
  /** (length) category of the click to predict. */
  labels: Int32Array;
  /** (length) the user of each example. */
  userIds: Int32Array;
  /** (length) the user's most-read category before the click (ties: most recent), for the baseline. */
  mostRead: Int32Array;
  /** (length) event row of the click to predict. */
  eventRows: Int32Array;
  length: number;
  width: number;
}

export interface NewsExampleOptions {
  /** Past clicks a user needs before their next click becomes an example. Default 2. */
  minHistory?: number;
}

/**
 * Turns a clean reading log (no duplicates, no missing dwell: see prepareNews) into examples: for
 * each user and each click t ≥ minHistory, the features of clicks 0..t−1 and of the request of
 * click t, labelled with click t's category.
 */
export function newsExamples(events: Dataset, options: NewsExampleOptions = {}): NewsExamples {
  const minHistory = options.minHistory ?? 2;
  if (!(Number.isInteger(minHistory) && minHistory >= 1)) throw invalidArgument('newsExamples', 'minHistory', 'an integer ≥ 1', minHistory);
  const user = numericColumn(events, 'userId');
  const category = numericColumn(events, 'category');
  const time = numericColumn(events, 'timestamp');
  const dwell = numericColumn(events, 'dwellSeconds');
  const device = categoricalColumn(events, 'device');
  const order = orderByUserTime(events);
  const n = events.length;
  const row = (i: number) => (order ? order[i]! : i);
  for (let i = 0; i < n; i++) {
    if (Number.isNaN(dwell[i]!)) throw new DataError(events.source, `dwellSeconds, row ${i}: expected a value, found NaN (fill missing values first, as prepareNews does)`);
    const c = category[i]!;
    if (!(Number.isInteger(c) && c >= 0 && c < K)) throw new DataError(events.source, `category, row ${i}: expected an integer in [0, ${K}), found ${c}`);
  }
  // Count examples first so that the outputs are allocated once.
  let count = 0;
  for (let i = 0, k = 0; i < n; i++) {
    k = i > 0 && user[row(i)] === user[row(i - 1)] ? k + 1 : 0;
    if (k >= minHistory) count++;
  }
  const features = new Float32Array(count * NUM_NEWS_FEATURES); // (count, 100)
  const labels = new Int32Array(count);
  const userIds = new Int32Array(count);
  const mostRead = new Int32Array(count);
  const eventRows = new Int32Array(count);
  const h = new NewsHistory();
  let e = 0;
  for (let i = 0; i < n; i++) {
    const r = row(i);
    if (i === 0 || user[r] !== user[row(i - 1)]) h.reset();
    if (h.clicks >= minHistory) {
      h.write(features, e * NUM_NEWS_FEATURES, time[r]!, deviceIndex(device[r]!));
      labels[e] = category[r]!;
      userIds[e] = user[r]!;
      mostRead[e] = h.mostRead();
      eventRows[e] = r;
      e++;
    }
    h.add(category[r]!, time[r]!, dwell[r]!, deviceIndex(device[r]!));
  }
  return { features, labels, userIds, mostRead, eventRows, length: count, width: NUM_NEWS_FEATURES };
}

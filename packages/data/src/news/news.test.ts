import { describe, expect, it } from 'vitest';
import { type Dataset, createDataset, take } from '../dataset.js';
import { BatchIterator } from '../batches.js';
import { uniqueRows } from '../preprocess.js';
import { accuracy, majorityClassAccuracy, mostReadCategoryAccuracy } from './baselines.js';
import { topCategories } from './catalog.js';
import { NEWS_FEATURE_NAMES, newsExamples } from './features.js';
import { generateNews } from './generate.js';
import { NEWS_CATEGORIES, WINDOW_START } from './model.js';
import { newsBaselines, prepareNews } from './prepare.js';

/** FNV-1a over the bytes of every column (strings as UTF-16 code units): equal digests ⇔ bitwise-equal data, in practice. */
function digest(ds: Dataset): string {
  let h = 0x811c9dc5;
  for (const [name, col] of ds.columns) {
    for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 0x01000193);
    if (Array.isArray(col)) {
      for (const s of col) {
        for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
        h = Math.imul(h ^ 0xffff, 0x01000193);
      }
    } else {
      const bytes = new Uint8Array(col.buffer, col.byteOffset, col.byteLength);
      for (let i = 0; i < bytes.length; i++) h = Math.imul(h ^ bytes[i]!, 0x01000193);
    }
  }
  return (h >>> 0).toString(16);
}

const bytesOf = (a: ArrayBufferView) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);

describe('generateNews', () => {
  const log = generateNews({ seed: 42, scale: 0.2 }); // 1000 users
  const ev = log.events;
  const user = ev.columns.get('userId') as Int32Array;
  const time = ev.columns.get('timestamp') as Float64Array;

  it('a log of clicks with the documented columns and ranges', () => {
    expect([...ev.columns.keys()]).toEqual(['userId', 'articleId', 'category', 'timestamp', 'dwellSeconds', 'device', 'hourOfDay']);
    expect(log.numUsers).toBe(1000);
    expect(ev.length).toBeGreaterThan(15000);
    const cat = ev.columns.get('category') as Int32Array;
    const article = ev.columns.get('articleId') as Int32Array;
    const artCat = log.articles.columns.get('category') as Int32Array;
    const hour = ev.columns.get('hourOfDay') as Int32Array;
    for (let i = 0; i < ev.length; i++) {
      expect(cat[i]).toBe(artCat[article[i]!]); // an event's category is its article's
      expect(hour[i]).toBe(Math.floor((time[i]! % 86400) / 3600));
      if (i > 0) expect(user[i - 1]! < user[i]! || (user[i - 1] === user[i] && time[i - 1]! <= time[i]!)).toBe(true);
    }
    expect(new Set(ev.columns.get('device') as string[])).toEqual(new Set(['mobile', 'desktop', 'tablet', '']));
    expect(Math.min(...time)).toBeGreaterThanOrEqual(WINDOW_START);
  });

  it('skewed demand: category shares are far from uniform', () => {
    const counts = new Array(10).fill(0);
    for (const c of ev.columns.get('category') as Int32Array) counts[c]++;
    expect(Math.max(...counts) / Math.min(...counts)).toBeGreaterThan(2);
  });

  it('has the defects of real logs: missing dwell and device, exact duplicate events', () => {
    const dwell = ev.columns.get('dwellSeconds') as Float64Array;
    const device = ev.columns.get('device') as string[];
    const missingDwell = dwell.filter(Number.isNaN).length / ev.length;
    const missingDevice = device.filter((d) => d === '').length / ev.length;
    const duplicates = 1 - uniqueRows(ev).length / ev.length;
    expect(missingDwell).toBeGreaterThan(0.03);
    expect(missingDwell).toBeLessThan(0.07);
    expect(missingDevice).toBeGreaterThan(0.015);
    expect(missingDevice).toBeLessThan(0.045);
    expect(duplicates).toBeGreaterThan(0.01);
    expect(duplicates).toBeLessThan(0.03);
  });

  it('determinism: the same seed gives bitwise the same log, another seed another log', () => {
    const again = generateNews({ seed: 42, scale: 0.2 });
    for (const [name, col] of ev.columns) {
      const other = again.events.columns.get(name)!;
      if (Array.isArray(col)) expect(other).toEqual(col);
      else expect(bytesOf(other as Float64Array).equals(bytesOf(col))).toBe(true);
    }
    expect(digest(again.articles)).toBe(digest(log.articles));
    expect(digest(generateNews({ seed: 43, scale: 0.2 }).events)).not.toBe(digest(ev));
  });

  it('determinism across processes: a pinned digest (update it, and the README figures, when the generator changes on purpose)', () => {
    const small = generateNews({ seed: 42, scale: 0.02 });
    expect(small.events.length).toBe(PINNED.events);
    expect(digest(small.events)).toBe(PINNED.digest);
  });

  it('a range of users is generated exactly as in the whole population', () => {
    const part = generateNews({ seed: 42, scale: 0.2, users: [300, 350] });
    const rows = Int32Array.from(Array.from(user.keys()).filter((i) => user[i]! >= 300 && user[i]! < 350));
    expect(digest(part.events)).toBe(digest(take(ev, rows)));
  });

  it('rejects bad options', () => {
    expect(() => generateNews({ scale: 0 })).toThrow('generateNews: invalid scale: expected a number > 0, found 0');
    expect(() => generateNews({ scale: 0.1, users: [0, 501] })).toThrow('invalid users: expected [start, end) with 0 ≤ start ≤ end ≤ 500');
  });
});

const PINNED = { events: 2542, digest: 'f12b74da' };

describe('newsExamples', () => {
  // User 1 clicks politics (mobile), business (mobile, 10 min later), then 2 days later sports on a tablet.
  const t0 = WINDOW_START + 8 * 3600;
  const events = createDataset({
    userId: Int32Array.from([1, 1, 1, 2, 2]),
    category: Int32Array.from([0, 1, 5, 2, 2]),
    timestamp: Float64Array.from([t0, t0 + 600, t0 + 2 * 86400, t0, t0 + 60]),
    dwellSeconds: Float64Array.from([30, 90, 10, 5, 5]),
    device: ['mobile', 'mobile', 'tablet', 'desktop', 'desktop'],
  });

  it('one example per click after minHistory, with hand-checked features', () => {
    const ex = newsExamples(events, { minHistory: 1 });
    expect(ex.length).toBe(3);
    expect(Array.from(ex.labels)).toEqual([1, 5, 2]);
    expect(Array.from(ex.userIds)).toEqual([1, 1, 2]);
    expect(Array.from(ex.eventRows)).toEqual([1, 2, 4]);
    const f = (row: number, name: string) => ex.features[row * 100 + NEWS_FEATURE_NAMES.indexOf(name)]!;
    // Example 1: predicting the sports click from [politics 30 s, business 90 s], asked on a tablet 2 days later.
    expect(f(1, 'share_all:politics')).toBe(0.5);
    expect(f(1, 'share_all:business')).toBe(0.5);
    expect(f(1, 'share_dwell:business')).toBe(0.75);
    expect(f(1, 'last1:business')).toBe(1);
    expect(f(1, 'last2:politics')).toBe(1);
    expect(f(1, 'share_recent:business')).toBeGreaterThan(0.5); // the later click weighs more
    expect(f(1, 'session:business')).toBe(0.5);
    expect(f(1, 'device:tablet')).toBe(1);
    expect(f(1, 'device:mobile')).toBe(0);
    expect(f(1, 'past_device:mobile')).toBe(1);
    expect(f(1, 'same_session')).toBe(0);
    expect(f(0, 'same_session')).toBe(1);
    expect(f(1, 'log_gap')).toBeCloseTo(Math.log1p(2 * 86400 - 600), 4);
    expect(f(1, 'log_dwell:business')).toBeCloseTo(Math.log1p(90), 5);
    expect(f(1, 'hour_sin')).toBeCloseTo(Math.sin((2 * Math.PI * 8) / 24), 6);
    expect(f(1, 'entropy')).toBeCloseTo(Math.log(2) / Math.log(10), 6);
    expect(f(1, 'top_share')).toBe(0.5);
    expect(f(1, 'log_sessions')).toBeCloseTo(Math.log1p(1), 6);
    // Most-read before the sports click: a 1–1 tie goes to the later click, business.
    expect(Array.from(ex.mostRead)).toEqual([0, 1, 2]);
  });

  it('does not depend on the order of the log', () => {
    const rev = Int32Array.from([4, 3, 2, 1, 0]);
    const shuffled = take(events, rev);
    const a = newsExamples(events);
    const b = newsExamples(shuffled);
    expect(b.features).toEqual(a.features);
    expect(b.labels).toEqual(a.labels);
  });

  it('refuses unfilled dwell times', () => {
    const raw = generateNews({ seed: 1, scale: 0.02 }).events;
    expect(() => newsExamples(raw)).toThrow(/news events: dwellSeconds, row \d+: expected a value, found NaN \(fill missing values first/);
  });
});

describe('baselines', () => {
  it('majority class and most-read, by hand', () => {
    expect(majorityClassAccuracy([1, 1, 2, 3], [1, 2, 1, 1])).toBe(0.75);
    expect(majorityClassAccuracy([2, 1], [1, 2, 2])).toBeCloseTo(1 / 3, 12); // tie → lowest class
    expect(mostReadCategoryAccuracy([0, 1, 2, 3], [0, 1, 0, 0])).toBe(0.5);
    expect(() => accuracy([1], [1, 2])).toThrow('accuracy: invalid pred: expected 2 predictions (one per label), found 1');
    expect(topCategories([0.1, 0.5, 0.2, 0.5], 3)).toEqual([1, 3, 2]);
  });
});

describe('prepareNews', () => {
  const data = prepareNews({ seed: 42, scale: 0.2 });

  it('gives standardised, finite features of the documented shape, split by user', () => {
    expect(data.width).toBe(100);
    expect(data.featureNames).toEqual(NEWS_FEATURE_NAMES);
    expect(new Set(data.featureNames).size).toBe(100);
    expect(data.numClasses).toBe(10);
    expect(data.categories).toEqual(NEWS_CATEGORIES);
    expect(data.features.length).toBe(data.length * 100);
    expect(data.features.every(Number.isFinite)).toBe(true);
    expect(Math.min(...data.labels)).toBe(0);
    expect(Math.max(...data.labels)).toBe(9);
    const { train, valid, test } = data.split;
    expect(train.length + valid.length + test.length).toBe(data.length);
    const usersOf = (rows: Int32Array) => new Set(Array.from(rows, (r) => data.userIds[r]!));
    const [tu, vu, su] = [usersOf(train), usersOf(valid), usersOf(test)];
    for (const u of vu) expect(tu.has(u) || su.has(u)).toBe(false);
    for (const u of su) expect(tu.has(u)).toBe(false);
    expect(data.stats.duplicatesDropped).toBeGreaterThan(0);
    expect(data.stats.missingDwell).toBeGreaterThan(0);
  });

  it('the transform is fitted on the training rows: there every feature has mean 0 and std 1 (or 0 if constant)', () => {
    const { train } = data.split;
    for (let j = 0; j < 100; j++) {
      let s = 0;
      let ss = 0;
      for (const r of train) s += data.features[r * 100 + j]!;
      const m = s / train.length;
      for (const r of train) ss += (data.features[r * 100 + j]! - m) ** 2;
      expect(Math.abs(m)).toBeLessThan(1e-4);
      const std = Math.sqrt(ss / train.length);
      expect(data.transform.std[j] === 0 ? std : Math.abs(std - 1)).toBeLessThan(1e-3);
    }
    expect(JSON.parse(JSON.stringify(data.transform))).toEqual(data.transform);
  });

  it('determinism: the same seed gives bitwise the same examples and split; another seed differs', () => {
    const again = prepareNews({ seed: 42, scale: 0.2 });
    expect(bytesOf(again.features).equals(bytesOf(data.features))).toBe(true);
    expect(bytesOf(again.labels).equals(bytesOf(data.labels))).toBe(true);
    expect(again.split).toEqual(data.split);
    expect(again.transform).toEqual(data.transform);
    const other = prepareNews({ seed: 7, scale: 0.2 });
    expect(bytesOf(other.features.subarray(0, 1000)).equals(bytesOf(data.features.subarray(0, 1000)))).toBe(false);
  });

  it('serving computes the same features as training (catalog.featuresFor at the time of a click)', () => {
    const raw = newsExamples(data.catalog.events);
    const device = data.catalog.events.columns.get('device') as string[];
    const time = data.catalog.events.columns.get('timestamp') as Float64Array;
    for (const e of [0, 1, 500, raw.length - 1]) {
      const r = raw.eventRows[e]!;
      const dev = device[r] === 'unknown' ? undefined : device[r]!;
      const x = data.catalog.featuresFor(raw.userIds[e]!, { timestamp: time[r]!, ...(dev ? { device: dev } : {}) });
      if (dev) expect(Array.from(x)).toEqual(Array.from(raw.features.subarray(e * 100, e * 100 + 100)));
    }
  });

  it('recommends unread, published articles from the given categories in order', () => {
    const u = data.userIds[0]!;
    const read = data.catalog.readBy(u);
    expect(read.size).toBeGreaterThan(0);
    const picks = data.catalog.pickUnread(u, [3, 7], 5);
    expect(picks.length).toBe(5);
    const cat = data.catalog.articles.columns.get('category') as Int32Array;
    for (const a of picks) {
      expect(read.has(a)).toBe(false);
      expect([3, 7]).toContain(cat[a]);
    }
    // The intended order, from the article columns: category 3's unread, published articles by
    // popularity (ties: lower id), then category 7's, the first 5.
    const popularity = data.catalog.articles.columns.get('popularity') as ArrayLike<number>;
    const published = data.catalog.articles.columns.get('publishedAt') as ArrayLike<number>;
    const unread = (c: number) =>
      Array.from({ length: cat.length }, (_, a) => a)
        .filter((a) => cat[a] === c && !read.has(a) && published[a]! <= data.catalog.now)
        .sort((a, b) => popularity[b]! - popularity[a]! || a - b);
    expect(picks).toEqual([...unread(3), ...unread(7)].slice(0, 5));
    // Asked for more than category 3 holds, it goes on into category 7 in the same order.
    const more = unread(3).length + 2;
    expect(data.catalog.pickUnread(u, [3, 7], more)).toEqual([...unread(3), ...unread(7).slice(0, 2)]);
    expect(data.catalog.articlesByCategory.every((ids, c) => ids.every((a) => cat[a] === c))).toBe(true);
    expect(() => data.catalog.featuresFor(-5)).toThrow('NewsCatalog.featuresFor: user -5: expected a user with at least one click, found none');
  });
});

describe('the label is learnable beyond the baselines', () => {
  // A softmax regression (the simplest model; the reference MLP does better) trained for 2 epochs
  // must beat both baselines on held-out users by a clear margin at the default size.
  it('softmax regression beats majority class and most-read by ≥ 5 points on validation', () => {
    const data = prepareNews({ seed: 42 });
    const C = 10;
    const D = 100;
    const W = new Float32Array(D * C); // (D, C)
    const b = new Float32Array(C);
    const logits = new Float32Array(C);
    const lr = 0.05;
    const batches = new BatchIterator(data, { batchSize: 32, rows: data.split.train, seed: 1 });
    const gW = new Float32Array(D * C);
    const gb = new Float32Array(C);
    const forward = (x: Float32Array, i: number) => {
      for (let c = 0; c < C; c++) {
        let a = b[c]!;
        for (let k = 0; k < D; k++) a += x[i * D + k]! * W[k * C + c]!;
        logits[c] = a;
      }
    };
    for (let epoch = 0; epoch < 2; epoch++) {
      for (const { x, y, size } of batches) {
        gW.fill(0);
        gb.fill(0);
        for (let i = 0; i < size; i++) {
          forward(x, i);
          const m = Math.max(...logits);
          let z = 0;
          for (let c = 0; c < C; c++) z += Math.exp(logits[c]! - m);
          for (let c = 0; c < C; c++) {
            const g = Math.exp(logits[c]! - m) / z - (c === y[i] ? 1 : 0);
            gb[c]! += g;
            for (let k = 0; k < D; k++) gW[k * C + c]! += x[i * D + k]! * g;
          }
        }
        for (let j = 0; j < W.length; j++) W[j]! -= (lr * gW[j]!) / size;
        for (let c = 0; c < C; c++) b[c]! -= (lr * gb[c]!) / size;
      }
    }
    let hit = 0;
    for (const r of data.split.valid) {
      forward(data.features, r);
      if (topCategories(logits, 1)[0] === data.labels[r]) hit++;
    }
    const model = hit / data.split.valid.length;
    const base = newsBaselines(data);
    expect(base.majorityClass).toBeLessThan(base.mostRead);
    expect(model).toBeGreaterThan(base.mostRead + 0.05);
    expect(model).toBeGreaterThan(base.majorityClass + 0.15);
  });
});

import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Random } from '../random.js';
import { auc, clickBaselines, logLoss } from './baselines.js';
import { readClickLog, writeClickLog } from './file.js';
import { generateClickLog, type ClickChunk } from './generate.js';
import { CLICK_CATEGORIES, CLICK_SUBCATEGORIES, HISTORY_LENGTH, SUBCATEGORIES_PER_CATEGORY } from './model.js';

const log = generateClickLog({ seed: 7, scale: 0.3 });
const all = log.materialize();
const dir = mkdtempSync(join(tmpdir(), 'loom-clicks-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const KEYS = ['user', 'article', 'category', 'subcategory', 'history', 'dense', 'label', 'time'] as const;

/** Every column of the chunks, concatenated into arrays of their own (chunks reuse their buffers). */
function gather(chunks: Iterable<ClickChunk>): Record<(typeof KEYS)[number], number[]> {
  const out = Object.fromEntries(KEYS.map((k) => [k, [] as number[]])) as Record<(typeof KEYS)[number], number[]>;
  for (const c of chunks) for (const k of KEYS) for (const v of c[k]) out[k].push(v);
  return out;
}

/** The first index where two sequences differ (−1: none; a length difference counts): cheap to report. */
function firstDifference(a: ArrayLike<number>, b: ArrayLike<number>): number {
  const n = Math.max(a.length, b.length);
  for (let i = 0; i < n; i++) if (!Object.is(a[i], b[i])) return i;
  return -1;
}

describe('the click log generator', () => {
  it('has the sizes of its scale and the ids in range', () => {
    expect([log.numUsers, log.numArticles, log.numImpressions]).toEqual([3000, 600, 30000]);
    expect(all.rows).toBe(30000);
    let bad = 0;
    for (let i = 0; i < all.rows; i++) {
      const ok =
        all.user[i]! >= 0 && all.user[i]! < log.numUsers &&
        all.article[i]! >= 0 && all.article[i]! < log.numArticles &&
        all.category[i]! < CLICK_CATEGORIES && all.subcategory[i]! < CLICK_SUBCATEGORIES &&
        Math.floor(all.subcategory[i]! / SUBCATEGORIES_PER_CATEGORY) === all.category[i] &&
        log.articles.category[all.article[i]!] === all.category[i];
      if (!ok) bad++;
    }
    expect(bad).toBe(0);
    expect(new Set(log.articles.category).size).toBe(CLICK_CATEGORIES);
  });

  it('is the same for the same seed, whatever the chunk size or range', () => {
    const again = gather(generateClickLog({ seed: 7, scale: 0.3 }).chunks(7777));
    for (const k of KEYS) expect(firstDifference(again[k], all[k]), k).toBe(-1);
    const part = gather(log.chunks(1000, [12345, 20000]));
    expect(firstDifference(part.user, all.user.subarray(12345, 20000))).toBe(-1);
    expect(firstDifference(part.history, all.history.subarray(12345 * HISTORY_LENGTH, 20000 * HISTORY_LENGTH))).toBe(-1);
    expect(firstDifference(part.label, all.label.subarray(12345, 20000))).toBe(-1);
    const other = generateClickLog({ seed: 8, scale: 0.3 }).materialize([0, 1000]);
    expect(firstDifference(other.article, all.article.subarray(0, 1000))).not.toBe(-1);
  });

  it('clicks at about 4%, in time order, on articles already published', () => {
    const ctr = all.label.reduce((s, y) => s + y, 0) / all.rows;
    expect(ctr).toBeGreaterThan(0.03);
    expect(ctr).toBeLessThan(0.05);
    let late = 0;
    for (let i = 1; i < all.rows; i++) if (all.time[i]! < all.time[i - 1]!) late++;
    let unpublished = 0;
    for (let i = 0; i < all.rows; i++) {
      if (log.articles.publishedAt[all.article[i]!]! > all.time[i]!) unpublished++;
      for (let j = 0; j < HISTORY_LENGTH; j++) if (log.articles.publishedAt[all.history[i * HISTORY_LENGTH + j]!]! > all.time[i]!) unpublished++;
    }
    expect([late, unpublished]).toEqual([0, 0]);
  });

  it("keeps each user's last clicks as the history of their next impression", () => {
    // Replay: the history of a user's impression is the previous one's, plus its article if clicked.
    const last = new Map<number, number[]>();
    let checked = 0;
    let wrong = 0;
    for (let i = 0; i < all.rows; i++) {
      const u = all.user[i]!;
      const h = [...all.history.subarray(i * HISTORY_LENGTH, (i + 1) * HISTORY_LENGTH)];
      const before = last.get(u);
      if (before !== undefined) {
        if (firstDifference(h, before) !== -1) wrong++;
        checked++;
      }
      last.set(u, all.label[i] === 1 ? [...h.slice(1), all.article[i]!] : h);
    }
    expect(wrong).toBe(0);
    expect(checked).toBeGreaterThan(20000);
  });

  it('keeps publishing: held-out impressions show articles newer than any in training', () => {
    let newest = 0;
    for (let i = 0; i < log.validStart; i++) newest = Math.max(newest, all.article[i]!);
    let newer = 0;
    for (let i = log.validStart; i < all.rows; i++) if (all.article[i]! > newest) newer++;
    expect(newer).toBeGreaterThan(0.05 * (all.rows - log.validStart));
  });

  it('draws articles with a heavy (Zipf-like) popularity tail', () => {
    const counts = new Float64Array(log.numArticles);
    for (let i = 0; i < all.rows; i++) counts[all.article[i]!]!++;
    const sorted = [...counts].sort((a, b) => b - a);
    const top = sorted.slice(0, Math.ceil(0.02 * log.numArticles)).reduce((a, b) => a + b, 0);
    expect(top / all.rows).toBeGreaterThan(0.25); // the top 2% of articles get over a quarter of impressions
  });

  it('has a label that user taste predicts better than popularity', () => {
    const b = clickBaselines(log);
    expect(b.userCategoryAuc).toBeGreaterThan(0.55);
    expect(b.userCategoryAuc).toBeGreaterThan(b.popularityAuc + 0.03);
    expect(b.constantLogLoss).toBeGreaterThan(0.1);
    expect(b.constantLogLoss).toBeLessThan(0.25);
  });

  it('rejects bad options with the option named', () => {
    expect(() => generateClickLog({ scale: 0 })).toThrow(/scale/);
    expect(() => generateClickLog({ alpha: -1 })).toThrow(/alpha/);
    expect(() => generateClickLog({ seed: 1.5 })).toThrow(/seed/);
    expect(() => log.chunks(10, [5, 2]).next()).toThrow(/range/);
  });
});

describe('auc and logLoss', () => {
  it('auc equals the pairwise count, ties halved', () => {
    const r = new Random(3);
    const n = 300;
    const scores = Float64Array.from({ length: n }, () => Math.floor(r.next() * 20)); // many ties
    const labels = Float32Array.from({ length: n }, () => (r.next() < 0.3 ? 1 : 0));
    let wins = 0;
    let pairs = 0;
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < n; j++) {
        if (labels[i] === 1 && labels[j] === 0) {
          pairs++;
          wins += scores[i]! > scores[j]! ? 1 : scores[i] === scores[j] ? 0.5 : 0;
        }
      }
    }
    expect(auc(scores, labels)).toBeCloseTo(wins / pairs, 12);
    expect(auc([0.1, 0.9], [0, 1])).toBe(1);
    expect(auc([0.9, 0.1], [0, 1])).toBe(0);
    expect(auc([1, 2], [1, 1])).toBeNaN();
  });

  it('logLoss is the mean binary cross-entropy', () => {
    expect(logLoss([0.8, 0.3], [1, 0])).toBeCloseTo(-(Math.log(0.8) + Math.log(0.7)) / 2, 12);
    expect(Number.isFinite(logLoss([0, 1], [1, 0]))).toBe(true);
  });
});

describe('click log files', () => {
  it('round-trips a log, columns at 8-aligned offsets numpy can read', () => {
    const path = join(dir, 'log.clicks');
    const header = writeClickLog(log, path, [1000, 29000]);
    const back = readClickLog(path);
    expect(back.header).toEqual(header);
    expect(back.header.validStart).toBe(log.validStart - 1000);
    const want = log.materialize([1000, 29000]);
    for (const k of KEYS) expect(firstDifference(back.impressions[k], want[k]), k).toBe(-1);
    expect(firstDifference(back.articles.popularity, log.articles.popularity)).toBe(-1);
    expect(firstDifference(back.articles.publishedAt, log.articles.publishedAt)).toBe(-1);
    for (const c of Object.values(header.columns)) expect(c.offset % 8).toBe(0);
  });

  it('names the file and the fault for a wrong magic, a bad header or a truncated file', () => {
    const path = join(dir, 'log2.clicks');
    writeClickLog(log, path, [0, 500]);
    const bytes = readFileSync(path);
    const truncated = join(dir, 'truncated.clicks');
    writeFileSync(truncated, bytes.subarray(0, bytes.length - 100));
    expect(() => readClickLog(truncated)).toThrow(/truncated\.clicks.*does not fit.*truncated\?/);
    const magic = join(dir, 'magic.clicks');
    writeFileSync(magic, Buffer.concat([Buffer.from('NOTCLICK'), bytes.subarray(8)]));
    expect(() => readClickLog(magic)).toThrow(/magic\.clicks: not a Loom click log/);
    const json = Buffer.from(bytes);
    json.write('{', 12);
    json.write('!', 13);
    const badHeader = join(dir, 'header.clicks');
    writeFileSync(badHeader, json);
    expect(() => readClickLog(badHeader)).toThrow(/header\.clicks: header is not JSON/);
    expect(() => readClickLog(join(dir, 'missing.clicks'))).toThrow(/missing\.clicks: no such file/);
  });
});

/**
 * Text for language models: a character vocabulary, next-token windows over a token stream, and a
 * built-in news-style corpus generated from templates (seeded, no download).
 *
 * A window is a row of T + 1 token ids stored as float32 features (ids < 2^24 are exact), so that
 * the batch iterators, splits, shards and shared-memory transports made for feature matrices carry
 * text unchanged: the model reads the first T ids of a row and predicts ids 1 … T of it.
 */
import { readFileSync } from 'node:fs';
import { DataError, fileError } from './errors.js';
import { Random } from './random.js';
import { NEWS_CATEGORIES } from './news/model.js';

/**
 * A character vocabulary: the distinct characters (code points) of a text, sorted by code point;
 * a character's id is its index. Saved with a run as its `chars` string.
 *
 * @example
 * const v = CharVocab.fromText('hello');
 * v.chars;             // 'ehlo'
 * v.encode('hole');    // Int32Array [2, 3, 2, 0]
 * v.decode([1, 0]);    // 'he'
 */
export class CharVocab {
  readonly chars: string;
  readonly size: number;
  private readonly symbols: string[];
  private readonly ids: Map<string, number>;

  constructor(chars: string) {
    this.symbols = [...chars];
    this.ids = new Map(this.symbols.map((c, i) => [c, i]));
    if (this.ids.size !== this.symbols.length) throw new DataError('CharVocab', 'the characters must be distinct');
    if (this.symbols.length === 0) throw new DataError('CharVocab', 'expected at least one character, found none');
    this.chars = chars;
    this.size = this.symbols.length;
  }

  static fromText(text: string): CharVocab {
    return new CharVocab([...new Set(text)].sort((a, b) => a.codePointAt(0)! - b.codePointAt(0)!).join(''));
  }

  /** The characters of `text` not in this vocabulary, each once, in order of appearance. */
  unknown(text: string): string[] {
    return [...new Set([...text].filter((c) => !this.ids.has(c)))];
  }

  /** Token ids of `text`; throws a DataError naming every character outside the vocabulary. */
  encode(text: string): Int32Array {
    const missing = this.unknown(text);
    if (missing.length > 0) {
      throw new DataError('CharVocab.encode', `characters outside the vocabulary: ${missing.map((c) => JSON.stringify(c)).join(', ')} (the vocabulary has ${this.size}: ${JSON.stringify(this.chars)})`);
    }
    const chars = [...text];
    const out = new Int32Array(chars.length);
    for (let i = 0; i < chars.length; i++) out[i] = this.ids.get(chars[i]!)!;
    return out;
  }

  decode(ids: ArrayLike<number>): string {
    let s = '';
    for (let i = 0; i < ids.length; i++) s += this.symbols[ids[i]!] ?? '';
    return s;
  }
}

/** Windows of a token stream: rows of T + 1 ids as float32, ready for BatchIterator. */
export interface TokenWindows {
  /** (rows, T + 1) */
  features: Float32Array;
  /** (rows) zeros: the targets are in the rows themselves. */
  labels: Int32Array;
  /** T + 1 */
  width: number;
  rows: number;
}

/**
 * Every window of T + 1 consecutive tokens of `tokens[from, to)` starting at from, from + stride, ….
 *
 * @example
 * tokenWindows(Int32Array.of(1, 2, 3, 4, 5), 2, { stride: 2 }).features; // [1, 2, 3, 3, 4, 5]
 */
export function tokenWindows(tokens: Int32Array, context: number, { stride = context, from = 0, to = tokens.length }: { stride?: number; from?: number; to?: number } = {}): TokenWindows {
  if (!(Number.isInteger(context) && context >= 1)) throw new DataError('tokenWindows', `context must be a positive integer, found ${context}`);
  if (!(Number.isInteger(stride) && stride >= 1)) throw new DataError('tokenWindows', `stride must be a positive integer, found ${stride}`);
  const width = context + 1;
  const rows = to - from >= width ? Math.floor((to - from - width) / stride) + 1 : 0;
  const features = new Float32Array(rows * width); // (rows, T + 1)
  for (let r = 0; r < rows; r++) {
    const s = from + r * stride;
    for (let j = 0; j < width; j++) features[r * width + j] = tokens[s + j]!;
  }
  return { features, labels: new Int32Array(rows), width, rows };
}

/** Reads a UTF-8 text file whole. */
export function readText(path: string): string {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw fileError(path, e);
  }
  if (text.length === 0) throw new DataError(path, 'expected some text, found an empty file');
  return text;
}

// ---- the built-in corpus -------------------------------------------------------------------

/** Per category: subjects, verbs (past tense) and objects its sentences are built from. */
const LEXICON: Record<(typeof NEWS_CATEGORIES)[number], { who: string[]; did: string[]; what: string[] }> = {
  politics: { who: ['the senate', 'the prime minister', 'the opposition', 'city council', 'the governor', 'voters'], did: ['approved', 'rejected', 'debated', 'delayed', 'backed'], what: ['a new budget', 'the election reform', 'a tax bill', 'the trade deal', 'a housing plan'] },
  business: { who: ['the central bank', 'investors', 'the retailer', 'shareholders', 'the airline', 'a startup'], did: ['raised', 'cut', 'reported', 'announced', 'forecast'], what: ['interest rates', 'quarterly profits', 'new jobs', 'a merger', 'record sales'] },
  technology: { who: ['engineers', 'the chip maker', 'a software firm', 'researchers', 'the phone maker'], did: ['released', 'tested', 'unveiled', 'patched', 'built'], what: ['a faster processor', 'an open model', 'a security update', 'the new app', 'a quantum device'] },
  science: { who: ['astronomers', 'biologists', 'a research team', 'physicists', 'the space agency'], did: ['discovered', 'measured', 'observed', 'mapped', 'confirmed'], what: ['a distant planet', 'an ancient gene', 'dark matter', 'a new species', 'the ocean floor'] },
  health: { who: ['doctors', 'the hospital', 'health officials', 'nurses', 'a clinical trial'], did: ['warned about', 'treated', 'studied', 'reported', 'tracked'], what: ['a flu outbreak', 'heart disease', 'a new vaccine', 'sleep habits', 'rising costs'] },
  sports: { who: ['the home team', 'the coach', 'the striker', 'the champions', 'fans'], did: ['won', 'lost', 'celebrated', 'dominated', 'drew'], what: ['the final', 'a close match', 'the cup', 'the season opener', 'a derby'] },
  entertainment: { who: ['the director', 'a pop star', 'the studio', 'critics', 'the band'], did: ['praised', 'premiered', 'announced', 'cancelled', 'recorded'], what: ['a new film', 'the world tour', 'a comedy series', 'the album', 'an award show'] },
  lifestyle: { who: ['designers', 'families', 'young people', 'the magazine', 'gardeners'], did: ['embraced', 'shared', 'tried', 'rediscovered', 'recommended'], what: ['slow living', 'a minimalist home', 'new fashion', 'weekend routines', 'city gardens'] },
  travel: { who: ['tourists', 'the airport', 'hotels', 'travellers', 'the rail company'], did: ['visited', 'booked', 'reopened', 'expanded', 'explored'], what: ['the coast', 'mountain trails', 'a night train', 'the old town', 'island resorts'] },
  food: { who: ['chefs', 'the bakery', 'farmers', 'restaurants', 'home cooks'], did: ['served', 'harvested', 'baked', 'reinvented', 'tasted'], what: ['fresh bread', 'a spicy soup', 'local cheese', 'the summer menu', 'ripe tomatoes'] },
};

const WHEN = ['on monday', 'this week', 'after a long delay', 'late on friday', 'for the first time', 'again', 'yesterday'];
const TAIL = [', officials said', ', according to a report', '', '', ', sources said', ' in a surprise move'];

/**
 * The built-in text corpus: `sentences` news-style sentences (default 6000, about 300 kB) built
 * from per-category templates, each line `category: sentence.`, the category picked uniformly and
 * everything drawn from `seed`. A category's words occur only in its own sentences, so a model
 * that reads the prefix predicts the rest better than character frequencies do.
 *
 * @example
 * newsText({ seed: 1, sentences: 2 }).split('\n')[0]; // e.g. 'sports: the coach celebrated the cup again.'
 */
export function newsText({ seed = 42, sentences = 6000 }: { seed?: number; sentences?: number } = {}): string {
  const rng = new Random(seed);
  const pick = <T>(a: readonly T[]): T => a[rng.int(a.length)]!;
  const lines: string[] = [];
  for (let i = 0; i < sentences; i++) {
    const cat = pick(NEWS_CATEGORIES);
    const l = LEXICON[cat];
    lines.push(`${cat}: ${pick(l.who)} ${pick(l.did)} ${pick(l.what)} ${pick(WHEN)}${pick(TAIL)}.`);
  }
  return lines.join('\n') + '\n';
}

/** A text split for language modelling: token ids and where valid and test begin (90/5/5 by position). */
export interface TextSplit {
  vocab: CharVocab;
  tokens: Int32Array;
  validStart: number;
  testStart: number;
}

/**
 * Encodes `text` with `vocab` (default: its own characters) and splits it by position: the first
 * 90% of tokens train, the next 5% validate, the last 5% test — contiguous, so no window crosses
 * from one part into another and nothing of the valid or test text is seen in training.
 */
export function splitText(text: string, vocab: CharVocab = CharVocab.fromText(text)): TextSplit {
  const tokens = vocab.encode(text);
  return { vocab, tokens, validStart: Math.floor(tokens.length * 0.9), testStart: Math.floor(tokens.length * 0.95) };
}

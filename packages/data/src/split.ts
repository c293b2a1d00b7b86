// Deterministic shuffles, train/validation/test splits and shards. Every function here is a pure
// function of its arguments: the same seed gives the same indices in every process, which is what
// lets N workers agree on a split without talking to each other.

import { invalidArgument } from './errors.js';
import { Random, hashSeed } from './random.js';

/** Shuffles a in place (Fisher–Yates) with the given generator. */
export function shuffleInPlace(a: Int32Array, rng: Random): Int32Array {
  for (let i = a.length - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    const t = a[i]!;
    a[i] = a[j]!;
    a[j] = t;
  }
  return a;
}

/**
 * A permutation of 0..n-1 that depends only on (n, seed).
 *
 * ```ts
 * shuffledIndices(5, 42); // the same Int32Array of 0..4 in some order, in every process
 * ```
 */
export function shuffledIndices(n: number, seed: number): Int32Array {
  if (!(Number.isInteger(n) && n >= 0)) throw invalidArgument('shuffledIndices', 'n', 'an integer ≥ 0', n);
  const a = new Int32Array(n);
  for (let i = 0; i < n; i++) a[i] = i;
  return shuffleInPlace(a, new Random(hashSeed(seed, 0x5eed)));
}

/** Row indices of the three parts of a dataset. Disjoint; together they cover every row. */
export interface Split {
  train: Int32Array;
  valid: Int32Array;
  test: Int32Array;
}

export interface SplitOptions {
  /** Fraction of rows for validation. Default 0.1. */
  valid?: number;
  /** Fraction of rows for test. Default 0.1. */
  test?: number;
  /** Default 0. */
  seed?: number;
}

function fractions(fn: string, o: SplitOptions): [number, number] {
  const valid = o.valid ?? 0.1;
  const test = o.test ?? 0.1;
  for (const [name, f] of [['valid', valid], ['test', test]] as const) {
    if (!(f >= 0 && f < 1)) throw invalidArgument(fn, name, 'a fraction in [0, 1)', f);
  }
  if (!(valid + test < 1)) throw invalidArgument(fn, 'valid + test', 'a sum below 1, leaving rows to train on', valid + test);
  return [valid, test];
}

/**
 * Splits rows 0..n-1 at random: round(n·valid) rows for validation, round(n·test) for test, the
 * rest for training. Each part is sorted ascending.
 *
 * ```ts
 * const { train, valid, test } = split(1000, { valid: 0.1, test: 0.1, seed: 7 }); // 800, 100, 100 rows
 * ```
 */
export function split(n: number, options: SplitOptions = {}): Split {
  const [fv, ft] = fractions('split', options);
  const perm = shuffledIndices(n, options.seed ?? 0);
  const nv = Math.round(n * fv);
  const nt = Math.round(n * ft);
  const valid = perm.slice(0, nv).sort();
  const test = perm.slice(nv, nv + nt).sort();
  const train = perm.slice(nv + nt).sort();
  return { train, valid, test };
}

/**
 * Splits rows by group (for example by user), so that all rows of a group land in the same part.
 * A group's part depends only on (seed, group id) — not on which other groups are present — so two
 * tables keyed by the same ids (events and examples, say) split the same way. Fractions therefore
 * hold for groups on average, not exactly. Each part is sorted ascending.
 *
 * ```ts
 * const { train, valid } = splitByGroup(userIds, { valid: 0.1, test: 0.1, seed: 42 });
 * ```
 */
export function splitByGroup(groups: ArrayLike<number>, options: SplitOptions = {}): Split {
  const [fv, ft] = fractions('splitByGroup', options);
  const seed = options.seed ?? 0;
  const parts = [[], [], []] as number[][];
  const memo = new Map<number, number>();
  for (let r = 0; r < groups.length; r++) {
    const g = groups[r]!;
    let p = memo.get(g);
    if (p === undefined) {
      p = groupPart(g, seed, fv, ft);
      memo.set(g, p);
    }
    parts[p]!.push(r);
  }
  return { train: Int32Array.from(parts[0]!), valid: Int32Array.from(parts[1]!), test: Int32Array.from(parts[2]!) };
}

/** 0 = train, 1 = valid, 2 = test: where group g goes under splitByGroup with this seed and fractions. */
export function groupPart(g: number, seed: number, valid = 0.1, test = 0.1): number {
  const u = hashSeed(seed, 0x9709, g) / 4294967296;
  return u < valid ? 1 : u < valid + test ? 2 : 0;
}

/**
 * Shard i of n: a contiguous block of `indices`. Shards are disjoint, together cover `indices`,
 * and their sizes differ by at most one (the first `length % n` shards get one more). Returns a
 * view (subarray), not a copy.
 *
 * ```ts
 * const mine = shard(split.train, workerIndex, workerCount);
 * ```
 */
export function shard(indices: Int32Array, i: number, n: number): Int32Array {
  if (!(Number.isInteger(n) && n >= 1)) throw invalidArgument('shard', 'n', 'an integer ≥ 1', n);
  if (!(Number.isInteger(i) && i >= 0 && i < n)) throw invalidArgument('shard', 'i', `an integer in [0, ${n})`, i);
  const base = Math.floor(indices.length / n);
  const extra = indices.length % n;
  const start = i * base + Math.min(i, extra);
  return indices.subarray(start, start + base + (i < extra ? 1 : 0));
}

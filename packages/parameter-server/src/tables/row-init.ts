/**
 * The initial value of an embedding row, from (seed, table name, id) alone: what every process
 * computes for a row it has never seen, so servers, workers, threads and a resumed run agree on it
 * without talking. RowTable (ids created on first pull) and SharedTables (every row made at
 * allocation) both use it, so a row starts with the same bits whichever store holds it.
 */
import { Random, hashSeed } from '@loom/data';

/** FNV-1a of a table name: a stable number to seed its rows with. */
function nameHash(name: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

const TWO32 = 4294967296;

/** Writes `id`'s initial row (D values ~ N(0, std²)) into `out` at `at`. */
export type RowInit = (id: number, out: Float32Array, at?: number) => void;

/**
 * The initialiser of table `name`'s rows of `dim` values ~ N(0, std²) (std 1, as torch.nn.Embedding).
 * Each call reseeds one generator, so rows can be made in any order, by any process, lazily or all
 * at once. Not for use from two threads at the same time: each thread makes its own.
 *
 * @example
 * const init = rowInit(42, 'user', 32);
 * const a = new Float32Array(32), b = new Float32Array(32);
 * init(7, a); init(7, b); // a and b hold the same bits
 */
export function rowInit(seed: number, name: string, dim: number, std = 1): RowInit {
  const seedBase = hashSeed(seed, nameHash(name));
  const rng = new Random(0);
  return (id, out, at = 0) => {
    rng.reseed(hashSeed(seedBase, id % TWO32, Math.floor(id / TWO32)));
    for (let d = 0; d < dim; d++) out[at + d] = std * rng.normal();
  };
}

/**
 * Which server owns which keys. The keys are the positions of the flat parameter vector
 * (@loom/tensor-core's parameterLayout order), and server i of S owns one contiguous range of them,
 * ps-lite style. Servers and workers both call this one function, so they agree on the split from
 * (P, S) alone and nothing about it travels over the network except as a check.
 */

/** Range boundaries fall on multiples of 16 floats (64 bytes), like the local sync slices. */
export const SHARD_ALIGN = 16;

/**
 * The [lo, hi) that shard `index` of `shards` owns in a vector of `size` parameters:
 * lo = ⌊index·size/shards⌋ rounded down to a multiple of 16, and hi is the next shard's lo (or
 * `size` for the last). The ranges tile [0, size) in order; a shard may be empty when size is small.
 *
 * @example
 * shardRange(5560, 2, 0); // [0, 2768]
 * shardRange(5560, 2, 1); // [2768, 5560]
 */
export function shardRange(size: number, shards: number, index: number): [number, number] {
  if (!(Number.isInteger(size) && size >= 0)) throw new RangeError(`shardRange: size must be an integer ≥ 0, got ${size}`);
  if (!(Number.isInteger(shards) && shards >= 1)) throw new RangeError(`shardRange: shards must be an integer ≥ 1, got ${shards}`);
  if (!(Number.isInteger(index) && index >= 0 && index < shards)) throw new RangeError(`shardRange: index ${index} is not in [0, ${shards})`);
  const start = (i: number) => (i === 0 ? 0 : i === shards ? size : Math.min(size, Math.floor(Math.floor((i * size) / shards) / SHARD_ALIGN) * SHARD_ALIGN));
  return [start(index), start(index + 1)];
}

/** Parses `i/S` (as `loom serve --shard` spells it). */
export function parseShard(spec: string): { index: number; count: number } {
  const m = /^(\d+)\/(\d+)$/.exec(spec);
  const index = m ? Number(m[1]) : NaN;
  const count = m ? Number(m[2]) : NaN;
  if (!(count >= 1 && index >= 0 && index < count)) throw new RangeError(`shard must be i/S with 0 ≤ i < S (e.g. 0/2), got '${spec}'`);
  return { index, count };
}

/**
 * Which server holds an id's row: a hash of the id, not a range of ids. Ranges would put the
 * newest articles (the largest ids, and the hottest) all on one server; a hash spreads hot and cold
 * ids alike. The salt keeps placement independent of the hashing inside a server's IdMap.
 */
import { hashId } from './id-map.js';

const PLACEMENT_SALT = 0x5bd1e995;

/** The shard, in [0, shards), that holds `id`'s row. Every process computes the same. */
export function shardOfId(id: number, shards: number): number {
  return hashId(id, PLACEMENT_SALT) % shards;
}

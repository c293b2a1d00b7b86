/**
 * The tables of a parameter server: the seam between the request handler (./handler.ts) and the
 * stores. A table is a store of parameters and optimizer state with a NetPolicy of its own
 * (./policy.ts: its clock and membership); the handler finds the table a request addresses in the
 * server's `Tables` by id, and tells every table when a worker is dropped, joins or pulls.
 *
 * (The registry itself, Tables, is ./tables.ts: it knows the row store's type, which implements
 * the interfaces here.)
 *
 * The dense key range of the flat parameter vector is id 0, named 'dense' (a ShardStore,
 * ./store.ts): what pull, push and pushpull address. Row-keyed embedding tables (protocol 3's
 * pullrows and pushrows, their ids in a key section, ./frame.ts) are RowStores (./row-store.ts,
 * over ../tables/row-table.ts), registered beside it as ids 1, 2, … and addressed by name, each on
 * the same NetPolicy with its own gradient type.
 */
import type { NetPolicy, PushOutcome } from './policy.js';

/** The dense parameter vector's table: the one every protocol 2 request addresses. */
export const DENSE_TABLE = { id: 0, name: 'dense' } as const;

/** What the handler needs of every table, whatever its keys. */
export interface Table {
  /** 'dense': a key range of the flat vector (DenseTable); 'rows': row-keyed, next. */
  readonly kind: 'dense' | 'rows';
  /** Updates applied so far. */
  readonly applied: number;
  /** The table's clock and membership: drops, joins and pulls go to every table's. */
  readonly policy: NetPolicy<unknown>;
  /** Called before an update starts to change the parameters (a handler finishes the replies still copying them). */
  beforeUpdate: (() => void) | null;
  /** Called after every update is stepped whole, with the new count (a checkpointer listens here). */
  onApply: ((applied: number) => void) | null;
  /** Steps what is left of an update stepped part by part. */
  settle(): void;
  /** Memory for a gradient of `floats` values sent in parts; back with `release` (refused) or `holdUntil` (taken: PushOutcome.readUntil). */
  receive(floats: number): Float32Array;
  release(payload: Float32Array): void;
  holdUntil(payload: Float32Array, readUntil: number): void;
  /** Settles and frees the table's received memory (the server is closing). */
  dispose(): void;
}

/** A contiguous key range [lo, hi) of the flat parameter vector (a ShardStore). */
export interface DenseTable extends Table {
  readonly kind: 'dense';
  readonly lo: number;
  readonly hi: number;
  /** P: the whole model's parameter count. */
  readonly size: number;
  readonly skippedNonFinite: number;
  /** Worker `rank`'s gradient of `step` for the whole range (see ShardStore.push). */
  push(rank: number, step: number, rows: number, batchRows: number, grad: Float32Array, o: { finite?: boolean; defer?: boolean; live?: readonly number[] }): PushOutcome;
  /** The parameters, at index key − lo, stepped at least on [0, upTo) (see ShardStore.paramsThrough). */
  paramsThrough(upTo: number): Float32Array;
}

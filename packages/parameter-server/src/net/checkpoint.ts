/**
 * Checkpoints of a parameter server's key range, in a run directory:
 *
 *   DIR/checkpoints/step-000000120/shard-0-of-2.safetensors   params (hi−lo) and state.<key> (hi−lo) per optimizer state vector
 *   DIR/checkpoints/step-000000120/shard-0-of-2.json          step, range, layout, optimizer, mode, data position, …
 *   DIR/checkpoints/step-000000120/shard-1-of-2.…             the other server's range, written by that server
 *
 * Each file is written to a temporary name, flushed to disk, and renamed into place, the tensors
 * before the JSON; so a crash at any moment leaves either no file or a whole one, and a shard's
 * checkpoint exists once its JSON does. A step's checkpoint is COMPLETE when the JSON of every shard
 * 0 … S−1 is there; the latest complete checkpoint is the highest such step — no pointer file that
 * several servers would race to write. A server keeps its last `keep` checkpoints and removes its
 * own files of older ones (never of the latest complete one).
 *
 * Row tables (protocol 3) add a rows file per shard and step, written before the JSON, a base or an
 * increment over the previous checkpoint (./row-checkpoint.ts); the JSON's `rows` names it, and
 * pruning never removes a step of the latest complete checkpoint's chain (its base and increments).
 *
 * The step is the number of updates applied: workers continue with step `step`, which is batch
 * `step mod B` of epoch ⌊step / B⌋ with B batches per epoch (`data` records both when the workers
 * told the server B). Together with the seed, that is the data position: every epoch's order
 * depends only on (seed, epoch).
 */
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, rmdirSync } from 'node:fs';
import { join } from 'node:path';
import { Tensor, decodeSafetensors, encodeSafetensors, parameterLayout } from '@loom/tensor-core';
import { CheckpointError } from './errors.js';
import { writeAtomic, type RowCheckpointer, type RowsRef } from './row-checkpoint.js';
import { denseModel, type ShardStore, type StoreOptions } from './store.js';

export const CHECKPOINT_FORMAT = 'loom-checkpoint';
export const CHECKPOINT_VERSION = 1;

/** A shard checkpoint's JSON. */
export interface CheckpointMeta {
  format: typeof CHECKPOINT_FORMAT;
  version: number;
  /** Updates applied: the parameters are the result of updates 0 … step − 1; workers continue with step `step`. */
  step: number;
  shard: number;
  shards: number;
  lo: number;
  hi: number;
  /** P, the whole model's parameter count. */
  size: number;
  model: { sizes: number[]; seed: number };
  /** The whole model's flat layout (names as PyTorch names them), to recognise another model's checkpoint. */
  layout: Array<{ name: string; offset: number; shape: number[] }>;
  optimizer: { name: string; hyperparameters: Record<string, unknown>; stateKeys: string[] };
  mode: string;
  staleness: number;
  workers: number;
  /** Where the workers are in the data: epoch and batch are present when they reported batches per epoch. */
  data: { step: number; stepsPerEpoch?: number; epoch?: number; batch?: number };
  /** The tensors' file, beside this one. */
  tensors: string;
  /** With row tables: this shard's rows file beside this one, a base or an increment (./row-checkpoint.ts). */
  rows?: RowsRef;
}

export const checkpointRoot = (dir: string) => join(dir, 'checkpoints');
const stepDir = (dir: string, step: number) => join(checkpointRoot(dir), `step-${String(step).padStart(9, '0')}`);
const shardName = (shard: number, shards: number) => `shard-${shard}-of-${shards}`;

function layoutOf(o: Pick<StoreOptions, 'sizes' | 'model'>): CheckpointMeta['layout'] {
  return parameterLayout(denseModel(o, 0)).map(({ name, offset, shape }) => ({ name, offset, shape: [...shape] }));
}

/**
 * Saves the store's range and optimizer state as the checkpoint of step `store.applied`.
 * Synchronous (a copy of the range is encoded, written and flushed); returns the JSON's path.
 */
export function saveCheckpoint(dir: string, store: ShardStore, data: { stepsPerEpoch?: number } = {}, keep = 3, rows?: RowCheckpointer): string {
  const o = store.o;
  const step = store.applied;
  const where = stepDir(dir, step);
  mkdirSync(where, { recursive: true });
  const name = shardName(o.shard, o.shards);
  const n = store.hi - store.lo;
  const tensors: Record<string, Tensor> = { params: new Tensor(store.params, [n]) };
  const state = store.optimizerState;
  for (const k of Object.keys(state)) tensors[`state.${k}`] = new Tensor(state[k]!, [n]);
  writeAtomic(join(where, `${name}.safetensors`), encodeSafetensors(tensors, { format: CHECKPOINT_FORMAT, step: String(step), shard: `${o.shard}/${o.shards}` }));
  const rowsRef = rows !== undefined && rows.stores.length > 0 ? rows.save(join(where, `${name}.rows`), `${name}.rows`, step, o.shard, o.shards) : undefined;
  const spe = data.stepsPerEpoch;
  const meta: CheckpointMeta = {
    format: CHECKPOINT_FORMAT, version: CHECKPOINT_VERSION, step, shard: o.shard, shards: o.shards, lo: store.lo, hi: store.hi, size: store.size,
    model: { sizes: o.sizes, seed: o.seed }, layout: layoutOf(o),
    optimizer: { name: o.optimizer, hyperparameters: { ...store.optimizerOptions }, stateKeys: Object.keys(state) },
    mode: o.mode, staleness: o.staleness, workers: o.workers,
    data: spe !== undefined && spe > 0 ? { step, stepsPerEpoch: spe, epoch: Math.floor(step / spe), batch: step % spe } : { step },
    tensors: `${name}.safetensors`,
    ...(rowsRef !== undefined ? { rows: rowsRef } : {}),
  };
  const path = join(where, `${name}.json`);
  writeAtomic(path, JSON.stringify(meta, null, 2) + '\n');
  prune(dir, o.shard, o.shards, keep);
  return path;
}

/** The steps that have a checkpoint directory, highest first. */
function steps(dir: string): number[] {
  const root = checkpointRoot(dir);
  if (!existsSync(root)) return [];
  return readdirSync(root)
    .flatMap((e) => {
      const m = /^step-(\d+)$/.exec(e);
      return m ? [Number(m[1])] : [];
    })
    .sort((a, b) => b - a);
}

function isComplete(dir: string, step: number, shards: number): boolean {
  for (let i = 0; i < shards; i++) if (!existsSync(join(stepDir(dir, step), `${shardName(i, shards)}.json`))) return false;
  return true;
}

/** The latest step whose checkpoint is complete for S shards, or null when there is none. */
export function latestCheckpoint(dir: string, shards: number): number | null {
  for (const s of steps(dir)) if (isComplete(dir, s, shards)) return s;
  return null;
}

/** Removes this shard's files of all but its `keep` newest checkpoints, never the latest complete one or newer. */
function prune(dir: string, shard: number, shards: number, keep: number): void {
  const name = shardName(shard, shards);
  const mine = steps(dir).filter((s) => existsSync(join(stepDir(dir, s), `${name}.json`)));
  const latest = latestCheckpoint(dir, shards) ?? -1;
  // The rows of the latest complete checkpoint need every step of its chain, from its base on.
  let floor = latest;
  try {
    floor = Math.min(latest, (JSON.parse(readFileSync(join(stepDir(dir, latest), `${name}.json`), 'utf8')) as CheckpointMeta).rows?.base ?? latest);
  } catch {
    /* no complete checkpoint yet, or not this shard's */
  }
  for (const s of mine.slice(keep)) {
    if (s >= floor) continue;
    const where = stepDir(dir, s);
    rmSync(join(where, `${name}.json`), { force: true }); // the JSON first: the checkpoint stops counting before its tensors go
    rmSync(join(where, `${name}.safetensors`), { force: true });
    rmSync(join(where, `${name}.rows`), { force: true });
    try {
      rmdirSync(where); // only when the other shards' files are gone too
    } catch {
      /* not empty */
    }
  }
}

/**
 * Loads the latest complete checkpoint under DIR/checkpoints into `store`, after checking that it
 * was saved by this shard of this model with this optimizer. Returns its metadata and the notes
 * on settings that differ but are allowed to (learning rate, mode, workers). Throws
 * CheckpointError naming the file and the field.
 */
export function loadCheckpoint(dir: string, store: ShardStore, rows?: RowCheckpointer): { meta: CheckpointMeta; path: string; notes: string[] } {
  const o = store.o;
  const root = checkpointRoot(dir);
  if (!existsSync(root)) throw new CheckpointError(root, 'no such directory: nothing to resume (a run saves checkpoints with --checkpoint DIR)');
  const step = latestCheckpoint(dir, o.shards);
  if (step === null) {
    const found = steps(dir).flatMap((s) => readdirSync(stepDir(dir, s)).filter((f) => f.endsWith('.json')));
    const other = found.map((f) => /-of-(\d+)\.json$/.exec(f)?.[1]).find((k) => k !== undefined && Number(k) !== o.shards);
    throw new CheckpointError(root, other !== undefined
      ? `shards: the checkpoints are of ${other} shards; this server is shard ${o.shard} of ${o.shards}`
      : `no complete checkpoint (one with the JSON of every shard 0 … ${o.shards - 1}); found ${found.length} shard file(s)`);
  }
  const name = shardName(o.shard, o.shards);
  const path = join(stepDir(dir, step), `${name}.json`);
  let meta: CheckpointMeta;
  try {
    meta = JSON.parse(readFileSync(path, 'utf8')) as CheckpointMeta;
  } catch (e) {
    throw new CheckpointError(path, `not readable JSON (${(e as Error).message})`);
  }
  const expect = (field: string, found: unknown, wanted: unknown) => {
    if (JSON.stringify(found) !== JSON.stringify(wanted)) {
      throw new CheckpointError(path, `${field} is ${JSON.stringify(found)}, but this server has ${JSON.stringify(wanted)} (a checkpoint of another model, shard or optimizer)`);
    }
  };
  expect('format', meta?.format, CHECKPOINT_FORMAT);
  expect('version', meta.version, CHECKPOINT_VERSION);
  expect('step', meta.step, step);
  expect('size', meta.size, store.size);
  const layout = layoutOf(o);
  expect('layout.length', meta.layout?.length, layout.length);
  layout.forEach((e, i) => expect(`layout[${i}]`, meta.layout[i], e));
  expect('shard', [meta.shard, meta.shards], [o.shard, o.shards]);
  expect('range [lo, hi)', [meta.lo, meta.hi], [store.lo, store.hi]);
  expect('optimizer.name', meta.optimizer?.name, o.optimizer);
  const keys = Object.keys(store.optimizerState);
  expect('optimizer.stateKeys', meta.optimizer.stateKeys, keys);
  const tensorsPath = join(stepDir(dir, step), `${name}.safetensors`);
  let bytes: Uint8Array;
  try {
    bytes = readFileSync(tensorsPath);
  } catch (e) {
    throw new CheckpointError(tensorsPath, `cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  let tensors: ReturnType<typeof decodeSafetensors>['tensors'];
  try {
    ({ tensors } = decodeSafetensors(bytes, tensorsPath));
  } catch (e) {
    throw new CheckpointError(tensorsPath, (e as Error).message.replace(`${tensorsPath}: `, ''));
  }
  const n = store.hi - store.lo;
  const vector = (key: string): Float32Array => {
    const t = tensors[key];
    if (!(t instanceof Tensor) || t.data.length !== n) throw new CheckpointError(tensorsPath, `tensor '${key}': expected ${n} float32 values, found ${t ? t.data.length : 'none'}`);
    return t.data;
  };
  const hasRows = rows !== undefined && rows.stores.length > 0;
  if (hasRows !== (meta.rows !== undefined)) {
    throw new CheckpointError(path, hasRows ? 'rows: missing, but this server hosts row tables (a checkpoint of a run without them)' : `rows: names ${meta.rows!.file}, but this server hosts no row tables`);
  }
  // Every file is read and checked before anything is restored into the dense range.
  const restoreRows = hasRows ? rows!.prepare(rowChain(dir, step, name, path, meta.rows!), o.shard, o.shards) : () => {};
  store.restore(step, vector('params'), Object.fromEntries(keys.map((k) => [k, vector(`state.${k}`)])));
  restoreRows();
  const notes: string[] = [];
  const hp = meta.optimizer.hyperparameters ?? {};
  for (const [k, v] of Object.entries(store.optimizerOptions)) if (JSON.stringify(hp[k]) !== JSON.stringify(v)) notes.push(`optimizer ${k} was ${JSON.stringify(hp[k])}, now ${JSON.stringify(v)}`);
  if (meta.mode !== o.mode) notes.push(`mode was ${meta.mode}, now ${o.mode}`);
  if (meta.workers !== o.workers) notes.push(`workers were ${meta.workers}, now ${o.workers} (the data split changes)`);
  return { meta, path, notes };
}

/**
 * The rows files of the chain ending at `step`, base first, from the JSONs' `rows` refs. A step the
 * chain needs whose JSON is gone: CheckpointError naming that JSON.
 */
function rowChain(dir: string, step: number, name: string, path: string, ref: RowsRef): Array<{ path: string; ref: RowsRef; step: number }> {
  const chain: Array<{ path: string; ref: RowsRef; step: number }> = [];
  let at = step;
  let r: RowsRef = ref;
  let from = path;
  for (;;) {
    if (r === null || typeof r !== 'object' || (r.kind !== 'base' && r.kind !== 'increment')) throw new CheckpointError(from, `rows: expected {file, kind: base|increment, base, prev}, found ${JSON.stringify(r)}`);
    chain.unshift({ path: join(stepDir(dir, at), r.file), ref: r, step: at });
    if (r.kind === 'base') {
      if (r.base !== at) throw new CheckpointError(from, `rows.base is ${r.base}, but a base's is its own step ${at}`);
      return chain;
    }
    const prev = r.prev;
    if (!(typeof prev === 'number' && Number.isInteger(prev) && prev >= r.base && prev < at)) throw new CheckpointError(from, `rows.prev is ${JSON.stringify(prev)}: expected a step in [${r.base}, ${at})`);
    const prevPath = join(stepDir(dir, prev), `${name}.json`);
    let meta: CheckpointMeta;
    try {
      meta = JSON.parse(readFileSync(prevPath, 'utf8')) as CheckpointMeta;
    } catch (e) {
      throw new CheckpointError(prevPath, `missing or unreadable (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}): the rows increment of step ${at} follows step ${prev} (chain from base step ${r.base}); a gap in the chain cannot be resumed`);
    }
    if (meta.rows === undefined) throw new CheckpointError(prevPath, `rows: missing, but step ${at}'s increment follows this checkpoint`);
    if (meta.rows.base !== r.base) throw new CheckpointError(prevPath, `rows.base is ${meta.rows.base}, but step ${at}'s increment belongs to base ${r.base}`);
    from = prevPath;
    at = prev;
    r = meta.rows;
  }
}

/**
 * Checkpoints of a server's row tables, beside its dense checkpoint (./checkpoint.ts) in the same
 * step directory:
 *
 *   DIR/checkpoints/step-000000120/shard-0-of-2.rows   this shard's rows of every row table
 *
 * A rows file is a BASE (every row of every table) or an INCREMENT (the rows changed since the
 * previous checkpoint of this shard — RowTable.takeChanges — and the ids evicted since). Each row
 * is a record of its weights and optimizer state together (@loom/optimizer's RowLayout), so a
 * restored row never pairs new weights with old moments. The file is written atomically (temporary
 * name, fsync, rename) BEFORE the shard's JSON, and the JSON names it (`rows`: kind, base, prev);
 * so a step's rows exist whenever its checkpoint is complete, and a crash between two checkpoints
 * loses nothing that a complete one recorded.
 *
 * Resume at step N (the latest step complete on every shard, as for the dense range) follows the
 * chain N → prev → … → base through the JSONs, loads the base, then applies the increments in
 * order. A missing link, a truncated file, another table, dim or optimizer: CheckpointError naming
 * the file and the field, never a silent skip. A base is rewritten after `baseEvery` increments,
 * or sooner when the increments since the base hold more rows than it did, so a resume reads at
 * most a bounded chain; ./checkpoint.ts never prunes a step of the latest complete chain.
 *
 * The file (little-endian):
 *
 *   8 bytes   "LOOMROWS"
 *   4 bytes   H, the header's length
 *   H bytes   JSON header (RowsHeader), padded with spaces so that the data starts at a multiple of 8
 *   per table, in header order:  ids (R) float64 · evicted (E) float64 · touched (R) float64 ·
 *                                pending ids (P) float64 · their pull counts (P) float64 · records (R, size) float32
 *
 * `touched` is the step each row was last pulled or pushed at (for eviction: a resumed table evicts
 * what the uninterrupted one would). `pending` are the ids awaiting admission with their pull
 * counts (admitAfter > 1), whole in every file (the last file's count): they are not rows, and an
 * id's count changes at every pull.
 *
 * Ids are float64 because they are integers up to 2^53 (as on the wire, ./protocol.ts).
 * Not saved: a touch by a pull whose gradient never came (an increment holds the rows pushed since
 * the last one).
 */
import { closeSync, fsyncSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import { CheckpointError } from './errors.js';
import type { RowStore } from './row-store.js';

export const ROWS_MAGIC = 'LOOMROWS';
export const ROWS_VERSION = 1;

/** One table's section of a rows file. */
export interface RowsTableHeader {
  name: string;
  dim: number;
  optimizer: string;
  /** The record layout: weights then each optimizer state field, with its length in floats. */
  fields: Array<{ name: string; length: number }>;
  /** Floats per record (weights + state). */
  size: number;
  /** The table's update count (its policy clock, the sparse optimizer's step count) at this checkpoint. */
  applied: number;
  /** Rows in this file, ids evicted since the previous checkpoint (increments only), ids awaiting admission. */
  rows: number;
  evicted: number;
  pending: number;
}

export interface RowsHeader {
  kind: 'base' | 'increment';
  version: number;
  step: number;
  shard: number;
  shards: number;
  /** The base this file belongs to (itself for a base), and the checkpoint it follows (null for a base). */
  base: number;
  prev: number | null;
  tables: RowsTableHeader[];
  /** The whole file's length, to recognise a truncated one. */
  bytes: number;
}

/** What a dense checkpoint's JSON records of its rows file. */
export interface RowsRef {
  file: string;
  kind: 'base' | 'increment';
  base: number;
  prev: number | null;
}

/** One table's rows: ids (R), records (R, size), the step each was last touched (R), evicted ids (E), ids awaiting admission and their pull counts (P). */
export interface RowsSection {
  ids: Float64Array;
  records: Float32Array;
  touched: Float64Array;
  evicted: ArrayLike<number>;
  pending: { ids: Float64Array; counts: ArrayLike<number> };
}

const pad8 = (n: number) => (n + 7) & ~7;

/** Encodes a rows file: the header (its `bytes` filled in here) and each table's section. */
export function encodeRows(h: Omit<RowsHeader, 'bytes' | 'tables'> & { tables: Array<Omit<RowsTableHeader, 'rows' | 'evicted' | 'pending'>> }, sections: RowsSection[]): Uint8Array {
  const tables: RowsTableHeader[] = h.tables.map((t, i) => ({ ...t, rows: sections[i]!.ids.length, evicted: sections[i]!.evicted.length, pending: sections[i]!.pending.ids.length }));
  let data = 0;
  for (const t of tables) data += 16 * t.rows + 8 * t.evicted + 16 * t.pending + pad8(4 * t.rows * t.size);
  // The header holds the file's length, which counts the header: leave room for its digits.
  const room = pad8(12 + Buffer.byteLength(JSON.stringify({ ...h, tables, bytes: 0 })) + 16) - 12; // (the data starts 8-aligned)
  const total = 12 + room + data;
  const header = Buffer.from(JSON.stringify({ ...h, tables, bytes: total }).padEnd(room, ' '), 'utf8');
  if (header.length !== room) throw new Error('encodeRows: the header outgrew its room');
  const out = new Uint8Array(total);
  out.set(Buffer.from(ROWS_MAGIC, 'latin1'), 0);
  new DataView(out.buffer).setUint32(8, room, true);
  out.set(header, 12);
  let at = 12 + room;
  const put = (a: Float64Array | Float32Array) => {
    out.set(new Uint8Array(a.buffer, a.byteOffset, a.byteLength), at);
    at += a.byteLength;
  };
  sections.forEach((s, i) => {
    if (s.records.length !== s.ids.length * tables[i]!.size) throw new Error(`encodeRows: table '${tables[i]!.name}': ${s.ids.length} ids need ${s.ids.length} × ${tables[i]!.size} floats, got ${s.records.length}`);
    if (s.touched.length !== s.ids.length) throw new Error(`encodeRows: table '${tables[i]!.name}': ${s.ids.length} ids need as many touched steps, got ${s.touched.length}`);
    put(s.ids);
    put(Float64Array.from(s.evicted));
    put(s.touched);
    put(s.pending.ids);
    put(Float64Array.from(s.pending.counts));
    put(s.records);
    at = pad8(at);
  });
  return out;
}

/** Decodes a rows file; throws CheckpointError naming `path` and what is wrong. */
export function decodeRows(bytes: Uint8Array, path: string): { header: RowsHeader; sections: RowsSection[] } {
  if (bytes.length < 12) throw new CheckpointError(path, `truncated: ${bytes.length} bytes, not even the magic and the header's length`);
  if (Buffer.from(bytes.subarray(0, 8)).toString('latin1') !== ROWS_MAGIC) throw new CheckpointError(path, `not a rows checkpoint (expected it to start with ${ROWS_MAGIC}, found ${bytes.length} bytes)`);
  const hlen = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint32(8, true);
  if (12 + hlen > bytes.length) throw new CheckpointError(path, `truncated: the header needs ${hlen} bytes, the file has ${bytes.length - 12} after the magic`);
  let header: RowsHeader;
  try {
    header = JSON.parse(Buffer.from(bytes.subarray(12, 12 + hlen)).toString('utf8')) as RowsHeader;
  } catch (e) {
    throw new CheckpointError(path, `header is not readable JSON (${(e as Error).message})`);
  }
  if (header.version !== ROWS_VERSION) throw new CheckpointError(path, `version is ${JSON.stringify(header.version)}, this server reads ${ROWS_VERSION}`);
  if (header.bytes !== bytes.length) throw new CheckpointError(path, `bytes: the header says the file has ${header.bytes} bytes, found ${bytes.length} (truncated or appended to)`);
  if (!Array.isArray(header.tables)) throw new CheckpointError(path, 'tables: missing');
  // Copy each section out (aligned), so nothing keeps the file's buffer alive.
  let at = 12 + hlen;
  const sections = header.tables.map((t) => {
    const take64 = (n: number) => {
      const a = new Float64Array(n);
      new Uint8Array(a.buffer).set(bytes.subarray(at, at + 8 * n));
      at += 8 * n;
      return a;
    };
    if (!(Number.isInteger(t.rows) && Number.isInteger(t.evicted) && Number.isInteger(t.pending) && Number.isInteger(t.size))) throw new CheckpointError(path, `table '${t.name}': rows, evicted, pending and size must be integers, found ${JSON.stringify([t.rows, t.evicted, t.pending, t.size])}`);
    if (at + 8 * (2 * t.rows + t.evicted + 2 * t.pending) + 4 * t.rows * t.size > bytes.length) throw new CheckpointError(path, `table '${t.name}': ${t.rows} rows of ${t.size} floats run past the end of the file`);
    const ids = take64(t.rows);
    const evicted = take64(t.evicted);
    const touched = take64(t.rows);
    const pending = { ids: take64(t.pending), counts: take64(t.pending) };
    const records = new Float32Array(t.rows * t.size);
    new Uint8Array(records.buffer).set(bytes.subarray(at, at + 4 * records.length));
    at = pad8(at + 4 * records.length);
    return { ids, records, touched, evicted, pending };
  });
  return { header, sections };
}

/** Writes a file whole or not at all: a temporary file, flushed, then renamed into place. */
export function writeAtomic(path: string, bytes: Uint8Array | string): void {
  const tmp = `${path}.tmp-${process.pid}`;
  const fd = openSync(tmp, 'w');
  try {
    writeSync(fd, typeof bytes === 'string' ? Buffer.from(bytes) : bytes);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
}

const tableHeader = (s: RowStore): Omit<RowsTableHeader, 'rows' | 'evicted' | 'pending'> => ({
  name: s.name, dim: s.dim, optimizer: s.o.spec.optimizer, fields: s.table.layout.fields.map((f) => ({ name: f.name, length: f.length })), size: s.table.layout.size, applied: s.applied,
});

/**
 * A shard's row-table checkpoints: decides base or increment, writes the file, and remembers the
 * chain (the last checkpoint, its base, the increments since) in memory. One per server.
 */
export class RowCheckpointer {
  /** The last checkpoint saved or resumed from, and the chain since its base. */
  private last: number | null = null;
  private base = 0;
  private increments = 0;
  private baseRows = 0;
  private rowsSinceBase = 0;

  /**
   * @param baseEvery a base after this many increments (default 8); also when the increments since
   *   the base hold more rows than the base did.
   */
  constructor(
    readonly stores: RowStore[],
    readonly baseEvery = 8,
  ) {}

  /** Writes this shard's rows at `step` to `path` (atomically); returns what the JSON records. Synchronous. */
  save(path: string, file: string, step: number, shard: number, shards: number): RowsRef {
    const changes = this.stores.map((s) => s.table.takeChanges()); // (always taken: the dirty marks restart here)
    const changed = changes.reduce((a, c) => a + c.ids.length, 0);
    const asBase = this.last === null || this.increments >= this.baseEvery || this.rowsSinceBase + changed > Math.max(this.baseRows, 1024);
    const sections: RowsSection[] = this.stores.map((s, i) => ({ ...(asBase ? { ...s.table.snapshot(), evicted: [] } : changes[i]!), pending: s.table.pending() }));
    const ref: RowsRef = asBase ? { file, kind: 'base', base: step, prev: null } : { file, kind: 'increment', base: this.base, prev: this.last };
    writeAtomic(path, encodeRows({ kind: ref.kind, version: ROWS_VERSION, step, shard, shards, base: ref.base, prev: ref.prev, tables: this.stores.map(tableHeader) }, sections));
    if (asBase) {
      this.base = step;
      this.increments = 0;
      this.baseRows = sections.reduce((a, s) => a + s.ids.length, 0);
      this.rowsSinceBase = 0;
    } else {
      this.increments++;
      this.rowsSinceBase += changed;
    }
    this.last = step;
    return ref;
  }

  /**
   * Reads and checks every file of the chain ending at its last step (`chain`: base first, each with
   * the ref its JSON recorded; see ./checkpoint.ts), and returns what restores the tables from them:
   * nothing changes until every file has been read and found good. Restore only into tables that
   * have taken nothing. Throws CheckpointError naming the file and the field.
   */
  prepare(chain: Array<{ path: string; ref: RowsRef; step: number }>, shard: number, shards: number): () => void {
    let prev: number | null = null;
    const files = chain.map(({ path, step }, k) => {
      let bytes: Uint8Array;
      try {
        bytes = readFileSync(path);
      } catch (e) {
        throw new CheckpointError(path, `cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})${k > 0 ? `: increment ${k} of the chain from base step ${chain[0]!.step}` : ''}`);
      }
      const { header: h, sections } = decodeRows(bytes, path);
      const expect = (field: string, found: unknown, wanted: unknown) => {
        if (JSON.stringify(found) !== JSON.stringify(wanted)) throw new CheckpointError(path, `${field} is ${JSON.stringify(found)}, but ${JSON.stringify(wanted)} was expected (a rows file of another table, optimizer, shard or chain)`);
      };
      expect('kind', h.kind, k === 0 ? 'base' : 'increment');
      expect('step', h.step, step);
      expect('[shard, shards]', [h.shard, h.shards], [shard, shards]);
      expect('base', h.base, chain[0]!.step);
      expect('prev', h.prev, prev);
      expect('tables.length', h.tables.length, this.stores.length);
      this.stores.forEach((s, i) => {
        const want = tableHeader(s);
        const t = h.tables[i]!;
        for (const f of ['name', 'dim', 'optimizer', 'fields', 'size'] as const) expect(`tables[${i}].${f}`, t[f], want[f]);
        if (k === chain.length - 1) {
          const admitAfter = s.o.spec.admitAfter ?? 1;
          const { ids, counts } = sections[i]!.pending;
          for (let j = 0; j < ids.length; j++) {
            const c = counts[j]!;
            if (!(Number.isSafeInteger(ids[j]!) && ids[j]! >= 0 && Number.isInteger(c) && c >= 1 && c < admitAfter)) {
              throw new CheckpointError(path, `tables[${i}].pending: id ${ids[j]} with ${c} pulls, but table '${s.name}' admits an id at its pull ${admitAfter} (a checkpoint of another --admit-after)`);
            }
          }
        }
      });
      prev = step;
      return { header: h, sections };
    });
    return () => {
      for (const { sections } of files) this.stores.forEach((s, i) => s.table.restore(sections[i]!.ids, sections[i]!.records, sections[i]!.evicted, sections[i]!.touched));
      const lastSections = files.at(-1)!.sections;
      this.stores.forEach((s, i) => s.table.restorePending(lastSections[i]!.pending.ids, lastSections[i]!.pending.counts));
      const last = files.at(-1)!.header;
      this.stores.forEach((s, i) => s.restore(last.tables[i]!.applied, last.step));
      const rows = (k: number) => files[k]!.sections.reduce((a, x) => a + x.ids.length, 0);
      this.last = last.step;
      this.base = chain[0]!.step;
      this.increments = chain.length - 1;
      this.baseRows = rows(0);
      this.rowsSinceBase = 0;
      for (let k = 1; k < files.length; k++) this.rowsSinceBase += rows(k);
    };
  }
}

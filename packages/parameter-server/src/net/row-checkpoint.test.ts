// Row-table checkpoints: a base, then increments of only the rows changed (and ids evicted) since
// the previous checkpoint; a resume replays the chain and continues bitwise; a gap in the chain, a
// truncated file or another table's file is refused naming the file and the field.
import { describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, readdirSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ShardStore, type StoreOptions } from './store.js';
import { RowStore, type RowTableSpec } from './row-store.js';
import { RowCheckpointer, decodeRows } from './row-checkpoint.js';
import { latestCheckpoint, loadCheckpoint, saveCheckpoint } from './checkpoint.js';
import { ParameterServer } from './server.js';

const dense: StoreOptions = { sizes: [3, 4, 2], seed: 1, optimizer: 'adam', lr: 0.01, mode: 'sync', staleness: 0, workers: 1, shard: 0, shards: 1, nonFinite: 'reject' };
const specs: RowTableSpec[] = [
  { name: 'user', dim: 4, optimizer: 'sparse-adam', lr: 0.05, admitAfter: 2 },
  { name: 'article', dim: 3, optimizer: 'rowwise-adagrad', lr: 0.1, evictAfter: 3 },
];

/** A shard: its dense range, its row tables, and their checkpointer. */
function shard(o: { specs?: RowTableSpec[]; baseEvery?: number } = {}) {
  const store = new ShardStore(dense);
  const rows = (o.specs ?? specs).map((spec) => new RowStore({ spec, seed: 7, mode: 'sync', staleness: 0, workers: 1, nonFinite: 'reject' }));
  return { store, rows, cp: new RowCheckpointer(rows, o.baseEvery) };
}

/** Training step t: a few ids per table (a window that moves, so rows stop being touched), pulled then pushed. */
function step(s: ReturnType<typeof shard>, t: number): void {
  const n = s.store.hi - s.store.lo;
  s.store.push(0, t, 8, 8, Float32Array.from({ length: n }, (_, i) => Math.sin(t + i)));
  for (const r of s.rows) {
    const ids = Float64Array.from([t, t + 1, t + 2, 1e12 + (t % 3), t + 1]);
    r.pull(ids, new Float32Array(ids.length * r.dim), t);
    const grads = Float32Array.from({ length: ids.length * r.dim }, (_, i) => Math.cos(t * 7 + i));
    r.push(0, t, 8, 8, { ids, grads }, true);
  }
}

/** A table's rows sorted by id: ids and their records (weights and state). */
function sorted(r: RowStore) {
  const { ids, records } = r.table.snapshot();
  const size = r.table.layout.size;
  const order = [...ids.keys()].sort((a, b) => ids[a]! - ids[b]!);
  return { ids: order.map((k) => ids[k]!), records: order.flatMap((k) => [...records.subarray(k * size, (k + 1) * size)]) };
}

const save = (dir: string, s: ReturnType<typeof shard>) => saveCheckpoint(dir, s.store, {}, 3, s.cp);
const rowsFile = (dir: string, step: number) => join(dir, 'checkpoints', `step-${String(step).padStart(9, '0')}`, 'shard-0-of-1.rows');
const json = (dir: string, step: number) => join(dir, 'checkpoints', `step-${String(step).padStart(9, '0')}`, 'shard-0-of-1.json');

describe('row-table checkpoints', () => {
  it('a base, then increments of only the changed rows and evicted ids; a resume replays them and continues bitwise', () => {
    const dir = mkdtempSync(join(tmpdir(), 'loom-rows-'));
    const a = shard();
    for (let t = 0; t < 12; t++) {
      step(a, t);
      if (t % 3 === 2) save(dir, a); // steps 3, 6, 9, 12
    }
    const metas = [3, 6, 9, 12].map((s) => JSON.parse(readFileSync(json(dir, s), 'utf8')).rows);
    expect(metas).toEqual([
      { file: 'shard-0-of-1.rows', kind: 'base', base: 3, prev: null },
      { file: 'shard-0-of-1.rows', kind: 'increment', base: 3, prev: 3 },
      { file: 'shard-0-of-1.rows', kind: 'increment', base: 3, prev: 6 },
      { file: 'shard-0-of-1.rows', kind: 'increment', base: 3, prev: 9 },
    ]);
    // Pruning kept every step of the chain (keep = 3 would otherwise have dropped step 3).
    expect(readdirSync(join(dir, 'checkpoints')).length).toBe(4);
    const inc = decodeRows(readFileSync(rowsFile(dir, 12)), rowsFile(dir, 12));
    // Steps 9, 10, 11 touched ids 9 … 13 and three of 1e12 + k: 8 rows per table changed, not the
    // table — 7 of user, where id 13, pulled once, still waits for admission.
    expect(inc.header.tables.map((t) => t.rows)).toEqual([7, 8]);
    expect(inc.header.tables[0]!.pending).toBeGreaterThan(0);
    expect(a.rows[0]!.table.size).toBeGreaterThan(8);
    // article evicts rows untouched for 3 steps: the increment names the ids evicted since step 9.
    expect(inc.header.tables[1]!.evicted).toBeGreaterThan(0);
    expect([...inc.sections[1]!.evicted].every((id) => !a.rows[1]!.table.has(id))).toBe(true);
    expect(inc.header.tables.map((t) => t.applied)).toEqual([12, 12]);

    const b = shard();
    const { meta } = loadCheckpoint(dir, b.store, b.cp);
    expect(meta.step).toBe(12);
    for (let i = 0; i < 2; i++) {
      expect(sorted(b.rows[i]!)).toEqual(sorted(a.rows[i]!));
      expect(b.rows[i]!.applied).toBe(12);
    }
    // user admits an id at its second pull: the ids seen once are waiting, after the resume too.
    expect(a.rows[0]!.table.stats().pending).toBeGreaterThan(0);
    expect([...b.rows[0]!.table.pending().ids].sort()).toEqual([...a.rows[0]!.table.pending().ids].sort());
    // Both go on: the same rows, weights and optimizer state to the bit, and the next checkpoint
    // of the resumed shard is an increment over step 12.
    for (let t = 12; t < 15; t++) {
      step(a, t);
      step(b, t);
    }
    for (let i = 0; i < 2; i++) expect(sorted(b.rows[i]!)).toEqual(sorted(a.rows[i]!));
    expect([...b.rows[0]!.table.pending().ids].sort()).toEqual([...a.rows[0]!.table.pending().ids].sort());
    expect(b.store.params).toEqual(a.store.params);
    save(dir, b);
    expect(JSON.parse(readFileSync(json(dir, 15), 'utf8')).rows).toMatchObject({ kind: 'increment', base: 3, prev: 12 });
    const c = shard();
    loadCheckpoint(dir, c.store, c.cp);
    for (let i = 0; i < 2; i++) expect(sorted(c.rows[i]!)).toEqual(sorted(a.rows[i]!));
  });

  it('writes a new base after `baseEvery` increments, and prunes the chains before it', () => {
    const dir = mkdtempSync(join(tmpdir(), 'loom-rows-'));
    const a = shard({ baseEvery: 2 });
    for (let t = 0; t < 7; t++) {
      step(a, t);
      save(dir, a);
    }
    const kinds = readdirSync(join(dir, 'checkpoints')).sort().map((d) => JSON.parse(readFileSync(join(dir, 'checkpoints', d, 'shard-0-of-1.json'), 'utf8')).rows);
    // Bases at 1, 4, 7; with keep 3 the steps before the latest chain's base (7) beyond the newest three are gone.
    expect(kinds.map((r) => `${r.kind[0]}${r.base}`)).toEqual(['i4', 'i4', 'b7']);
    const b = shard({ baseEvery: 2 });
    loadCheckpoint(dir, b.store, b.cp);
    for (let i = 0; i < 2; i++) expect(sorted(b.rows[i]!)).toEqual(sorted(a.rows[i]!));
  });

  it('a missing increment, a truncated file or another table: CheckpointError naming the file and the field, nothing restored', () => {
    const dir = mkdtempSync(join(tmpdir(), 'loom-rows-'));
    const a = shard();
    for (let t = 0; t < 4; t++) {
      step(a, t);
      save(dir, a); // base 1, increments 2, 3, 4
    }
    expect(latestCheckpoint(dir, 1)).toBe(4);
    // Another table's dim, and another optimizer:
    const dim = shard({ specs: [{ ...specs[0]!, dim: 5 }, specs[1]!] });
    expect(() => loadCheckpoint(dir, dim.store, dim.cp)).toThrow(`${rowsFile(dir, 1)}: tables[0].dim is 4, but 5 was expected`);
    const admit = shard({ specs: [{ ...specs[0]!, admitAfter: 1 }, specs[1]!] });
    expect(() => loadCheckpoint(dir, admit.store, admit.cp)).toThrow(/step-000000004\/shard-0-of-1\.rows: tables\[0\]\.pending: id \d+ with 1 pulls, but table 'user' admits an id at its pull 1 \(a checkpoint of another --admit-after\)$/);
    const opt = shard({ specs: [specs[0]!, { ...specs[1]!, optimizer: 'adagrad' }] });
    expect(() => loadCheckpoint(dir, opt.store, opt.cp)).toThrow(`${rowsFile(dir, 1)}: tables[1].optimizer is "rowwise-adagrad", but "adagrad" was expected`);
    // A server without row tables, and one with them given a dense-only checkpoint:
    expect(() => loadCheckpoint(dir, new ShardStore(dense))).toThrow(`${json(dir, 4)}: rows: names shard-0-of-1.rows, but this server hosts no row tables`);
    // A truncated rows file (the rename makes this a disk fault, never a crash):
    const bytes = readFileSync(rowsFile(dir, 3));
    writeFileSync(rowsFile(dir, 3), bytes.subarray(0, bytes.length - 5));
    const t = shard();
    expect(() => loadCheckpoint(dir, t.store, t.cp)).toThrow(`${rowsFile(dir, 3)}: bytes: the header says the file has ${bytes.length} bytes, found ${bytes.length - 5}`);
    expect([t.store.applied, t.rows[0]!.table.size]).toEqual([0, 0]); // every file is checked before anything is restored
    writeFileSync(rowsFile(dir, 3), bytes);
    truncateSync(rowsFile(dir, 2), 10);
    expect(() => loadCheckpoint(dir, shard().store, shard().cp)).toThrow(`${rowsFile(dir, 2)}: truncated`);
    // A gap: step 3's checkpoint is gone, so step 4's increment cannot be applied.
    rmSync(json(dir, 3));
    const g = shard();
    expect(() => loadCheckpoint(dir, g.store, g.cp)).toThrow(`${json(dir, 3)}: missing or unreadable (ENOENT): the rows increment of step 4 follows step 3 (chain from base step 1); a gap in the chain cannot be resumed`);
  });

  for (const rowMode of ['sync', 'async'] as const) {
    it(`a server saves a due checkpoint only once its ${rowMode} row tables have the step's rows (they travel after the dense push)`, async () => {
      const dir = mkdtempSync(join(tmpdir(), 'loom-rows-'));
      const server = await ParameterServer.start({ ...dense, token: 't', rowTables: [specs[0]!], rowMode, checkpoint: { dir, every: 2 } });
      const rows = server.rowTables.user!;
      const n = server.store.hi - server.store.lo;
      const ids = Float64Array.from([1, 2, 3]);
      for (let t = 0; t < 4; t++) {
        rows.pull(ids, new Float32Array(12), t);
        server.store.push(0, t, 8, 8, Float32Array.from({ length: n }, (_, i) => Math.sin(t + i)));
        if (t === 1) expect(latestCheckpoint(dir, 1)).toBe(null); // dense update 2 applied, step 1's rows not yet here
        rows.push(0, t, 8, 8, { ids, grads: Float32Array.from({ length: 12 }, (_, i) => Math.cos(t + i)) }, true);
        if (t === 1) expect(latestCheckpoint(dir, 1)).toBe(2);
      }
      expect(latestCheckpoint(dir, 1)).toBe(4);
      const h = decodeRows(readFileSync(rowsFile(dir, 4)), rowsFile(dir, 4)).header;
      expect(h.tables[0]!.applied).toBe(4); // every push of steps 0 … 3, none of step 4
      await server.close();
      const resumed = await ParameterServer.start({ ...dense, token: 't', rowTables: [specs[0]!], rowMode, resume: dir });
      expect(sorted(resumed.rowTables.user!)).toEqual(sorted(rows));
      expect(resumed.rowTables.user!.applied).toBe(4);
      await resumed.close();
    });
  }
});

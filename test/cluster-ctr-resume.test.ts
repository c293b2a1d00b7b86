// `loom train --task ctr --cluster local:2,2 --mode sync` with row-table checkpoints, in real
// processes of the built CLI (run `pnpm -r run build` first): the whole cluster is killed with
// SIGKILL between two checkpoints, `--resume` continues from the latest step both servers
// completed (a base and its increments), and the run ends with the very bits of an uninterrupted
// one — every table row and every dense parameter. Then admission and eviction counts through the
// CLI, and a rows file with a gap in its chain refused by name.
import { afterEach, describe, expect, it } from 'vitest';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { loadSafetensors } from '@loom/tensor-core';
import { MAIN, sandbox } from './harness.js';

const { dir, env } = sandbox('ctr-resume');
/**
 * Sync tables (bitwise), checkpoints every 4 updates (175 per epoch), rows untouched for 40 steps
 * evicted. (Not --admit-after: with 2 workers, which worker's pull admits an id — and so which reads
 * the default — depends on arrival order, so two uninterrupted runs differ already.)
 */
const RUN = ['train', '--task', 'ctr', '--dataset', 'news-clicks', '--cluster', 'local:2,2', '--mode', 'sync', '--seed', '3', '--epochs', '3', '--checkpoint-every', '4', '--evict-after', '40'];
const stepDir = (run: string, step: number) => join(dir, run, 'checkpoints', `step-${String(step).padStart(9, '0')}`);

const pids = new Set<number>();
afterEach(() => {
  const alive = [...pids].filter((pid) => {
    try {
      process.kill(pid, 0);
      return true;
    } catch {
      return false;
    }
  });
  for (const pid of alive) process.kill(pid, 'SIGKILL');
  pids.clear();
  expect(alive, 'processes left running').toEqual([]);
});

function loom(...args: string[]) {
  const r = spawnSync(process.execPath, [MAIN, ...args], { encoding: 'utf8', cwd: dir, env, timeout: 240_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function childrenOf(pid: number): number[] {
  const r = spawnSync('ps', ['-o', 'pid=', '--ppid', String(pid)], { encoding: 'utf8' });
  return r.stdout.trim().split('\n').filter((l) => l.trim() !== '').map(Number);
}

const json = (run: string, step: number, shard: number) => JSON.parse(readFileSync(join(dir, run, 'checkpoints', `step-${String(step).padStart(9, '0')}`, `shard-${shard}-of-2.json`), 'utf8'));

describe('loom train --task ctr --cluster: row-table checkpoints', () => {
  it('kill -9 of the whole cluster between checkpoints, then --resume: the final tables and dense parameters equal an uninterrupted run\'s, bitwise', async () => {
    const full = loom(...RUN, '--out', 'full');
    expect(full.code, full.stderr).toBe(0);

    const cut = spawn(process.execPath, [MAIN, ...RUN, '--out', 'cut'], { cwd: dir, env });
    pids.add(cut.pid!);
    const exited = new Promise((r) => cut.once('exit', r));
    await new Promise<void>((resolve, reject) => {
      createInterface({ input: cut.stdout! }).on('line', (l) => /^epoch 1: /.test(l) && resolve());
      void exited.then(() => reject(new Error('the run ended before epoch 1')));
    });
    // Cut the power at once when the newest checkpoint both servers completed is an increment (so
    // that the resume replays a chain), within a few more steps.
    for (let tries = 0; tries < 200; tries++) {
      const done = readdirSync(join(dir, 'cut', 'checkpoints')).sort().reverse()
        .find((d) => [0, 1].every((k) => existsSync(join(dir, 'cut', 'checkpoints', d, `shard-${k}-of-2.json`))));
      if (done !== undefined && [0, 1].every((k) => JSON.parse(readFileSync(join(dir, 'cut', 'checkpoints', done, `shard-${k}-of-2.json`), 'utf8')).rows?.kind === 'increment')) break;
      await new Promise((r) => setTimeout(r, 2));
    }
    for (const pid of [...childrenOf(cut.pid!), cut.pid!]) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* already gone */
      }
    }
    await exited;
    const steps = readdirSync(join(dir, 'cut', 'checkpoints')).map((d) => Number(/\d+/.exec(d)![0])).sort((a, b) => a - b);
    expect(steps.length).toBeGreaterThan(0);
    expect(steps.at(-1)!).toBeLessThan(525); // killed before the end

    // The latest step both servers completed, and its chain on each (read now: the resumed run prunes it later).
    const complete = steps.filter((s) => [0, 1].every((shard) => existsSync(join(stepDir('cut', s), `shard-${shard}-of-2.json`))));
    const latest = complete.at(-1)!;
    expect(latest).toBeGreaterThanOrEqual(170);
    const chain = [0, 1].map((shard) => {
      const links: string[] = [];
      for (let s = latest; ; ) {
        const r = json('cut', s, shard).rows;
        links.unshift(`${r.kind} ${s}`);
        if (r.kind === 'base') break;
        s = r.prev;
      }
      return links;
    });
    console.log(`killed after checkpoint ${steps.at(-1)}; resuming at update ${latest}; chains: ${chain.map((c) => c.join(' → ')).join(' | ')}`);

    const resumed = loom(...RUN, '--resume', 'cut');
    expect(resumed.code, resumed.stderr).toBe(0);
    expect(resumed.stdout).toContain(`from its checkpoint at update ${latest}`);

    const a = loadSafetensors(join(dir, 'full', 'model.safetensors')).tensors;
    const b = loadSafetensors(join(dir, 'cut', 'model.safetensors')).tensors;
    expect(Object.keys(b).sort()).toEqual(Object.keys(a).sort());
    for (const name of Object.keys(a)) expect(b[name]!.data, name).toEqual(a[name]!.data);
    // The metrics go on where they were: the epochs before the checkpoint's are kept (the one it
    // falls in is recorded again; one the coordinator had not written when it was killed stays missing).
    const metrics = readFileSync(join(dir, 'cut', 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    const epochs = metrics.map((m) => m.epoch);
    expect(epochs[0]).toBe(1);
    expect(epochs.at(-1)).toBe(3);
    expect(new Set(epochs).size).toBe(epochs.length);
  }, 600_000);

  it('a gap in the chain: --resume refuses it naming the missing checkpoint, exit 2, nothing started', () => {
    const run = join(dir, 'cut');
    expect(existsSync(run)).toBe(true);
    // The latest step's chain, on shard 0: remove the checkpoint its increment follows.
    const steps = readdirSync(join(run, 'checkpoints')).map((d) => Number(/\d+/.exec(d)![0])).sort((a, b) => b - a);
    const latest = steps.find((s) => json('cut', s, 0).rows.kind === 'increment' && existsSync(join(run, 'checkpoints', `step-${String(s).padStart(9, '0')}`, 'shard-1-of-2.json')));
    expect(latest, 'an increment among the checkpoints').toBeDefined();
    for (const s of steps) if (s > latest!) rmSync(join(run, 'checkpoints', `step-${String(s).padStart(9, '0')}`), { recursive: true });
    const prev = json('cut', latest!, 0).rows.prev as number;
    const missing = join(run, 'checkpoints', `step-${String(prev).padStart(9, '0')}`, 'shard-0-of-2.json');
    rmSync(missing);
    const r = loom(...RUN, '--resume', 'cut');
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`loom train: --resume: ${missing}: missing or unreadable (ENOENT): the rows increment of step ${latest} follows step ${prev}`);
  });

  it('admission and eviction: per-epoch counts of every table in metrics.jsonl, one thread and --cluster; threads refuse the flags', () => {
    const flags = ['train', '--task', 'ctr', '--dataset', 'news-clicks', '--seed', '4', '--epochs', '2', '--admit-after', '3', '--evict-after', '16', '--json'];
    for (const [out, where] of [['one', ['--workers', '1']], ['two', ['--cluster', 'local:2,1']]] as const) {
      const r = loom(...flags, ...where, '--out', out);
      expect(r.code, r.stderr).toBe(0);
      const metrics = readFileSync(join(dir, out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
      expect(metrics).toHaveLength(2);
      for (const m of metrics) {
        for (const t of ['user', 'article', 'category', 'subcategory']) {
          const s = m.tables[t];
          expect(Object.keys(s).sort(), `${out} ${t}`).toEqual(['admitted', 'created', 'dropped', 'evicted', 'pending', 'rows']);
          // Every row was admitted (admitAfter > 1: a row is created only when admitted) and is held or evicted.
          expect(s.created, `${out} ${t}`).toBe(s.admitted);
          expect(s.rows, `${out} ${t}`).toBe(s.created - s.evicted);
          // One thread: an id's first two pulls read the shared default and their gradients are
          // dropped. (In a cluster, another worker's pull may admit the id before the push lands.)
          if (out === 'one') expect(s.dropped, `${out} ${t}`).toBeGreaterThanOrEqual(2 * s.admitted);
        }
        // Users come and go: many are evicted after 16 steps untouched, many still wait for their third pull.
        expect(m.tables.user.evicted, out).toBeGreaterThan(0);
        expect(m.tables.user.pending, out).toBeGreaterThan(0);
        expect(m.tables.user.dropped, out).toBeGreaterThan(0);
        expect(m.tables.category.evicted, out).toBe(0); // 18 categories, each in almost every batch
      }
      // (One thread counts at each epoch's end; a cluster's counts are the servers' when the epoch is recorded, which may be later.)
      expect(metrics[1].tables.user.evicted, out).toBeGreaterThan(out === 'one' ? metrics[0].tables.user.evicted : 0);
    }
    const threads = loom(...flags, '--workers', '2', '--out', 'threads');
    expect(threads.code).toBe(2);
    expect(threads.stderr).toContain('--admit-after, --evict-after and --table-capacity apply to one thread (--workers 1) and --cluster');
    // A one-thread CTR run keeps no checkpoints, so there is nothing to resume from — unless the run
    // finished, which --resume then says (exit 0, nothing trained).
    const resume = loom(...flags, '--workers', '1', '--resume', 'unfinished');
    expect(resume.code).toBe(2);
    expect(resume.stderr).toContain('--resume needs --cluster');
    const finished = loom(...flags, '--workers', '1', '--resume', 'one');
    expect([finished.code, finished.stdout]).toEqual([0, expect.stringContaining('one already finished its 2 epochs')]);
  }, 300_000);
});

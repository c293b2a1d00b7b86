// `loom train --task ctr --workers N` end to end, in subprocesses of the built CLI (`pnpm test`
// builds it first): the CTR model on worker threads, tables in shared memory, Hogwild! or averaged.
import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadSafetensors } from '@loom/tensor-core';

const MAIN = fileURLToPath(new URL('../dist/main.js', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'loom-ctr-threads-'));

function loom(...args: string[]) {
  const r = spawnSync(process.execPath, [MAIN, ...args], { encoding: 'utf8', cwd: dir, timeout: 120_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}
const ctr = ['train', '--task', 'ctr', '--dataset', 'news-clicks', '--scale', '1', '--seed', '3'];

describe('loom train --task ctr on worker threads', () => {
  for (const mode of [undefined, 'sync'] as const) {
    it(`--workers 2${mode ? ` --mode ${mode}` : ' (sync dense + Hogwild! tables)'}: beats popularity, writes the run directory and per-worker samples/s`, () => {
      const out = `ctr-${mode ?? 'default'}`;
      const r = loom(...ctr, '--workers', '2', ...(mode ? ['--mode', mode] : []), '--epochs', '2', '--out', out, '--json');
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toMatch(mode === 'sync' ? /2 worker threads, sync dense \+ sync tables/ : /2 worker threads, sync dense \+ async \(Hogwild!\) tables/);
      const result = JSON.parse(r.stdout.trim().split('\n').pop()!);
      expect(result.validAuc).toBeGreaterThan(result.baselines.popularityAuc + 0.01);
      const epochs = readFileSync(join(dir, out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
      expect(epochs).toHaveLength(2);
      for (const m of epochs) {
        expect(m.workers.map((w: { rank: number }) => w.rank)).toEqual([0, 1]);
        for (const w of m.workers) expect(w.samplesPerSec).toBeGreaterThan(0);
        expect(m.validAuc).toBeGreaterThan(0.5);
      }
      const config = JSON.parse(readFileSync(join(dir, out, 'config.json'), 'utf8'));
      expect(config.train).toMatchObject({ workers: 2, mode: mode ?? 'async' });
      const { tensors } = loadSafetensors(join(dir, out, 'model.safetensors'));
      expect(tensors['user.weight']!.shape).toEqual([config.model.tables.user, 32]);
      expect(tensors['article.weight']!.shape).toEqual([config.model.tables.article, 32]);
      expect(tensors['mlp.0.weight']!.shape).toEqual([128, 192]);
    });
  }

  const usage: Array<[string, string[], RegExp]> = [
    ['--mode ssp', ['--workers', '2', '--mode', 'ssp'], /--task ctr takes --mode async .* or --mode sync .*, not --mode ssp/],
    ['--staleness', ['--workers', '2', '--staleness', '1'], /--task ctr takes .*, not --staleness/],
    ['--mode with one thread', ['--workers', '1', '--mode', 'sync'], /--mode sync is for worker threads; --workers 1 trains on this thread/],
    ['a bad --mode', ['--workers', '2', '--mode', 'hogwild'], /--mode must be one of sync, async, ssp, got 'hogwild'/],
  ];
  for (const [what, args, message] of usage) {
    it(`${what} → exit 2 naming the flag`, () => {
      const r = loom(...ctr, ...args, '--out', 'never');
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(message);
    });
  }
});

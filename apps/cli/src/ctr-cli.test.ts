// `loom train --task ctr` and `loom recommend` on a CTR run, in subprocesses of the built CLI:
// the run directory's contract (metrics, names and shapes in model.safetensors, --json fields),
// recommendations checked against the click log rebuilt here, and bad flags.
import { beforeAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { generateClickLog } from '@loom/data';
import { loadSafetensors } from '@loom/tensor-core';

const MAIN = fileURLToPath(new URL('../dist/main.js', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'loom-ctr-cli-'));

function loom(...args: string[]) {
  const r = spawnSync(process.execPath, [MAIN, ...args], { encoding: 'utf8', cwd: dir, timeout: 120_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}
const lastJson = (stdout: string) => JSON.parse(stdout.trim().split('\n').pop()!);

describe('loom train --task ctr', () => {
  let result: ReturnType<typeof loom>;
  beforeAll(() => {
    result = loom('train', '--task', 'ctr', '--dataset', 'news-clicks', '--epochs', '2', '--workers', '1', '--out', 'ctr', '--json');
  }, 120_000);

  it('trains, judges each epoch on the later days, and ends with the JSON the issue names', () => {
    expect(result.code, result.stderr).toBe(0);
    const r = lastJson(result.stdout);
    expect(Object.keys(r)).toEqual(expect.arrayContaining(['validAuc', 'validLogLoss', 'samplesPerSec', 'baselines', 'trainLoss', 'epoch']));
    expect(r.epoch).toBe(2);
    expect(r.validAuc).toBeGreaterThan(0.5);
    expect(r.validAuc).toBeLessThan(1);
    expect(r.baselines.popularityAuc).toBeGreaterThan(0.4);
    const lines = readFileSync(join(dir, 'ctr', 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(lines.map((l) => l.epoch)).toEqual([1, 2]);
    expect(lines[1].trainLoss).toBeLessThan(lines[0].trainLoss);
    // Tables hold only rows some step touched: fewer than the log's users, all 18 categories.
    expect(lines[1].tables.user.rows).toBeGreaterThan(1000);
    expect(lines[1].tables.user.rows).toBeLessThanOrEqual(10000);
    expect(lines[1].tables.category.rows).toBe(18);
  });

  it('saves every parameter under its PyTorch name, tables whole', () => {
    const { tensors, metadata } = loadSafetensors(join(dir, 'ctr', 'model.safetensors'));
    expect(metadata.task).toBe('ctr');
    const shapes = Object.fromEntries(Object.entries(tensors).map(([k, t]) => [k, [...t.shape]]));
    expect(shapes).toEqual({
      'user.weight': [10000, 32], 'article.weight': [2000, 32], 'category.weight': [18, 32], 'subcategory.weight': [270, 32],
      'dense.weight': [32, 4], 'dense.bias': [32],
      'mlp.0.weight': [128, 192], 'mlp.0.bias': [128], 'mlp.2.weight': [64, 128], 'mlp.2.bias': [64], 'mlp.4.weight': [1, 64], 'mlp.4.bias': [1],
    });
    const config = JSON.parse(readFileSync(join(dir, 'ctr', 'config.json'), 'utf8'));
    expect(config).toMatchObject({ task: 'ctr', dataset: 'news-clicks', train: { sparseOptimizer: 'sparse-adam', batchSize: 512, epochs: 2 } });
  });

  it('recommends articles the user never clicked, most likely first, from their last clicks', () => {
    const r = loom('recommend', '--run', 'ctr', '--user', '17', '--top', '4', '--json');
    expect(r.code, r.stderr).toBe(0);
    const rec = lastJson(r.stdout);
    // The history rebuilt here: user 17's last impression's history, plus its article if clicked.
    const log = generateClickLog({ seed: 42, scale: 1 });
    let history: number[] = [];
    const clicked = new Set<number>();
    for (const c of log.chunks()) {
      for (let i = 0; i < c.rows; i++) {
        if (c.user[i] !== 17) continue;
        history = Array.from(c.history.subarray(i * 10, (i + 1) * 10));
        if (c.label[i] === 1) {
          clicked.add(c.article[i]!);
          history = [...history.slice(1), c.article[i]!];
        }
      }
    }
    expect(rec.history).toEqual(history);
    expect(rec.articles).toHaveLength(4);
    for (const a of rec.articles) {
      expect(clicked.has(a.id) || history.includes(a.id)).toBe(false);
      expect(a.category).toBe(log.articles.category[a.id]);
    }
    const p = rec.articles.map((a: { probability: number }) => a.probability);
    expect(p).toEqual([...p].sort((x, y) => y - x));
  });

  it('refuses flags that do not go with the task, naming them', () => {
    const wrongData = loom('train', '--task', 'ctr', '--dataset', 'news', '--out', 'x');
    expect(wrongData.code).toBe(2);
    expect(wrongData.stderr).toMatch(/--task ctr trains on --dataset news-clicks/);
    const sparseForDense = loom('train', '--dataset', 'news', '--sparse-optimizer', 'adagrad', '--out', 'x');
    expect(sparseForDense.code).toBe(2);
    expect(sparseForDense.stderr).toMatch(/--sparse-optimizer, --sparse-lr and --save-init apply to --task ctr only/);
    const clicksForDense = loom('train', '--dataset', 'news-clicks', '--out', 'x');
    expect(clicksForDense.code).toBe(2);
    expect(clicksForDense.stderr).toMatch(/train it with --task ctr/);
    const badSparse = loom('train', '--task', 'ctr', '--dataset', 'news-clicks', '--sparse-optimizer', 'adam', '--out', 'x');
    expect(badSparse.code).toBe(2);
    expect(badSparse.stderr).toMatch(/--sparse-optimizer must be one of sparse-adam, adagrad, rowwise-adagrad, sgd/);
    const noUser = loom('recommend', '--run', 'ctr', '--user', '10000');
    expect(noUser.code).toBe(2);
    expect(noUser.stderr).toMatch(/users 0\.\.9999/);
  });
});

// The `loom` command end to end, in subprocesses of the built CLI (`pnpm test` builds it first):
// train → eval → recommend on small data, determinism, config files, and bad input.
import { describe, expect, it, beforeAll } from 'vitest';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { prepareNews } from '@loom/data';
import { Tensor, loadModel, mlp, noGrad } from '@loom/tensor-core';

const MAIN = fileURLToPath(new URL('../dist/main.js', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'loom-cli-'));

function loom(...args: string[]) {
  const r = spawnSync(process.execPath, [MAIN, ...args], { encoding: 'utf8', cwd: dir, timeout: 120_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}
const lastJson = (stdout: string) => JSON.parse(stdout.trim().split('\n').pop()!);

/**
 * The confusion matrix (rows: actual, columns: predicted) of a news run's saved model on the test
 * split, computed here without the CLI: the news data rebuilt from the preprocessing in its
 * config.json, the weights read from its model.safetensors, the forward pass and argmax done here.
 */
function newsConfusion(run: string): number[][] {
  const config = JSON.parse(readFileSync(join(dir, run, 'config.json'), 'utf8'));
  const { seed, scale, fill, transform } = config.preprocessing;
  const news = prepareNews({ seed, scale, fill, transform });
  const model = mlp(config.model.sizes, { init: 'none' });
  loadModel(join(dir, run, 'model.safetensors'), model);
  const rows = news.split.test;
  const x = new Float32Array(rows.length * news.width); // (N, width)
  rows.forEach((r, i) => x.set(news.features.subarray(r * news.width, (r + 1) * news.width), i * news.width));
  const logits = noGrad(() => model.eval().forward(new Tensor(x, [rows.length, news.width])).data); // (N, C)
  const C = news.numClasses;
  const confusion = Array.from({ length: C }, () => new Array<number>(C).fill(0));
  rows.forEach((r, i) => {
    const row = Array.from(logits.subarray(i * C, (i + 1) * C));
    confusion[news.labels[r]!]![row.indexOf(Math.max(...row))]!++;
  });
  return confusion;
}

/** A small CSV with a numeric and a categorical feature, missing values and a duplicated row. */
function writeCsv(path: string, rows = 400): void {
  const lines = ['age,minutes,device,label'];
  for (let i = 0; i < rows; i++) {
    const age = 18 + ((i * 37) % 50);
    const minutes = (i * 13) % 90;
    const device = ['mobile', 'desktop', 'tablet'][i % 3]!;
    const label = minutes > 45 ? (device === 'mobile' ? 'video' : 'longread') : 'brief';
    lines.push(`${i % 17 === 0 ? '' : age},${minutes},${i % 23 === 0 ? '' : device},${label}`);
  }
  lines.push(lines[5]!);
  writeFileSync(path, lines.join('\n') + '\n');
}

describe('loom train → eval → recommend on the built-in news data', () => {
  let train: ReturnType<typeof loom>;
  beforeAll(() => {
    train = loom('train', '--epochs', '1', '--out', 'news', '--json');
  }, 120_000); // one epoch of the news data: beyond the 10 s default for hooks on a busy machine

  it('trains, writes a run directory, and ends stdout with the final metrics as JSON', () => {
    expect(train.code, train.stderr).toBe(0);
    const result = lastJson(train.stdout);
    for (const key of ['epoch', 'trainLoss', 'validLoss', 'validAccuracy', 'samplesPerSec', 'seconds', 'testAccuracy']) {
      expect(result, key).toHaveProperty(key);
    }
    expect(result.validAccuracy).toBeGreaterThan(result.baselines.mostRead);
    for (const f of ['model.safetensors', 'config.json', 'metrics.jsonl']) expect(existsSync(join(dir, 'news', f)), f).toBe(true);
    const epochs = readFileSync(join(dir, 'news', 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(epochs).toHaveLength(1);
    expect(epochs[0].epoch).toBe(1);
  });

  it('evaluates the run: loss, accuracy, per-class precision/recall, confusion matrix', () => {
    const r = loom('eval', '--run', 'news', '--json');
    expect(r.code, r.stderr).toBe(0);
    const e = lastJson(r.stdout);
    const confusion = newsConfusion('news');
    const C = confusion.length;
    const transposed = confusion.map((_, i) => confusion.map((row) => row[i]!));
    expect(confusion, 'a symmetric matrix could not tell actual from predicted').not.toEqual(transposed);
    expect(e.confusion).toEqual(confusion);
    const rows = confusion.flat().reduce((s, v) => s + v, 0);
    const correct = confusion.reduce((s, row, c) => s + row[c]!, 0);
    expect(e.rows).toBe(rows);
    expect(e.accuracy).toBeCloseTo(correct / rows, 12);
    expect(e.accuracy).toBeCloseTo(lastJson(train.stdout).testAccuracy, 10);
    // Precision of class c: of the rows predicted c, the share that are c (column c); recall: of the
    // rows that are c, the share predicted c (row c). NaN (null in JSON) where nothing was counted.
    const share = (part: number, whole: number) => (whole > 0 ? part / whole : null);
    expect(e.perClass).toHaveLength(C);
    for (let c = 0; c < C; c++) {
      const support = confusion[c]!.reduce((s, v) => s + v, 0);
      const predicted = confusion.reduce((s, row) => s + row[c]!, 0);
      const [precision, recall] = [share(confusion[c]![c]!, predicted), share(confusion[c]![c]!, support)];
      const got = e.perClass[c];
      expect(got.support, `support of class ${c}`).toBe(support);
      if (precision === null) expect(got.precision, `precision of class ${c}`).toBeNull();
      else expect(got.precision, `precision of class ${c}`).toBeCloseTo(precision, 12);
      if (recall === null) expect(got.recall, `recall of class ${c}`).toBeNull();
      else expect(got.recall, `recall of class ${c}`).toBeCloseTo(recall, 12);
    }
    const text = loom('eval', '--run', 'news');
    expect(text.stdout).toMatch(/confusion matrix/);
    expect(text.stdout).toMatch(/precision\s+recall/);
  });

  it('recommends K categories with probabilities and K unread articles', () => {
    const r = loom('recommend', '--run', 'news', '--user', '17', '--top', '2', '--json');
    expect(r.code, r.stderr).toBe(0);
    const rec = lastJson(r.stdout);
    expect(rec.categories).toHaveLength(2);
    expect(rec.categories[0].probability).toBeGreaterThanOrEqual(rec.categories[1].probability);
    expect(rec.articles).toHaveLength(2);
    expect(rec.articles.map((a: { category: string }) => a.category)).toEqual(rec.categories.map((c: { category: string }) => c.category));
  });
});

describe('loom train on CSV and with a config file', () => {
  it('trains on a CSV with categorical columns, missing values and duplicates, then evaluates it', () => {
    writeCsv(join(dir, 'visits.csv'));
    const t = loom('train', '--dataset', 'csv:visits.csv', '--label', 'label', '--model', 'mlp:5,8,3', '--epochs', '30', '--batch-size', '16', '--lr', '0.01', '--out', 'csv', '--json');
    expect(t.code, t.stderr).toBe(0);
    expect(lastJson(t.stdout).validAccuracy).toBeGreaterThan(0.7);
    const e = loom('eval', '--run', 'csv', '--json');
    expect(e.code, e.stderr).toBe(0);
    expect(lastJson(e.stdout).perClass.map((p: { class: string }) => p.class)).toEqual(['brief', 'longread', 'video']);
  });

  it('takes defaults from --config and lets flags override them', () => {
    writeFileSync(join(dir, 'cfg.json'), JSON.stringify({ epochs: 1, batchSize: 256, out: 'from-config', optimizer: 'sgd', lr: 0.1 }));
    const r = loom('train', '--config', 'cfg.json', '--out', 'from-flag', '--json');
    expect(r.code, r.stderr).toBe(0);
    const config = JSON.parse(readFileSync(join(dir, 'from-flag', 'config.json'), 'utf8'));
    expect(config.train).toMatchObject({ epochs: 1, batchSize: 256, optimizer: 'sgd', lr: 0.1 });
    expect(existsSync(join(dir, 'from-config'))).toBe(false);
  });

  it('is deterministic: the same seed gives bitwise the same weights', () => {
    const a = loom('train', '--epochs', '1', '--seed', '5', '--out', 'det-a');
    const b = loom('train', '--epochs', '1', '--seed', '5', '--out', 'det-b');
    expect(a.code, a.stderr).toBe(0);
    expect(b.code, b.stderr).toBe(0);
    expect(readFileSync(join(dir, 'det-a', 'model.safetensors')).equals(readFileSync(join(dir, 'det-b', 'model.safetensors')))).toBe(true);
  });
});

describe('loom train on worker threads', () => {
  for (const mode of ['sync', 'async', 'ssp'] as const) {
    it(`--workers 2 --mode ${mode} writes per-worker throughput${mode === 'sync' ? '' : ' and observed staleness'} to metrics.jsonl`, () => {
      // 3 epochs: on a loaded machine the second thread may start after the first has trained a
      // whole epoch's share (one epoch of news is ~60 ms of steps), so that epoch shows no staleness.
      const r = loom('train', '--epochs', '3', '--workers', '2', '--mode', mode, ...(mode === 'ssp' ? ['--staleness', '1'] : []), '--out', `threads-${mode}`, '--json');
      expect(r.code, r.stderr).toBe(0);
      expect(lastJson(r.stdout).validAccuracy).toBeGreaterThan(lastJson(r.stdout).baselines.mostRead);
      const epochs = readFileSync(join(dir, `threads-${mode}`, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
      expect(epochs).toHaveLength(3);
      for (const m of epochs) {
        expect(m.workers).toHaveLength(2);
        for (const w of m.workers) {
          expect(w.samplesPerSec).toBeGreaterThan(0);
          if (mode === 'ssp') expect(w.stalenessMax).toBeLessThanOrEqual(1);
          if (mode === 'sync') expect(w.stalenessMax).toBe(0);
        }
      }
      // Two threads computing side by side: some step of one reads parameters the other then updates.
      const most = Math.max(...epochs.flatMap((m) => m.workers.map((w: { stalenessMax: number }) => w.stalenessMax)));
      if (mode !== 'sync') expect(most).toBeGreaterThan(0);
    });
  }

  it('--mode ssp --staleness 1 with a batch of 1 row: the worker with an empty part runs 1 update ahead, never 2', () => {
    // Worker 0's part of a 1-row batch is empty: it only pulls and pushes, so it is ahead of worker
    // 1 whenever the bound lets it, and its staleness must reach the bound.
    writeCsv(join(dir, 'uneven.csv'));
    const r = loom('train', '--dataset', 'csv:uneven.csv', '--label', 'label', '--model', 'mlp:5,8,3', '--epochs', '2', '--batch-size', '1',
      '--workers', '2', '--mode', 'ssp', '--staleness', '1', '--out', 'ssp-uneven');
    expect(r.code, r.stderr).toBe(0);
    const epochs = readFileSync(join(dir, 'ssp-uneven', 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(epochs).toHaveLength(2);
    for (const m of epochs) {
      expect(m.workers.map((w: { rows: number }) => w.rows)[0]).toBe(0);
      expect(m.workers.map((w: { stalenessMax: number }) => w.stalenessMax)).toContain(1);
      for (const w of m.workers) expect(w.stalenessMax).toBeLessThanOrEqual(1);
    }
  });

  for (const workers of ['1', '2']) {
    it(`SIGINT with --workers ${workers} stops after the current step, writes the model and exits 130`, async () => {
      const child = spawn(process.execPath, [MAIN, 'train', '--epochs', '200', '--workers', workers, '--out', `sigint-${workers}`], { cwd: dir });
      let stdout = '';
      child.stdout.on('data', (d: Buffer) => {
        stdout += d.toString();
        if (stdout.includes('epoch 1:') && !child.killed) child.kill('SIGINT');
      });
      const code = await new Promise<number | null>((res) => child.on('exit', (c) => res(c)));
      expect(code).toBe(130);
      expect(stdout).toMatch(/stopped early by SIGINT/);
      expect(existsSync(join(dir, `sigint-${workers}`, 'model.safetensors'))).toBe(true);
      const e = loom('eval', '--run', `sigint-${workers}`, '--json');
      expect(e.code, e.stderr).toBe(0);
    });
  }
});

describe('bad input: a clear error naming the problem, and the documented exit code', () => {
  const usage: Array<[string, string[], RegExp]> = [
    ['an unknown flag', ['train', '--bogus'], /Unknown option '--bogus'/],
    ['a bad value', ['train', '--batch-size', '0'], /--batch-size must be at least 1, got 0/],
    ['a non-number', ['train', '--lr', 'fast'], /--lr must be a number, got "fast"/],
    ['a bad choice', ['train', '--optimizer', 'lbfgs'], /--optimizer must be one of sgd, momentum, rmsprop, adam, adamw, adagrad, got 'lbfgs'/],
    ['a missing dataset file', ['train', '--dataset', 'csv:nope.csv', '--label', 'x'], /--dataset csv:nope.csv: nope.csv does not exist/],
    ['a malformed --model', ['train', '--model', 'mlp:abc'], /--model must be reference or mlp:IN,HIDDEN/],
    ['a run directory that is not one', ['eval', '--run', '.'], /--run \.: not a run directory \(no config.json/],
    ['a missing --run', ['eval'], /--run DIR is required/],
    ['an unknown command', ['fly'], /unknown command 'fly'/],
    ['a bad --mode', ['train', '--mode', 'bsp'], /--mode must be one of sync, async, ssp, got 'bsp'/],
    ['--staleness outside ssp', ['train', '--mode', 'sync', '--staleness', '1'], /--staleness applies to --mode ssp only/],
    ['--workers 0', ['train', '--workers', '0'], /--workers must be at least 1, got 0/],
  ];
  for (const [what, args, message] of usage) {
    it(`${what} → exit 2`, () => {
      const r = loom(...args);
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(message);
    });
  }

  it('a CSV without the label column names the column and lists the others', () => {
    writeCsv(join(dir, 'nolabel.csv'), 20);
    const r = loom('train', '--dataset', 'csv:nolabel.csv', '--label', 'clicked');
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--label clicked: nolabel.csv has no column 'clicked' \(columns: age, minutes, device, label\)/);
  });

  it('a malformed CSV line is a runtime failure naming the line → exit 1', () => {
    writeFileSync(join(dir, 'broken.csv'), 'a,b,label\n1,2,x\n3,4\n');
    const r = loom('train', '--dataset', 'csv:broken.csv', '--label', 'label');
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/broken.csv:3/);
  });

  it('a config file with an unknown key names the file and the key', () => {
    writeFileSync(join(dir, 'typo.json'), JSON.stringify({ epoch: 3 }));
    const r = loom('train', '--config', 'typo.json');
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/typo.json: unknown key 'epoch'/);
  });

  it('--help on every command exits 0 and lists the flags', () => {
    for (const [cmd, flag] of [['train', '--batch-size'], ['eval', '--run'], ['recommend', '--user'], ['demo', '--epochs']]) {
      const r = loom(cmd!, '--help');
      expect(r.code).toBe(0);
      expect(r.stdout).toContain(flag);
    }
  });
});

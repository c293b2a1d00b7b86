// The model registry through the CLI, with real threads and processes: a CNN on a tiny IDX image
// set and a GPT on a tiny text, each on one thread, on 2 worker threads (sync equals one thread
// within float32 rounding, as for MLPs) and on --cluster local:1,2; loom generate's seeded samples
// and its bad input; and a small GPT's validation loss against the unigram baseline.
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Random, flattenParameters, loadModel } from '@loom/tensor-core';
import { newsText, writeIdx } from '@loom/data';
import { parseModelSpec } from '@loom/worker';
import { MAIN, maxRelDiff, sandbox } from './harness.js';

const { dir, env } = sandbox('models');
const loom = (...args: string[]) => spawnSync(process.execPath, [MAIN, ...args], { cwd: dir, env, encoding: 'utf8', timeout: 120_000 });

function params(run: string): Float32Array {
  const config = JSON.parse(readFileSync(join(dir, run, 'config.json'), 'utf8')) as { model: { spec: string } };
  const model = parseModelSpec(config.model.spec).build(new Random(0));
  loadModel(join(dir, run, 'model.safetensors'), model);
  return flattenParameters(model).params;
}

/** 28×28 images of 10 classes: the class is where a bright 6×6 square sits. */
function writeImages(path: string, n: number, seed: number): void {
  mkdirSync(path, { recursive: true });
  const rng = new Random(seed);
  for (const [split, rows] of [['train', n], ['t10k', n / 2]] as const) {
    const images = new Uint8Array(rows * 784);
    const labels = new Uint8Array(rows);
    for (let i = 0; i < rows; i++) {
      const c = i % 10;
      labels[i] = c;
      const [y0, x0] = [c < 5 ? 4 : 16, 2 + (c % 5) * 4];
      for (let p = 0; p < 784; p++) images[i * 784 + p] = Math.floor(rng.next() * 40);
      for (let y = y0; y < y0 + 6; y++) for (let x = x0; x < x0 + 6; x++) images[i * 784 + y * 28 + x] = 255;
    }
    writeIdx(join(path, `${split}-images-idx3-ubyte`), { dims: [rows, 28, 28], data: images });
    writeIdx(join(path, `${split}-labels-idx1-ubyte`), { dims: [rows], data: labels });
  }
}

writeImages(join(dir, 'img'), 160, 1);
writeFileSync(join(dir, 'news.txt'), newsText({ seed: 3, sentences: 60 }));

describe('cnn and gpt through loom train', () => {
  const cases = [
    { name: 'cnn', flags: ['--dataset', `idx:${join(dir, 'img')}`, '--model', 'cnn', '--batch-size', '32'] },
    { name: 'gpt', flags: ['--task', 'lm', '--dataset', `text:${join(dir, 'news.txt')}`, '--model', 'gpt:1,16,2,16', '--batch-size', '32'] },
  ];
  for (const c of cases) {
    it(`${c.name}: one thread, 2 sync worker threads (equal within float32 rounding) and --cluster local:1,2 train`, () => {
      // SGD: Adam divides by √v, so float32 rounding of a near-zero gradient's reduction can move a
      // parameter by a whole step; with SGD the runs differ by the reduction's rounding only.
      const common = [...c.flags, '--epochs', '1', '--seed', '5', '--optimizer', 'sgd', '--lr', '0.05', '--json'];
      const runs: Record<string, string[]> = { one: ['--workers', '1'], threads: ['--workers', '2', '--mode', 'sync'], cluster: ['--cluster', 'local:1,2'] };
      for (const [run, extra] of Object.entries(runs)) {
        const r = loom('train', ...common, ...extra, '--out', `${c.name}-${run}`);
        expect(r.stderr + r.stdout).not.toMatch(/error/i);
        expect(r.status).toBe(0);
        const m = JSON.parse(r.stdout.trim().split('\n').pop()!) as { trainLoss: number; validLoss: number };
        expect(Number.isFinite(m.validLoss)).toBe(true);
      }
      const one = params(`${c.name}-one`);
      expect(maxRelDiff(params(`${c.name}-threads`), one)).toBeLessThan(1e-4);
      expect(maxRelDiff(params(`${c.name}-cluster`), one)).toBeLessThan(1e-4);
      const metrics = readFileSync(join(dir, `${c.name}-one`, 'metrics.jsonl'), 'utf8');
      expect(metrics).toContain(c.name === 'gpt' ? '"validPerplexity"' : '"validAccuracy"');
    }, 180_000);
  }

  it('a model that does not fit the data fails before training, naming both sides', () => {
    const r = loom('train', '--dataset', 'news', '--model', 'cnn', '--workers', '1', '--out', 'bad');
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('cnn takes 1×28×28 images (784 features) and predicts 10 classes, but --dataset news has');
    const lm = loom('train', '--dataset', `idx:${join(dir, 'img')}`, '--model', 'gpt:1,16,2,16', '--task', 'lm', '--workers', '1', '--out', 'bad');
    expect(lm.status).toBe(2);
    expect(lm.stderr).toContain('--task lm trains on text');
  });
});

describe('loom generate', () => {
  it('reproduces the text with a seed, streams it after the prompt, and names characters outside the vocabulary', () => {
    const t = loom('train', '--task', 'lm', '--dataset', `text:${join(dir, 'news.txt')}`, '--model', 'gpt:1,16,2,16', '--epochs', '1', '--workers', '1', '--out', 'lm');
    expect(t.status).toBe(0);
    const gen = (seed: string) => loom('generate', '--run', 'lm', '--prompt', 'sports: ', '--tokens', '40', '--temperature', '0.8', '--top-k', '5', '--seed', seed);
    const [a, b, c] = [gen('1'), gen('1'), gen('2')];
    expect(a.status).toBe(0);
    expect(a.stdout).toBe(b.stdout);
    expect(a.stdout.startsWith('sports: ')).toBe(true);
    expect([...a.stdout.trimEnd()].length).toBe('sports: '.length + 40);
    expect(c.stdout).not.toBe(a.stdout);
    const bad = loom('generate', '--run', 'lm', '--prompt', 'Sports!', '--tokens', '5');
    expect(bad.status).toBe(2);
    expect(bad.stderr).toContain(`--prompt has characters outside the run's vocabulary: "S", "!"`);
    const notLm = loom('generate', '--run', 'cnn-one', '--prompt', 'a');
    expect(notLm.status).toBe(2);
    expect(notLm.stderr).toContain('not a language model');
  }, 60_000);

  it('a small GPT on the built-in corpus ends below the unigram baseline', () => {
    writeFileSync(join(dir, 'news300.txt'), newsText({ seed: 42, sentences: 300 }));
    const r = loom('train', '--task', 'lm', '--dataset', `text:${join(dir, 'news300.txt')}`, '--model', 'gpt:1,32,4,16', '--epochs', '2', '--workers', '1', '--lr', '0.003', '--out', 'lm300', '--json');
    expect(r.status).toBe(0);
    const m = JSON.parse(r.stdout.trim().split('\n').pop()!) as { validLoss: number; unigramValidLoss: number };
    console.log(`gpt:1,32,4,16 after 2 epochs: valid loss ${m.validLoss.toFixed(3)}, unigram baseline ${m.unigramValidLoss.toFixed(3)}`);
    expect(m.validLoss).toBeLessThan(m.unigramValidLoss - 0.5);
  }, 120_000);
});

// Data-parallel training on real worker threads over shared memory (the compiled thread entry in
// dist/, which `pnpm test` builds first), against single-thread training as the oracle.
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { BatchIterator, prepareNews } from '@loom/data';
import { Optimizer, namedOptimizer, optimizerMemory } from '@loom/optimizer';
import { IntTensor, Random, Tensor, crossEntropy, flattenParameters, mlp, noGrad, type Sequential } from '@loom/tensor-core';
import { trainThreads, type ThreadEpochMetrics, type ThreadTrainingOptions } from '../index.js';

const news = prepareNews({ seed: 7 });
const data = (rows: Int32Array) => ({ features: news.features, labels: news.labels, width: news.width, rows });
const SMALL = news.split.train.subarray(0, 3000); // 47 steps of 64

/** The oracle: plain single-thread training with the same init, batches and optimizer. */
function singleThread(o: Pick<ThreadTrainingOptions, 'sizes' | 'optimizer' | 'lr' | 'batchSize' | 'epochs' | 'seed'>, rows: Int32Array): Float32Array {
  const model = mlp(o.sizes, { init: 'xavier', rng: new Random(o.seed) });
  const flat = flattenParameters(model);
  const { algorithm, options } = namedOptimizer(o.optimizer, { lr: o.lr });
  const opt = new Optimizer(algorithm, model.parameters(), options);
  const batches = new BatchIterator({ features: news.features, labels: news.labels, width: news.width }, { batchSize: o.batchSize, rows, seed: o.seed });
  for (let e = 0; e < o.epochs; e++) {
    for (const b of batches.epoch(e)) {
      opt.zeroGrad();
      crossEntropy(model.forward(new Tensor(b.x, [b.size, news.width])), new IntTensor(b.y)).backward();
      opt.step();
    }
  }
  return flat.params;
}

function params(model: Sequential): Float32Array {
  return flattenParameters(model).params;
}

function maxRelDiff(a: Float32Array, b: Float32Array): number {
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i]! - b[i]!) / Math.max(1e-2, Math.abs(b[i]!)));
  return d;
}

function accuracy(model: Sequential, rows: Int32Array): number {
  let correct = 0;
  noGrad(() => {
    const x = new Float32Array(rows.length * news.width);
    rows.forEach((r, i) => x.set(news.features.subarray(r * news.width, (r + 1) * news.width), i * news.width));
    const logits = model.eval().forward(new Tensor(x, [rows.length, news.width])).data;
    rows.forEach((r, i) => {
      let best = 0;
      for (let c = 1; c < 10; c++) if (logits[i * 10 + c]! > logits[i * 10 + best]!) best = c;
      if (best === news.labels[r]) correct++;
    });
  });
  return correct / rows.length;
}

/** OS threads of this process (worker threads are OS threads). */
function osThreads(): number {
  return Number(/Threads:\s+(\d+)/.exec(readFileSync('/proc/self/status', 'utf8'))![1]);
}

const base = { sizes: [100, 50, 10], optimizer: 'adam', lr: 1e-3, batchSize: 64, epochs: 1, seed: 3 } as const;
const common = { ...base, sizes: [...base.sizes], data: data(SMALL) };

describe('sync mode equals single-thread training with the same global batch', () => {
  const reference = singleThread({ ...base, sizes: [...base.sizes] }, SMALL);

  it('1 worker: bitwise, and no thread survives the finished run, nor any of its memory', async () => {
    const before = osThreads();
    const inUse = optimizerMemory.bytesInUse;
    const { model } = await trainThreads({ ...common, workers: 1, mode: 'sync' });
    expect(params(model)).toEqual(reference);
    expect(optimizerMemory.bytesInUse).toBe(inUse); // the run's block, staging and scratch areas are freed
    await new Promise((r) => setTimeout(r, 200));
    expect(osThreads()).toBeLessThanOrEqual(before);
  });
  for (const workers of [2, 3]) {
    it(`${workers} workers: within float32 rounding of the reduction`, async () => {
      const { model } = await trainThreads({ ...common, workers, mode: 'sync' });
      const p = params(model);
      expect(p).not.toEqual(reference); // the reduction order differs, so not bitwise …
      expect(maxRelDiff(p, reference)).toBeLessThan(1e-4); // … but equal to float32 tolerance
    });
  }
  it('ssp with staleness 0 is the sync computation, bitwise', async () => {
    const sync = await trainThreads({ ...common, workers: 2, mode: 'sync' });
    const ssp = await trainThreads({ ...common, workers: 2, mode: 'ssp', staleness: 0 });
    expect(params(ssp.model)).toEqual(params(sync.model));
  });
});

describe('bounded staleness', () => {
  for (const [workers, staleness] of [[2, 1], [3, 2]] as const) {
    it(`${workers} workers, S = ${staleness}: no worker ever computes on parameters more than S updates old`, async () => {
      const seen: ThreadEpochMetrics[] = [];
      await trainThreads({ ...common, epochs: 2, workers, mode: 'ssp', staleness, onEpoch: (m) => void seen.push(m) });
      expect(seen).toHaveLength(2);
      for (const m of seen) {
        expect(m.workers).toHaveLength(workers);
        for (const w of m.workers) expect(w.stalenessMax).toBeLessThanOrEqual(staleness);
      }
    });
  }
});

describe('async and ssp train as well as sync on the news data', () => {
  it('validation accuracy within 1 point of sync', async () => {
    const full = { ...base, sizes: [...base.sizes], epochs: 2, data: data(news.split.train) };
    const sync = accuracy((await trainThreads({ ...full, workers: 2, mode: 'sync' })).model, news.split.valid);
    const ssp = accuracy((await trainThreads({ ...full, workers: 2, mode: 'ssp', staleness: 2 })).model, news.split.valid);
    const hogwild = accuracy((await trainThreads({ ...full, workers: 2, mode: 'async' })).model, news.split.valid);
    expect(sync).toBeGreaterThan(0.38);
    expect(Math.abs(ssp - sync)).toBeLessThan(0.01);
    expect(Math.abs(hogwild - sync)).toBeLessThan(0.01);
  });
});

describe('failure and shutdown', () => {
  it('a worker that throws stops the run with an error naming the worker and the cause, and no thread survives', async () => {
    const before = osThreads();
    const inUse = optimizerMemory.bytesInUse;
    const labels = news.labels.slice();
    labels[SMALL[SMALL.length - 1]!] = 12; // bad data in the last batch
    for (const mode of ['sync', 'ssp', 'async'] as const) {
      await expect(
        trainThreads({ ...common, data: { ...data(SMALL), labels }, workers: 2, mode, staleness: 1 }),
      ).rejects.toThrow(/^worker [01] failed: crossEntropy: label 12 at position \d+ is out of range for 10 classes$/);
    }
    expect(optimizerMemory.bytesInUse).toBe(inUse);
    await new Promise((r) => setTimeout(r, 200));
    expect(osThreads()).toBeLessThanOrEqual(before);
  });

  it('an abort signal stops every worker after its current step and keeps the model trained so far', async () => {
    const before = osThreads();
    const controller = new AbortController();
    const initial = params(mlp(base.sizes as unknown as number[], { init: 'xavier', rng: new Random(base.seed) }));
    let epochs = 0;
    const result = await trainThreads({
      ...common, epochs: 50, workers: 2, mode: 'sync', signal: controller.signal,
      onEpoch: (m) => {
        epochs++;
        if (m.epoch === 1) controller.abort();
      },
    });
    expect(result.stopped).toBe(true);
    expect(epochs).toBeLessThanOrEqual(2);
    expect(params(result.model)).not.toEqual(initial);
    await new Promise((r) => setTimeout(r, 200));
    expect(osThreads()).toBeLessThanOrEqual(before);
  });

  it('rejects bad options with a message naming them', async () => {
    await expect(trainThreads({ ...common, workers: 0 })).rejects.toThrow('trainThreads: workers must be a positive integer, got 0');
    await expect(trainThreads({ ...common, mode: 'bsp' as never })).rejects.toThrow("mode must be one of sync, async, ssp, got 'bsp'");
  });
});

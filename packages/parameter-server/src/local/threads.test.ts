// Data-parallel training on real worker threads over shared memory (the compiled thread entry in
// dist/, which `pnpm test` builds first), against single-thread training as the oracle.
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { BatchIterator, prepareNews } from '@loom/data';
import { Optimizer, namedOptimizer, optimizerMemory } from '@loom/optimizer';
import { IntTensor, Random, Tensor, crossEntropy, flattenParameters, mlp, noGrad, type Sequential } from '@loom/tensor-core';
import { trainThreads, type ThreadEpochMetrics, type ThreadTrainingOptions } from '../index.js';
import { localTransport } from './policies.js';
import { Word, allocateRun, releaseRun, views } from './shared.js';
import { RunAborted, at } from './sync-point.js';

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
  it('ssp, S = 1, one clock at a time on this thread: a worker may compute 1 update behind, and waits rather than fall 2 behind', () => {
    const { algorithm, options } = namedOptimizer('sgd', { lr: 0.1 });
    const run = allocateRun('ssp', 2, 1, 16, {});
    const { ctrl, params } = views(run);
    try {
      const [ahead, behind] = [0, 1].map((rank) => localTransport({ run, rank, algorithm, options }));
      const step = (t: number) => ({ epoch: 0, step: t, rows: 1, batchRows: 2 });
      const grad = new Float32Array(16).fill(1);
      // Worker 0 computes steps 0 and 1 while worker 1 has pushed nothing: on parameters 0, then 1 update old.
      expect(ahead!.pull(params, step(0))).toBe(true);
      ahead!.push(grad, step(0));
      expect(ahead!.pull(params, step(1))).toBe(true);
      ahead!.push(grad, step(1));
      expect(ahead!.staleness.summary()).toEqual({ stalenessMax: 1, stalenessMean: 0.5 });
      // Step 2 would compute on parameters 2 updates old, so its pull must wait for update 0. Waiting
      // here would block the only thread, so the run is marked aborted first: a pull that would wait
      // throws RunAborted, one that need not returns at once.
      Atomics.store(ctrl, at(Word.Abort), 1);
      expect(() => ahead!.pull(params, step(2))).toThrow(RunAborted);
      Atomics.store(ctrl, at(Word.Abort), 0);
      // Worker 1 pushes step 0, which applies update 0; now step 2 may go, 1 update old.
      expect(behind!.pull(params, step(0))).toBe(true);
      behind!.push(grad, step(0));
      expect(Atomics.load(ctrl, at(Word.Applied))).toBe(1);
      expect(ahead!.pull(params, step(2))).toBe(true);
      expect(ahead!.staleness.max).toBe(1);
    } finally {
      releaseRun(run);
    }
  });

  // A global batch of 1 row leaves every worker but the last an empty part: those have nothing to
  // compute and run ahead of the one that has, so staleness must reach above 0 — up to S, never past it.
  const TINY = SMALL.subarray(0, 300);
  for (const [workers, staleness] of [[2, 1], [3, 2]] as const) {
    it(`${workers} workers, S = ${staleness}, uneven parts: the idle workers run ahead, computing on parameters up to S updates old and never more`, async () => {
      const seen: ThreadEpochMetrics[] = [];
      await trainThreads({ ...common, data: data(TINY), batchSize: 1, epochs: 2, workers, mode: 'ssp', staleness, onEpoch: (m) => void seen.push(m) });
      expect(seen).toHaveLength(2);
      for (const m of seen) {
        expect(m.workers).toHaveLength(workers);
        expect(m.workers.map((w) => w.rows)).toEqual([...Array(workers - 1).fill(0), TINY.length]);
        for (const w of m.workers) expect(w.stalenessMax).toBeLessThanOrEqual(staleness);
        expect(Math.max(...m.workers.map((w) => w.stalenessMax))).toBe(staleness); // the bound is reached
      }
    });
  }

  it('async, one update at a time on this thread: an update made between a worker\'s read and its push counts as staleness', () => {
    const { algorithm, options } = namedOptimizer('sgd', { lr: 0.1 });
    const run = allocateRun('async', 2, 0, 16, {});
    const { params } = views(run);
    try {
      const [first, second] = [0, 1].map((rank) => localTransport({ run, rank, algorithm, options }));
      const step = { epoch: 0, step: 0, rows: 1, batchRows: 1 };
      const grad = new Float32Array(16).fill(1);
      first!.pull(params, step);
      second!.pull(params, step);
      second!.push(grad, step);
      first!.push(grad, step);
      expect([first!.staleness.max, second!.staleness.max]).toEqual([1, 0]);
    } finally {
      releaseRun(run);
    }
  });

  it('async: two workers computing side by side do apply updates between each other\'s read and push', async () => {
    // (In an epoch where one thread ran every step before the other started there would be none;
    // over 3 epochs of 188 steps each, some overlap.)
    const seen: ThreadEpochMetrics[] = [];
    await trainThreads({ ...common, batchSize: 16, epochs: 3, workers: 2, mode: 'async', onEpoch: (m) => void seen.push(m) });
    expect(Math.max(...seen.flatMap((m) => m.workers.map((w) => w.stalenessMax)))).toBeGreaterThan(0);
  });
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

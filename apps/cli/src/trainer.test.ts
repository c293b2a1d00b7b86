// One-thread training, against two oracles: a plain loop written here (BatchIterator, forward,
// cross-entropy, backward, optimizer step — nothing of @loom/worker), and a run recorded from the
// trainer as it was before it became runEpoch over an in-process transport (its own copy of the loop).
import { describe, expect, it, vi } from 'vitest';

// The recorded run pins the portable JS kernel: its sums round the same on every CPU, where the
// WebAssembly relaxed-SIMD and native kernels fuse multiply-adds or not by machine (the first
// recording, made on wasm on another CPU, did not reproduce here). Hoisted above the imports, so the
// kernel tier reads it when it loads.
vi.hoisted(() => {
  process.env.LOOM_BACKEND = 'js';
});
import { createHash } from 'node:crypto';
import { BatchIterator } from '@loom/data';
import { IntTensor, Random, Tensor, crossEntropy, flattenParameters, kernelBackend } from '@loom/tensor-core';
import type { Part } from './datasets.js';
import { buildModel } from './models.js';
import { makeOptimizer, type OptimizerName } from './optimizers.js';
import type { Progress } from './progress.js';
import { train, type TrainOptions } from './trainer.js';

const WIDTH = 6;
const CLASSES = 3;
const N = 600;

/** Rows whose class is which of three fixed directions the features lean towards, plus noise. */
function dataset(): { train: Part; valid: Part } {
  const rng = new Random(11);
  const features = new Float32Array(N * WIDTH); // (N, WIDTH)
  const labels = new Int32Array(N);
  for (let r = 0; r < N; r++) {
    const c = rng.int(CLASSES);
    labels[r] = c;
    for (let j = 0; j < WIDTH; j++) features[r * WIDTH + j] = rng.normal() + (j % CLASSES === c ? 1.5 : 0);
  }
  const order = Int32Array.from({ length: N }, (_, i) => i);
  return { train: { features, labels, rows: order.subarray(0, 500) }, valid: { features, labels, rows: order.subarray(500) } };
}

const data = dataset();
const sizes = [WIDTH, 8, CLASSES];
// 500 rows in batches of 32: 15 full batches and a short one of 20, so the short-batch path runs too.
const opts = (optimizer: OptimizerName, epochs: number): TrainOptions => ({ optimizer, lr: 1e-2, batchSize: 32, epochs, seed: 5, width: WIDTH, numClasses: CLASSES });

/** The oracle: the same model, batches and optimizer, trained by a plain loop with no stop and no yield. */
function plainLoop(o: TrainOptions, steps = Infinity): Float32Array {
  const model = buildModel(sizes, o.seed);
  const flat = flattenParameters(model);
  const opt = makeOptimizer(o.optimizer, model.parameters(), o.lr);
  const batches = new BatchIterator({ features: data.train.features, labels: data.train.labels, width: WIDTH }, { batchSize: o.batchSize, rows: data.train.rows, shuffle: true, seed: o.seed });
  let done = 0;
  for (let e = 0; e < o.epochs; e++) {
    for (const b of batches.epoch(e)) {
      if (done++ === steps) return flat.params;
      opt.zeroGrad();
      crossEntropy(model.forward(new Tensor(b.x, [b.size, WIDTH])), new IntTensor(b.y)).backward();
      opt.step();
    }
  }
  return flat.params;
}

/** Records every progress update instead of drawing it. */
function recordingProgress(): { progress: Progress; updates: Array<[string, number, number, string]> } {
  const updates: Array<[string, number, number, string]> = [];
  const progress = { update: (label: string, done: number, total: number, extra = '') => updates.push([label, done, total, extra]), clear: () => {} } as unknown as Progress;
  return { progress, updates };
}

const sha256 = (a: Float32Array) => createHash('sha256').update(new Uint8Array(a.buffer, a.byteOffset, a.byteLength)).digest('hex');

describe('one-thread training', () => {
  for (const optimizer of ['adam', 'momentum'] as const) {
    it(`${optimizer}: bitwise the plain loop's parameters, epoch after epoch`, async () => {
      const o = opts(optimizer, 3);
      const model = buildModel(sizes, o.seed);
      const flat = await train(model, data, o, () => {});
      expect(flat.params).toEqual(plainLoop(o));
      // The model's own parameters are the returned flat ones, not a copy.
      expect(flattenParameters(model).params).toEqual(flat.params);
    });
  }

  it('matches the run recorded from the trainer before it ran on runEpoch: parameters, losses, progress', async () => {
    const o = opts('adam', 3);
    const seen: Array<{ epoch: number; trainLoss: number; validLoss: number; validAccuracy: number }> = [];
    const { progress, updates } = recordingProgress();
    const flat = await train(buildModel(sizes, o.seed), data, o, (m) => seen.push({ epoch: m.epoch, trainLoss: m.trainLoss, validLoss: m.validLoss!, validAccuracy: m.validAccuracy! }), progress);
    expect(kernelBackend.name).toBe('js');
    expect({ params: sha256(flat.params), seen }).toEqual(RECORDED);
    // Progress: one update per step, counting the epoch's batches, with the running mean loss.
    expect(updates).toHaveLength(3 * 16);
    for (let e = 1; e <= 3; e++) {
      const epoch = updates.slice((e - 1) * 16, e * 16);
      expect(epoch.map(([label, done, total]) => [label, done, total])).toEqual(Array.from({ length: 16 }, (_, i) => [`epoch ${e}/3`, i + 1, 16]));
      expect(epoch[15]![3]).toBe(`loss ${seen[e - 1]!.trainLoss.toFixed(4)}`);
    }
  });

  it('stops after the step during which it is asked to, validates that partial epoch, and keeps its parameters', async () => {
    const o = opts('adam', 3);
    const { progress, updates } = recordingProgress();
    const seen: number[] = [];
    // Asked to stop during the 20th step (the 4th of epoch 2): the loop notices once it is done.
    const flat = await train(buildModel(sizes, o.seed), data, o, (m) => seen.push(m.epoch), progress, () => updates.length >= 20);
    expect(updates).toHaveLength(20);
    expect(seen).toEqual([1, 2]);
    expect(flat.params).toEqual(plainLoop(o, 20));
  });
});

/** From the trainer at commit 37fc1f9 (its own loop, before runEpoch), with the options above. */
const RECORDED = {
  // Recorded on the JS kernel from the trainer at bbe526b (its own loop, before runEpoch).
  params: '1d2dbc775266cf0519f6ee6a7b959652100b6ad5cd5ea310c88cd3e9d7e1c4f7', // sha256 of the final flat parameters
  seen: [
    { epoch: 1, trainLoss: 0.9064899477958679, validLoss: 0.6686660003662109, validAccuracy: 0.78 },
    { epoch: 2, trainLoss: 0.5345091848373413, validLoss: 0.4529552459716797, validAccuracy: 0.82 },
    { epoch: 3, trainLoss: 0.3949498510360718, validLoss: 0.39852706909179686, validAccuracy: 0.82 },
  ],
};

// The loop against fake transports that record what they are handed: gradients checked against
// a hand-written softmax gradient and against finite differences, stopping, resuming mid-epoch,
// empty parts, and a task of another batch type with the keys hook.
import { describe, expect, it } from 'vitest';
import { IntTensor, Random, Tensor, crossEntropy, flattenParameters, mlp, mseLoss, noGrad } from '@loom/tensor-core';
import { GlobalBatchSchedule, WorkerError, classificationTask, fullPlan, runEpoch, type BatchSchedule, type StepBatch, type StepInfo, type StepPlan, type Task, type Transport, type WorkerBatch } from './index.js';

const WIDTH = 3;
const N = 10;

/** 10 rows of 3 features and 2 classes; batches of 4 give parts of 4, 4 and 2 rows. */
function examples() {
  const rng = new Random(3);
  const features = Float32Array.from({ length: N * WIDTH }, () => rng.normal()); // (N, WIDTH)
  const labels = Int32Array.from({ length: N }, (_, r) => (features[r * WIDTH]! + features[r * WIDTH + 1]! > 0 ? 1 : 0));
  return { source: { features, labels, width: WIDTH }, rows: Int32Array.from({ length: N }, (_, i) => i) };
}
const { source, rows } = examples();
const schedule = (rank = 0, worldSize = 1, batchSize = 4) => new GlobalBatchSchedule(source, rows, batchSize, 9, rank, worldSize);

interface Pushed {
  info: StepInfo;
  grads: Float32Array;
}

/** Pulls go ahead until `stopAt` (a step index); pushes are copied and kept. Parameters never change. */
function recorder(stopAt = Infinity): Transport & { pulls: StepInfo[]; pushes: Pushed[] } {
  const pulls: StepInfo[] = [];
  const pushes: Pushed[] = [];
  return {
    pulls,
    pushes,
    pull: (_params, info) => {
      pulls.push(info);
      return info.step < stopAt;
    },
    push: (grads, info) => void pushes.push({ info, grads: grads.slice() }),
  };
}

/** The rows of batch `index` of epoch `epoch`, read from a schedule of their own. */
function batchOf(s: GlobalBatchSchedule, epoch: number, index: number): { x: Float32Array; y: Int32Array; rows: number } {
  for (const b of s.epoch(epoch)) if (b.index === index) return { x: b.x.slice(), y: b.y.slice(), rows: b.rows };
  throw new Error(`no batch ${index}`);
}

describe('runEpoch pushes the gradient of the mean cross-entropy of its part', () => {
  it('a linear model: equal to the softmax gradient written out by hand', async () => {
    const model = mlp([WIDTH, 2], { rng: new Random(1) });
    const flat = flattenParameters(model);
    expect(flat.layout.map((e) => e.shape)).toEqual([[2, WIDTH], [2]]); // W (out, in), then b
    const transport = recorder();
    const report = await runEpoch({ model, flat, transport, schedule: schedule(), epoch: 1, firstStep: 3 });
    expect(transport.pushes.map((p) => p.info.step)).toEqual([3, 4, 5]);
    const W = flat.params.subarray(0, 2 * WIDTH);
    const bias = flat.params.subarray(2 * WIDTH);
    let lossSum = 0;
    for (const [k, { grads }] of transport.pushes.entries()) {
      const { x, y, rows: n } = batchOf(schedule(), 1, k);
      // dL/dz = (softmax(z) − onehot(y)) / n;  dW = Σ dz ⊗ x;  db = Σ dz   (in float64)
      const dW = new Float64Array(2 * WIDTH);
      const db = new Float64Array(2);
      for (let r = 0; r < n; r++) {
        const z = [0, 1].map((o) => bias[o]! + [0, 1, 2].reduce((s, j) => s + W[o * WIDTH + j]! * x[r * WIDTH + j]!, 0));
        const m = Math.max(...z);
        const lse = m + Math.log(z.reduce((s, v) => s + Math.exp(v - m), 0));
        lossSum -= z[y[r]!]! - lse;
        for (let o = 0; o < 2; o++) {
          const dz = (Math.exp(z[o]! - lse) - (y[r] === o ? 1 : 0)) / n;
          db[o] += dz;
          for (let j = 0; j < WIDTH; j++) dW[o * WIDTH + j] += dz * x[r * WIDTH + j]!;
        }
      }
      const expected = [...dW, ...db];
      for (let i = 0; i < expected.length; i++) expect(grads[i]).toBeCloseTo(expected[i]!, 6);
    }
    expect(report).toMatchObject({ steps: 3, rows: N, stopped: false });
    expect(report.lossSum).toBeCloseTo(lossSum, 4); // Σ mean loss × rows = Σ per-row loss
  });

  it('an MLP with a hidden layer: equal to central finite differences of the loss', async () => {
    const model = mlp([WIDTH, 4, 2], { activation: 'tanh', rng: new Random(2) });
    const flat = flattenParameters(model);
    const lossAt = (x: Float32Array, y: Int32Array, n: number) => noGrad(() => crossEntropy(model.forward(new Tensor(x, [n, WIDTH])), new IntTensor(y)).item());
    const eps = 1e-2;
    let checked = 0;
    const finiteDifferences: Transport = {
      pull: () => true,
      push: (grads, info) => {
        const { x, y, rows: n } = batchOf(schedule(), info.epoch, info.step);
        for (let i = 0; i < flat.size; i++) {
          const v = flat.params[i]!;
          flat.params[i] = v + eps;
          const up = lossAt(x, y, n);
          flat.params[i] = v - eps;
          const down = lossAt(x, y, n);
          flat.params[i] = v;
          expect(Math.abs(grads[i]! - (up - down) / (2 * eps)), `parameter ${i} at step ${info.step}`).toBeLessThan(2e-3);
          checked++;
        }
      },
    };
    await runEpoch({ model, flat, transport: finiteDifferences, schedule: schedule(), epoch: 0, firstStep: 0 });
    expect(checked).toBe(3 * flat.size);
  });

  it('the default task is classificationTask(width): the same gradients bit for bit', async () => {
    const run = async (task?: Task<WorkerBatch>) => {
      const model = mlp([WIDTH, 4, 2], { rng: new Random(4) });
      const transport = recorder();
      await runEpoch({ model, flat: flattenParameters(model), transport, schedule: schedule(), epoch: 0, firstStep: 0, ...(task ? { task } : {}) });
      return transport.pushes.map((p) => p.grads);
    };
    expect(await run()).toEqual(await run(classificationTask(WIDTH)));
  });

  it('workers of one global batch push gradients whose row-weighted mean is the one-worker gradient', async () => {
    const grads = async (rank: number, worldSize: number) => {
      const model = mlp([WIDTH, 4, 2], { rng: new Random(5) });
      const transport = recorder();
      const report = await runEpoch({ model, flat: flattenParameters(model), transport, schedule: schedule(rank, worldSize), epoch: 0, firstStep: 0 });
      return Object.assign(transport.pushes, { lossSum: report.lossSum });
    };
    const whole = await grads(0, 1);
    const parts = [await grads(0, 2), await grads(1, 2)];
    // Σ loss × rows over the parts is the whole batch's: each worker weights by its own rows.
    expect(parts[0]!.lossSum + parts[1]!.lossSum).toBeCloseTo(whole.lossSum, 5);
    for (let k = 0; k < whole.length; k++) {
      const { grads: g, info } = whole[k]!;
      for (let i = 0; i < g.length; i++) {
        const mean = parts.reduce((s, p) => s + (p[k]!.info.rows * p[k]!.grads[i]!) / info.batchRows, 0);
        expect(mean).toBeCloseTo(g[i]!, 6);
      }
    }
  });
});

describe('runEpoch and its transport', () => {
  it('a pull answering false stops the epoch before that step computes or pushes anything', async () => {
    const model = mlp([WIDTH, 2], { rng: new Random(1) });
    const transport = recorder(1);
    const report = await runEpoch({ model, flat: flattenParameters(model), transport, schedule: schedule(), epoch: 0, firstStep: 0 });
    expect(transport.pulls.map((i) => i.step)).toEqual([0, 1]);
    expect(transport.pushes.map((p) => p.info.step)).toEqual([0]);
    expect(report).toMatchObject({ steps: 1, rows: 4, stopped: true });
  });

  it('awaits a transport whose methods return promises, in order', async () => {
    const model = mlp([WIDTH, 2], { rng: new Random(1) });
    const events: string[] = [];
    const later = <T>(v: T) => new Promise<T>((r) => setTimeout(() => r(v), 1));
    const transport: Transport = {
      pull: (_p, info) => later(true).then((v) => (events.push(`pull ${info.step}`), v)),
      push: (_g, info) => later(undefined).then(() => void events.push(`push ${info.step}`)),
    };
    const report = await runEpoch({ model, flat: flattenParameters(model), transport, schedule: schedule(), epoch: 0, firstStep: 0 });
    expect(events).toEqual(['pull 0', 'push 0', 'pull 1', 'push 1', 'pull 2', 'push 2']);
    expect(report.steps).toBe(3);
  });

  it('startIndex skips the batches before it and pushes what a full epoch pushes for the rest', async () => {
    const model = mlp([WIDTH, 2], { rng: new Random(1) });
    const flat = flattenParameters(model);
    const full = recorder();
    await runEpoch({ model, flat, transport: full, schedule: schedule(), epoch: 2, firstStep: 6 });
    const resumed = recorder();
    const report = await runEpoch({ model, flat, transport: resumed, schedule: schedule(), epoch: 2, firstStep: 6, startIndex: 1 });
    expect(resumed.pulls.map((i) => i.step)).toEqual([7, 8]);
    expect(resumed.pushes).toEqual(full.pushes.slice(1));
    expect(report).toMatchObject({ steps: 2, rows: 6 });
  });

  it('a worker whose part of a batch is empty still pulls and pushes, a zero gradient of 0 rows', async () => {
    const model = mlp([WIDTH, 2], { rng: new Random(1) });
    const flat = flattenParameters(model);
    flat.grads.fill(7); // stale values from before: the loop must clear them
    const transport = recorder();
    // Batches of 2 rows among 3 workers: worker 0 gets ⌊2·1/3⌋ − 0 = 0 rows of each full batch.
    const report = await runEpoch({ model, flat, transport, schedule: schedule(0, 3, 2), epoch: 0, firstStep: 0 });
    expect(transport.pushes).toHaveLength(5);
    for (const { info, grads } of transport.pushes) {
      expect(info).toMatchObject({ rows: 0, batchRows: 2 });
      expect(grads.every((g) => g === 0)).toBe(true);
    }
    expect(report).toMatchObject({ steps: 5, rows: 0, lossSum: 0, stopped: false });
  });

  it('onStep sees the running totals after each push', async () => {
    const model = mlp([WIDTH, 2], { rng: new Random(1) });
    const transport = recorder();
    const seen: Array<[number, number, number, number]> = [];
    const report = await runEpoch({
      model, flat: flattenParameters(model), transport, schedule: schedule(), epoch: 0, firstStep: 0,
      onStep: (soFar, info) => seen.push([info.step, soFar.steps, soFar.rows, transport.pushes.length]),
    });
    expect(seen).toEqual([[0, 1, 4, 1], [1, 2, 8, 2], [2, 3, 10, 3]]);
    expect(report.steps).toBe(3);
  });
});

describe('a task of another batch type', () => {
  // A regression batch with embedding ids: what a CTR task will look like, in miniature.
  interface IdBatch extends StepBatch {
    ids: Int32Array;
    x: Float32Array; // (rows, 2)
    target: Float32Array; // (rows, 1)
  }
  const batches: IdBatch[] = [
    { rows: 2, batchRows: 2, index: 0, ids: Int32Array.of(7, 3), x: Float32Array.of(1, 0, 0, 1), target: Float32Array.of(1, 2) },
    { rows: 1, batchRows: 1, index: 1, ids: Int32Array.of(5), x: Float32Array.of(1, 1), target: Float32Array.of(0) },
  ];
  const idSchedule: BatchSchedule<IdBatch> = { epoch: () => batches };
  const regression: Task<IdBatch> = {
    loss: (model, b) => mseLoss(model.forward(new Tensor(b.x, [b.rows, 2])), new Tensor(b.target, [b.rows, 1])),
    keys: (b) => ({ users: b.ids }),
  };

  it('runs the task, and hands its keys to the transport with the step', async () => {
    const model = mlp([2, 1], { rng: new Random(1) });
    const flat = flattenParameters(model);
    const transport = recorder();
    const report = await runEpoch({ model, flat, transport, schedule: idSchedule, task: regression, epoch: 0, firstStep: 0 });
    expect(transport.pulls.map((i) => i.keys)).toEqual([{ users: Int32Array.of(7, 3) }, { users: Int32Array.of(5) }]);
    expect(transport.pushes.map((p) => p.info.keys)).toEqual([{ users: Int32Array.of(7, 3) }, { users: Int32Array.of(5) }]);
    // The pushed gradient of the second step, by hand: d/dw (w·x + b − t)² = 2(w·x + b − t)·x.
    const [w0, w1, b] = flat.params;
    const e = 2 * (w0! + w1! + b! - 0);
    expect([...transport.pushes[1]!.grads]).toEqual([e, e, e].map((v) => expect.closeTo(v, 5)));
    expect(report).toMatchObject({ steps: 2, rows: 3 });
  });

  it('a dense task hands no keys at all', async () => {
    const model = mlp([WIDTH, 2], { rng: new Random(1) });
    const transport = recorder();
    await runEpoch({ model, flat: flattenParameters(model), transport, schedule: schedule(), epoch: 0, firstStep: 0 });
    expect(transport.pulls.every((i) => !('keys' in i))).toBe(true);
  });

  it('without a task, a schedule other than GlobalBatchSchedule is refused, naming the option', async () => {
    const model = mlp([2, 1], { rng: new Random(1) });
    await expect(runEpoch({ model, flat: flattenParameters(model), transport: recorder(), schedule: idSchedule, epoch: 0, firstStep: 0 })).rejects.toThrow(WorkerError);
    await expect(runEpoch({ model, flat: flattenParameters(model), transport: recorder(), schedule: idSchedule, epoch: 0, firstStep: 0 })).rejects.toThrow(/runEpoch: options.task: expected a Task/);
  });
});

describe('a transport that announces who trains each step (StepPlans)', () => {
  it('each part is cut by its step\'s plan; a task with keys pulls beside the plan by the last one, and again when it changed', async () => {
    // Rank 1 of 3; batches of 4, 4, 2. Step 2 is trained by ranks 0 and 1, with row 0 of step 1 carried.
    const plans: StepPlan[] = [fullPlan(3), fullPlan(3), { live: [0, 1], carry: [{ step: 1, lo: 0, hi: 1 }] }];
    const pulls: Array<{ step: number; rows: number; keys: number[] }> = [];
    const pushes: Array<{ step: number; rows: number; batchRows: number; keys: number[]; plan?: StepPlan }> = [];
    const transport: Transport = {
      plan: (step) => Promise.resolve(plans[step]),
      pull: (_params, info) => {
        pulls.push({ step: info.step, rows: info.rows, keys: [...info.keys!.rows!] });
        return true;
      },
      push: (_grads, info) => void pushes.push({ step: info.step, rows: info.rows, batchRows: info.batchRows, keys: [...info.keys!.rows!], ...(info.plan ? { plan: info.plan } : {}) }),
    };
    const task: Task<WorkerBatch> = { ...classificationTask(WIDTH), keys: (b) => ({ rows: b.y }) };
    const model = mlp([WIDTH, 2], { rng: new Random(1) });
    const report = await runEpoch({ model, flat: flattenParameters(model), transport, schedule: schedule(1, 3), task, epoch: 0, firstStep: 0 });
    const whole = [0, 1, 2].map((k) => [...batchOf(schedule(), 0, k).y]);
    expect(pushes).toEqual([
      { step: 0, rows: 1, batchRows: 4, keys: whole[0]!.slice(1, 2), plan: plans[0] },
      { step: 1, rows: 1, batchRows: 4, keys: whole[1]!.slice(1, 2), plan: plans[1] },
      { step: 2, rows: 2, batchRows: 3, keys: [whole[2]![1]!, whole[1]![0]!], plan: plans[2] }, // rows 1–2 of [batch 2, row 0 of batch 1]
    ]);
    // Step 0 waits for its plan; step 1 is pulled by step 0's plan, which held; step 2 by step 1's, which did not.
    expect(pulls.map((p) => [p.step, p.rows])).toEqual([[0, 1], [1, 1], [2, 1], [2, 2]]);
    expect(pulls.at(-1)!.keys).toEqual(pushes.at(-1)!.keys);
    expect(report).toMatchObject({ steps: 3, rows: 4 });
  });
});

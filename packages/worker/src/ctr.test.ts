import { describe, expect, it } from 'vitest';
import { generateClickLog, auc, clickBaselines } from '@loom/data';
import { IntTensor, Random, Tensor, bceWithLogits, cat, embedding, embeddingBag, flattenParameters } from '@loom/tensor-core';
import { Adam } from '@loom/optimizer';
import { CTR_DIM, CtrModel, CtrSchedule, ctrTask, type CtrBatch } from './ctr.js';
import { inProcessTransport } from './in-process.js';
import { runEpoch } from './loop.js';
import type { RowStore } from './tables.js';

const D = CTR_DIM;

/** A whole table in one array, stepped by plain SGD: enough of a store to test what reaches it. */
class ArrayStore implements RowStore {
  readonly pulls: number[][] = [];
  readonly pushes: { ids: number[]; grads: Float32Array }[] = [];
  constructor(readonly table: Float32Array, readonly lr = 0) {}
  pull(ids: ArrayLike<number>, out: Float32Array): void {
    this.pulls.push(Array.from(ids));
    for (let k = 0; k < ids.length; k++) out.set(this.table.subarray(ids[k]! * D, (ids[k]! + 1) * D), k * D);
  }
  push(ids: ArrayLike<number>, grads: Float32Array): void {
    this.pushes.push({ ids: Array.from(ids), grads: grads.slice() });
    for (let k = 0; k < ids.length; k++) for (let d = 0; d < D; d++) this.table[ids[k]! * D + d]! -= this.lr * grads[k * D + d]!;
  }
}

function randomTable(rows: number, rng: Random): Float32Array {
  return Float32Array.from({ length: rows * D }, () => rng.normal());
}

describe('the CTR task', () => {
  const log = generateClickLog({ seed: 3, scale: 0.3 });
  const data = log.materialize();
  const shape = { historyLength: log.historyLength, denseWidth: log.denseWidth };

  it("pushes each touched row once, with the gradient a whole-table model computes", () => {
    const rng = new Random(11);
    const full = {
      user: randomTable(log.numUsers, rng),
      article: randomTable(log.numArticles, rng),
      category: randomTable(18, rng),
      subcategory: randomTable(270, rng),
    };
    const stores = Object.fromEntries(Object.entries(full).map(([k, v]) => [k, new ArrayStore(v)]));
    const model = new CtrModel(shape, { rng: new Random(2) });
    const task = ctrTask(model);
    const schedule = new CtrSchedule(data, shape, [0, 64], 64);
    const batch = [...schedule.epoch(0)][0]!;
    const keys = task.keys(batch);
    task.tables.prepare(keys);
    for (const t of task.tables) stores[t.name]!.pull(t.ids, t.rows);
    model.zeroGrad();
    task.loss(model, batch).backward();

    // The same loss over the whole tables, with their dense gradients.
    const whole = Object.fromEntries(Object.entries(full).map(([k, v]) => [k, new Tensor(v.slice(), [v.length / D, D], true)]));
    const B = batch.rows;
    const H = log.historyLength;
    const z = cat([
      embedding(whole.user!, new IntTensor(batch.user.slice())),
      embedding(whole.article!, new IntTensor(batch.article.slice())),
      embedding(whole.category!, new IntTensor(batch.category.slice())),
      embedding(whole.subcategory!, new IntTensor(batch.subcategory.slice())),
      embeddingBag(whole.article!, new IntTensor(batch.history.slice()), new IntTensor(Int32Array.from({ length: B }, (_, i) => i * H)), 'mean'),
      model.dense.forward(new Tensor(batch.dense, [B, shape.denseWidth])),
    ]);
    bceWithLogits(model.mlp.forward(z), new Tensor(batch.label, [B, 1])).backward();

    for (const t of task.tables) {
      const g = whole[t.name]!.grad!.data;
      // Only the touched rows have a gradient, and each is pushed once (ids unique, ascending).
      expect(new Set(t.ids).size).toBe(t.ids.length);
      const position = new Map(Array.from(t.ids, (id, i) => [id, i]));
      let wrong = 0;
      for (let r = 0; r < g.length / D; r++) {
        const at = position.get(r);
        for (let d = 0; d < D; d++) {
          const want = g[r * D + d]!;
          const got = at === undefined ? 0 : t.grads[at * D + d]!;
          if (!(Math.abs(got - want) <= 1e-6 + 1e-5 * Math.abs(want))) wrong++;
        }
      }
      expect(wrong, t.name).toBe(0);
      expect(t.grads.some((v) => v !== 0), t.name).toBe(true);
      // The article table's rows include the histories': more rows than the batch's articles alone.
      if (t.name === 'article') expect(t.ids.length).toBeGreaterThan(new Set(batch.article).size);
    }
  });

  it('trains in process through runEpoch, tables stepped by their stores, and beats both baselines', async () => {
    const train = [0, log.validStart] as const;
    const rng = new Random(5);
    const stores = {
      user: new ArrayStore(Float32Array.from({ length: log.numUsers * D }, () => 0.1 * rng.normal()), 0.05),
      article: new ArrayStore(Float32Array.from({ length: log.numArticles * D }, () => 0.1 * rng.normal()), 0.05),
      category: new ArrayStore(Float32Array.from({ length: 18 * D }, () => 0.1 * rng.normal()), 0.05),
      subcategory: new ArrayStore(Float32Array.from({ length: 270 * D }, () => 0.1 * rng.normal()), 0.05),
    };
    const model = new CtrModel(shape, { rng: new Random(1) });
    const flat = flattenParameters(model);
    const opt = new Adam(model.parameters(), { lr: 3e-3 });
    const task = ctrTask(model);
    const schedule = new CtrSchedule(data, shape, train, 128);
    const transport = inProcessTransport(opt, { tables: stores, yieldEveryMs: Infinity });
    const losses: number[] = [];
    for (let epoch = 0; epoch < 2; epoch++) {
      const r = await runEpoch<CtrBatch>({ model, flat, transport, schedule, task, epoch, firstStep: epoch * schedule.batchesPerEpoch });
      losses.push(r.lossSum / r.rows);
    }
    expect(losses[1]).toBeLessThan(losses[0]!);
    expect(stores.user.pushes.length).toBe(2 * schedule.batchesPerEpoch);

    // Score the held-out later impressions with the trained tables.
    const valid = new CtrSchedule(data, shape, [log.validStart, log.numImpressions], 4096);
    const scores: number[] = [];
    const labels: number[] = [];
    model.eval();
    for (const b of valid.epoch(0)) {
      task.tables.prepare(task.keys(b));
      for (const t of task.tables) stores[t.name as keyof typeof stores].pull(t.ids, t.rows);
      const logits = model.forward({ tables: task.tables, batch: b });
      scores.push(...logits.data);
      labels.push(...b.label);
    }
    // Two epochs over 26,000 impressions learn enough of users' tastes to beat both model-free
    // baselines on the later days (measured: 0.593 against 0.512 and 0.566).
    const base = clickBaselines(log);
    expect(auc(scores, labels)).toBeGreaterThan(Math.max(base.popularityAuc, base.userCategoryAuc) + 0.01);
  });
});

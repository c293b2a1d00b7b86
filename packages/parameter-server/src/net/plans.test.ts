// Re-sharding when workers come and go: the sync clock policy fixes each step's plan, carries the
// share of a live rank that died before pushing, and counts what every epoch's updates were made
// of; the workers cut their parts with @loom/worker's schedules. Driven step by step in one
// process (no sockets): every row of every epoch is trained exactly once, whatever the membership.
import { describe, expect, it } from 'vitest';
import { CtrSchedule, GlobalBatchSchedule, type StepPlan } from '@loom/worker';
import { PsError } from './errors.js';
import { netPolicy, type NetPolicy, type UpdateTarget } from './policy.js';

/** An update as the target saw it: the row ids of the pushes it summed, and their weights. */
interface Update {
  rows: number[][];
  weights: number[];
}

function recorder(): { updates: Update[]; target: UpdateTarget<number[]> } {
  const updates: Update[] = [];
  return { updates, target: { begin: () => {}, sum: (_t, grads, weights) => updates.push({ rows: grads, weights }), own: () => {} } };
}

describe('plans of a sync run', () => {
  it('a live rank that dies before pushing has its share carried into the next plan, and the update is the mean over the rows it has', () => {
    const { updates, target } = recorder();
    const p = netPolicy<number[]>({ mode: 'sync', staleness: 0, workers: 3 }, target);
    p.stepsPerEpoch = 10;
    expect(p.plan(0)).toEqual({ live: [0, 1, 2], carry: [] });
    // Step 0: 9 rows; ranks 0, 1, 2 take 3 each. Rank 2 dies while computing.
    p.push(0, 0, [0, 1, 2], 3, 9, true, [0, 1, 2]);
    expect(p.drop(2)).toBe(0); // still waiting for rank 1
    expect(p.push(1, 0, [3, 4, 5], 3, 9, true, [0, 1, 2]).appliedNow).toBe(1);
    expect(updates[0]!.weights).toEqual([0.5, 0.5]); // 3/9 each, renormalised over the 6 rows pushed
    expect(p.plan(1)).toEqual({ live: [0, 1], carry: [{ step: 0, lo: 6, hi: 9 }] });
    // Step 1: 9 rows of its own + 3 carried = 12, 6 each, weights 6/12: nothing missing, nothing renormalised.
    p.push(0, 1, [], 6, 12, true, [0, 1]);
    p.push(1, 1, [], 6, 12, true, [0, 1]);
    expect(updates[1]!.weights).toEqual([0.5, 0.5]);
    expect(p.plan(2)).toEqual({ live: [0, 1], carry: [] });
    const [e0] = p.trained();
    expect(e0).toMatchObject({ epoch: 0, rows: 18, expected: 18, ranks: [9, 9, 0], open: true });
    expect(e0!.changes).toEqual([{ step: 1, live: [0, 1], carried: 3 }]);
  });

  it('a rank readmitted after a plan was fixed without it pushes nothing for that step, and is live from the next plan', () => {
    const p = netPolicy<number[]>({ mode: 'sync', staleness: 0, workers: 2 }, recorder().target);
    p.push(0, 0, [], 4, 8, true, [0, 1]);
    p.drop(1);
    expect(p.applied).toBe(1);
    expect(p.plan(1)!.live).toEqual([0]); // fixed while rank 1 was away
    p.join(1, 1);
    expect(() => p.push(1, 1, [], 0, 8, true, [0])).toThrow(/worker 1 is not among the live ranks \[0\] of step 1: it trains from a later step/);
    expect(p.push(0, 1, [], 8, 8, true, [0]).appliedNow).toBe(1); // clock 1 does not wait for it
    expect(p.plan(1)!.live).toEqual([0]); // still told to a pull of step 1 that comes after it was applied
    expect(p.plan(2)!.live).toEqual([0, 1]);
  });

  it('refuses pushes of one step cut for different live ranks, naming both', () => {
    const p = netPolicy<number[]>({ mode: 'sync', staleness: 0, workers: 2 }, recorder().target);
    p.push(0, 0, [], 4, 8, true, [0, 1]);
    const e = (() => {
      try {
        p.push(1, 0, [], 8, 8, true, [1]);
      } catch (x) {
        return x as PsError;
      }
    })();
    expect(e).toBeInstanceOf(PsError);
    expect(e!.code).toBe('bad-request');
    expect(e!.message).toBe('step 0: worker 1 cut it for live ranks [1], an earlier push for [0, 1]');
  });

  it('ssp: the plan of step t is fixed when update t − S is applied, and a dead rank\'s share goes to the plan fixed next', () => {
    const p = netPolicy<number[]>({ mode: 'ssp', staleness: 1, workers: 2 }, recorder().target);
    expect([p.plan(0)?.live, p.plan(1)?.live, p.plan(2)]).toEqual([[0, 1], [0, 1], undefined]);
    p.push(0, 0, [], 2, 4, true, [0, 1]);
    p.push(0, 1, [], 2, 4, true, [0, 1]);
    p.drop(1); // rank 1 never pushed steps 0 and 1: both are applied, and their shares carried 1 + S steps on
    expect(p.applied).toBe(2);
    expect(p.plan(2)).toEqual({ live: [0], carry: [{ step: 0, lo: 2, hi: 4 }] });
    expect(p.plan(3)).toEqual({ live: [0], carry: [{ step: 1, lo: 2, hi: 4 }] });
  });
});

describe('plans of an async run: re-sharding at epoch boundaries', () => {
  it('the first pull of an epoch fixes its plan; a worker dropped mid-epoch leaves the rest of its share, which the others take from the next epoch', () => {
    const p = netPolicy<number[]>({ mode: 'async', staleness: 0, workers: 3 }, recorder().target);
    expect(p.plan(0)).toBeUndefined(); // steps per epoch not known yet (no join said them)
    p.stepsPerEpoch = 2; // batches of 6 rows, 2 per epoch
    expect(p.plan(0)).toEqual({ live: [0, 1, 2], carry: [] });
    for (const r of [0, 1, 2]) p.push(r, 0, [], 2, 6, true);
    p.push(0, 1, [], 2, 6, true);
    p.drop(1); // before its push of step 1
    p.push(2, 1, [], 2, 6, true);
    expect(p.plan(1)!.live).toEqual([0, 1, 2]); // epoch 0's plan holds to its end
    expect(p.plan(2)).toEqual({ live: [0, 2], carry: [] }); // epoch 1: the first pull of it, without rank 1
    for (const r of [0, 2]) for (const step of [2, 3]) p.push(r, step, [], 3, 6, true);
    p.join(1);
    expect(p.plan(3)!.live).toEqual([0, 2]); // readmitted mid-epoch: it trains from the next one
    expect(p.plan(4)!.live).toEqual([0, 1, 2]);
    expect(p.trained().map((t) => [t.epoch, t.rows, t.expected, t.ranks])).toEqual([[0, 10, 12, [4, 2, 4]], [1, 12, 12, [6, 0, 6]], [2, 0, 0, [0, 0, 0]]]);
    expect(p.trained().flatMap((t) => t.changes)).toEqual([{ step: 2, live: [0, 2], carried: 0 }, { step: 4, live: [0, 1, 2], carried: 0 }]);
  });

  it('a worker that rejoins behind the others finds nobody live in the epochs they are past, and skips to theirs', () => {
    const p = netPolicy<number[]>({ mode: 'async', staleness: 0, workers: 2 }, recorder().target);
    p.stepsPerEpoch = 10;
    for (let e = 0; e <= 5; e++) p.plan(10 * e);
    expect(p.plan(12)).toEqual({ live: [], carry: [] }); // epoch 1: forgotten, and behind epoch 5
    expect(p.plan(45)!.live).toEqual([0, 1]);
  });
});

/**
 * A sync run of W simulated workers over E epochs, each step: every live worker that is alive asks
 * the policy for the step's plan (as the parameters would bring it), cuts its part with `cut`, and
 * pushes the part's row ids; `events` kill and readmit ranks before given steps (a killed rank may
 * first push, as a worker killed while waiting for its reply does). Returns the updates.
 */
function run(o: {
  workers: number;
  epochs: number;
  perEpoch: number;
  cut: (rank: number, epoch: number, index: number, plan: StepPlan) => { ids: number[]; rows: number; batchRows: number };
  events: Array<{ step: number; kill?: number; pushedFirst?: boolean; readmit?: number }>;
}): { updates: Update[]; policy: NetPolicy<number[]> } {
  const { updates, target } = recorder();
  const policy = netPolicy<number[]>({ mode: 'sync', staleness: 0, workers: o.workers }, target);
  policy.stepsPerEpoch = o.perEpoch;
  const alive = new Set(Array.from({ length: o.workers }, (_, r) => r));
  for (let step = 0; step < o.epochs * o.perEpoch; step++) {
    const plan = policy.plan(step)!;
    expect(plan, `the plan of step ${step}`).toBeDefined();
    const e = Math.floor(step / o.perEpoch), index = step % o.perEpoch;
    const parts = [...alive].filter((r) => plan.live.includes(r)).map((r) => ({ r, ...o.cut(r, e, index, plan) }));
    for (const ev of o.events.filter((x) => x.step === step)) {
      if (ev.kill !== undefined) {
        const part = parts.find((x) => x.r === ev.kill);
        if (ev.pushedFirst && part !== undefined) policy.push(part.r, step, part.ids, part.rows, part.batchRows, true, plan.live);
        policy.drop(ev.kill);
        alive.delete(ev.kill);
        if (part !== undefined) parts.splice(parts.indexOf(part), 1);
      }
      if (ev.readmit !== undefined) {
        policy.join(ev.readmit, step);
        alive.add(ev.readmit);
      }
    }
    for (const x of parts) policy.push(x.r, step, x.ids, x.rows, x.batchRows, true, plan.live);
    expect(policy.applied, `update ${step + 1} applied`).toBe(step + 1);
  }
  return { updates, policy };
}

/** Row id → how many times it was trained in updates [from, to) (1-based update t is updates[t − 1]). */
function counts(updates: Update[], from: number, to: number): Map<number, number> {
  const m = new Map<number, number>();
  for (const u of updates.slice(from - 1, to - 1)) for (const ids of u.rows) for (const id of ids) m.set(id, (m.get(id) ?? 0) + 1);
  return m;
}

/**
 * Every row trained exactly once per epoch: no row twice in one update; through the first update
 * of epoch e + 1 (which takes the rows carried from epoch e's last step) every row at least e + 1
 * times, and through the last update of epoch e at most e + 1 times; E times in all; and the
 * policy's ledger agrees, epoch by epoch.
 */
function expectEachRowOncePerEpoch(updates: Update[], policy: NetPolicy<number[]>, n: number, epochs: number, perEpoch: number): void {
  for (const [t, u] of updates.entries()) {
    const ids = u.rows.flat();
    expect(new Set(ids).size, `update ${t + 1} trains a row twice`).toBe(ids.length);
  }
  for (let e = 0; e < epochs; e++) {
    const upTo = counts(updates, 1, (e + 1) * perEpoch + 1);
    for (let id = 0; id < n; id++) expect(upTo.get(id) ?? 0, `row ${id} through epoch ${e}`).toBeLessThanOrEqual(e + 1);
    if (e < epochs - 1) {
      const withCarry = counts(updates, 1, (e + 1) * perEpoch + 2);
      for (let id = 0; id < n; id++) expect(withCarry.get(id) ?? 0, `row ${id} through epoch ${e} and its carry`).toBeGreaterThanOrEqual(e + 1);
    }
  }
  const all = counts(updates, 1, updates.length + 1);
  for (let id = 0; id < n; id++) expect(all.get(id), `row ${id} in all`).toBe(epochs);
  const trained = policy.trained();
  expect(trained.map((t) => [t.epoch, t.rows, t.expected])).toEqual(Array.from({ length: epochs }, (_, e) => [e, n, n]));
  for (const t of trained) expect(t.ranks.reduce((a, b) => a + b, 0)).toBe(n);
}

describe('every row once per epoch, whatever the membership', () => {
  // Kills in the middle of a step (before or after the victim's push), at an epoch's last step
  // (its share carried into the next epoch), two at once, and readmissions.
  const events = [
    { step: 3, kill: 1 },
    { step: 6, readmit: 1 },
    { step: 9, kill: 2, pushedFirst: true },
    { step: 14, kill: 0 }, // the last step of epoch 1: carried into epoch 2's first
    { step: 17, readmit: 2 },
    { step: 18, readmit: 0 },
    { step: 22, kill: 1 },
    { step: 22, kill: 2 },
    { step: 25, readmit: 1 },
  ];

  it('GlobalBatchSchedule: 3 workers, 4 epochs of 7 steps of ≤ 16 rows (the last short), shuffled per epoch', () => {
    const n = 103;
    const source = { features: new Float32Array(n), labels: Int32Array.from({ length: n }, (_, i) => i), width: 1 };
    const rows = Int32Array.from({ length: n }, (_, i) => i);
    const schedules = [0, 1, 2].map((r) => new GlobalBatchSchedule(source, rows, 16, 11, r, 3));
    expect(schedules[0]!.batchesPerEpoch).toBe(7);
    const { updates, policy } = run({
      workers: 3, epochs: 4, perEpoch: 7, events,
      cut: (r, e, index, plan) => {
        const b = schedules[r]!.share(e, index, plan);
        return { ids: [...b.y], rows: b.rows, batchRows: b.batchRows };
      },
    });
    expectEachRowOncePerEpoch(updates, policy, n, 4, 7);
  });

  it('CtrSchedule: the log in order, 3 workers, 3 epochs of 5 steps', () => {
    const n = 77, H = 2, D = 1;
    const columns = {
      rows: n, user: new Int32Array(n), article: new Int32Array(n), category: new Int32Array(n), subcategory: new Int32Array(n),
      history: new Int32Array(n * H), dense: new Float32Array(n * D), label: Float32Array.from({ length: n }, (_, i) => i),
    };
    const schedules = [0, 1, 2].map((r) => new CtrSchedule(columns, { historyLength: H, denseWidth: D }, [0, n], 16, r, 3));
    const { updates, policy } = run({
      workers: 3, epochs: 3, perEpoch: 5, events: [{ step: 2, kill: 1 }, { step: 4, kill: 2 }, { step: 6, readmit: 1 }, { step: 9, readmit: 2 }, { step: 11, kill: 0, pushedFirst: true }],
      cut: (r, e, index, plan) => {
        const b = schedules[r]!.share(e, index, plan);
        return { ids: [...b.label], rows: b.rows, batchRows: b.batchRows };
      },
    });
    expectEachRowOncePerEpoch(updates, policy, n, 3, 5);
  });
});

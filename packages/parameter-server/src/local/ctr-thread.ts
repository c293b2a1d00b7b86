/**
 * The entry point of a CTR run's worker thread (run by piscina; see ctr-coordinator.ts): trains one
 * epoch of its part of every global batch with runEpoch and ctrTask. Its transport is the dense
 * sync policy with the tables' policy around it: pull = the dense pull, then the step's rows from
 * the shared tables; push = the tables' push (Hogwild! steps, or the exchange), then the dense sync
 * step, whose barriers bracket the sync tables' reduction. Built on the thread's first task of a
 * run and kept for the next epochs.
 */
import { namedOptimizer } from '@loom/optimizer';
import { flattenParameters, type FlatParameters } from '@loom/tensor-core';
import { CtrModel, CtrSchedule, ctrTask, runEpoch, type CtrBatch, type Task, type Transport } from '@loom/worker';
import { sharedTables } from '../tables/shared-tables.js';
import type { CtrEpochTask, EpochResult } from './messages.js';
import { localTransport, type LocalTransport } from './policies.js';
import { bindThread, views } from './shared.js';
import { setSpin } from './sync-point.js';
import { tablePolicy } from './table-policy.js';

interface ThreadState {
  runId: string;
  /** The worker this thread was set up as: the cache holds only for the same run and rank. */
  rank: number;
  model: CtrModel;
  flat: FlatParameters;
  dense: LocalTransport;
  transport: Transport;
  schedule: CtrSchedule;
  task: Task<CtrBatch>;
}

let state: ThreadState | null = null;

function setUp(t: CtrEpochTask): ThreadState {
  const { run, rank } = t;
  bindThread(run, rank);
  setSpin(run.workers);
  const tables = tablePolicy(t.tableMode, sharedTables(t.tables), t.exchange, rank);
  const { algorithm, options } = namedOptimizer(t.optimizer.name, { lr: t.optimizer.lr });
  const dense = localTransport({ run, rank, algorithm, options, betweenBarriers: (info) => tables.betweenBarriers(info) });
  const transport: Transport = {
    pull(params, info) {
      if (!(dense.pull(params, info) as boolean)) return false;
      tables.pull(info.tables!);
      return true;
    },
    push(grads, info) {
      tables.push(info.tables!, info);
      dense.push(grads, info);
    },
  };
  // The model adopts the shared dense parameters (the coordinator initialised them).
  const model = new CtrModel(t.shape);
  const flat = flattenParameters(model, { params: views(run).params, grads: dense.gradBuffer });
  const c = t.columns;
  const columns = {
    rows: c.rows, user: new Int32Array(c.user), article: new Int32Array(c.article), category: new Int32Array(c.category),
    subcategory: new Int32Array(c.subcategory), history: new Int32Array(c.history), dense: new Float32Array(c.dense), label: new Float32Array(c.label),
  };
  const schedule = new CtrSchedule(columns, t.shape, t.range, t.batchSize, rank, run.workers);
  return { runId: t.runId, rank, model, flat, dense, transport, schedule, task: ctrTask(model) };
}

export default async function trainCtrEpoch(t: CtrEpochTask): Promise<EpochResult> {
  // piscina gives a task to whichever thread is free, so a thread may be another rank next epoch.
  if (state === null || state.runId !== t.runId || state.rank !== t.rank) state = setUp(t);
  const { model, flat, dense, transport, schedule, task } = state;
  const report = await runEpoch({ model, flat, transport, schedule, task, epoch: t.epoch, firstStep: t.firstStep });
  return { ...report, rank: t.rank, ...dense.staleness.summary() };
}

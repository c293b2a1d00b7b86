/**
 * The entry point of a worker thread (run by piscina): trains one epoch of its part of a local
 * run. The model and transport are built on the thread's first task of a run and kept for the
 * next epochs; the model's parameters are views of the shared parameters, never a copy.
 */
import { flattenParameters, type FlatParameters, type Module } from '@loom/tensor-core';
import { namedOptimizer } from '@loom/optimizer';
import { GlobalBatchSchedule, runEpoch, type Task, type WorkerBatch } from '@loom/worker';
import { buildChoice } from './model-spec.js';
import { localTransport, type LocalTransport } from './policies.js';
import { bindThread, views } from './shared.js';
import { setSpin } from './sync-point.js';
import type { EpochResult, EpochTask } from './messages.js';

interface ThreadState {
  runId: string;
  /** The worker this thread was set up as: the cache holds only for the same run and rank. */
  rank: number;
  model: Module;
  flat: FlatParameters;
  transport: LocalTransport;
  schedule: GlobalBatchSchedule;
  task: Task<WorkerBatch>;
}

let state: ThreadState | null = null;

function setUp(task: EpochTask): ThreadState {
  const { run, rank } = task;
  const { algorithm, options } = namedOptimizer(task.optimizer.name, { lr: task.optimizer.lr });
  // The optimizer steps and reductions of this thread then run in place in the run's memory.
  bindThread(run, rank);
  setSpin(run.workers);
  const transport = localTransport({ run, rank, algorithm, options });
  // The model adopts the shared parameters the coordinator initialised, so it draws none of its own.
  const { spec, model } = buildChoice(task.model, task.seed, { adopting: true });
  // Adopt the shared parameters (the coordinator initialised them) and accumulate gradients
  // where the transport reads them.
  const flat = flattenParameters(model, { params: views(run).params, grads: transport.gradBuffer });
  const { features, labels, rows, width } = task.data;
  const schedule = new GlobalBatchSchedule(
    { features: new Float32Array(features), labels: new Int32Array(labels), width },
    new Int32Array(rows),
    task.batchSize,
    task.seed,
    rank,
    run.workers,
  );
  return { runId: task.runId, rank, model, flat, transport, schedule, task: spec.task(width) };
}

export default async function trainEpoch(task: EpochTask): Promise<EpochResult> {
  // piscina gives a task to whichever thread is free, so a thread may be another rank next epoch.
  if (state === null || state.runId !== task.runId || state.rank !== task.rank) state = setUp(task);
  const { model, flat, transport, schedule } = state;
  const report = await runEpoch({ model, flat, transport, schedule, task: state.task, epoch: task.epoch, firstStep: task.firstStep });
  return { ...report, rank: task.rank, ...transport.staleness.summary() };
}

/**
 * Data-parallel training on worker threads of one machine, with one copy of the parameters in
 * shared memory. The coordinator (this module, on the caller's thread) initialises the shared
 * buffers, runs one piscina task per worker per epoch, and in between hands the caller a model
 * whose parameters ARE the shared ones, for validation and checkpoints.
 */
import { availableParallelism } from 'node:os';
import { Piscina } from 'piscina';
import { flattenParameters, type Module } from '@loom/tensor-core';
import { namedOptimizer } from '@loom/optimizer';
import { GlobalBatchSchedule, epochMetrics, type EpochMetrics, type WorkerMetrics } from '@loom/worker';
import { MODES, type Mode } from '../mode.js';
import { Word, allocateRun, releaseRun, views } from './shared.js';
import { at, wakeAll } from './sync-point.js';
import type { EpochResult, EpochTask } from './messages.js';
import { sharedData, threadFile } from './thread-setup.js';
import { buildChoice, specOf, type ModelChoice } from './model-spec.js';

export interface ThreadTrainingOptions extends ModelChoice {
  /** The model: `model`, a --model spec (@loom/worker's registry), or the MLP of `sizes`; built from `seed`. */
  data: { features: Float32Array; labels: Int32Array; width: number; rows: Int32Array };
  optimizer: string;
  lr: number;
  /** The global batch: split across workers in sync mode, and the unit of a step in every mode. */
  batchSize: number;
  epochs: number;
  seed: number;
  /** Worker threads; default: the number of cores. */
  workers?: number;
  mode?: Mode;
  /** Ssp only: how many updates a worker may run ahead of the slowest. */
  staleness?: number;
  /** Aborting stops every worker after its current step; the model trained so far is kept. */
  signal?: AbortSignal;
  /** Called after every epoch, with the model bound to the shared parameters. */
  onEpoch?: (metrics: ThreadEpochMetrics, model: Module<any>) => void | Promise<void>;
}

/** An epoch of worker threads: every worker's share, and whether the run was stopped in it. */
export interface ThreadEpochMetrics extends EpochMetrics {
  workers: WorkerMetrics[];
  stopped: boolean;
}

/** A worker thread failed; names the worker and the cause. */
export class WorkerFailed extends Error {
  constructor(
    readonly rank: number,
    override readonly cause: unknown,
  ) {
    super(`worker ${rank} failed: ${cause instanceof Error ? cause.message : String(cause)}`);
    this.name = 'WorkerFailed';
  }
}

let runs = 0;
/** A new run's id: a thread keeps its model and transport between the epochs of one run. */
export const nextRunId = (): string => `${process.pid}-${++runs}`;

/** @internal What runThreadEpochs needs: the thread file, the run's control words, and each worker's task. */
export interface ThreadEpochsOptions<T> {
  file: string;
  workers: number;
  ctrl: Int32Array;
  epochs: number;
  signal?: AbortSignal;
  task: (epoch: number, rank: number) => T;
  onEpoch: (metrics: ThreadEpochMetrics) => void | Promise<void>;
  /**
   * What an epoch's samples/s divides by: 'wall' (default), the epoch's wall time, thread start-up
   * included; 'workers', the slowest worker's time in its loop, as one thread's samples/s is
   * measured (start-up and setup left out).
   */
  timing?: 'wall' | 'workers';
}

/**
 * @internal The part every local run shares: a piscina pool of one thread per worker, one task per
 * worker per epoch, onEpoch in between (the threads idle), stop on the signal after the current
 * step, and a failed worker waking the others out of their barriers. Resolves with whether the run
 * was stopped; every thread has exited when it settles.
 */
export async function runThreadEpochs<T>(o: ThreadEpochsOptions<T>): Promise<boolean> {
  const { workers, ctrl } = o;
  const pool = new Piscina({ filename: o.file, minThreads: workers, maxThreads: workers, concurrentTasksPerWorker: 1, idleTimeout: 60_000 });
  const stop = () => {
    Atomics.store(ctrl, at(Word.StopRequested), 1);
    wakeAll(ctrl);
  };
  o.signal?.addEventListener('abort', stop, { once: true });
  if (o.signal?.aborted) stop();
  let stopped = false;
  try {
    for (let epoch = 0; epoch < o.epochs && !stopped; epoch++) {
      const t0 = performance.now();
      const tasks = Array.from({ length: workers }, (_, rank) =>
        (pool.run(o.task(epoch, rank)) as Promise<EpochResult>).catch((e: unknown) => {
          throw e instanceof WorkerFailed ? e : new WorkerFailed(rank, e);
        }),
      );
      let results: EpochResult[];
      try {
        results = await Promise.all(tasks);
      } catch (e) {
        // One worker failed: wake the others out of their barriers so they exit, then report it.
        Atomics.store(ctrl, at(Word.Abort), 1);
        wakeAll(ctrl);
        await Promise.allSettled(tasks);
        throw e;
      }
      const seconds = (performance.now() - t0) / 1000;
      stopped = results.some((r) => r.stopped);
      await o.onEpoch({ ...(o.timing === 'workers' ? epochMetrics(epoch + 1, results) : epochMetrics(epoch + 1, results, seconds)), stopped });
    }
  } finally {
    o.signal?.removeEventListener('abort', stop);
    await pool.destroy();
  }
  return stopped;
}

/**
 * Trains an MLP data-parallel on worker threads and returns it (parameters copied out of shared
 * memory). Resolves when every epoch is done or the signal stopped the run; rejects with
 * WorkerFailed when a worker throws. Either way every thread has exited when it settles.
 *
 * @example
 * const model = await trainThreads({ sizes: [100, 50, 10], data, optimizer: 'adam', lr: 1e-3,
 *   batchSize: 64, epochs: 5, seed: 42, workers: 2, mode: 'sync' });
 */
export async function trainThreads(o: ThreadTrainingOptions): Promise<{ model: Module<any>; stopped: boolean }> {
  const workers = o.workers ?? availableParallelism();
  const mode = o.mode ?? 'sync';
  const staleness = o.staleness ?? 0;
  if (!(Number.isInteger(workers) && workers >= 1)) throw new Error(`trainThreads: workers must be a positive integer, got ${workers}`);
  if (!MODES.includes(mode)) throw new Error(`trainThreads: mode must be one of ${MODES.join(', ')}, got '${mode}'`);
  if (!(Number.isInteger(staleness) && staleness >= 0)) throw new Error(`trainThreads: staleness must be an integer ≥ 0, got ${staleness}`);

  const spec = specOf(o, 'trainThreads');
  const { model } = buildChoice(spec, o.seed);
  const initial = flattenParameters(model);
  const { algorithm, options } = namedOptimizer(o.optimizer, { lr: o.lr });
  const stateInit = Object.fromEntries(algorithm.stateKeys(options).map((k) => [k, algorithm.initialValue(k, options)]));
  const run = allocateRun(mode, workers, staleness, initial.size, stateInit);
  const v = views(run);
  v.params.set(initial.params);
  flattenParameters(model, { params: v.params }); // the caller's model reads the shared parameters

  const data = sharedData(o.data);
  const batchesPerEpoch = new GlobalBatchSchedule(o.data, o.data.rows, o.batchSize, o.seed, 0, 1).batchesPerEpoch;
  const runId = nextRunId();
  let stopped = false;
  try {
    stopped = await runThreadEpochs<EpochTask>({
      file: threadFile('local/thread.js'), workers, ctrl: v.ctrl, epochs: o.epochs, signal: o.signal,
      task: (epoch, rank) => ({
        runId, rank, run, model: spec, seed: o.seed, optimizer: { name: o.optimizer, lr: o.lr }, data,
        batchSize: o.batchSize, epoch, firstStep: epoch * batchesPerEpoch,
      }),
      onEpoch: (metrics) => o.onEpoch?.(metrics, model),
    });
  } finally {
    // Hand back parameters of the caller's own, so the run's memory can be released.
    flattenParameters(model);
    releaseRun(run);
  }
  return { model, stopped };
}

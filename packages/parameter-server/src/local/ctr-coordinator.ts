/**
 * The CTR model (@loom/worker's ctr.ts) data-parallel on worker threads of one machine: the dense
 * part in the run's shared memory and stepped sync as every local run's (policies.ts), the four
 * embedding tables in one SharedArrayBuffer (../tables/shared-tables.ts) stepped async (Hogwild!,
 * the default: Persia's "sync dense, async embeddings") or sync (averaged), see table-policy.ts.
 * Each thread runs the one training loop (runEpoch) with ctrTask over its part of every global batch.
 */
import { availableParallelism } from 'node:os';
import { namedOptimizer } from '@loom/optimizer';
import { flattenParameters } from '@loom/tensor-core';
import { CTR_TABLES, CtrSchedule, type CtrColumns, type CtrModel } from '@loom/worker';
import { allocateSharedTables, sharedTables, type SharedTable } from '../tables/shared-tables.js';
import { nextRunId, runThreadEpochs, type ThreadEpochMetrics } from './coordinator.js';
import type { CtrEpochTask, SharedCtrColumns } from './messages.js';
import { allocateRun, releaseRun, views } from './shared.js';
import { TABLE_MODES, allocateExchange, type TableMode } from './table-policy.js';
import { shared, threadFile } from './thread-setup.js';

export interface CtrThreadOptions {
  /**
   * The model, initialised: its dense parameters start the run, and it reads the shared ones while
   * the run lasts (in onEpoch), then holds the trained values in arrays of its own.
   */
  model: CtrModel;
  /** The impressions; SharedArrayBuffer-backed columns are shared as they are, others are copied once. */
  columns: CtrColumns;
  /** The training impressions [from, to) of the columns, in batches of `batchSize` in order. */
  range: readonly [number, number];
  /** Rows of each table (ids 0 … rows−1): user, article, category, subcategory. */
  tableRows: Readonly<Record<string, number>>;
  /** Seeds the tables' rows (as RowTable would for the same seed). */
  seed: number;
  /** The dense part's optimizer by name (@loom/optimizer's namedOptimizer) and its learning rate. */
  optimizer: string;
  lr: number;
  /** The tables' sparse optimizer by name (namedSparseOptimizer) and its learning rate. */
  sparseOptimizer: string;
  sparseLr: number;
  batchSize: number;
  epochs: number;
  /** Worker threads; default: the number of cores. */
  workers?: number;
  /** The tables' policy: 'async' (Hogwild!, default) or 'sync' (averaged). The dense part is sync either way. */
  tableMode?: TableMode;
  /** Aborting stops every worker after its current step (the same step for all). */
  signal?: AbortSignal;
  /** After every epoch, with the threads idle: the model bound to the shared parameters, and the shared tables. */
  onEpoch?: (metrics: ThreadEpochMetrics, tables: Readonly<Record<string, SharedTable>>) => void | Promise<void>;
}

function shareColumns(c: CtrColumns): SharedCtrColumns {
  return {
    rows: c.rows, user: shared(c.user), article: shared(c.article), category: shared(c.category), subcategory: shared(c.subcategory),
    history: shared(c.history), dense: shared(c.dense), label: shared(c.label),
  };
}

/**
 * Trains the CTR model on worker threads. Resolves, when every epoch is done or the signal stopped
 * the run, with the tables (shared memory this thread keeps viewing; no thread writes them any more)
 * and the model holding its trained dense parameters. Rejects with WorkerFailed when a worker throws;
 * every thread has exited when it settles.
 *
 * @example
 * const { tables } = await trainCtrThreads({ model, columns, range: [0, log.validStart],
 *   tableRows: { user: log.numUsers, article: log.numArticles, category: 18, subcategory: 270 },
 *   seed: 42, optimizer: 'adam', lr: 1e-3, sparseOptimizer: 'sparse-adam', sparseLr: 1e-3,
 *   batchSize: 512, epochs: 1, workers: 2 });
 */
export async function trainCtrThreads(o: CtrThreadOptions): Promise<{ tables: Record<string, SharedTable>; stopped: boolean }> {
  const workers = o.workers ?? availableParallelism();
  const tableMode = o.tableMode ?? 'async';
  if (!(Number.isInteger(workers) && workers >= 1)) throw new Error(`trainCtrThreads: workers must be a positive integer, got ${workers}`);
  if (!TABLE_MODES.includes(tableMode)) throw new Error(`trainCtrThreads: tableMode must be one of ${TABLE_MODES.join(', ')}, got '${tableMode}'`);
  for (const spec of o.model.tables) {
    if (!(o.tableRows[spec.name]! >= 1)) throw new Error(`trainCtrThreads: tableRows.${spec.name} must be the table's number of rows, got ${o.tableRows[spec.name]}`);
  }
  // Checks range and batch size before anything is allocated.
  new CtrSchedule(o.columns, o.model.shape, o.range, o.batchSize);

  const tablesSpec = allocateSharedTables({
    tables: o.model.tables.map(({ name, dim }) => ({ name, dim, rows: o.tableRows[name]! })),
    seed: o.seed, sparseOptimizer: o.sparseOptimizer, sparseLr: o.sparseLr,
  });
  const tables = sharedTables(tablesSpec);
  // The most unique ids a worker's part of a batch names per table: its rows, times H + 1 for the
  // article table (the article, then the history), never more than the table has.
  const part = Math.ceil(o.batchSize / workers);
  const keysPerRow: Record<string, number> = { user: 1, article: o.model.shape.historyLength + 1, category: 1, subcategory: 1 };
  const caps = Object.fromEntries(CTR_TABLES.map((name) => [name, Math.min(o.tableRows[name]!, part * keysPerRow[name]!)]));
  const exchange = tableMode === 'sync' ? allocateExchange(o.model.tables, caps, workers) : null;

  const { model } = o;
  const initial = flattenParameters(model);
  const { algorithm, options } = namedOptimizer(o.optimizer, { lr: o.lr });
  const stateInit = Object.fromEntries(algorithm.stateKeys(options).map((k) => [k, algorithm.initialValue(k, options)]));
  const run = allocateRun('sync', workers, 0, initial.size, stateInit);
  const v = views(run);
  v.params.set(initial.params);
  flattenParameters(model, { params: v.params }); // the caller's model reads the shared parameters

  const columns = shareColumns(o.columns);
  const batchesPerEpoch = Math.ceil((o.range[1] - o.range[0]) / o.batchSize);
  const runId = nextRunId();
  let stopped = false;
  try {
    stopped = await runThreadEpochs<CtrEpochTask>({
      file: threadFile('local/ctr-thread.js'), workers, ctrl: v.ctrl, epochs: o.epochs, signal: o.signal,
      // samples/s over the slowest worker's time in its loop, as `loom train --task ctr` measures one
      // thread: the threads' start-up (~0.5 s, once per run) is not training throughput.
      timing: 'workers',
      task: (epoch, rank) => ({
        runId, rank, run, tables: tablesSpec, tableMode, exchange, columns, shape: o.model.shape, range: [o.range[0], o.range[1]],
        optimizer: { name: o.optimizer, lr: o.lr }, batchSize: o.batchSize, epoch, firstStep: epoch * batchesPerEpoch,
      }),
      onEpoch: (metrics) => o.onEpoch?.(metrics, tables),
    });
  } finally {
    flattenParameters(model); // parameters of the model's own, so the run's memory can be released
    releaseRun(run);
  }
  return { tables, stopped };
}

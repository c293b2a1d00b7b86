/**
 * `loom train --task ctr`: click-through-rate prediction on the generated news click log, the
 * workload a parameter server exists for. The model's dense part (a Linear for the dense features
 * and the MLP) trains with --optimizer as any model; its embedding tables are RowTables keyed by
 * id, stepped by --sparse-optimizer on the rows each step touches (see @loom/worker's ctr.ts).
 *
 * A run directory holds config.json (task 'ctr'), metrics.jsonl (per epoch: train loss, valid AUC
 * and log loss on the held-out later days, samples/s, each table's rows), and model.safetensors
 * with PyTorch's names: `user.weight` (users, 32), `article.weight`, `category.weight`,
 * `subcategory.weight`, `dense.weight`, `dense.bias`, `mlp.0.weight`, … — rows never trained hold
 * the initial values every process computes, as the PyTorch model's untouched rows would.
 */
import { join } from 'node:path';
import { auc, clickBaselines, generateClickLog, logLoss, type ClickBaselines, type ClickLog } from '@loom/data';
import { allocateFlat, namedSparseOptimizer } from '@loom/optimizer';
import { RowTable, trainCtrThreads, type SharedTable, type TableMode } from '@loom/parameter-server';
import { Random, Tensor, flattenParameters, noGrad, saveSafetensors } from '@loom/tensor-core';
import { CTR_TABLES, CtrModel, CtrSchedule, ctrTask, inProcessTransport, runEpoch, type CtrBatch, type CtrColumns, type EpochMetrics, type RowStore } from '@loom/worker';
import { UsageError } from './errors.js';
import { makeOptimizer, type OptimizerName } from './optimizers.js';
import type { Progress } from './progress.js';
import type { StepLog } from './step-log.js';
import { writeFileAtomic } from './run-dir.js';

export const SPARSE_OPTIMIZERS = ['sparse-adam', 'adagrad', 'rowwise-adagrad', 'sgd'] as const;
export type SparseOptimizerName = (typeof SPARSE_OPTIMIZERS)[number];

/** The learning rate of a sparse optimizer when --sparse-lr is not given: PyTorch's usual choices. */
export function defaultSparseLr(name: SparseOptimizerName, lr: number): number {
  return name === 'sparse-adam' ? lr : name === 'sgd' ? 0.1 : 0.05;
}

export interface CtrTrainOptions {
  scale: number;
  seed: number;
  optimizer: OptimizerName;
  lr: number;
  sparseOptimizer: SparseOptimizerName;
  sparseLr: number;
  batchSize: number;
  epochs: number;
  /** The RowTables' admission and eviction (--admit-after, --evict-after, --table-capacity; one thread and --cluster). */
  tables?: { admitAfter?: number; evictAfter?: number; capacity?: number };
  /** One thread: where the loss between epochs goes (DIR/steps.jsonl), at its bounded rate. */
  stepLog?: StepLog;
}

/** One epoch of a CTR run, as metrics.jsonl records it. */
export interface CtrEpochMetrics extends EpochMetrics {
  validAuc: number;
  validLogLoss: number;
  /**
   * Per table: rows held; rows created and evicted so far; ids admitted (after --admit-after pulls)
   * and still pending; gradient rows dropped (their id not admitted, or evicted since its pull).
   * Thread tables hold every row from the start.
   */
  tables: Record<string, { rows: number; created: number; evicted: number; admitted: number; pending: number; dropped: number }>;
}

/**
 * Where a run's tables live: RowTables keyed by id (one thread, and what setUpCtr makes), or, after
 * training on threads, the SharedTables the threads stepped. Validation and saving read either.
 */
export type CtrTable = RowTable | SharedTable;

/** Everything a CTR run trains with: the log, its impressions in memory, the tables, the model. */
export interface CtrRun {
  log: ClickLog;
  columns: CtrColumns;
  model: CtrModel;
  tables: Record<string, CtrTable>;
}

/** The tables' row counts for the log (category and subcategory are fixed; users and articles scale). */
export function tableRows(log: ClickLog): Record<string, number> {
  return { user: log.numUsers, article: log.numArticles, category: 18, subcategory: 270 };
}

/** Builds the log, the model and its tables from the options alone: any process gets the same. */
export function setUpCtr(o: Pick<CtrTrainOptions, 'scale' | 'seed' | 'sparseOptimizer' | 'sparseLr' | 'tables'>): CtrRun {
  const log = generateClickLog({ seed: o.seed, scale: o.scale });
  const columns = log.materialize();
  const model = new CtrModel({ historyLength: log.historyLength, denseWidth: log.denseWidth }, { rng: new Random(o.seed) });
  const { algorithm, options } = namedSparseOptimizer(o.sparseOptimizer, { lr: o.sparseLr });
  const tables = Object.fromEntries(CTR_TABLES.map((name) => [name, new RowTable({ name, dim: model.tables[0]!.dim, seed: o.seed, algorithm, options, ...o.tables })]));
  return { log, columns, model, tables };
}

/**
 * The model's click probability for impressions [from, to) of the run's columns, reading rows
 * without creating them (ids the tables never saw read their initial values).
 */
export function scoreImpressions(run: CtrRun, from: number, to: number): Float32Array {
  const { model, columns, tables } = run;
  const task = ctrTask(model);
  const schedule = new CtrSchedule(columns, model.shape, [from, to], 4096);
  const scores = new Float32Array(to - from);
  model.eval();
  noGrad(() => {
    for (const b of schedule.epoch(0)) {
      task.tables.prepare(task.keys(b));
      for (const t of task.tables) tables[t.name]!.read(t.ids, t.rows);
      const logits = model.forward({ tables: task.tables, batch: b });
      scores.set(logits.data, b.index * 4096);
    }
  });
  model.train();
  for (let i = 0; i < scores.length; i++) scores[i] = 1 / (1 + Math.exp(-scores[i]!));
  return scores;
}

/** AUC and log loss of the model on the held-out later days. */
export function validateCtr(run: CtrRun): { auc: number; logLoss: number } {
  const { log, columns } = run;
  const p = scoreImpressions(run, log.validStart, log.numImpressions);
  const labels = columns.label.subarray(log.validStart, log.numImpressions);
  return { auc: auc(p, labels), logLoss: logLoss(p, labels) };
}

/** Trains on this thread; calls onEpoch after each epoch's validation. */
export async function trainCtr(
  run: CtrRun,
  o: CtrTrainOptions,
  onEpoch: (m: CtrEpochMetrics) => void,
  progress?: Progress,
  shouldStop: () => boolean = () => false,
): Promise<void> {
  const { log, columns, model, tables } = run;
  if (Object.values(tables).some((t) => !(t instanceof RowTable))) throw new Error('trainCtr: one-thread training steps RowTables (setUpCtr makes them)');
  const initial = flattenParameters(model);
  const inPlace = allocateFlat(initial.size);
  inPlace.params.set(initial.params);
  const flat = flattenParameters(model, inPlace);
  const transport = inProcessTransport(makeOptimizer(o.optimizer, model.parameters(), o.lr), { shouldStop, tables: evicting(tables as Record<string, RowTable>, o.tables?.evictAfter ?? 0) });
  const task = ctrTask(model);
  const schedule = new CtrSchedule(columns, model.shape, [0, log.validStart], o.batchSize);
  const perEpoch = schedule.batchesPerEpoch;
  for (let epoch = 1; epoch <= o.epochs && !shouldStop(); epoch++) {
    const t0 = performance.now();
    const label = `epoch ${epoch}/${o.epochs}`;
    const r = await runEpoch<CtrBatch>({
      model, flat, transport, schedule, task, epoch: epoch - 1, firstStep: (epoch - 1) * perEpoch,
      onStep: (progress || o.stepLog) && ((soFar) => {
        o.stepLog?.step(epoch, perEpoch, soFar);
        progress?.update(label, soFar.steps, perEpoch, `loss ${(soFar.lossSum / soFar.rows).toFixed(4)}`);
      }),
    });
    const v = validateCtr(run);
    progress?.clear();
    onEpoch({
      epoch,
      trainLoss: r.lossSum / Math.max(r.rows, 1),
      validAuc: v.auc,
      validLogLoss: v.logLoss,
      samplesPerSec: r.rows / r.seconds,
      seconds: (performance.now() - t0) / 1000,
      tables: tableStats(tables),
    });
    if (r.stopped) break;
  }
}

/**
 * The tables as the one-thread transport steps them, each evicting its rows untouched for
 * `evictAfter` steps after every ⌈evictAfter / 8⌉-th step's push (as a server's RowStore does).
 */
function evicting(tables: Record<string, RowTable>, evictAfter: number): Record<string, RowStore> {
  if (evictAfter === 0) return tables;
  const every = Math.ceil(evictAfter / 8);
  return Object.fromEntries(Object.entries(tables).map(([name, t]) => [name, {
    pull: (ids: ArrayLike<number>, out: Float32Array, step?: number) => t.pull(ids, out, step),
    push(ids: ArrayLike<number>, grads: Float32Array, step: number) {
      t.push(ids, grads, step);
      if (step % every === 0) t.evict(step);
    },
  }]));
}

function tableStats(tables: Record<string, CtrTable>): CtrEpochMetrics['tables'] {
  return Object.fromEntries(Object.entries(tables).map(([name, t]) => {
    const s: Partial<ReturnType<RowTable['stats']>> = t.stats();
    return [name, { rows: s.rows!, created: s.created!, evicted: s.evicted!, admitted: s.admitted ?? 0, pending: s.pending ?? 0, dropped: s.dropped ?? 0 }];
  }));
}

/**
 * Trains on `workers` worker threads, the tables under `mode` ('async': Hogwild!, 'sync':
 * averaged; the dense part is sync either way); validates after each epoch with the threads idle,
 * reading the shared tables, and calls onEpoch with every worker's throughput. Afterwards
 * `run.tables` are the trained SharedTables, for saveCtrRun.
 */
export async function trainCtrOnThreads(
  run: CtrRun,
  o: CtrTrainOptions,
  threads: { workers: number; mode: TableMode },
  onEpoch: (m: CtrEpochMetrics) => void,
  signal?: AbortSignal,
): Promise<void> {
  const { log, columns, model } = run;
  const { tables } = await trainCtrThreads({
    model, columns, range: [0, log.validStart], tableRows: tableRows(log), seed: o.seed,
    optimizer: o.optimizer, lr: o.lr, sparseOptimizer: o.sparseOptimizer, sparseLr: o.sparseLr,
    batchSize: o.batchSize, epochs: o.epochs, workers: threads.workers, tableMode: threads.mode, signal,
    onEpoch: (m, shared) => {
      const t0 = performance.now();
      run.tables = shared;
      const v = validateCtr(run);
      onEpoch({
        epoch: m.epoch, trainLoss: m.trainLoss, validAuc: v.auc, validLogLoss: v.logLoss, samplesPerSec: m.samplesPerSec,
        seconds: m.seconds + (performance.now() - t0) / 1000, workers: m.workers, tables: tableStats(shared),
      });
    },
  });
  run.tables = tables;
}

export function ctrBaselines(run: CtrRun): ClickBaselines {
  return clickBaselines(run.log);
}

/**
 * Writes model.safetensors (dense parameters and whole tables under PyTorch's names) and
 * config.json, each atomically.
 */
/**
 * Writes the model as it is now — dense parameters and whole tables (rows never trained at their
 * initial values) — to a safetensors file under PyTorch's names.
 */
export function saveCtrWeights(path: string, run: CtrRun): void {
  const tensors: Record<string, Tensor> = { ...run.model.stateDict() };
  const rows = tableRows(run.log);
  for (const [name, table] of Object.entries(run.tables)) {
    const n = rows[name]!;
    const data = new Float32Array(n * table.dim);
    table.read(Float64Array.from({ length: n }, (_, i) => i), data);
    tensors[`${name}.weight`] = new Tensor(data, [n, table.dim]);
  }
  saveSafetensors(path, tensors, { format: 'loom-run', task: 'ctr' });
}

export function saveCtrRun(dir: string, run: CtrRun, o: CtrTrainOptions, extra: Record<string, unknown> = {}): void {
  saveCtrWeights(join(dir, 'model.safetensors'), run);
  const rows = tableRows(run.log);
  const config = {
    format: 'loom-run',
    version: 1,
    task: 'ctr',
    dataset: 'news-clicks',
    clicks: { seed: o.seed, scale: o.scale, alpha: run.log.alpha },
    model: { dim: run.model.tables[0]!.dim, tables: rows, denseWidth: run.model.shape.denseWidth, historyLength: run.model.shape.historyLength, mlp: [192, 128, 64, 1] },
    train: { optimizer: o.optimizer, lr: o.lr, sparseOptimizer: o.sparseOptimizer, sparseLr: o.sparseLr, batchSize: o.batchSize, epochs: o.epochs, seed: o.seed, ...extra },
  };
  writeFileAtomic(join(dir, 'config.json'), JSON.stringify(config, null, 2) + '\n');
}

/** Checks the flags a CTR run cannot take, before anything is generated. */
export function checkCtrFlags(f: Record<string, unknown>): void {
  if (f.dataset !== 'news-clicks') throw new UsageError(`--task ctr trains on --dataset news-clicks (the generated click log), got --dataset ${String(f.dataset)}`);
  if (f.model !== undefined && f.model !== 'reference' && f.model !== 'ctr') throw new UsageError(`--task ctr has one model (user, article, category and subcategory embeddings of dim 32, an MLP 192→128→64→1); drop --model ${String(f.model)}`);
  if (f.label !== undefined) throw new UsageError('--label is for CSV datasets; --task ctr learns the click column');
}

/**
 * `loom train --task ctr`: the click-through-rate model on the news click log (see ../ctr.ts), on
 * this thread (--workers 1) or on worker threads: --mode async (the default with threads: Persia's
 * sync dense part + Hogwild! tables) or --mode sync (both averaged, one-thread training up to float32
 * rounding).
 */
import { availableParallelism } from 'node:os';
import { join, resolve } from 'node:path';
import type { TableMode } from '@loom/parameter-server';
import { kernelBackend } from '@loom/tensor-core';
import { type Values } from '../args.js';
import { checkCtrFlags, ctrBaselines, defaultSparseLr, saveCtrRun, setUpCtr, trainCtr, trainCtrOnThreads, type CtrEpochMetrics, type CtrTrainOptions, type SparseOptimizerName, saveCtrWeights } from '../ctr.js';
import { trainCtrClusterCommand } from '../ctr-cluster.js';
import { tableLimits } from './serve.js';
import { UsageError } from '../errors.js';
import { CTR_BATCH_SIZE } from '../defaults.js';
import type { OptimizerName } from '../optimizers.js';
import { Progress } from '../progress.js';
import { appendMetrics, startRun } from '../run-dir.js';
import { StepLog } from '../step-log.js';


export interface CtrTrainResult extends CtrEpochMetrics {
  out: string;
  interrupted: boolean;
  baselines: { popularityAuc: number; userCategoryAuc: number; constantLogLoss: number };
}

/** `argv`: the command line `f` was parsed from, for what to run next when a cluster run fails. */
export async function trainCtrCommand(f: Values, log: (line: string) => void, argv: readonly string[] = []): Promise<CtrTrainResult> {
  checkCtrFlags(f);
  if (f.resume !== undefined && f.cluster === undefined) throw new UsageError('--resume needs --cluster (checkpoints of a CTR run are saved by its parameter servers)');
  if (f.cluster !== undefined) return trainCtrClusterCommand(f, log, argv); // processes over WebSocket: ../ctr-cluster.ts
  const workers = (f.workers as number | undefined) ?? availableParallelism();
  if (f.mode === 'ssp' || f.staleness !== undefined) {
    throw new UsageError(`--task ctr takes --mode async (sync dense part, Hogwild! tables; the default) or --mode sync (both averaged), not ${f.mode === 'ssp' ? '--mode ssp' : '--staleness'}: the dense part always trains sync, which bounds the tables' staleness to one step`);
  }
  if (workers === 1 && f.mode !== undefined) throw new UsageError(`--mode ${String(f.mode)} is for worker threads; --workers 1 trains on this thread`);
  const mode: TableMode = (f.mode as TableMode | undefined) ?? 'async';
  const tables = tableLimits(f);
  if (workers > 1 && Object.keys(tables).length > 0) {
    throw new UsageError(`--admit-after, --evict-after and --table-capacity apply to one thread (--workers 1) and --cluster: worker threads share dense tables that hold every row from the start, so nothing is admitted or evicted there`);
  }
  const sparseOptimizer = f.sparseOptimizer as SparseOptimizerName;
  const o: CtrTrainOptions = {
    scale: f.scale as number, seed: f.seed as number,
    optimizer: f.optimizer as OptimizerName, lr: f.lr as number,
    sparseOptimizer, sparseLr: (f.sparseLr as number | undefined) ?? defaultSparseLr(sparseOptimizer, f.lr as number),
    batchSize: (f.batchSize as number | undefined) ?? CTR_BATCH_SIZE, epochs: f.epochs as number, ...(Object.keys(tables).length > 0 ? { tables } : {}),
  };
  const out = resolve(f.out as string);
  startRun(out);
  const run = setUpCtr(o);
  const { log: clicks } = run;
  // Another framework can start from exactly these weights: the fair way to compare AUCs.
  if (f.saveInit === true) saveCtrWeights(join(out, 'init.safetensors'), run);
  const where = workers === 1 ? 'one thread' : `${workers} worker threads, ${mode === 'async' ? 'sync dense + async (Hogwild!) tables' : 'sync dense + sync tables'}`;
  log(
    `training the CTR model on news-clicks (scale ${o.scale}): ${clicks.numUsers} users, ${clicks.numArticles} articles, ` +
      `${clicks.validStart} train / ${clicks.numImpressions - clicks.validStart} valid impressions; ` +
      `${o.optimizer} ${o.lr} for the dense part, ${o.sparseOptimizer} ${o.sparseLr} for the tables; ${where} (kernels: ${kernelBackend.name})`,
  );
  let last: CtrEpochMetrics | undefined;
  const interrupt = new AbortController();
  const onSigint = () => interrupt.abort();
  process.once('SIGINT', onSigint);
  try {
    const onEpoch = (m: CtrEpochMetrics) => {
      last = m;
      appendMetrics(out, m);
      const rows = Object.entries(m.tables).map(([k, t]) => `${k} ${t.rows}`).join(', ');
      const perWorker = m.workers ? ` [${m.workers.map((w) => `w${w.rank} ${Math.round(w.samplesPerSec)}/s`).join(', ')}]` : '';
      log(`epoch ${m.epoch}: train loss ${m.trainLoss.toFixed(4)}, valid AUC ${m.validAuc.toFixed(4)}, valid log loss ${m.validLogLoss.toFixed(4)}, ${Math.round(m.samplesPerSec)} samples/s${perWorker}, ${m.seconds.toFixed(2)} s; rows ${rows}`);
    };
    if (workers === 1) await trainCtr(run, { ...o, stepLog: new StepLog(out) }, onEpoch, new Progress(), () => interrupt.signal.aborted);
    else await trainCtrOnThreads(run, o, { workers, mode }, onEpoch, interrupt.signal);
  } finally {
    process.removeListener('SIGINT', onSigint);
  }
  const interrupted = interrupt.signal.aborted;
  saveCtrRun(out, run, o, workers === 1 ? { workers } : { workers, mode });
  const baselines = ctrBaselines(run);
  log(`baselines on valid: popularity AUC ${baselines.popularityAuc.toFixed(4)}, user's categories AUC ${baselines.userCategoryAuc.toFixed(4)}, constant log loss ${baselines.constantLogLoss.toFixed(4)}`);
  log(`wrote ${out}${interrupted ? ' (stopped early by SIGINT)' : ''}`);
  const result: CtrTrainResult = {
    ...(last ?? { epoch: 0, trainLoss: NaN, validAuc: NaN, validLogLoss: NaN, samplesPerSec: 0, seconds: 0, tables: {} }),
    out, interrupted, baselines: { ...baselines },
  };
  if (f.json === true) console.log(JSON.stringify(result));
  return result;
}

/**
 * `loom train --task ctr --cluster local:S,W`: the CTR model on S `loom serve --task ctr` and W
 * `loom worker --task ctr` processes of this machine (apps/cli/src/orchestration starts them).
 * The dense part (Linear of the dense features, the MLP) is a key range per server, always sync;
 * the embedding tables are row tables on every server, each id on the server it hashes to, with
 * --mode's policy: async (the default: Hogwild! tables beside the sync dense part, as Persia and
 * the thread path do) or sync (both averaged). Every worker generates the click log from
 * (seed, scale) itself and trains its part of each global batch.
 *
 * Validation: after each epoch this process — an observer of the servers — pulls the dense
 * parameters as of the epoch's last update and READS the whole tables (ids 0 … n−1 of each) with
 * read-only row pulls (RowTable.read on the servers: nothing is created, admitted or touched, so
 * observing never changes training). The pulls are parked at the servers before the epoch ends and
 * answered at exactly its last update (sync tables: update e·B; async tables: e·B·W pushes, each
 * worker's every step, which the servers count as they come — in async the rows may already hold
 * some of the next epoch's updates, as Hogwild! reads do). Reading whole tables costs
 * (users + articles + 288) × 32 × 4 bytes per epoch; at the default scale that is a few MB.
 * The final model is read the same way and saved like the one-thread run (saveCtrRun).
 *
 * Checkpoints: the servers save into the run directory every --checkpoint-every updates and at the
 * end — the dense range and their rows, a base or an increment of the rows changed since
 * (parameter-server's row-checkpoint.ts). `--resume DIR` checks every shard's chain first (a
 * mismatch is a usage error, and nothing starts), restarts the servers from the latest step all
 * of them completed, and the workers continue from it (they join at the servers' step); metrics of
 * the epochs after the checkpoint's are dropped and recorded again.
 *
 * Admission and eviction (--admit-after, --evict-after, --table-capacity) go to every server's
 * tables; each epoch's metrics record each table's rows, created, evicted, admitted, pending and
 * dropped, summed over the servers.
 *
 * Failures are told as `loom train --cluster`'s are (orchestration/failure.ts): the dead server
 * first, in which epoch, and the `--resume` command that continues from the last checkpoint.
 */
import { CTR_DIM, epochMetrics, type EpochMetrics, type WorkerMetrics } from '@loom/worker';
import { CheckpointError, RowCheckpointer, RowStore, ShardStore, generateToken, latestCheckpoint, loadCheckpoint, type Mode, type PsClient, type ServerStats } from '@loom/parameter-server';
import { flattenParameters } from '@loom/tensor-core';
import { resolve } from 'node:path';
import type { Values } from './args.js';
import { parseCluster } from './commands/cluster.js';
import { ctrServerOptions, tableLimits, type TableLimits } from './commands/serve.js';
import type { CtrTrainResult } from './commands/train-ctr.js';
import { CTR_BATCH_SIZE } from './defaults.js';
import { ctrBaselines, defaultSparseLr, saveCtrRun, setUpCtr, tableRows, validateCtr, type CtrEpochMetrics, type CtrRun, type CtrTable, type CtrTrainOptions, type SparseOptimizerName } from './ctr.js';
import { UsageError } from './errors.js';
import type { OptimizerName } from './optimizers.js';
import { appendEvent, appendMetrics, resumeRun, startRun } from './run-dir.js';
import { EpochReports, RunFailure, TrainingGroup, connectObserver, firstEpochToObserve, membershipOf, resumeAdvice, serverArgv, workerArgv, type TrainingConfig } from './orchestration/index.js';

export interface CtrClusterOptions {
  servers: number;
  workers: number;
  /** The tables' policy; the dense part is sync. */
  rowMode: Mode;
  /** The run directory: the servers checkpoint into out/checkpoints every `checkpointEvery` updates (0: only at the end). */
  out?: string;
  checkpointEvery?: number;
  /** Start from the latest complete checkpoint in out/checkpoints. */
  resume?: boolean;
  /** The tables' admission and eviction. */
  tables?: TableLimits;
  signal?: AbortSignal;
  log?: (line: string) => void;
}

/** An epoch of a cluster CTR run, as metrics.jsonl records it. */
export interface CtrClusterEpochMetrics extends CtrEpochMetrics {
  workers?: WorkerMetrics[];
  /**
   * Bytes on the wire per training step (a global batch), every worker's summed, as the workers
   * counted whole frames: each row table's (pullrows + rows + pushrows + acks), `dense` (the
   * pushpulls), and `all` = rows + dense. (The servers count the same per table in `stats`.)
   */
  bytesPerStep: { tables: Record<string, number>; rows: number; dense: number; all: number };
}

/** The whole of a table, read from the servers: what validation and saving read rows from. */
class PulledTable {
  constructor(
    readonly name: string,
    readonly dim: number,
    readonly data: Float32Array,
  ) {}

  /** Rows of ids below the table's size; an id beyond it (never in the log) reads zeros. */
  read(ids: ArrayLike<number>, out: Float32Array): void {
    const D = this.dim;
    for (let k = 0; k < ids.length; k++) {
      const id = ids[k]!;
      if (id * D < this.data.length) out.set(this.data.subarray(id * D, (id + 1) * D), k * D);
      else out.fill(0, k * D, (k + 1) * D);
    }
  }
}

/**
 * Trains `run` on a local cluster; calls `onEpoch` after each epoch's validation, and leaves the
 * final model in `run` (dense parameters in run.model, the tables as read from the servers in
 * run.tables). Resolves with whether the run was stopped early.
 */
export async function trainCtrCluster(run: CtrRun, o: CtrTrainOptions, c: CtrClusterOptions, onEpoch: (m: CtrClusterEpochMetrics) => void): Promise<{ stopped: boolean }> {
  const token = generateToken();
  const reports = new EpochReports(c.workers);
  const group = new TrainingGroup({
    token, onReport: (r) => reports.add(r), dropKilledWorkers: { reports, log: c.log ?? ((l) => console.error(l)) },
    ...(c.out !== undefined ? { onEvent: (e) => appendEvent(c.out!, e) } : {}),
  });
  const training: TrainingConfig = {
    model: 'ctr', seed: o.seed, optimizer: o.optimizer, lr: o.lr, mode: 'sync', staleness: 0,
    dataset: { spec: 'news-clicks', scale: o.scale }, batchSize: o.batchSize, epochs: o.epochs,
    ctr: { sparseOptimizer: o.sparseOptimizer, sparseLr: o.sparseLr, rowMode: c.rowMode, ...c.tables },
  };
  const checkpoint = c.out !== undefined ? { checkpoint: { dir: c.out, every: c.checkpointEvery ?? 100 }, ...(c.resume ? { resume: c.out } : {}) } : {};
  let observer: PsClient | null = null;
  let stopRequested = false;
  const stop = () => {
    stopRequested = true;
    void observer?.shutdown(false).catch(() => {});
  };
  /** The first epoch observed, once the observer is connected: failures before are `while starting`. */
  let first: number | undefined;
  try {
    const servers = Array.from({ length: c.servers }, (_, i) => group.startServer({ index: i, count: c.servers }, serverArgv(training, { shard: { index: i, count: c.servers }, workers: c.workers, port: 0, ...checkpoint })));
    const urls = await Promise.all(servers.map((s) => group.listening(s)));
    for (let rank = 0; rank < c.workers; rank++) group.startWorker(rank, workerArgv(training, urls, rank, c.workers));
    const flat = flattenParameters(run.model);
    const size = flat.size;
    observer = await connectObserver(urls, { token, workers: c.workers, size, failure: group.failure });
    c.signal?.addEventListener('abort', stop, { once: true });
    if (c.signal?.aborted) stop();

    const perEpoch = Math.ceil(run.log.validStart / o.batchSize);
    const rows = tableRows(run.log);
    const names = Object.keys(rows);
    const ids = Object.fromEntries(names.map((n) => [n, Float64Array.from({ length: rows[n]! }, (_, i) => i)]));
    const alloc = () => ({ dense: new Float32Array(size), tables: Object.fromEntries(names.map((n) => [n, new Float32Array(rows[n]! * CTR_DIM)])) });
    const buffers = [alloc(), alloc()];
    const scratch = new Float32Array(size);
    const obs = observer;
    // It fails when a server dies while the loop awaits something else: handled here, so that the
    // process does not crash on an unhandled rejection, and rethrown when awaited.
    const handled = <T>(p: Promise<T>) => (p.catch(() => {}), p);
    /**
     * The tables as of epoch `e` (0: now, whatever is applied). Sync tables: their update e·B.
     * Async tables count an update per worker's push, so their count at an epoch's end depends on
     * how many workers are alive: they are read once every worker has reported the epoch (its
     * report comes after its last push of it is taken), as they are then.
     */
    const readTables = (e: number, into: ReturnType<typeof alloc>) =>
      handled(Promise.all(names.map((n) => obs.pullRows(n, c.rowMode === 'async' ? 0 : e * perEpoch, ids[n]!, into.tables[n]!))));
    /** The dense parameters as of update `e`·B, and the sync tables as of theirs (0: now). */
    const read = (e: number, into: ReturnType<typeof alloc>) => {
      const dense = obs.pull(e * perEpoch, into.dense);
      return handled(c.rowMode === 'async' ? dense.then((d) => [d]) : Promise.all([dense, readTables(e, into)]).then(([d, r]) => [d, ...r]));
    };
    const useBuffers = (b: ReturnType<typeof alloc>) => {
      flattenParameters(run.model, { params: b.dense });
      run.tables = Object.fromEntries(names.map((n) => [n, new PulledTable(n, CTR_DIM, b.tables[n]!) as unknown as CtrTable]));
    };

    let stopped = false;
    // Resumed: the first epoch to report is the one the checkpoint's step falls in.
    first = firstEpochToObserve(obs, perEpoch);
    let next = read(first, buffers[first % 2]!);
    for (let epoch = first; epoch <= o.epochs; epoch++) {
      const pulled = await Promise.race([next, group.failure]);
      if (pulled.some((p) => p.stop)) {
        stopped = true;
        break;
      }
      const b = buffers[epoch % 2]!;
      if (epoch < o.epochs) next = read(epoch + 1, buffers[(epoch + 1) % 2]!);
      while (!reports.complete(epoch)) await Promise.race([reports.changed(), group.failure]);
      if (c.rowMode === 'async') await Promise.race([readTables(epoch, b), group.failure]);
      // Who trained the epoch's rows (the dense table's plans and ledger: it is sync).
      const membership = await membershipOf(obs, epoch, { perEpoch, last: o.epochs, failure: group.failure, scratch });
      const t0 = performance.now();
      const stats = await obs.stats();
      useBuffers(b);
      const v = validateCtr(run);
      const m: EpochMetrics & { workers: WorkerMetrics[] } = epochMetrics(epoch, reports.of(epoch));
      const lines = reports.of(epoch) as Array<{ tableBytes?: Record<string, number> }>;
      const tableBytes: Record<string, number> = {};
      for (const l of lines) for (const [k, n] of Object.entries(l.tableBytes ?? {})) tableBytes[k] = (tableBytes[k] ?? 0) + n / perEpoch;
      const dense = tableBytes.dense ?? 0;
      delete tableBytes.dense;
      const rowBytes = Object.values(tableBytes).reduce((a, n) => a + n, 0);
      onEpoch({
        ...m, ...(membership !== undefined ? { membership } : {}), validAuc: v.auc, validLogLoss: v.logLoss, seconds: m.seconds + (performance.now() - t0) / 1000,
        tables: tableStats(stats, names),
        bytesPerStep: { tables: Object.fromEntries(Object.entries(tableBytes).map(([k, n]) => [k, Math.round(n)])), rows: Math.round(rowBytes), dense: Math.round(dense), all: Math.round(rowBytes + dense) },
      });
      if (m.workers.length === 0) break;
    }
    // Every worker has ended and its pushes are applied: read the final model.
    await Promise.race([group.workersDone(), group.failure]);
    const final = buffers[0]!;
    await Promise.race([Promise.all([read(0, final), readTables(0, final)]), group.failure]);
    useBuffers(final);
    await obs.shutdown(true).catch(() => {});
    await group.serversExited();
    c.signal?.removeEventListener('abort', stop);
    return { stopped: stopped || stopRequested };
  } catch (e) {
    throw await group.failedDuring(e, first, o.epochs);
  } finally {
    group.end();
    await observer?.close().catch(() => {});
  }
}

/** Rows held, created, evicted, admitted, awaiting admission, and gradient rows dropped, per table, summed over the servers. */
function tableStats(stats: ServerStats[], names: string[]): CtrEpochMetrics['tables'] {
  return Object.fromEntries(names.map((n) => {
    const sum = { rows: 0, created: 0, evicted: 0, admitted: 0, pending: 0, dropped: 0 };
    for (const s of stats) {
      const t = s.tables?.[n];
      if (t) for (const k of Object.keys(sum) as Array<keyof typeof sum>) sum[k] += t[k];
    }
    return [n, sum];
  }));
}

/**
 * Checks every shard's checkpoint chain in `out` as its server will load it (the dense range and
 * the rows, base and increments); returns the step they resume from. Throws CheckpointError.
 */
function checkCtrResume(out: string, o: CtrTrainOptions, c: { servers: number; workers: number; rowMode: Mode; tables: TableLimits }): number {
  const spec = ctrServerOptions({ seed: o.seed, lr: o.lr, sparseOptimizer: o.sparseOptimizer, sparseLr: o.sparseLr, rowMode: c.rowMode, tables: c.tables });
  let step = 0;
  for (let i = 0; i < c.servers; i++) {
    const store = new ShardStore({ sizes: spec.sizes, model: spec.model!, seed: o.seed, optimizer: o.optimizer, lr: o.lr, mode: 'sync', staleness: 0, workers: c.workers, shard: i, shards: c.servers, nonFinite: 'reject' });
    const rows = spec.rowTables.map((t) => new RowStore({ spec: t, seed: o.seed, mode: c.rowMode, staleness: 0, workers: c.workers, nonFinite: 'reject' }));
    step = loadCheckpoint(out, store, new RowCheckpointer(rows)).meta.step;
  }
  return step;
}

/**
 * The command: `loom train --task ctr --dataset news-clicks --cluster local:S,W [--mode async|sync]`
 * (flags as the one-thread run, checked by train-ctr.ts first). Writes the run directory as the
 * one-thread run does, with each epoch's bytes per step in metrics.jsonl.
 */
export async function trainCtrClusterCommand(f: Values, log: (line: string) => void, argv: readonly string[] = []): Promise<CtrTrainResult> {
  const { servers, workers } = parseCluster(f.cluster as string);
  if (f.workers !== undefined) throw new UsageError('--workers and --cluster do not go together (--cluster local:S,W names the workers)');
  if (f.mode === 'ssp' || f.staleness !== undefined) throw new UsageError('--task ctr --cluster takes --mode async (sync dense, Hogwild! tables; the default) or --mode sync (both averaged)');
  const rowMode = ((f.mode as Mode | undefined) ?? 'async') as Mode;
  const sparseOptimizer = f.sparseOptimizer as SparseOptimizerName;
  const o: CtrTrainOptions = {
    scale: f.scale as number, seed: f.seed as number, optimizer: f.optimizer as OptimizerName, lr: f.lr as number,
    sparseOptimizer, sparseLr: (f.sparseLr as number | undefined) ?? defaultSparseLr(sparseOptimizer, f.lr as number),
    batchSize: (f.batchSize as number | undefined) ?? CTR_BATCH_SIZE, epochs: f.epochs as number,
  };
  const tables = tableLimits(f);
  const out = resolve((f.resume as string | undefined) ?? (f.out as string));
  const run = setUpCtr(o);
  let resumed: CtrClusterEpochMetrics | undefined;
  if (f.resume !== undefined) {
    // Check every shard's chain before starting anything: a mismatch is a usage error, and no process is left.
    let step: number;
    try {
      step = checkCtrResume(out, o, { servers, workers, rowMode, tables });
    } catch (e) {
      if (e instanceof CheckpointError) throw new UsageError(`--resume: ${e.message}`);
      throw e;
    }
    const perEpoch = Math.ceil(run.log.validStart / o.batchSize);
    resumed = resumeRun(out, Math.floor((latestCheckpoint(out, servers) ?? step) / perEpoch)) as CtrClusterEpochMetrics | undefined;
    log(`resuming ${out} from its checkpoint at update ${step}`);
  } else startRun(out);
  const clicks = run.log;
  log(
    `training the CTR model on news-clicks (scale ${o.scale}): ${clicks.numUsers} users, ${clicks.numArticles} articles, ` +
      `${clicks.validStart} train / ${clicks.numImpressions - clicks.validStart} valid impressions; ${o.optimizer} ${o.lr} for the dense part, ` +
      `${o.sparseOptimizer} ${o.sparseLr} for the tables; ${servers} server and ${workers} worker processes, sync dense + ${rowMode} tables`,
  );
  // Resumed past its last epoch (its final checkpoint was saved, its model was not): the result so far.
  let last = resumed;
  const interrupt = new AbortController();
  const onSigint = () => interrupt.abort();
  process.once('SIGINT', onSigint);
  let stopped = false;
  try {
    const checkpoints = { out, checkpointEvery: f.checkpointEvery as number, resume: f.resume !== undefined };
    const advise = (e: unknown) => {
      // The run failed: say how to go on from where it got.
      if (e instanceof RunFailure) e.advise(resumeAdvice({ command: 'loom train', argv, dir: (f.resume ?? f.out) as string, path: out, shards: servers, checkpointEvery: f.checkpointEvery as number }));
      throw e;
    };
    ({ stopped } = await trainCtrCluster(run, o, { servers, workers, rowMode, tables, ...checkpoints, signal: interrupt.signal }, (m) => {
      last = m;
      appendMetrics(out, m);
      const rows = Object.entries(m.tables).map(([k, t]) => `${k} ${t.rows}`).join(', ');
      log(`epoch ${m.epoch}: train loss ${m.trainLoss.toFixed(4)}, valid AUC ${m.validAuc.toFixed(4)}, valid log loss ${m.validLogLoss.toFixed(4)}, ${Math.round(m.samplesPerSec)} samples/s, ${m.seconds.toFixed(2)} s; rows ${rows}; bytes per step: rows ${m.bytesPerStep.rows}, all ${m.bytesPerStep.all}`);
    }).catch(advise));
  } finally {
    process.removeListener('SIGINT', onSigint);
  }
  saveCtrRun(out, run, o, { workers, servers, mode: rowMode, cluster: f.cluster });
  const baselines = ctrBaselines(run);
  log(`baselines on valid: popularity AUC ${baselines.popularityAuc.toFixed(4)}, user's categories AUC ${baselines.userCategoryAuc.toFixed(4)}, constant log loss ${baselines.constantLogLoss.toFixed(4)}`);
  const interrupted = interrupt.signal.aborted || stopped;
  log(`wrote ${out}${interrupted ? ' (stopped early)' : ''}`);
  const result: CtrTrainResult = {
    ...(last ?? { epoch: 0, trainLoss: NaN, validAuc: NaN, validLogLoss: NaN, samplesPerSec: 0, seconds: 0, tables: {} }),
    out, interrupted, baselines: { ...baselines },
  };
  if (f.json === true) console.log(JSON.stringify(result));
  return result;
}

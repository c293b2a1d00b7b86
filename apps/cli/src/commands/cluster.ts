/**
 * `loom train --cluster local:S,W`: a whole cluster on this machine in one command. Starts S
 * `loom serve` and W `loom worker` child processes on 127.0.0.1 (free ports, a fresh token passed in
 * LOOM_TOKEN — never on a command line), and coordinates them:
 *
 *  - the servers initialise their key ranges from the seeded model and apply every update;
 *  - the workers print one JSON line per epoch (rows, Σ loss, seconds, staleness);
 *  - this process connects as an observer and, for every epoch, pulls the parameters as of the
 *    epoch's last update (sync and ssp: update e·B; async: e·B·W, the epoch's share of the update
 *    counter), validates them, and reports the same metrics as local training.
 *
 * Every child is killed when this ends, however it ends: the children watch the pipe to their
 * stdin, and run in their own process groups so that a terminal's Ctrl-C reaches only this
 * process, which then stops the run cleanly (the servers answer `stop`, the workers end, and the
 * model trained so far is pulled and kept).
 *
 * Failures: a worker killed by a signal (kill -9, the OOM killer) does not end the run — the
 * servers drop it from the barrier and the others go on; the run fails only when every worker is
 * gone or one exits with an error, or when a server dies. It then rejects with a RunFailure that
 * names the process at the root of it (a dead server before the workers that lost it) and the
 * epoch it happened in; the command adds what to do next. With `out`, the servers checkpoint into
 * out/checkpoints every `checkpointEvery` updates and at the end; with `resume`, they start from
 * the latest complete checkpoint there, and so do the workers and this coordinator's epochs.
 */
import { generateToken, type PsClient } from '@loom/parameter-server';
import { flattenParameters, type Module } from '@loom/tensor-core';
import { UsageError } from '../errors.js';
import { buildModel } from '../models.js';
import { appendEvent } from '../run-dir.js';
import {
  EpochReports, TrainingGroup, connectObserver, firstEpochToObserve, observeEpochs, pullFinal, serverArgv, updatesPerEpoch, workerArgv,
  type ObservedEpoch, type TrainingConfig,
} from '../orchestration/index.js';

/** Parses `local:S,W`. */
export function parseCluster(spec: string): { servers: number; workers: number } {
  const m = /^local:(\d+),(\d+)$/.exec(spec);
  const [servers, workers] = m ? [Number(m[1]), Number(m[2])] : [0, 0];
  if (!(servers >= 1 && workers >= 1)) throw new UsageError(`--cluster must be local:S,W with S servers ≥ 1 and W workers ≥ 1, got '${spec}'`);
  return { servers, workers };
}

/** The training every child shares (--model, --seed, --optimizer …, the workers' --dataset/--label/--scale), and the cluster's shape. */
export interface ClusterOptions extends TrainingConfig {
  servers: number;
  workers: number;
  sizes: number[];
  /** The training rows and width, to count the steps of an epoch as the workers do. */
  data: { features: Float32Array; labels: Int32Array; width: number; rows: Int32Array };
  signal?: AbortSignal;
  /** The run directory: the servers save checkpoints in out/checkpoints. */
  out?: string;
  /** Updates between checkpoints (0: only at the end; default 100). */
  checkpointEvery?: number;
  /** Start from the latest complete checkpoint in out/checkpoints. */
  resume?: boolean;
  /** Where a dropped worker is reported (default: standard error). */
  log?: (line: string) => void;
  onEpoch: (m: ClusterEpochMetrics, model: Module<any>) => void | Promise<void>;
}

/** An epoch as the workers reported it, before validation. */
export type ClusterEpochMetrics = ObservedEpoch;

/** Trains on a local cluster of processes; resolves with the model (parameters pulled from the servers). */
export async function trainCluster(o: ClusterOptions): Promise<{ model: Module<any>; stopped: boolean }> {
  const token = generateToken();
  const reports = new EpochReports(o.workers);
  const group = new TrainingGroup({
    token, onReport: (r) => reports.add(r),
    // Every worker is ours: one killed by a signal is dropped by the servers, and the run goes on.
    dropKilledWorkers: { reports, log: o.log ?? ((line) => console.error(line)) },
    // The membership, for loom dashboard.
    ...(o.out !== undefined ? { onEvent: (e) => appendEvent(o.out!, e) } : {}),
  });
  let observer: PsClient | null = null;
  let stopRequested = false;
  /** The first epoch observed, once the observer is connected: failures before are `while starting`. */
  let first: number | undefined;
  const stop = () => {
    stopRequested = true;
    void observer?.shutdown(false).catch(() => {});
  };
  try {
    // Servers: any free port, each printing the URL it listens on.
    const checkpoint = o.out !== undefined ? { checkpoint: { dir: o.out, every: o.checkpointEvery ?? 100 }, ...(o.resume ? { resume: o.out } : {}) } : {};
    const servers = Array.from({ length: o.servers }, (_, i) =>
      group.startServer({ index: i, count: o.servers }, serverArgv(o, { shard: { index: i, count: o.servers }, workers: o.workers, port: 0, ...checkpoint })),
    );
    const urls = await Promise.all(servers.map((s) => group.listening(s)));

    // Workers: the data split of local threads, each reporting its epochs as JSON lines.
    for (let rank = 0; rank < o.workers; rank++) group.startWorker(rank, workerArgv(o, urls, rank, o.workers));

    const model = buildModel(o.model, o.seed);
    const size = flattenParameters(model).size;
    observer = await connectObserver(urls, { token, workers: o.workers, size, failure: group.failure });
    o.signal?.addEventListener('abort', stop, { once: true });
    if (o.signal?.aborted) stop();

    const perEpoch = updatesPerEpoch(o.data, { batchSize: o.batchSize, seed: o.seed, mode: o.mode, workers: o.workers });
    // Resumed: the first epoch to report is the one the checkpoint's step falls in.
    first = firstEpochToObserve(observer, perEpoch);
    const { stopped } = await observeEpochs({
      observer, reports, size, perEpoch, failure: group.failure, first, last: o.epochs,
      onEpoch: async (m, params) => {
        flattenParameters(model, { params });
        await o.onEpoch(m, model);
      },
    });
    // Every worker has ended and every push it made is applied: take the final parameters.
    flattenParameters(model, { params: await pullFinal(observer, { size, workersDone: group.workersDone(), failure: group.failure }) });
    await group.serversExited();
    o.signal?.removeEventListener('abort', stop);
    return { model, stopped: stopped || stopRequested };
  } catch (e) {
    throw await group.failedDuring(e, first, o.epochs);
  } finally {
    group.end();
    await observer?.close().catch(() => {});
  }
}

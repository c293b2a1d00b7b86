/**
 * Watching a run from outside its workers: an observer connection to the servers pulls the
 * parameters as of each epoch's last update, and once every worker has reported the epoch, the
 * epoch's metrics and those parameters go to the caller (which validates, logs and records them).
 */
import { BatchIterator } from '@loom/data';
import { PsClient, type Mode } from '@loom/parameter-server';
import { epochMetrics, type EpochMetrics, type MembershipMetrics, type WorkerMetrics } from '@loom/worker';
import type { EpochReports } from './reports.js';

/** An epoch gathered from every worker's report. */
export type ObservedEpoch = EpochMetrics & { workers: WorkerMetrics[] };

/**
 * Updates the servers apply in one epoch, counted as the workers count their steps: sync and ssp,
 * one per global batch; async, one per worker's push (each worker pushes its own).
 */
export function updatesPerEpoch(
  data: { features: Float32Array; labels: Int32Array; width: number; rows: Int32Array },
  o: { batchSize: number; seed: number; mode: Mode; workers: number },
): number {
  const steps = new BatchIterator(data, { batchSize: o.batchSize, rows: data.rows, shuffle: true, seed: o.seed }).batchesPerEpoch;
  return steps * (o.mode === 'async' ? o.workers : 1);
}

/** Connects as an observer of `workers` workers' run; fails with the run if it fails first. Blocks until every server welcomed it. */
export function connectObserver(urls: string[], o: { token: string; workers: number; size: number; failure: Promise<never> }): Promise<PsClient> {
  return Promise.race([PsClient.connect(urls, { token: o.token, role: 'observer', workers: o.workers, size: o.size }), o.failure]);
}

/** The first epoch not yet over when an observer connects: 1, or past a resumed checkpoint's step. */
export function firstEpochToObserve(observer: PsClient, perEpoch: number): number {
  return Math.floor(Math.min(...observer.applied) / perEpoch) + 1;
}

export interface ObserveOptions {
  observer: PsClient;
  reports: EpochReports;
  /** Parameters in the model (the observer's pull size). */
  size: number;
  /** Observe epochs `first` … `last`. */
  first: number;
  last: number;
  /** updatesPerEpoch(): epoch e ends at update e · perEpoch. */
  perEpoch: number;
  /** The run's failure (TrainingGroup.failure): ends the observation with its error. */
  failure: Promise<never>;
  /**
   * Reports that travel beside the updates (forwarded by other nodes) may lag the parameters:
   * wait `afterMs` for them, then call `onLate` and go on with those there are. Without it, wait
   * until every worker has reported or been dropped.
   */
  lateReports?: { afterMs: number; onLate: (epoch: number, arrived: number) => void };
  onEpoch: (m: ObservedEpoch, params: Float32Array) => void | Promise<void>;
}

/**
 * Calls `onEpoch` for every epoch in order. Resolves when the last has been handed over, or with
 * `stopped: true` as soon as a server says the run is stopping (`PsClient.shutdown(false)`).
 * `params` is valid only until `onEpoch` returns (or its promise settles).
 */
export async function observeEpochs(o: ObserveOptions): Promise<{ stopped: boolean }> {
  if (o.first > o.last) return { stopped: false };
  const target = (epoch: number) => epoch * o.perEpoch;
  const buffers = [new Float32Array(o.size), new Float32Array(o.size)];
  // The next epoch's pull is in flight while this one is handed over, so it is parked at the
  // server before the epoch it waits for ends, and answered at exactly that update.
  // A pull in flight fails when its server dies while this loop awaits something else: handled
  // here, so that the process does not crash on an unhandled rejection, and rethrown when awaited.
  const pull = (epoch: number) => {
    const p = o.observer.pull(target(epoch), buffers[epoch % 2]!);
    p.catch(() => {});
    return p;
  };
  // Async: an epoch's end is no update count — the counter counts every worker's pushes, fewer once
  // one is gone — so its parameters are read once every worker has reported it (a worker reports
  // an epoch after its last push of it is applied), as they are then.
  const async = o.observer.mode === 'async';
  let next = async ? null : pull(o.first);
  const scratch = new Float32Array(o.size);
  for (let epoch = o.first; epoch <= o.last; epoch++) {
    const params = buffers[epoch % 2]!;
    if (next !== null) {
      const pulled = await Promise.race([next, o.failure]);
      if (pulled.stop) return { stopped: true };
      if (epoch < o.last) next = pull(epoch + 1);
      await reportsOf(epoch, o);
    } else {
      await reportsOf(epoch, o);
      const pulled = await Promise.race([o.observer.pull(0, params), o.failure]);
      if (pulled.stop) return { stopped: true };
    }
    const membership = await membershipOf(o.observer, epoch, { ...o, scratch });
    await o.onEpoch({ ...epochMetrics(epoch, o.reports.of(epoch)), ...(membership !== undefined ? { membership } : {}) }, params);
  }
  return { stopped: false };
}

/**
 * Who trained epoch `epoch`'s rows (from 1), from shard 0's ledger — the shard whose plans the
 * workers follow. Sync and ssp: rows a dead worker left in the epoch's last steps are carried 1 + S
 * steps on, into the next epoch, so this first waits for update epoch·perEpoch + S + 1 (pulled
 * into `scratch`); the run's last epoch has no later step, and its ledger is read as it is. Async
 * (plans per epoch, nothing carried): read once the workers have reported the epoch.
 */
export async function membershipOf(observer: PsClient, epoch: number, o: { perEpoch: number; last: number; failure: Promise<never>; scratch: Float32Array }): Promise<MembershipMetrics | undefined> {
  if (epoch < o.last && observer.mode !== 'async') await Promise.race([observer.pull(epoch * o.perEpoch + observer.staleness + 1, o.scratch), o.failure]);
  const [first] = await Promise.race([observer.stats(), o.failure]);
  const t = first?.trained?.find((x) => x.epoch === epoch - 1);
  if (t === undefined) return undefined;
  return { rows: t.rows, expected: t.expected, ranks: t.ranks.flatMap((rows, rank) => (rows > 0 ? [{ rank, rows }] : [])), changes: t.changes };
}

/** Waits until every worker has reported `epoch` (or was dropped), or the late-report allowance runs out. */
async function reportsOf(epoch: number, o: ObserveOptions): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const late = o.lateReports ? [new Promise<false>((r) => (timer = setTimeout(() => r(false), o.lateReports!.afterMs)))] : [];
  try {
    while (!o.reports.complete(epoch)) {
      const more = await Promise.race([o.reports.changed().then(() => true), ...late, o.failure]);
      if (!more) {
        o.lateReports!.onLate(epoch, o.reports.of(epoch).length);
        return;
      }
    }
  } finally {
    clearTimeout(timer);
  }
}

/**
 * After the run: waits for this machine's workers to end, pulls the final parameters (step 0:
 * every update applied), then stops the servers. Resolves with the parameters.
 */
export async function pullFinal(observer: PsClient, o: { size: number; workersDone: Promise<unknown>; failure: Promise<never> }): Promise<Float32Array> {
  await Promise.race([o.workersDone, o.failure]);
  const final = new Float32Array(o.size);
  await Promise.race([observer.pull(0, final), o.failure]);
  await observer.shutdown(true).catch(() => {});
  return final;
}

/**
 * What an epoch reports, in one place for every path that trains: one thread, worker threads,
 * remote workers over WebSocket. Each worker's loop produces an EpochReport; whoever gathers the
 * workers' reports turns them into one EpochMetrics with `epochMetrics`.
 */
import type { EpochReport } from './loop.js';

/**
 * Staleness a worker observed: how many updates older than the newest its parameters were when it
 * computed a step. Sync runs observe 0; async and ssp runs more.
 */
export class Staleness {
  max = 0;
  sum = 0;
  count = 0;

  observe(stale: number): void {
    if (stale > this.max) this.max = stale;
    this.sum += stale;
    this.count++;
  }

  reset(): void {
    this.max = this.sum = this.count = 0;
  }

  get mean(): number {
    return this.count > 0 ? this.sum / this.count : 0;
  }

  /** Plain numbers, to cross postMessage or a JSON line. */
  summary(): { stalenessMax: number; stalenessMean: number } {
    return { stalenessMax: this.max, stalenessMean: this.mean };
  }
}

/** One worker's epoch, as the worker hands it to whoever gathers the epoch. */
export interface WorkerEpochReport extends Pick<EpochReport, 'rows' | 'lossSum' | 'seconds' | 'computeSeconds'> {
  rank: number;
  stalenessMax: number;
  stalenessMean: number;
}

/** One worker's share of an epoch, as metrics.jsonl records it. */
export interface WorkerMetrics {
  rank: number;
  rows: number;
  samplesPerSec: number;
  /** Fraction of the epoch spent in forward/backward (the rest: waiting, reducing, stepping). */
  computeFraction?: number;
  /** Ssp and async: updates between the parameters a worker computed with and the newest. */
  stalenessMax: number;
  stalenessMean: number;
}

/** One epoch of a run, whatever trained it. */
export interface EpochMetrics {
  /** From 1. */
  epoch: number;
  /** Mean training loss over every row trained in the epoch. */
  trainLoss: number;
  samplesPerSec: number;
  seconds: number;
  validLoss?: number;
  validAccuracy?: number;
  /** With more than one worker: each worker's throughput and, for async and ssp, staleness. */
  workers?: WorkerMetrics[];
  /** Sync and ssp over parameter servers: who trained the epoch's rows, as the servers counted them. */
  membership?: MembershipMetrics;
}

/**
 * Who trained an epoch's rows in a sync or ssp run over parameter servers, whose workers may come
 * and go: the servers' count of the rows its updates were made of (a row a dead worker left
 * untrained is carried into a later step and counted in the epoch it belongs to).
 */
export interface MembershipMetrics {
  /** Rows of the epoch's batches trained … */
  rows: number;
  /** … and rows in them: equal when every example was trained once. */
  expected: number;
  /** Rows trained by each rank, ascending (ranks that trained none are left out). */
  ranks: Array<{ rank: number; rows: number }>;
  /** The steps from which other ranks trained, or which carried rows of earlier steps, with their live ranks. */
  changes: Array<{ step: number; live: number[]; carried: number }>;
}

/** Guards a division by an epoch that took no measurable time. */
const TINY = 1e-9;

export function workerMetrics(r: WorkerEpochReport): WorkerMetrics {
  return {
    rank: r.rank,
    rows: r.rows,
    samplesPerSec: r.rows / Math.max(r.seconds, TINY),
    computeFraction: r.computeSeconds / Math.max(r.seconds, TINY),
    stalenessMax: r.stalenessMax,
    stalenessMean: r.stalenessMean,
  };
}

/**
 * Gathers the workers' reports of one epoch (`epoch` from 1). `seconds` is the epoch's wall time;
 * by default the slowest worker's, which is the epoch's when workers run side by side.
 */
export function epochMetrics(epoch: number, reports: readonly WorkerEpochReport[], seconds = Math.max(TINY, ...reports.map((r) => r.seconds))): EpochMetrics & { workers: WorkerMetrics[] } {
  const sorted = [...reports].sort((a, b) => a.rank - b.rank);
  const rows = sorted.reduce((s, r) => s + r.rows, 0);
  return {
    epoch,
    trainLoss: sorted.reduce((s, r) => s + r.lossSum, 0) / Math.max(rows, 1),
    samplesPerSec: rows / seconds,
    seconds,
    workers: sorted.map(workerMetrics),
  };
}

/**
 * The records the coordinator and its worker threads exchange, in one place. Everything here is
 * plain data (numbers, strings, SharedArrayBuffers), so it crosses postMessage without copying
 * the large arrays.
 */
import type { EpochReport, WorkerEpochReport } from '@loom/worker';
import type { SharedRun } from './shared.js';

/** One epoch of one worker. */
export interface EpochTask {
  /** Identifies the run: a thread keeps its model and transport between epochs of the same run. */
  runId: string;
  rank: number;
  run: SharedRun;
  /** Layer sizes of the MLP (the same in every thread; built with `seed`, then bound to run.params). */
  sizes: number[];
  seed: number;
  optimizer: { name: string; lr: number };
  data: { features: SharedArrayBuffer; labels: SharedArrayBuffer; rows: SharedArrayBuffer; width: number };
  batchSize: number;
  epoch: number;
  /** The global step index of the epoch's first step. */
  firstStep: number;
}

/** What a thread reports back after its epoch. */
export type EpochResult = EpochReport & WorkerEpochReport;

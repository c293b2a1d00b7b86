/**
 * The records threads of this package exchange, in one place: a local run's coordinator and its
 * worker threads (./coordinator.ts, ./thread.ts), and a remote worker process's main thread and its
 * compute threads (../net/hierarchy.ts, ../net/hierarchy-thread.ts). Everything here is plain data
 * (numbers, strings, SharedArrayBuffers), so it crosses postMessage without copying the large
 * arrays.
 */
import type { CtrShape, EpochReport, WorkerEpochReport } from '@loom/worker';
import type { SharedTablesSpec } from '../tables/shared-tables.js';
import type { SharedRun } from './shared.js';
import type { TableExchange, TableMode } from './table-policy.js';

/** A data set in shared memory: float32 features (rows × width), int32 labels, and the int32 row indices to train on. */
export interface SharedData {
  features: SharedArrayBuffer;
  labels: SharedArrayBuffer;
  rows: SharedArrayBuffer;
  width: number;
}

// ---- a local run: coordinator ↔ worker thread (piscina tasks) -------------------------------

/** One epoch of one worker. */
export interface EpochTask {
  /** Identifies the run: a thread keeps its model and transport between epochs of the same run. */
  runId: string;
  rank: number;
  run: SharedRun;
  /** The --model spec (the same in every thread; built, then bound to run.params). */
  model: string;
  seed: number;
  optimizer: { name: string; lr: number };
  data: SharedData;
  batchSize: number;
  epoch: number;
  /** The global step index of the epoch's first step. */
  firstStep: number;
}

/** The click log's impression columns in shared memory (@loom/worker's CtrColumns, each as its buffer). */
export interface SharedCtrColumns {
  rows: number;
  user: SharedArrayBuffer;
  article: SharedArrayBuffer;
  category: SharedArrayBuffer;
  subcategory: SharedArrayBuffer;
  history: SharedArrayBuffer;
  dense: SharedArrayBuffer;
  label: SharedArrayBuffer;
}

/** One epoch of one worker of a CTR run (./ctr-thread.ts): the dense part in `run`, the tables in `tables`. */
export interface CtrEpochTask {
  runId: string;
  rank: number;
  run: SharedRun;
  tables: SharedTablesSpec;
  tableMode: TableMode;
  /** Sync tables only: where workers hand each other their row gradients. */
  exchange: TableExchange | null;
  columns: SharedCtrColumns;
  shape: CtrShape;
  /** The training impressions [from, to) of the columns. */
  range: [number, number];
  optimizer: { name: string; lr: number };
  batchSize: number;
  epoch: number;
  firstStep: number;
}

/** What a thread reports back after its epoch. */
export type EpochResult = EpochReport & WorkerEpochReport;

// ---- a remote worker process: main thread ↔ compute threads (net/hierarchy) ------------------

/** What the main thread gives each compute thread when it starts it (its workerData). */
export interface HierarchyThreadData {
  run: SharedRun;
  /** This thread, 0 … T−1 (T = run.workers). */
  thread: number;
  /** This process's rank r of W processes. */
  rank: number;
  workers: number;
  /** The --model spec. */
  model: string;
  seed: number;
  batchSize: number;
  data: SharedData;
}

/** main → thread: run epoch `epoch` (its first step is `firstStep`), from batch `startIndex`. */
export interface HierarchyEpoch {
  epoch: number;
  firstStep: number;
  startIndex: number;
}

/** thread → main, once per HierarchyEpoch: the thread's report, or why it failed. */
export type HierarchyEpochResult = { report: EpochReport; error?: undefined } | { report?: undefined; error: string };

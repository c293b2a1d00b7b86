/**
 * @loom/worker — the worker's training loop, written against a Transport so that the same loop
 * runs in a thread over shared memory or in a remote process over WebSocket.
 */
export type { Transport, StepInfo } from './transport.js';
export { GlobalBatchSchedule, type WorkerBatch } from './schedule.js';
export { runEpoch, type EpochReport, type EpochOptions } from './loop.js';
export { Staleness, epochMetrics, workerMetrics, type EpochMetrics, type WorkerEpochReport, type WorkerMetrics } from './metrics.js';

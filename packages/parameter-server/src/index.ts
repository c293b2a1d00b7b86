/**
 * @loom/parameter-server — the coordinator that aggregates workers' gradients and applies the
 * optimizer. Local mode: worker threads sharing one copy of the parameters in a SharedArrayBuffer,
 * synchronously (sync), without locks (async), or with bounded staleness (ssp).
 */
export { trainThreads, WorkerFailed, type ThreadTrainingOptions, type ThreadEpochMetrics, type WorkerMetrics } from './local/coordinator.js';
export { MODES, type Mode } from './local/shared.js';

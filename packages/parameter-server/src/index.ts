/**
 * @loom/parameter-server — the coordinator that aggregates workers' gradients and applies the
 * optimizer. Local mode: worker threads sharing one copy of the parameters in a SharedArrayBuffer,
 * synchronously (sync), without locks (async), or with bounded staleness (ssp). Across machines:
 * parameter servers that each own a key range, and remote workers, over WebSocket (src/net).
 */
export { trainThreads, WorkerFailed, type ThreadTrainingOptions, type ThreadEpochMetrics } from './local/coordinator.js';
export { trainCtrThreads, type CtrThreadOptions } from './local/ctr-coordinator.js';
export { TABLE_MODES, type TableMode } from './local/table-policy.js';
export type { WorkerMetrics, EpochMetrics } from '@loom/worker';
export { MODES, type Mode } from './mode.js';
export * from './net/index.js';
export { RowTable, TableError, shardOfId, type RowTableOptions, type RowTableStats } from './tables/index.js';
export { SharedTable, allocateSharedTables, sharedTables, rowInit, type SharedTablesSpec, type RowInit } from './tables/index.js';

/**
 * @loom/worker — the worker's training loop, written against a Transport so that the same loop
 * runs in a thread over shared memory, in a remote process over WebSocket, or on one thread over
 * an in-process transport that steps the optimizer itself.
 */
export type { Transport, StepInfo } from './transport.js';
export { GlobalBatchSchedule, isPlanned, type WorkerBatch, type StepBatch, type BatchSchedule, type PlannedSchedule } from './schedule.js';
export { fullPlan, rowsOf, shareOf, type Segment, type StepPlan } from './plan.js';
export { classificationTask, type Task } from './task.js';
export { runEpoch, type EpochReport, type EpochOptions } from './loop.js';
export { inProcessTransport, type InProcessOptions, type SteppingOptimizer } from './in-process.js';
export { WorkerError } from './errors.js';
export { Staleness, epochMetrics, workerMetrics, type EpochMetrics, type MembershipMetrics, type WorkerEpochReport, type WorkerMetrics } from './metrics.js';
export { StepTables, type StepTable, type TableSpec, type TableKeys, type RowStore } from './tables.js';
export { CtrModel, CtrSchedule, ctrTask, CTR_DIM, CTR_TABLES, type CtrBatch, type CtrColumns, type CtrShape, type CtrInput } from './ctr.js';
export { parseModelSpec, withVocab, checkModelFits, cnn, Unflatten, REFERENCE_SIZES, type ModelSpec, type ModelInput } from './models.js';
export { GPT, GptTrunk, ModuleList, type GptConfig } from './gpt.js';
export { lmTask, evaluateLm, unigramLoss, splitWindows, type LmEvaluation } from './lm.js';

/**
 * The contract between a worker's training loop and whatever aggregates gradients — threads over
 * shared memory, or parameter servers over WebSocket. The loop calls, for every step:
 *
 *   pull(params, info)   until it returns, `params` may be updated; then it holds the values to
 *                        compute step `info.step` with. Returns false when the run is stopping.
 *   push(grads, info)    hands on the gradient computed at step `info.step`: the mean over the
 *                        worker's `info.rows` rows of a global batch of `info.batchRows` rows.
 *
 *   plan(step, params)   optional: who trains step `step` (a StepPlan, ./plan.ts), asked before the
 *                        step's part is cut, when the schedule can follow plans. A transport over
 *                        servers that re-shard when workers come and go has one; it may start the
 *                        step's pull into `params` to learn it. Undefined: the schedule's fixed split.
 *
 * How pushes become updates — averaged in lockstep, applied as they come, or with bounded
 * staleness — is the transport's policy; the loop does not know which one it runs under.
 * Either method may complete synchronously (shared memory, blocking on Atomics) or return a promise
 * (sockets).
 */
import type { StepPlan } from './plan.js';
import type { StepTables, TableKeys } from './tables.js';

export interface StepInfo {
  /** The epoch this step belongs to, from 0. */
  readonly epoch: number;
  /** The step's index since the run began, from 0: the same for every worker in lockstep. */
  readonly step: number;
  /** Rows this worker's gradient was computed on (may be 0 when a batch has fewer rows than workers). */
  readonly rows: number;
  /** Rows in the whole global batch of this step. */
  readonly batchRows: number;
  /**
   * The embedding rows this step reads, by table, when the task names them (Task.keys): a
   * transport of row-keyed tables pulls and pushes only these rows. Absent for dense tasks.
   */
  readonly keys?: TableKeys;
  /**
   * With a task that has tables: the step's unique ids per table, where the pull writes their rows
   * and where backward leaves their gradients for the push (see tables.ts).
   */
  readonly tables?: StepTables;
  /**
   * The plan the step's part was cut by (Transport.plan), when there was one: a transport sends its
   * live ranks with the push, and a rank not among them pushes nothing for the step.
   */
  readonly plan?: StepPlan;
}

export interface Transport {
  pull(params: Float32Array, info: StepInfo): boolean | Promise<boolean>;
  push(grads: Float32Array, info: StepInfo): void | Promise<void>;
  plan?(step: number, params: Float32Array): StepPlan | undefined | Promise<StepPlan | undefined>;
}

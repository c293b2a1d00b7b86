/**
 * The worker's training loop: for each step, pull parameters, compute the gradient of the task's
 * loss on this worker's part of the global batch, push it. The model's parameters and gradients
 * are flat arrays (see @loom/tensor-core's flattenParameters) that the transport reads and writes —
 * in shared memory they are the shared buffers themselves, so nothing is copied. Every path that
 * trains runs this loop: worker threads, remote workers, and one thread over an in-process transport.
 */
import { BufferPool, reusingBuffers, type FlatParameters, type Module } from '@loom/tensor-core';
import { WorkerError } from './errors.js';
import { GlobalBatchSchedule, isPlanned, type BatchSchedule, type StepBatch, type WorkerBatch } from './schedule.js';
import { classificationTask, type Task } from './task.js';
import type { StepPlan } from './plan.js';
import type { StepInfo, Transport } from './transport.js';

export interface EpochReport {
  /** Steps this worker completed. */
  steps: number;
  /** Rows it computed gradients on. */
  rows: number;
  /** Σ loss × rows, for the mean training loss. */
  lossSum: number;
  /** Seconds spent in this epoch, and in forward/backward alone. */
  seconds: number;
  computeSeconds: number;
  /** True when the transport stopped the run before the epoch ended. */
  stopped: boolean;
}

export interface EpochOptions<B extends StepBatch = WorkerBatch> {
  model: Module<any>;
  flat: FlatParameters;
  transport: Transport;
  schedule: BatchSchedule<B>;
  /**
   * What a step computes. Default, for a GlobalBatchSchedule: cross-entropy over its dense
   * features, `classificationTask(schedule.width)`. Any other schedule needs its task named.
   */
  task?: Task<B>;
  epoch: number;
  /** The global step index of the epoch's first step. */
  firstStep: number;
  /** Begin at this batch of the epoch, skipping the ones before it (a run resumed mid-epoch). Default 0. */
  startIndex?: number;
  /**
   * Called after every step's push with the epoch's running totals so far (`steps`, `rows`,
   * `lossSum`; `seconds` is filled in only at the end) — a progress bar, say. The report is the
   * loop's own object: read it, don't keep it.
   */
  onStep?: (soFar: Readonly<EpochReport>, info: StepInfo) => void;
}

function isPromise<T>(v: T | Promise<T>): v is Promise<T> {
  return typeof (v as Promise<T> | undefined)?.then === 'function';
}

function samePlan(a: StepPlan | undefined, b: StepPlan): boolean {
  return a !== undefined && a.carry.length === 0 && b.carry.length === 0 && a.live.length === b.live.length && a.live.every((r, i) => b.live[i] === r);
}

function defaultTask<B extends StepBatch>(schedule: BatchSchedule<B>): Task<B> {
  // A GlobalBatchSchedule yields WorkerBatch, so B is WorkerBatch here.
  if (schedule instanceof GlobalBatchSchedule) return classificationTask(schedule.width) as unknown as Task<B>;
  throw new WorkerError('runEpoch', `options.task: expected a Task for a schedule other than GlobalBatchSchedule, found none (a ${schedule.constructor.name})`);
}

/**
 * Runs one epoch of this worker's part of training. Blocks inside the transport when it is a
 * shared-memory one; awaits it when it is a network one (or an in-process one yielding to the
 * event loop).
 *
 * @example
 * const r = await runEpoch({ model, flat, transport, schedule, epoch: 0, firstStep: 0 });
 * console.log(`loss ${r.lossSum / r.rows}`);
 */
export async function runEpoch<B extends StepBatch = WorkerBatch>(o: EpochOptions<B>): Promise<EpochReport> {
  const { model, flat, transport, schedule, epoch, firstStep, startIndex = 0, onStep } = o;
  const task = o.task ?? defaultTask(schedule);
  const t0 = performance.now();
  const report: EpochReport = { steps: 0, rows: 0, lossSum: 0, seconds: 0, computeSeconds: 0, stopped: false };
  // Every tensor of a step is the loop's own, so a step's buffers are reused by the next one: no
  // allocation per step, which is what lets threads in one process scale (see reusingBuffers).
  const pool = new BufferPool();
  model.train();
  // With a transport that announces who trains each step and a schedule that can follow it, each
  // step's part is cut once its plan is known (./plan.ts); otherwise the schedule's fixed split.
  const planned = transport.plan !== undefined && isPlanned(schedule) ? schedule : null;
  const fixed = planned === null ? schedule.epoch(epoch)[Symbol.iterator]() : null;
  /** The step's StepInfo for `part`, cut by `plan`; with tables, their keys prepared. */
  const infoOf = (part: B, plan: StepPlan | undefined): StepInfo => {
    const info: StepInfo = { epoch, step: firstStep + part.index, rows: part.rows, batchRows: part.batchRows, ...(plan !== undefined ? { plan } : {}) };
    if (task.keys === undefined) return info;
    const keys = task.keys(part);
    task.tables?.prepare(keys);
    return { ...info, keys, tables: task.tables };
  };
  let last: StepPlan | undefined; // the plan of the step before
  for (let index = startIndex; ; index++) {
    let part: B;
    let info: StepInfo;
    let go: boolean;
    if (planned !== null) {
      if (index >= planned.batchesPerEpoch) break;
      const p = transport.plan!(firstStep + index, flat.params);
      let plan: StepPlan | undefined;
      if (isPromise(p) && task.keys !== undefined && last !== undefined && last.carry.length === 0) {
        // A task with tables pulls the rows its part names: cut the part by the last plan, which a
        // step almost always keeps, so that its rows travel beside the plan; cut again if it changed.
        part = planned.share(epoch, index, last);
        info = infoOf(part, last);
        const pulled = transport.pull(flat.params, info);
        plan = await p;
        go = isPromise(pulled) ? await pulled : pulled;
        if (go && !samePlan(plan, last)) {
          part = planned.share(epoch, index, plan);
          info = infoOf(part, plan);
          const again = transport.pull(flat.params, info);
          go = isPromise(again) ? await again : again;
        }
      } else {
        plan = isPromise(p) ? await p : p;
        part = planned.share(epoch, index, plan);
        info = infoOf(part, plan);
        const pulled = transport.pull(flat.params, info);
        go = isPromise(pulled) ? await pulled : pulled;
      }
      last = plan;
    } else {
      const next = fixed!.next();
      if (next.done === true) break;
      part = next.value;
      if (part.index < startIndex) continue;
      info = infoOf(part, undefined);
      const pulled = transport.pull(flat.params, info);
      go = isPromise(pulled) ? await pulled : pulled;
    }
    if (!go) {
      report.stopped = true;
      break;
    }
    const c0 = performance.now();
    flat.grads.fill(0);
    if (part.rows > 0) {
      report.lossSum += part.rows * reusingBuffers(pool, () => {
        const loss = task.loss(model, part);
        loss.backward();
        return loss.item();
      });
    }
    report.computeSeconds += (performance.now() - c0) / 1000;
    const pushed = transport.push(flat.grads, info);
    if (isPromise(pushed)) await pushed;
    report.steps++;
    report.rows += part.rows;
    onStep?.(report, info);
  }
  report.seconds = (performance.now() - t0) / 1000;
  return report;
}

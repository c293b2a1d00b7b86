/**
 * The worker's training loop: for each step, pull parameters, compute the gradient of the
 * cross-entropy on this worker's part of the global batch, push it. The model's parameters and
 * gradients are flat arrays (see @loom/tensor-core's flattenParameters) that the transport reads
 * and writes — in shared memory they are the shared buffers themselves, so nothing is copied.
 */
import { BufferPool, IntTensor, Tensor, crossEntropy, reusingBuffers, type FlatParameters, type Module } from '@loom/tensor-core';
import type { GlobalBatchSchedule } from './schedule.js';
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

export interface EpochOptions {
  model: Module;
  flat: FlatParameters;
  transport: Transport;
  schedule: GlobalBatchSchedule;
  epoch: number;
  /** The global step index of the epoch's first step. */
  firstStep: number;
  /** Begin at this batch of the epoch, skipping the ones before it (a run resumed mid-epoch). Default 0. */
  startIndex?: number;
}

function isPromise<T>(v: T | Promise<T>): v is Promise<T> {
  return typeof (v as Promise<T> | undefined)?.then === 'function';
}

/**
 * Runs one epoch of this worker's part of training. Blocks inside the transport when it is a
 * shared-memory one; awaits it when it is a network one.
 */
export async function runEpoch({ model, flat, transport, schedule, epoch, firstStep, startIndex = 0 }: EpochOptions): Promise<EpochReport> {
  const t0 = performance.now();
  const report: EpochReport = { steps: 0, rows: 0, lossSum: 0, seconds: 0, computeSeconds: 0, stopped: false };
  const width = schedule.width;
  // Every tensor of a step is the loop's own, so a step's buffers are reused by the next one: no
  // allocation per step, which is what lets threads in one process scale (see reusingBuffers).
  const pool = new BufferPool();
  model.train();
  for (const part of schedule.epoch(epoch)) {
    if (part.index < startIndex) continue;
    const info: StepInfo = { epoch, step: firstStep + part.index, rows: part.rows, batchRows: part.batchRows };
    const pulled = transport.pull(flat.params, info);
    const go = isPromise(pulled) ? await pulled : pulled;
    if (!go) {
      report.stopped = true;
      break;
    }
    const c0 = performance.now();
    flat.grads.fill(0);
    if (part.rows > 0) {
      report.lossSum += part.rows * reusingBuffers(pool, () => {
        const loss = crossEntropy(model.forward(new Tensor(part.x, [part.rows, width])), new IntTensor(part.y));
        loss.backward();
        return loss.item();
      });
    }
    report.computeSeconds += (performance.now() - c0) / 1000;
    const pushed = transport.push(flat.grads, info);
    if (isPromise(pushed)) await pushed;
    report.steps++;
    report.rows += part.rows;
  }
  report.seconds = (performance.now() - t0) / 1000;
  return report;
}

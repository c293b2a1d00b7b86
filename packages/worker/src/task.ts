/**
 * What one training step computes, apart from the loop that runs it: given the model and this
 * worker's part of a batch, the loss. The loop (loop.ts) owns everything around it — pulling
 * parameters, zeroing gradients, calling backward, reading the loss, pushing — so a new kind of
 * model or batch (click-through rates over embedding ids, say) is a new Task, not a new loop.
 */
import { IntTensor, Tensor, crossEntropy, type Module } from '@loom/tensor-core';
import type { StepBatch, WorkerBatch } from './schedule.js';
import type { StepTables, TableKeys } from './tables.js';

/**
 * A training step's computation over batches of type `B`.
 *
 * `loss` runs inside the loop's reusingBuffers scope: every tensor it builds comes from a pool the
 * next step reuses, so a task must not keep a tensor across steps, and allocates nothing per step
 * if it builds its tensors as views of the batch (as classificationTask does).
 *
 * @example
 * // Mean squared error of a one-output regression, batches of { x, target, rows, batchRows, index }.
 * const regression: Task<RegressionBatch> = {
 *   loss: (model, b) => mseLoss(model.forward(new Tensor(b.x, [b.rows, 4])), new Tensor(b.target, [b.rows, 1])),
 * };
 */
export interface Task<B extends StepBatch> {
  /**
   * Forward only: the loss of `model` on `batch`, a scalar tensor holding the mean over the
   * batch's `rows` rows. The loop calls backward on it and reads its value. Called only for
   * batches with at least one row.
   */
  loss(model: Module<any>, batch: B): Tensor;
  /**
   * The embedding rows this step touches, for transports of row-keyed tables. The loop calls it
   * before the step's pull and hands the result to the transport as `StepInfo.keys`. Leave it out
   * for dense models: every parameter is then pulled and pushed whole.
   */
  keys?(batch: B): TableKeys;
  /**
   * The compact local tables the loss reads embedding rows from (see tables.ts). With `keys`, the
   * loop dedups each step's keys into them before the pull; the transport fills their rows and
   * pushes their gradients by id.
   */
  tables?: StepTables;
}

/**
 * Classification over dense features: cross-entropy of the model's logits on the batch's rows of
 * `width` features against their class labels. The task every Loom trainer used before tasks
 * existed, and runEpoch's default for a GlobalBatchSchedule.
 *
 * @example
 * await runEpoch({ model, flat, transport, schedule, epoch: 0, firstStep: 0, task: classificationTask(schedule.width) });
 */
export function classificationTask(width: number): Task<WorkerBatch> {
  return {
    loss: (model, b) => crossEntropy(model.forward(new Tensor(b.x, [b.rows, width])), new IntTensor(b.y)),
  };
}

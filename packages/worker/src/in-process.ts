/**
 * One-thread training as a Transport, so that it runs the same loop as every other path: there is
 * no one to exchange parameters with, so pull has nothing to fetch and push steps an optimizer in
 * this thread. The optimizer's parameters must have their gradients as views of the flat gradients
 * the loop fills (flattenParameters arranges that), so stepping it applies exactly the pushed gradient.
 */
import { WorkerError } from './errors.js';
import type { RowStore } from './tables.js';
import type { StepInfo, Transport } from './transport.js';

export interface InProcessOptions {
  /** Asked before every step: true ends the epoch there (the step does not run). Default: never. */
  shouldStop?: () => boolean;
  /**
   * A pull returns a promise that resolves after the event loop's pending callbacks once this many
   * milliseconds have passed since the last such pause, so signal handlers (Ctrl-C) and timers run
   * while training is otherwise synchronous. Default 50; Infinity never pauses.
   */
  yieldEveryMs?: number;
  /**
   * Row-keyed embedding tables by name, for a task with tables: a pull reads the step's rows from
   * them, a push steps those rows with their gradients (after the dense optimizer's step).
   */
  tables?: Readonly<Record<string, RowStore>>;
}

/** What the transport needs of an optimizer (@loom/optimizer's Optimizer has it). */
export interface SteppingOptimizer {
  step(): void;
}

const pauseForEventLoop = () => new Promise<void>((resolve) => setImmediate(resolve));

/**
 * A transport whose push steps `optimizer` in place. Neither method blocks: pull answers at once
 * (or, every `yieldEveryMs`, with a promise resolved on the next turn of the event loop), push
 * steps and returns. Not for use from more than one loop at a time.
 *
 * @example
 * const flat = flattenParameters(model);
 * const transport = inProcessTransport(new Optimizer(adam, model.parameters(), { lr: 1e-3 }));
 * await runEpoch({ model, flat, transport, schedule, epoch: 0, firstStep: 0 });
 */
export function inProcessTransport(optimizer: SteppingOptimizer, { shouldStop = () => false, yieldEveryMs = 50, tables = {} }: InProcessOptions = {}): Transport {
  const store = (name: string): RowStore => {
    const s = tables[name];
    if (s === undefined) throw new WorkerError('inProcessTransport', `the task reads table '${name}', but no store for it was given (stores: ${Object.keys(tables).join(', ') || 'none'})`);
    return s;
  };
  const pullRows = (info: StepInfo) => {
    if (info.tables !== undefined) for (const t of info.tables) store(t.name).pull(t.ids, t.rows, info.step);
  };
  let pausedAt = performance.now();
  const resume = () => {
    pausedAt = performance.now();
    return !shouldStop(); // a signal handled during the pause stops the run before this step
  };
  return {
    pull(_params, info) {
      if (shouldStop()) return false;
      if (performance.now() - pausedAt <= yieldEveryMs) {
        pullRows(info);
        return true;
      }
      return pauseForEventLoop().then(() => {
        const go = resume();
        if (go) pullRows(info);
        return go;
      });
    },
    push(_grads, info) {
      optimizer.step();
      // The table's step count is PyTorch's: one per training step, from 1.
      if (info.tables !== undefined) for (const t of info.tables) store(t.name).push(t.ids, t.grads, info.step + 1);
    },
  };
}

/**
 * One-thread training as a Transport, so that it runs the same loop as every other path: there is
 * no one to exchange parameters with, so pull has nothing to fetch and push steps an optimizer in
 * this thread. The optimizer's parameters must have their gradients as views of the flat gradients
 * the loop fills (flattenParameters arranges that), so stepping it applies exactly the pushed gradient.
 */
import type { Transport } from './transport.js';

export interface InProcessOptions {
  /** Asked before every step: true ends the epoch there (the step does not run). Default: never. */
  shouldStop?: () => boolean;
  /**
   * A pull returns a promise that resolves after the event loop's pending callbacks once this many
   * milliseconds have passed since the last such pause, so signal handlers (Ctrl-C) and timers run
   * while training is otherwise synchronous. Default 50; Infinity never pauses.
   */
  yieldEveryMs?: number;
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
export function inProcessTransport(optimizer: SteppingOptimizer, { shouldStop = () => false, yieldEveryMs = 50 }: InProcessOptions = {}): Transport {
  let pausedAt = performance.now();
  const resume = () => {
    pausedAt = performance.now();
    return !shouldStop(); // a signal handled during the pause stops the run before this step
  };
  return {
    pull() {
      if (shouldStop()) return false;
      if (performance.now() - pausedAt <= yieldEveryMs) return true;
      return pauseForEventLoop().then(resume);
    },
    push() {
      optimizer.step();
    },
  };
}

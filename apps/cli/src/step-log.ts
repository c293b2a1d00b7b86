/**
 * DIR/steps.jsonl: the training loss between epochs, at a bounded rate, so curves show more than
 * one point per epoch. Each line averages the loss over the steps since the line before, so no
 * step is left out, only smoothed:
 *
 *   {"step": 1200, "epoch": 1.5, "loss": 1.7012, "time": 1764936000000}
 *
 * `step` counts steps from the start of the run, `epoch` is the epochs done (fractional), `time`
 * is ms since 1970. A line is written at most every `minIntervalMs` (default 100 ms) and at most
 * `maxPerEpoch` times an epoch (default 100), and at the end of every epoch: a long run writes
 * at most ten lines a second, a short one at most a hundred an epoch.
 */
import { appendFileSync } from 'node:fs';
import { join } from 'node:path';

export interface StepLogOptions {
  minIntervalMs?: number;
  maxPerEpoch?: number;
  /** The clock (ms), for tests. */
  now?: () => number;
}

export class StepLog {
  private readonly path: string;
  private readonly minIntervalMs: number;
  private readonly maxPerEpoch: number;
  private readonly now: () => number;
  private epoch = 0;
  private last = { steps: 0, lossSum: 0, rows: 0, time: -Infinity };

  constructor(dir: string, o: StepLogOptions = {}) {
    this.path = join(dir, 'steps.jsonl');
    this.minIntervalMs = o.minIntervalMs ?? 100;
    this.maxPerEpoch = o.maxPerEpoch ?? 100;
    this.now = o.now ?? Date.now;
  }

  /**
   * After every step of epoch `epoch` (from 1) of `perEpoch` steps, with the epoch's running sums
   * so far (runEpoch's onStep): writes a line when one is due. Cheap when none is.
   */
  step(epoch: number, perEpoch: number, soFar: { steps: number; lossSum: number; rows: number }): void {
    if (epoch !== this.epoch) {
      this.epoch = epoch;
      this.last = { steps: 0, lossSum: 0, rows: 0, time: this.last.time };
    }
    const rows = soFar.rows - this.last.rows;
    if (rows <= 0) return;
    const end = soFar.steps >= perEpoch;
    const every = Math.ceil(perEpoch / this.maxPerEpoch);
    if (!end && soFar.steps - this.last.steps < every) return;
    const time = this.now();
    if (!end && time - this.last.time < this.minIntervalMs) return;
    const line = {
      step: (epoch - 1) * perEpoch + soFar.steps,
      epoch: epoch - 1 + soFar.steps / perEpoch,
      loss: (soFar.lossSum - this.last.lossSum) / rows,
      time,
    };
    appendFileSync(this.path, JSON.stringify(line) + '\n');
    this.last = { steps: soFar.steps, lossSum: soFar.lossSum, rows: soFar.rows, time };
  }
}

/**
 * The workers' epoch reports as the orchestrator gathers them. Every `loom worker --json` prints
 * one `WorkerEpochLine` per epoch on its standard output; the orchestrator reads those of its own
 * children, and `loom launch`'s master also receives those other nodes forward to it.
 */
import type { WorkerEpochReport } from '@loom/worker';

/** One line of `loom worker --json` after each epoch: a contract with every tool that reads it. */
export interface WorkerEpochLine extends WorkerEpochReport {
  event: 'epoch';
  /** From 1. */
  epoch: number;
  /** Steps this worker took in the epoch. */
  steps: number;
  /** True when the servers stopped the run during this epoch. */
  stopped: boolean;
}

/** The epoch report on a line of a worker's output, or undefined for any other line. */
export function parseEpochLine(line: string): WorkerEpochLine | undefined {
  try {
    const r = JSON.parse(line) as Partial<WorkerEpochLine> | null;
    return r?.event === 'epoch' ? (r as WorkerEpochLine) : undefined;
  } catch {
    return undefined; // not a report
  }
}

/**
 * Reports by epoch, and the ranks that will send no more (killed workers the servers dropped).
 * Not thread-safe; single event loop only.
 */
export class EpochReports {
  private readonly byEpoch = new Map<number, WorkerEpochLine[]>();
  private readonly gone = new Set<number>();
  private wake: () => void = () => {};

  constructor(
    /** Every worker of the run. */
    readonly workers: number,
  ) {}

  add(r: WorkerEpochLine): void {
    this.byEpoch.set(r.epoch, [...(this.byEpoch.get(r.epoch) ?? []), r]);
    this.wake();
  }

  /** Rank `rank` will report no more epochs: it no longer counts as awaited. */
  drop(rank: number): void {
    this.gone.add(rank);
    this.wake();
  }

  /** Ranks dropped so far. */
  get dropped(): number {
    return this.gone.size;
  }

  of(epoch: number): WorkerEpochLine[] {
    return this.byEpoch.get(epoch) ?? [];
  }

  /** Every worker has reported `epoch`, or was dropped without reporting it. */
  complete(epoch: number): boolean {
    const ranks = new Set(this.of(epoch).map((r) => r.rank));
    for (const r of this.gone) ranks.add(r);
    return ranks.size >= this.workers;
  }

  /** Resolves at the next report or drop. Only one waiter at a time. */
  changed(): Promise<void> {
    return new Promise((r) => (this.wake = r));
  }
}

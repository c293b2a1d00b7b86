/**
 * `loom train --tensorboard DIR`: the run's metrics as TensorBoard scalars, in an event file in DIR,
 * written while the run trains. It follows the run directory's files as the dashboard does
 * (../dashboard/jsonl-tail.ts), so the training loops know nothing of it:
 *
 *   metrics.jsonl → at step = epoch: loss/train, loss/valid, accuracy/valid, auc/valid,
 *                   log_loss/valid, perplexity/valid, throughput/samples_per_sec,
 *                   throughput/worker_R, staleness/worker_R_max, compute/worker_R,
 *                   bytes_per_step/all|dense|rows
 *   steps.jsonl   → at step = the global step: loss/train_step
 *
 * It starts reading once this process has started (or resumed) the run — the `start` or `resume`
 * line with its pid in events.jsonl — so an earlier run's lines in the same directory are never
 * exported.
 */
import { join } from 'node:path';
import { JsonlTail } from '../dashboard/jsonl-tail.js';
import { EventFileWriter } from './event-file.js';

/** The scalars TensorBoard gets for one epoch line of metrics.jsonl. */
export function epochScalars(m: Record<string, unknown>): Record<string, number> {
  const out: Record<string, number> = {};
  const put = (tag: string, v: unknown) => {
    if (typeof v === 'number') out[tag] = v;
  };
  put('loss/train', m.trainLoss);
  put('loss/valid', m.validLoss);
  put('accuracy/valid', m.validAccuracy);
  put('auc/valid', m.validAuc);
  put('log_loss/valid', m.validLogLoss);
  put('perplexity/valid', m.validPerplexity);
  put('throughput/samples_per_sec', m.samplesPerSec);
  if (Array.isArray(m.workers)) {
    for (const w of m.workers as Array<Record<string, unknown>>) {
      put(`throughput/worker_${String(w.rank)}`, w.samplesPerSec);
      put(`staleness/worker_${String(w.rank)}_max`, w.stalenessMax);
      put(`compute/worker_${String(w.rank)}`, w.computeFraction);
    }
  }
  const bytes = m.bytesPerStep as Record<string, unknown> | undefined;
  if (bytes !== null && typeof bytes === 'object') for (const k of ['all', 'dense', 'rows']) put(`bytes_per_step/${k}`, bytes[k]);
  return out;
}

export class TensorboardExport {
  readonly writer: EventFileWriter;
  private readonly tails: JsonlTail[];
  private readonly started: JsonlTail;
  private following = false;
  private readonly timer: NodeJS.Timeout;

  /** Exports the run in `runDir` (started by process `pid`) to a new event file in `logDir`. */
  constructor(runDir: string, logDir: string, pid = process.pid, pollMs = 500) {
    this.writer = new EventFileWriter(logDir);
    this.started = new JsonlTail(join(runDir, 'events.jsonl'), {
      onRecords: (rs) => {
        if (rs.some(({ value }) => { const e = value as { event?: unknown; pid?: unknown }; return (e?.event === 'start' || e?.event === 'resume') && e.pid === pid; })) this.following = true;
      },
    });
    this.tails = [
      new JsonlTail(join(runDir, 'metrics.jsonl'), {
        onRecords: (rs) => {
          for (const { value } of rs) {
            const m = value as Record<string, unknown>;
            if (typeof m?.epoch === 'number') this.writer.scalars(m.epoch, epochScalars(m));
          }
        },
      }),
      new JsonlTail(join(runDir, 'steps.jsonl'), {
        onRecords: (rs) => {
          for (const { value } of rs) {
            const s = value as { step?: unknown; loss?: unknown; time?: unknown };
            if (typeof s?.step === 'number' && typeof s.loss === 'number') this.writer.scalars(s.step, { 'loss/train_step': s.loss }, typeof s.time === 'number' ? s.time / 1000 : undefined);
          }
        },
      }),
    ];
    this.timer = setInterval(() => this.poll(), pollMs);
    this.timer.unref();
  }

  /** Exports what was appended since the last call. */
  poll(): void {
    if (!this.following) this.started.poll();
    if (this.following) for (const t of this.tails) t.poll();
  }

  /** Exports what is left and closes the file. */
  close(): void {
    clearInterval(this.timer);
    this.poll();
    this.writer.close();
  }
}

/**
 * One compute thread of a remote worker process that runs T threads (./hierarchy.ts): the
 * @loom/worker loop over a shared-memory transport. Thread t of process r of W trains the part of
 * each global batch that flat worker r·T + t of W·T would; the threads reduce their gradients into
 * slot 0 and the process's main thread pushes that one gradient to the servers.
 *
 * Shared words: the sync run's own (barrier, abort, stop) and three after them (HierarchyWord, in
 * ../local/shared.ts): Ready (the parameters for step Ready − 1 are written), Reduced (slot 0 holds
 * the reduced gradient of step Reduced − 1) and Batch (that step's batchRows); and weights[t] = the
 * rows thread t computed its gradient on. Its workerData and messages are ../local/messages.ts's.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { flattenParameters } from '@loom/tensor-core';
import { buildChoice } from '../local/model-spec.js';
import { weightedSum } from '@loom/optimizer';
import { GlobalBatchSchedule, runEpoch, type StepInfo, type Transport } from '@loom/worker';
import type { HierarchyEpoch, HierarchyThreadData } from '../local/messages.js';
import { HierarchyWord, Word, bindThread, sliceOf, views, type SharedRun } from '../local/shared.js';
import { at, barrier, setSpin, waitAtLeast } from '../local/sync-point.js';

/**
 * Sync among the T threads of one process: every thread's gradient is in its slot; each thread
 * reduces its own cache-aligned slice of the T slots into slot 0 (weighted by rows over the
 * process's rows, in thread order, float64 accumulation: @loom/optimizer's weightedSum, as local
 * sync reduces); thread 0 then tells the main thread, which pushes slot 0 and writes the next
 * step's parameters.
 */
export class HierarchyTransport implements Transport {
  private readonly v;
  private readonly slots: Float32Array[];
  private readonly lo: number;
  private readonly hi: number;
  private readonly shares: Float64Array;
  readonly gradBuffer: Float32Array;

  constructor(
    private readonly run: SharedRun,
    private readonly thread: number,
  ) {
    this.v = views(run);
    this.slots = Array.from({ length: run.workers }, (_, i) => this.v.slot(i));
    this.gradBuffer = this.slots[thread]!;
    [this.lo, this.hi] = sliceOf(run, thread);
    this.shares = new Float64Array(run.workers);
  }

  private stopping = () => Atomics.load(this.v.ctrl, at(Word.StopRequested)) !== 0;

  pull(_params: Float32Array, info: StepInfo): boolean {
    if (waitAtLeast(this.v.ctrl, HierarchyWord.Ready, info.step + 1, this.stopping) < 0) return false;
    return !this.stopping();
  }

  push(_grads: Float32Array, info: StepInfo): void {
    const { ctrl, weights } = this.v;
    const T = this.run.workers;
    weights[this.thread] = info.rows;
    barrier(ctrl, T); // every gradient is in its slot
    let rows = 0;
    for (let t = 0; t < T; t++) rows += weights[t]!;
    for (let t = 0; t < T; t++) this.shares[t] = rows > 0 ? weights[t]! / rows : 0;
    weightedSum(this.slots[0]!, this.slots, this.shares, this.lo, this.hi);
    barrier(ctrl, T); // slot 0 holds the process's gradient
    if (this.thread === 0) {
      Atomics.store(ctrl, at(HierarchyWord.Batch), info.batchRows);
      Atomics.store(ctrl, at(HierarchyWord.Reduced), info.step + 1);
      Atomics.notify(ctrl, at(HierarchyWord.Reduced));
    }
  }
}

if (parentPort !== null && workerData !== null && typeof workerData === 'object' && 'thread' in workerData) {
  const d = workerData as HierarchyThreadData;
  const port = parentPort;
  bindThread(d.run, d.thread); // its reductions run in place in the run's memory
  setSpin(d.run.workers);
  const transport = new HierarchyTransport(d.run, d.thread);
  // No initialisation: the model adopts the shared parameters the main thread pulls.
  const { spec, model } = buildChoice(d.model, d.seed);
  const task = spec.task(d.data.width);
  const flat = flattenParameters(model, { params: views(d.run).params, grads: transport.gradBuffer });
  const T = d.run.workers;
  const schedule = new GlobalBatchSchedule(
    { features: new Float32Array(d.data.features), labels: new Int32Array(d.data.labels), width: d.data.width },
    new Int32Array(d.data.rows), d.batchSize, d.seed, d.rank * T + d.thread, d.workers * T,
  );
  port.on('message', (m: HierarchyEpoch) => {
    runEpoch({ model, flat, transport, schedule, task, epoch: m.epoch, firstStep: m.firstStep, startIndex: m.startIndex }).then(
      (report) => port.postMessage({ report }),
      (e: unknown) => port.postMessage({ error: e instanceof Error ? `${e.message}` : String(e) }),
    );
  });
}

/**
 * A remote worker process with T compute threads (`loom worker --threads T`): hierarchical
 * aggregation. The T threads split the process's part of every global batch — thread t of process
 * r of W trains what flat worker r·T + t of W·T would, so the data split is W·T flat workers' — and
 * reduce their gradients in shared memory (./hierarchy-thread.ts); this, the main thread, pushes
 * the ONE reduced gradient per step to the servers (as worker r of W, with the process's rows) and
 * pulls the next step's parameters straight into the shared parameters. The main thread computes
 * nothing, so T threads use T cores.
 *
 * With one process (W = 1) this is the computation of T local sync threads, bitwise: the threads'
 * reduction is local sync's, and the server's weight for the only push is 1. With W > 1 each
 * process's gradient is rounded to float32 once more before the server's sum: equal to W·T flat
 * workers within float32 rounding.
 */
import { Worker } from 'node:worker_threads';
import { GlobalBatchSchedule, Staleness, type EpochReport } from '@loom/worker';
import { flattenParameters } from '@loom/tensor-core';
import { buildChoice, specOf } from '../local/model-spec.js';
import type { HierarchyEpoch, HierarchyEpochResult, HierarchyThreadData } from '../local/messages.js';
import { HierarchyWord, Word, allocateRun, releaseRun, views } from '../local/shared.js';
import { at, wakeAll } from '../local/sync-point.js';
import { sharedData, threadFile } from '../local/thread-setup.js';
import { joinRun } from './membership.js';
import { stalenessOf } from './transport.js';
import type { RemoteWorkerOptions } from './worker-options.js';

/** Node 20 has Atomics.waitAsync; the ES2022 lib this package compiles against does not declare it. */
interface AtomicsWaitAsync {
  waitAsync(a: Int32Array, index: number, value: number, timeoutMs: number): { async: false; value: string } | { async: true; value: Promise<string> };
}

/**
 * trainRemote with `threads` ≥ 2 (see there). Resolves when the epochs are done or a server stopped
 * the run; rejects with a thread's error or the PsError of a refused request. Every thread has
 * exited and the connections are closed when it settles. Resumes at the servers' step; does not
 * yet reconnect after losing a server (it fails instead).
 */
export async function trainRemoteThreads(o: RemoteWorkerOptions & { threads: number }): Promise<{ stopped: boolean; epochs: number }> {
  const T = o.threads;
  const spec = specOf(o, 'trainRemoteThreads');
  const size = flattenParameters(buildChoice(spec, o.seed).model).size;
  const run = allocateRun('sync', T, 0, size, {}, 3); // + Ready, Reduced, Batch (HierarchyWord)
  const v = views(run);
  const perEpoch = new GlobalBatchSchedule(o.data, o.data.rows, o.batchSize, o.seed, 0, 1).batchesPerEpoch;
  const data = sharedData(o.data);
  const { client, step: joined } = await joinRun(o.urls, {
    token: o.token, role: 'worker', rank: o.rank, workers: o.workers, size, stepsPerEpoch: perEpoch, reconnecting: false,
    ...(o.retryForMs !== undefined ? { retryForMs: o.retryForMs } : {}), ...(o.ca !== undefined ? { ca: o.ca } : {}),
    ...(o.maxInFlight !== undefined ? { maxInFlight: o.maxInFlight } : {}), ...(o.heartbeatMs !== undefined ? { heartbeatMs: o.heartbeatMs } : {}),
    ...(o.log !== undefined ? { log: o.log } : {}),
  });
  const threads: Worker[] = [];
  const abort = () => {
    Atomics.store(v.ctrl, at(Word.Abort), 1);
    wakeAll(v.ctrl);
  };
  try {
    for (let t = 0; t < T; t++) {
      const workerData: HierarchyThreadData = { run, thread: t, rank: o.rank, workers: o.workers, model: spec, seed: o.seed, batchSize: o.batchSize, data };
      threads.push(new Worker(threadFile('net/hierarchy-thread.js'), { workerData }));
    }
    const staleness = new Staleness();
    const observe = (step: number, r: { applied: number; stale: number }) => staleness.observe(stalenessOf(client, step, r));
    /** The parameters for `step` are in v.params: let the threads compute it (or stop). */
    const publish = (step: number, stop: boolean) => {
      if (stop) Atomics.store(v.ctrl, at(Word.StopRequested), 1);
      Atomics.store(v.ctrl, at(HierarchyWord.Ready), step + 1);
      Atomics.notify(v.ctrl, at(HierarchyWord.Ready));
    };

    if (joined === 0) await client.barrier('start'); // a new run: every worker is connected, start together
    let step = joined;
    const first = await client.pull(step, v.params);
    observe(step, first);
    publish(step, first.stop);
    let epoch = Math.floor(step / perEpoch);
    let stopped = false;
    for (; epoch < o.epochs && !stopped; epoch++) {
      staleness.reset();
      const task: HierarchyEpoch = { epoch, firstStep: epoch * perEpoch, startIndex: step - epoch * perEpoch };
      let failed: unknown = null;
      const reports = Promise.all(
        threads.map(
          (w, t) =>
            new Promise<EpochReport>((resolve, reject) => {
              const onMessage = (m: HierarchyEpochResult) => {
                w.off('error', onError);
                if (m.report) resolve(m.report);
                else reject(new Error(`thread ${t} of worker ${o.rank} failed: ${m.error}`));
              };
              const onError = (e: Error) => {
                w.off('message', onMessage);
                reject(new Error(`thread ${t} of worker ${o.rank} failed: ${e.message}`));
              };
              w.once('message', onMessage).once('error', onError);
              w.postMessage(task);
            }),
        ),
      ).catch((e: unknown) => {
        failed ??= e;
        abort();
        throw e;
      });
      let done = false;
      reports.then(() => (done = true), () => (done = true));
      // Serve the threads: each reduced gradient goes up, the next step's parameters come down.
      for (;;) {
        const reduced = Atomics.load(v.ctrl, at(HierarchyWord.Reduced));
        if (reduced > step) {
          let rows = 0;
          for (let t = 0; t < T; t++) rows += v.weights[t]!;
          const batchRows = Atomics.load(v.ctrl, at(HierarchyWord.Batch));
          const r = await client.pushPull(step, v.slot(0), v.params, { rows, batchRows }).catch((e: unknown) => {
            abort();
            throw e;
          });
          step++;
          observe(step, r);
          publish(step, r.stop);
          continue;
        }
        if (done) break;
        const w = (Atomics as unknown as AtomicsWaitAsync).waitAsync(v.ctrl, at(HierarchyWord.Reduced), reduced, 50);
        if (w.async) await Promise.race([w.value, reports.catch(() => {})]);
      }
      if (failed !== null) throw failed;
      const rs = await reports;
      stopped = rs.some((r) => r.stopped);
      const report: EpochReport = {
        steps: rs[0]!.steps,
        rows: rs.reduce((s, r) => s + r.rows, 0),
        lossSum: rs.reduce((s, r) => s + r.lossSum, 0),
        seconds: Math.max(...rs.map((r) => r.seconds)),
        computeSeconds: rs.reduce((s, r) => s + r.computeSeconds, 0) / T,
        stopped,
      };
      await o.onEpoch?.({ ...report, epoch, rank: o.rank, ...staleness.summary() }, v.params);
    }
    return { stopped, epochs: epoch };
  } finally {
    abort();
    await Promise.all(threads.map((w) => w.terminate()));
    releaseRun(run);
    await client.close();
  }
}

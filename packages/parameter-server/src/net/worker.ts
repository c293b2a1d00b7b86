/**
 * A remote worker: builds the model from the seed (every process gets the same initial
 * parameters, so nothing is broadcast), connects to every server, and runs @loom/worker's loop over
 * the WebSocket transport on its part of each global batch — worker r of W takes the rows local
 * thread r would, so the data split equals local training's.
 *
 * It continues from the step the servers are at (0 for a new run; a resumed run's checkpoint step),
 * and when it loses a server it reconnects with backoff, joins again and continues from the step
 * it joined at (./membership.ts) — rewinding when a server restarted from a checkpoint.
 */
import { flattenParameters } from '@loom/tensor-core';
import { GlobalBatchSchedule, runEpoch } from '@loom/worker';
import { isConnectionLoss, joinRun } from './membership.js';
import { WsTransport } from './transport.js';
import { trainRemoteThreads } from './hierarchy.js';
import type { RemoteWorkerOptions } from './worker-options.js';
import { buildChoice, specOf } from '../local/model-spec.js';

/**
 * Trains this worker's part of every epoch; resolves when the epochs are done or a server stopped
 * the run (then `stopped`). Rejects with the PsError of a refused connection or request. The
 * connections are closed when it settles.
 *
 * @example
 * await trainRemote({ urls: ['ws://127.0.0.1:7070'], token, rank: 0, workers: 2, sizes: [100, 50, 10],
 *   seed: 42, batchSize: 64, epochs: 5, data });
 */
export async function trainRemote(o: RemoteWorkerOptions): Promise<{ stopped: boolean; epochs: number }> {
  const threads = o.threads ?? 1;
  if (!(Number.isInteger(threads) && threads >= 1)) throw new RangeError(`trainRemote: threads must be an integer ≥ 1, got ${threads}`);
  if (threads > 1) return trainRemoteThreads({ ...o, threads });
  const { spec, model } = buildChoice(specOf(o, 'trainRemote'), o.seed);
  const task = spec.task(o.data.width);
  const flat = flattenParameters(model);
  const schedule = new GlobalBatchSchedule(o.data, o.data.rows, o.batchSize, o.seed, o.rank, o.workers);
  const perEpoch = schedule.batchesPerEpoch;
  const connect = (reconnecting: boolean) =>
    joinRun(o.urls, {
      token: o.token, role: 'worker', rank: o.rank, workers: o.workers, size: flat.size, retryForMs: o.retryForMs, reconnecting, stepsPerEpoch: perEpoch,
      ...(o.ca !== undefined ? { ca: o.ca } : {}), ...(o.maxInFlight !== undefined ? { maxInFlight: o.maxInFlight } : {}),
      ...(o.heartbeatMs !== undefined ? { heartbeatMs: o.heartbeatMs } : {}), ...(o.log !== undefined ? { log: o.log } : {}),
    });
  let { client, step } = await connect(false);
  try {
    if (step === 0) await client.barrier('start'); // a new run: every worker is connected, start together
    else o.log?.(`continuing from step ${step} (epoch ${Math.floor(step / perEpoch) + 1}, batch ${step % perEpoch})`);
    let epoch = Math.floor(step / perEpoch);
    let stopped = false;
    while (epoch < o.epochs && !stopped) {
      const transport = new WsTransport(client);
      try {
        for (; epoch < o.epochs && !stopped; epoch++) {
          transport.staleness.reset();
          const report = await runEpoch({ model, flat, transport, schedule, task, epoch, firstStep: epoch * perEpoch, startIndex: step - epoch * perEpoch });
          await transport.settle();
          stopped = report.stopped;
          step = (epoch + 1) * perEpoch;
          await o.onEpoch?.({ ...report, epoch, rank: o.rank, ...transport.staleness.summary() }, flat.params);
        }
      } catch (e) {
        if (!isConnectionLoss(e)) throw e;
        o.log?.(`lost the servers (${(e as Error).message}); reconnecting`);
        await transport.settle().catch(() => {});
        await client.close();
        ({ client, step } = await connect(true));
        epoch = Math.floor(step / perEpoch);
        o.log?.(`rejoined at step ${step} (epoch ${epoch + 1}, batch ${step % perEpoch})`);
      }
    }
    return { stopped, epochs: epoch };
  } finally {
    await client.close();
  }
}

/**
 * A remote worker: builds the model from the seed (every process gets the same initial
 * parameters, so nothing is broadcast), connects to every server, and runs @loom/worker's loop over
 * the WebSocket transport on its part of each global batch — worker r of W takes the rows local
 * thread r would, so the data split equals local training's.
 *
 * It continues from the step the servers are at and rejoins after a lost server (./remote-loop.ts).
 */
import { flattenParameters } from '@loom/tensor-core';
import { GlobalBatchSchedule } from '@loom/worker';
import { runRemoteEpochs } from './remote-loop.js';
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
  return runRemoteEpochs(o, {
    model, flat, task, schedule,
    epochEnds: (report) => o.onEpoch?.(report, flat.params),
  });
}

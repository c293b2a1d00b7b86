/**
 * A remote worker: builds the model from the seed (every process gets the same initial
 * parameters, so nothing is broadcast), connects to every server, and runs @loom/worker's loop over
 * the WebSocket transport on its part of each global batch — worker r of W takes the rows local
 * thread r would, so the data split equals local training's.
 */
import { Random, flattenParameters, mlp } from '@loom/tensor-core';
import { GlobalBatchSchedule, runEpoch, type EpochReport } from '@loom/worker';
import { PsClient } from './client.js';
import { WsTransport } from './transport.js';

export interface RemoteWorkerOptions {
  /** One URL per server (ws:// or wss://), in any order. */
  urls: readonly string[];
  token: string;
  rank: number;
  workers: number;
  sizes: number[];
  seed: number;
  batchSize: number;
  epochs: number;
  data: { features: Float32Array; labels: Int32Array; width: number; rows: Int32Array };
  /** PEM certificate(s) to trust for wss://. */
  ca?: string | Buffer;
  maxInFlight?: number;
  /** Called after each epoch, with the parameters for the next step settled in `params`. */
  onEpoch?: (report: RemoteEpochReport, params: Float32Array) => void | Promise<void>;
}

export interface RemoteEpochReport extends EpochReport {
  /** The epoch, from 0. */
  epoch: number;
  rank: number;
  stalenessMax: number;
  stalenessMean: number;
}

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
  const model = mlp(o.sizes, { init: 'xavier', rng: new Random(o.seed) });
  const flat = flattenParameters(model);
  const client = await PsClient.connect(o.urls, {
    token: o.token, role: 'worker', rank: o.rank, workers: o.workers, size: flat.size,
    ...(o.ca !== undefined ? { ca: o.ca } : {}), ...(o.maxInFlight !== undefined ? { maxInFlight: o.maxInFlight } : {}),
  });
  try {
    const transport = new WsTransport(client);
    const schedule = new GlobalBatchSchedule(o.data, o.data.rows, o.batchSize, o.seed, o.rank, o.workers);
    await client.barrier('start'); // every worker is connected: start together
    let epoch = 0;
    let stopped = false;
    for (; epoch < o.epochs && !stopped; epoch++) {
      transport.resetStaleness();
      const report = await runEpoch({ model, flat, transport, schedule, epoch, firstStep: epoch * schedule.batchesPerEpoch });
      await transport.settle();
      stopped = report.stopped;
      const s = transport.staleness;
      await o.onEpoch?.({ ...report, epoch, rank: o.rank, stalenessMax: s.max, stalenessMean: s.count > 0 ? s.sum / s.count : 0 }, flat.params);
    }
    return { stopped, epochs: epoch };
  } finally {
    await client.close();
  }
}

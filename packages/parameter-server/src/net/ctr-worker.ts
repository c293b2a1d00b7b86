/**
 * A remote worker of the CTR task (@loom/worker's ctr.ts): the dense part of the model (the Linear
 * of the dense features and the MLP) goes by the dense path — pushpull of the flat vector to the
 * key-range owners — and the embedding tables by protocol 3's row messages: each step pulls only
 * the rows its part of the batch names, from the server each id hashes to, and pushes their
 * gradients back by id (./transport.ts). Worker r of W takes rows [⌊r·B/W⌋, ⌊(r+1)·B/W⌋) of every
 * global batch (CtrSchedule), so W workers in sync compute what one process computes on the same
 * global batches, up to float32 rounding (see the package README).
 *
 * The worker builds its model from the seed, as the servers do, so nothing is broadcast; the click
 * log is the caller's (a CLI worker generates it from (seed, scale), deterministically). Its epochs,
 * reconnects included, are trainRemote's (./remote-loop.ts).
 */
import { Random, flattenParameters } from '@loom/tensor-core';
import { CtrModel, CtrSchedule, ctrTask, type CtrColumns, type CtrShape } from '@loom/worker';
import { runRemoteEpochs } from './remote-loop.js';
import type { RemoteEpochReport, RemoteWorkerOptions } from './worker-options.js';

export interface CtrRemoteOptions extends Omit<RemoteWorkerOptions, 'sizes' | 'data' | 'threads' | 'onEpoch'> {
  columns: CtrColumns;
  shape: CtrShape;
  /** The impressions trained on: [lo, hi) of the columns (the log's training days). */
  range: readonly [number, number];
  /** Called after each epoch with the bytes of each row table's frames in the epoch, and 'dense' for the dense pulls and pushpulls (sent + received, this worker). */
  onEpoch?: (report: RemoteEpochReport & { tableBytes: Record<string, number> }, params: Float32Array) => void | Promise<void>;
}

/**
 * Trains this worker's part of every epoch of the CTR model; resolves when the epochs are done or
 * a server stopped the run. Never blocks the thread between steps (it awaits the servers).
 *
 * @example
 * const log = generateClickLog({ seed: 42, scale: 1 });
 * await trainCtrRemote({ urls, token, rank: 0, workers: 2, seed: 42, batchSize: 512, epochs: 1,
 *   columns: log.materialize(), shape: { historyLength: log.historyLength, denseWidth: log.denseWidth },
 *   range: [0, log.validStart] });
 */
export async function trainCtrRemote(o: CtrRemoteOptions): Promise<{ stopped: boolean; epochs: number }> {
  const model = new CtrModel(o.shape, { rng: new Random(o.seed) });
  const flat = flattenParameters(model);
  const task = ctrTask(model);
  const schedule = new CtrSchedule(o.columns, o.shape, o.range, o.batchSize, o.rank, o.workers);
  let before: Record<string, number> = {};
  return runRemoteEpochs(o, {
    model, flat, task, schedule, maxInFlight: 16,
    joined: (client) => {
      for (const t of model.tables) {
        const dim = client.rowTables[t.name];
        if (dim !== t.dim) throw new Error(`trainCtrRemote: the servers ${dim === undefined ? `host no table '${t.name}'` : `host table '${t.name}' with dim ${dim}`}; the CTR model needs dim ${t.dim} (start them with --task ctr)`);
      }
    },
    epochStarts: (client) => (before = bytesOf(client.rowTraffic)),
    epochEnds: (report, client) => {
      const after = bytesOf(client.rowTraffic);
      const tableBytes = Object.fromEntries(Object.entries(after).map(([k, v]) => [k, v - (before[k] ?? 0)]));
      return o.onEpoch?.({ ...report, tableBytes }, flat.params);
    },
  });
}

function bytesOf(t: Readonly<Record<string, { out: number; in: number }>>): Record<string, number> {
  return Object.fromEntries(Object.entries(t).map(([k, v]) => [k, v.out + v.in]));
}

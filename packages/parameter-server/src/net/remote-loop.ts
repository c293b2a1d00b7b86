/**
 * The epochs of one remote worker, whatever its task: join the run, start together (or continue
 * from the step the servers are at), run @loom/worker's runEpoch over the WebSocket transport, and
 * when a server is lost reconnect with backoff, join again and continue from the step it joined at
 * (./membership.ts) — rewinding when a server restarted from a checkpoint. trainRemote (dense
 * models) and trainCtrRemote (row tables) differ only in their model, schedule and what they
 * report per epoch, so both are this loop.
 */
import type { FlatParameters, Module } from '@loom/tensor-core';
import { runEpoch, type BatchSchedule, type EpochReport, type StepBatch, type Task } from '@loom/worker';
import type { PsClient } from './client.js';
import { isConnectionLoss, joinRun } from './membership.js';
import { WsTransport } from './transport.js';
import type { RemoteEpochReport, RemoteWorkerOptions } from './worker-options.js';

export interface RemoteLoop<B extends StepBatch> {
  model: Module<any>;
  flat: FlatParameters;
  task: Task<B>;
  /** Its batches, and how many make an epoch (the step count a rejoin continues from). */
  schedule: BatchSchedule<B> & { readonly batchesPerEpoch: number };
  /** Requests in flight per server when the caller's options leave it unset. */
  maxInFlight?: number;
  /** Checks what the servers host once joined (throws to refuse the run). */
  joined?: (client: PsClient) => void;
  /** Called as an epoch starts, on the connection it runs over. */
  epochStarts?: (client: PsClient) => void;
  /** The epoch's report, finished by the caller (it adds what only it counts). */
  epochEnds: (report: RemoteEpochReport, client: PsClient) => void | Promise<void>;
}

/** Runs this worker's part of every epoch; resolves when they are done or a server stopped the run. */
export async function runRemoteEpochs<B extends StepBatch>(o: Omit<RemoteWorkerOptions, 'sizes' | 'data' | 'threads' | 'onEpoch'>, loop: RemoteLoop<B>): Promise<{ stopped: boolean; epochs: number }> {
  const { model, flat, task, schedule } = loop;
  const perEpoch = schedule.batchesPerEpoch;
  const maxInFlight = o.maxInFlight ?? loop.maxInFlight;
  const connect = (reconnecting: boolean) =>
    joinRun(o.urls, {
      token: o.token, role: 'worker', rank: o.rank, workers: o.workers, size: flat.size, retryForMs: o.retryForMs, reconnecting, stepsPerEpoch: perEpoch,
      ...(o.ca !== undefined ? { ca: o.ca } : {}), ...(maxInFlight !== undefined ? { maxInFlight } : {}),
      ...(o.heartbeatMs !== undefined ? { heartbeatMs: o.heartbeatMs } : {}), ...(o.log !== undefined ? { log: o.log } : {}),
    });
  let { client, step } = await connect(false);
  try {
    loop.joined?.(client);
    if (step === 0) await client.barrier('start'); // a new run: every worker is connected, start together
    else o.log?.(`continuing from step ${step} (epoch ${Math.floor(step / perEpoch) + 1}, batch ${step % perEpoch})`);
    let epoch = Math.floor(step / perEpoch);
    let stopped = false;
    while (epoch < o.epochs && !stopped) {
      const transport = new WsTransport(client);
      try {
        for (; epoch < o.epochs && !stopped; epoch++) {
          transport.staleness.reset();
          loop.epochStarts?.(client);
          const report: EpochReport = await runEpoch({ model, flat, transport, schedule, task, epoch, firstStep: epoch * perEpoch, startIndex: step - epoch * perEpoch });
          await transport.settle();
          stopped = report.stopped;
          step = (epoch + 1) * perEpoch;
          await loop.epochEnds({ ...report, epoch, rank: o.rank, ...transport.staleness.summary() }, client);
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

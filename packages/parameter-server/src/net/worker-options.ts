/**
 * The options of a remote worker and what it reports per epoch: shared by the one-thread worker
 * (./worker.ts) and the multi-thread one (./hierarchy.ts), which worker.ts starts, so that neither
 * imports the other for its types.
 */
import type { EpochReport, WorkerEpochReport } from '@loom/worker';
import type { ModelChoice } from '../local/model-spec.js';

/** The model: `model`, a --model spec, or the MLP of `sizes` (see ModelChoice). */
export interface RemoteWorkerOptions extends ModelChoice {
  /** One URL per server (ws:// or wss://), in any order. */
  urls: readonly string[];
  token: string;
  rank: number;
  workers: number;
  seed: number;
  batchSize: number;
  epochs: number;
  data: { features: Float32Array; labels: Int32Array; width: number; rows: Int32Array };
  /** PEM certificate(s) to trust for wss://. */
  ca?: string | Buffer;
  maxInFlight?: number;
  /** Heartbeat: a ping to every server this often, in ms (default 1000). */
  heartbeatMs?: number;
  /** After losing a server, keep trying to reconnect this long, in ms (default 60 s), then fail. */
  retryForMs?: number;
  /** Reports reconnections and rejoins. */
  log?: (line: string) => void;
  /**
   * Compute threads in this process (default 1): T ≥ 2 threads split the process's part of each
   * global batch as W·T flat workers would, reduce their gradients in shared memory and push one
   * gradient per step (./hierarchy.ts).
   */
  threads?: number;
  /** Called after each epoch, with the parameters for the next step settled in `params`. */
  onEpoch?: (report: RemoteEpochReport, params: Float32Array) => void | Promise<void>;
}

export interface RemoteEpochReport extends EpochReport, WorkerEpochReport {
  /** The epoch, from 0. */
  epoch: number;
}

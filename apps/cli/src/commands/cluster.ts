/**
 * `loom train --cluster local:S,W`: a whole cluster on this machine in one command. Starts S
 * `loom serve` and W `loom worker` child processes on 127.0.0.1 (free ports, a fresh token passed in
 * LOOM_TOKEN — never on a command line), and coordinates them:
 *
 *  - the servers initialise their key ranges from the seeded model and apply every update;
 *  - the workers print one JSON line per epoch (rows, Σ loss, seconds, staleness);
 *  - this process connects as an observer and, for every epoch, pulls the parameters as of the
 *    epoch's last update (sync and ssp: update e·B; async: e·B·W, the epoch's share of the update
 *    counter), validates them, and reports the same metrics as local training.
 *
 * Every child is killed when this ends, however it ends: the children watch the pipe to their
 * stdin, and run in their own process groups so that a terminal's Ctrl-C reaches only this
 * process, which then stops the run cleanly (the servers answer `stop`, the workers end, and the
 * model trained so far is pulled and kept).
 *
 * Failures: a worker killed by a signal (kill -9, the OOM killer) does not end the run — the
 * servers drop it from the barrier and the others go on; the run fails only when every worker is
 * gone or one exits with an error. With `out`, the servers checkpoint into out/checkpoints every
 * `checkpointEvery` updates and at the end; with `resume`, they start from the latest complete
 * checkpoint there, and so do the workers and this coordinator's epochs.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import type { WorkerEpochReport } from './worker.js';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { BatchIterator } from '@loom/data';
import { PsClient, generateToken, type Mode, type WorkerMetrics } from '@loom/parameter-server';
import { flattenParameters, type Sequential } from '@loom/tensor-core';
import { UsageError } from '../errors.js';
import { buildModel } from '../models.js';

const MAIN = fileURLToPath(new URL('../main.js', import.meta.url));

/** Parses `local:S,W`. */
export function parseCluster(spec: string): { servers: number; workers: number } {
  const m = /^local:(\d+),(\d+)$/.exec(spec);
  const [servers, workers] = m ? [Number(m[1]), Number(m[2])] : [0, 0];
  if (!(servers >= 1 && workers >= 1)) throw new UsageError(`--cluster must be local:S,W with S servers ≥ 1 and W workers ≥ 1, got '${spec}'`);
  return { servers, workers };
}

export interface ClusterOptions {
  servers: number;
  workers: number;
  sizes: number[];
  /** Flags every child shares: --model, --seed, and the workers' --dataset/--label/--scale. */
  model: string;
  dataset: { spec: string; label?: string; scale: number };
  seed: number;
  optimizer: string;
  lr: number;
  batchSize: number;
  epochs: number;
  mode: Mode;
  staleness: number;
  /** The training rows and width, to count the steps of an epoch as the workers do. */
  data: { features: Float32Array; labels: Int32Array; width: number; rows: Int32Array };
  signal?: AbortSignal;
  /** The run directory: the servers save checkpoints in out/checkpoints. */
  out?: string;
  /** Updates between checkpoints (0: only at the end; default 100). */
  checkpointEvery?: number;
  /** Start from the latest complete checkpoint in out/checkpoints. */
  resume?: boolean;
  /** Where a dropped worker is reported (default: standard error). */
  log?: (line: string) => void;
  onEpoch: (m: ClusterEpochMetrics, model: Sequential) => void | Promise<void>;
}

export interface ClusterEpochMetrics {
  epoch: number;
  trainLoss: number;
  samplesPerSec: number;
  seconds: number;
  workers: WorkerMetrics[];
}


class Child {
  readonly exited: Promise<number | null>;
  readonly tail: string[] = [];
  constructor(
    readonly name: string,
    readonly proc: ChildProcess,
  ) {
    this.exited = new Promise((r) => proc.once('exit', (code, signal) => r(signal ? null : code)));
    createInterface({ input: proc.stderr! }).on('line', (l) => {
      if (process.env.LOOM_DEBUG) console.error(`[${name}] ${l}`);
      this.tail.push(l);
      if (this.tail.length > 20) this.tail.shift();
    });
  }

  failure(code: number | null): Error {
    const why = this.tail.filter((l) => l.trim() !== '').at(-1) ?? (code === null ? 'killed' : `exit code ${code}`);
    return new Error(`${this.name} failed: ${why.replace(/^loom \w+: /, '')}`);
  }
}

function spawnLoom(name: string, args: string[], token: string): Child {
  const proc = spawn(process.execPath, [MAIN, ...args], {
    env: { ...process.env, LOOM_TOKEN: token, LOOM_EXIT_WITH_PARENT: '1' },
    stdio: ['pipe', 'pipe', 'pipe'],
    detached: true, // its own process group: Ctrl-C reaches the coordinator only
  });
  return new Child(name, proc);
}

/** Trains on a local cluster of processes; resolves with the model (parameters pulled from the servers). */
export async function trainCluster(o: ClusterOptions): Promise<{ model: Sequential; stopped: boolean }> {
  const token = generateToken();
  const children: Child[] = [];
  const killAll = () => {
    for (const c of children) if (c.proc.exitCode === null && c.proc.signalCode === null) c.proc.kill('SIGKILL');
  };
  process.once('exit', killAll);
  let observer: PsClient | null = null;
  let stopRequested = false;
  try {
    // Servers: any free port, each printing the URL it listens on.
    const serverArgs = (i: number) => [
      'serve', '--port', '0', '--shard', `${i}/${o.servers}`, '--workers', String(o.workers), '--model', o.model, '--seed', String(o.seed),
      '--optimizer', o.optimizer, '--lr', String(o.lr), '--mode', o.mode, ...(o.mode === 'ssp' ? ['--staleness', String(o.staleness)] : []),
      ...(o.out !== undefined ? ['--checkpoint', o.out, '--checkpoint-every', String(o.checkpointEvery ?? 100)] : []),
      ...(o.out !== undefined && o.resume ? ['--resume', o.out] : []),
    ];
    const servers = Array.from({ length: o.servers }, (_, i) => spawnLoom(`server ${i}`, serverArgs(i), token));
    children.push(...servers);
    const urls = await Promise.all(
      servers.map(
        (s) =>
          new Promise<string>((resolve, reject) => {
            createInterface({ input: s.proc.stdout! }).on('line', (l) => {
              const m = / listening on (wss?:\/\/\S+)$/.exec(l);
              if (m) resolve(m[1]!);
            });
            void s.exited.then((code) => reject(s.failure(code)));
          }),
      ),
    );

    // Workers: the data split of local threads, each reporting its epochs as JSON lines.
    const reports = new Map<number, WorkerEpochReport[]>();
    let notify = () => {};
    const workerArgs = (rank: number) => [
      'worker', '--connect', urls.join(','), '--rank', String(rank), '--workers', String(o.workers), '--dataset', o.dataset.spec,
      ...(o.dataset.label !== undefined ? ['--label', o.dataset.label] : []), '--scale', String(o.dataset.scale), '--model', o.model,
      '--seed', String(o.seed), '--batch-size', String(o.batchSize), '--epochs', String(o.epochs), '--json',
    ];
    const workers = Array.from({ length: o.workers }, (_, rank) => spawnLoom(`worker ${rank}`, workerArgs(rank), token));
    children.push(...workers);
    for (const w of workers) {
      createInterface({ input: w.proc.stdout! }).on('line', (l) => {
        let r: WorkerEpochReport;
        try {
          r = JSON.parse(l);
        } catch {
          return;
        }
        if (r.event !== 'epoch') return;
        const list = reports.get(r.epoch) ?? [];
        list.push(r);
        reports.set(r.epoch, list);
        notify();
      });
    }
    // A server that exits at all, or a worker that exits with an error, fails the run; a worker
    // killed by a signal is dropped by the servers and the run goes on without it.
    let failed!: (e: Error) => void;
    const failure = new Promise<never>((_, reject) => (failed = reject));
    failure.catch(() => {});
    const killed = new Set<number>();
    const log = o.log ?? ((line: string) => console.error(line));
    for (const c of children) {
      void c.exited.then((code) => {
        const rank = workers.indexOf(c);
        if (rank >= 0 && code === null && killed.size + 1 < o.workers) {
          killed.add(rank);
          log(`${c.name} was killed (${c.proc.signalCode}); the run goes on with ${o.workers - killed.size} of ${o.workers} workers`);
          notify();
        } else if (code !== 0 || servers.includes(c)) failed(c.failure(code));
      });
    }
    const workersDone = Promise.all(workers.map((w) => w.exited));

    const model = buildModel(o.sizes, o.seed);
    const size = flattenParameters(model).size;
    observer = await Promise.race([PsClient.connect(urls, { token, role: 'observer', workers: o.workers, size }), failure]);
    const stop = () => {
      stopRequested = true;
      void observer?.shutdown(false).catch(() => {});
    };
    o.signal?.addEventListener('abort', stop, { once: true });
    if (o.signal?.aborted) stop();

    const stepsPerEpoch = new BatchIterator(o.data, { batchSize: o.batchSize, rows: o.data.rows, shuffle: true, seed: o.seed }).batchesPerEpoch;
    const target = (epoch: number) => epoch * stepsPerEpoch * (o.mode === 'async' ? o.workers : 1);
    const buffers = [new Float32Array(size), new Float32Array(size)];
    // Resumed: the first epoch to report is the one the checkpoint's step falls in.
    const first = Math.floor(Math.min(...observer.applied) / target(1)) + 1;
    // The next epoch's pull is in flight while this one is validated, so it is parked at the
    // server before the epoch it waits for ends, and answered at exactly that update.
    let next = observer.pull(target(first), buffers[first % 2]!);
    let stopped = false;
    // Every worker has reported epoch e, or was killed without reporting it.
    const reported = (epoch: number) => {
      const ranks = new Set((reports.get(epoch) ?? []).map((r) => r.rank));
      for (const r of killed) ranks.add(r);
      return ranks.size >= o.workers;
    };
    for (let epoch = first; epoch <= o.epochs; epoch++) {
      const r = await Promise.race([next, failure]);
      if (r.stop) {
        stopped = true;
        break;
      }
      const params = buffers[epoch % 2]!;
      if (epoch < o.epochs) next = observer.pull(target(epoch + 1), buffers[(epoch + 1) % 2]!);
      while (!reported(epoch)) {
        await Promise.race([new Promise<void>((r) => (notify = r)), failure]);
      }
      const rs = (reports.get(epoch) ?? []).sort((a, b) => a.rank - b.rank);
      const rows = rs.reduce((s, w) => s + w.rows, 0);
      const seconds = Math.max(...rs.map((w) => w.seconds));
      flattenParameters(model, { params });
      await o.onEpoch(
        {
          epoch, trainLoss: rs.reduce((s, w) => s + w.lossSum, 0) / Math.max(rows, 1), samplesPerSec: rows / seconds, seconds,
          workers: rs.map((w) => ({ rank: w.rank, rows: w.rows, samplesPerSec: w.rows / Math.max(w.seconds, 1e-9), computeFraction: w.computeSeconds / Math.max(w.seconds, 1e-9), stalenessMax: w.stalenessMax, stalenessMean: w.stalenessMean })),
        },
        model,
      );
    }
    await Promise.race([workersDone, failure]);
    // Every worker has ended and every push it made is applied: take the final parameters.
    const final = new Float32Array(size);
    await observer.pull(0, final);
    flattenParameters(model, { params: final });
    await observer.shutdown(true).catch(() => {});
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([Promise.all(servers.map((s) => s.exited)), new Promise((r) => (timer = setTimeout(r, 5000)))]);
    clearTimeout(timer);
    o.signal?.removeEventListener('abort', stop);
    return { model, stopped: stopped || stopRequested };
  } finally {
    await observer?.close().catch(() => {});
    killAll();
    process.removeListener('exit', killAll);
  }
}

/** `loom worker`: trains its part of every global batch against parameter servers over WebSocket. */
import { readFileSync } from 'node:fs';
import { trainCtrRemote, trainRemote } from '@loom/parameter-server';
import { generateClickLog } from '@loom/data';
import { helpText, parseFlags, type Flags } from '../args.js';
import { exitWithParent, resolveToken } from '../cluster-token.js';
import { loadTrainingData } from '../datasets.js';
import { DENSE_BATCH_SIZE, denseBatchSize } from '../defaults.js';
import { UsageError } from '../errors.js';
import { fitModel, resolveModel } from '../models.js';
import type { WorkerEpochLine } from '../orchestration/index.js';

export const WORKER_FLAGS: Flags = {
  config: { type: 'string', arg: 'FILE.json', help: 'read defaults from a JSON file whose keys are these flags in camelCase' },
  connect: { type: 'string', arg: 'ws://HOST:PORT[,…]', configurable: true, help: 'every parameter server of the run (one per shard, any order)' },
  rank: { type: 'int', arg: 'R', default: 0, min: 0, configurable: true, help: 'this worker\'s rank, 0 … W−1' },
  workers: { type: 'int', arg: 'W', default: 1, min: 1, configurable: true, help: 'workers in the run' },
  dataset: { type: 'string', arg: 'news|idx:DIR|csv:FILE|news-text|text:FILE', default: 'news', configurable: true, help: 'what to train on (the same on every worker)' },
  label: { type: 'string', arg: 'COLUMN', configurable: true, help: 'the class column of a CSV dataset' },
  scale: { type: 'int', arg: 'N', default: 1, min: 1, configurable: true, help: 'news only: N times the default number of users' },
  model: { type: 'string', arg: 'reference|mlp:A,B,…|cnn|gpt:L,C,H,T,V', default: 'reference', configurable: true, help: 'the model, as the servers name it (a gpt with its vocabulary V)' },
  task: { type: 'string', default: 'classify', choices: ['classify', 'ctr'], configurable: true, help: 'classify | ctr (the CTR model on the click log generated from --seed and --scale, which this worker makes itself; the servers run --task ctr)' },
  'batch-size': { type: 'int', min: 1, configurable: true, help: 'the global mini-batch, split across workers (default: 64; 32 for --model cnn)' },
  epochs: { type: 'int', default: 5, min: 1, configurable: true, help: 'passes over the training data' },
  seed: { type: 'int', default: 42, min: 0, configurable: true, help: 'seeds data, initial weights and shuffles (the same everywhere)' },
  'token-file': { type: 'string', arg: 'PATH', configurable: true, help: 'the cluster token (else LOOM_TOKEN, else ~/.loom/token)' },
  'tls-ca': { type: 'string', arg: 'PEM', configurable: true, help: 'certificate to trust for wss:// (a self-signed server certificate)' },
  'max-in-flight': { type: 'int', arg: 'N', default: 4, min: 1, configurable: true, help: 'requests outstanding per server' },
  threads: { type: 'int', arg: 'T', default: 1, min: 1, configurable: true, help: 'compute threads in this process: they split its part of each batch (as W·T workers would), reduce in shared memory and push one gradient per step' },
  json: { type: 'boolean', configurable: true, help: 'print one JSON object per epoch instead of a line of text' },
  'heartbeat-ms': { type: 'int', arg: 'H', default: 1000, min: 0, configurable: true, help: 'ping every server every H ms, so that a waiting worker is not taken for a dead one (0: never)' },
  'retry-for': { type: 'number', arg: 'SECONDS', default: 60, min: 0, configurable: true, help: 'after losing a server, keep reconnecting (with backoff) this long, then fail' },
};

export const WORKER_HELP = helpText(
  'worker',
  'Trains worker R of W against parameter servers: pulls the parameters, computes the gradient of\nits part of each global batch, pushes it to the server that owns each key range.',
  WORKER_FLAGS,
  '\nExample:\n  LOOM_TOKEN=… loom worker --connect ws://10.0.0.1:7070,ws://10.0.0.2:7070 --rank 0 --workers 4\n',
);

export async function workerCommand(argv: string[], log: (line: string) => void = console.log): Promise<{ interrupted: boolean } | null> {
  const f = parseFlags('worker', argv, WORKER_FLAGS);
  if (f.help) {
    log(WORKER_HELP);
    return null;
  }
  if (f.connect === undefined) throw new UsageError('--connect is required: ws://HOST:PORT of every server, comma-separated');
  const urls = (f.connect as string).split(',').map((u) => u.trim());
  for (const u of urls) if (!/^wss?:\/\/[^/\s]+\/?$/.test(u)) throw new UsageError(`--connect: '${u}' is not ws://HOST:PORT or wss://HOST:PORT`);
  const rank = f.rank as number;
  const workers = f.workers as number;
  if (rank >= workers) throw new UsageError(`--rank ${rank} must be less than --workers ${workers}`);
  const { token } = resolveToken(f.tokenFile as string | undefined, false);
  let ca: Buffer | undefined;
  if (f.tlsCa !== undefined) {
    try {
      ca = readFileSync(f.tlsCa as string);
    } catch (e) {
      throw new UsageError(`--tls-ca: cannot read ${String(f.tlsCa)} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
    }
  }
  const seed = f.seed as number;
  if (f.task === 'ctr') return ctrWorker(f, { urls, token, rank, workers, ...(ca ? { ca } : {}) }, log);
  const spec = resolveModel(f.model as string);
  const data = loadTrainingData(f.dataset as string, { seed, scale: f.scale as number, label: f.label as string | undefined, ...(spec.gpt ? { context: spec.gpt.context } : {}) });
  const model = fitModel(f.model as string, data);
  f.batchSize ??= denseBatchSize(model);
  exitWithParent();
  const json = f.json === true;
  if (!json) log(`worker ${rank}/${workers}: ${data.train.rows.length} train rows, batch ${String(f.batchSize)}, connecting to ${urls.join(', ')}`);
  const result = await trainRemote({
    urls, token, rank, workers, model, seed, batchSize: f.batchSize as number, epochs: f.epochs as number,
    data: { features: data.train.features, labels: data.train.labels, width: data.width, rows: data.train.rows },
    maxInFlight: f.maxInFlight as number, threads: f.threads as number, ...(ca ? { ca } : {}),
    heartbeatMs: f.heartbeatMs as number, retryForMs: (f.retryFor as number) * 1000, log: (line) => console.error(`loom worker [${rank}]: ${line}`),
    onEpoch: (r) => {
      // What `train --cluster` and `launch` read from their workers (and a launch node forwards to the master).
      const line: WorkerEpochLine = { event: 'epoch', epoch: r.epoch + 1, rank, steps: r.steps, rows: r.rows, lossSum: r.lossSum, seconds: r.seconds, computeSeconds: r.computeSeconds, stalenessMax: r.stalenessMax, stalenessMean: r.stalenessMean, stopped: r.stopped };
      if (json) log(JSON.stringify(line));
      else log(`worker ${rank} epoch ${line.epoch}: train loss ${(r.lossSum / Math.max(r.rows, 1)).toFixed(4)}, ${Math.round(r.rows / r.seconds)} samples/s (${Math.round((100 * r.computeSeconds) / r.seconds)}% computing), ${r.seconds.toFixed(2)} s${r.stopped ? ', stopped by the servers' : ''}`);
    },
  });
  if (json) log(JSON.stringify({ event: 'done', rank, epochs: result.epochs, stopped: result.stopped }));
  return { interrupted: false };
}

/**
 * `loom worker --task ctr`: generates the click log from (seed, scale) — the same impressions in
 * every process, nothing sent — and trains its part of every global batch (CtrSchedule, rank of
 * workers) against `--task ctr` servers. Its epoch lines add `tableBytes`: the bytes of its row
 * messages in the epoch, per table.
 */
async function ctrWorker(f: Record<string, unknown>, c: { urls: string[]; token: string; rank: number; workers: number; ca?: Buffer }, log: (line: string) => void): Promise<{ interrupted: boolean }> {
  if (f.threads !== 1) throw new UsageError('--task ctr: one compute thread per worker process in this version (drop --threads)');
  if (f.dataset !== 'news' && f.dataset !== 'news-clicks') throw new UsageError(`--task ctr trains on the generated click log (--dataset news-clicks), got --dataset ${String(f.dataset)}`);
  const clicks = generateClickLog({ seed: f.seed as number, scale: f.scale as number });
  const columns = clicks.materialize();
  exitWithParent();
  const json = f.json === true;
  const { rank } = c;
  const result = await trainCtrRemote({
    ...c, seed: f.seed as number, batchSize: (f.batchSize as number | undefined) ?? DENSE_BATCH_SIZE, epochs: f.epochs as number,
    columns, shape: { historyLength: clicks.historyLength, denseWidth: clicks.denseWidth }, range: [0, clicks.validStart],
    maxInFlight: Math.max(16, f.maxInFlight as number), heartbeatMs: f.heartbeatMs as number, retryForMs: (f.retryFor as number) * 1000,
    log: (line) => console.error(`loom worker [${rank}]: ${line}`),
    onEpoch: (r) => {
      const line: WorkerEpochLine & { tableBytes: Record<string, number> } = { event: 'epoch', epoch: r.epoch + 1, rank, steps: r.steps, rows: r.rows, lossSum: r.lossSum, seconds: r.seconds, computeSeconds: r.computeSeconds, stalenessMax: r.stalenessMax, stalenessMean: r.stalenessMean, stopped: r.stopped, tableBytes: r.tableBytes };
      if (json) log(JSON.stringify(line));
      else log(`worker ${rank} epoch ${line.epoch}: train loss ${(r.lossSum / Math.max(r.rows, 1)).toFixed(4)}, ${Math.round(r.rows / r.seconds)} samples/s, row bytes per step ${Math.round(Object.values(r.tableBytes).reduce((a, b) => a + b, 0) / Math.max(r.steps, 1))}`);
    },
  });
  if (json) log(JSON.stringify({ event: 'done', rank, epochs: result.epochs, stopped: result.stopped }));
  return { interrupted: false };
}

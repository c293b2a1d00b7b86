/** `loom train`: train a model, validating after every epoch, and write a run directory. */
import { availableParallelism } from 'node:os';
import { resolve } from 'node:path';
import { BatchIterator } from '@loom/data';
import { CheckpointError, MODES, ShardStore, latestCheckpoint, loadCheckpoint, trainThreads, type Mode } from '@loom/parameter-server';
import type { Module } from '@loom/tensor-core';
import { kernelBackend } from '@loom/tensor-core';
import { helpText, parseFlags, type Flags, type Values } from '../args.js';
import { loadTrainingData } from '../datasets.js';
import { evaluatePart } from '../evaluate.js';
import { buildModel, fitModel, resolveModel, serverModel } from '../models.js';
import { OPTIMIZERS, type OptimizerName } from '../optimizers.js';
import { Progress } from '../progress.js';
import { appendMetrics, finishedRun, resumeRun, saveRun, startRun } from '../run-dir.js';
import { StepLog } from '../step-log.js';
import { RunFailure, resumeAdvice } from '../orchestration/index.js';
import { UsageError } from '../errors.js';
import { DENSE_MODE, denseBatchSize } from '../defaults.js';
import { train, type ValidatedEpochMetrics } from '../trainer.js';
import { parseCluster, trainCluster } from './cluster.js';
import { SPARSE_OPTIMIZERS } from '../ctr.js';
import { trainCtrCommand, type CtrTrainResult } from './train-ctr.js';
import { DASHBOARD_PORT, dashboardOfRun, dashboardPortFlag } from './dashboard.js';
import { TensorboardExport } from '../tensorboard/export.js';

export const TRAIN_FLAGS: Flags = {
  config: { type: 'string', arg: 'FILE.json', help: 'read defaults from a JSON file whose keys are these flags in camelCase' },
  task: { type: 'string', default: 'classify', choices: ['classify', 'ctr', 'lm'], configurable: true, help: 'classify (a class per row) | ctr (click-through rate with embedding tables; --dataset news-clicks) | lm (next-token language modelling: --model gpt:… on --dataset news-text or text:FILE)' },
  dataset: { type: 'string', arg: 'news|news-clicks|idx:DIR|csv:FILE|news-text|text:FILE', default: 'news', configurable: true, help: 'what to train on (news-clicks: the generated click log, for --task ctr; news-text, text:FILE: characters, for --task lm)' },
  label: { type: 'string', arg: 'COLUMN', configurable: true, help: 'the class column of a CSV dataset' },
  scale: { type: 'int', arg: 'N', default: 1, min: 1, configurable: true, help: 'news and news-clicks: N times the default size (news-clicks 100: 1M users, 200k articles, 10M impressions)' },
  model: { type: 'string', arg: 'reference|mlp:A,B,…|cnn|gpt:L,C,H,T', default: 'reference', configurable: true, help: 'reference = Linear 100→50, ReLU, Linear 50→10; cnn for 28×28 images (idx:DIR); gpt: L layers, width C, H heads, context T (--task lm)' },
  optimizer: { type: 'string', default: 'adam', choices: OPTIMIZERS, configurable: true, help: OPTIMIZERS.join('|') },
  lr: { type: 'number', arg: 'X', default: 1e-3, min: 0, exclusiveMin: true, configurable: true, help: 'learning rate' },
  'sparse-optimizer': { type: 'string', default: 'sparse-adam', choices: SPARSE_OPTIMIZERS, configurable: true, help: `--task ctr: the embedding tables' optimizer, ${SPARSE_OPTIMIZERS.join('|')}` },
  'sparse-lr': { type: 'number', arg: 'X', min: 0, exclusiveMin: true, configurable: true, help: '--task ctr: the tables\' learning rate (default: --lr for sparse-adam, 0.05 for the adagrads, 0.1 for sgd)' },
  'admit-after': { type: 'int', arg: 'N', min: 1, configurable: true, help: '--task ctr (one thread, --cluster): an id gets its row at its N-th pull; before, it reads zeros and its gradients are dropped' },
  'evict-after': { type: 'int', arg: 'K', min: 0, configurable: true, help: '--task ctr (one thread, --cluster): evict rows not touched for K steps, checked every ⌈K/8⌉ steps (0: never)' },
  'table-capacity': { type: 'int', arg: 'R', min: 0, configurable: true, help: '--task ctr (one thread, --cluster): at most R rows per table (per server); a new row first evicts the least recently touched eighth' },
  'save-init': { type: 'boolean', configurable: true, help: '--task ctr: also write DIR/init.safetensors, the weights before training, so another framework can start from them' },
  'batch-size': { type: 'int', min: 1, configurable: true, help: 'mini-batch size (default: 64; 32 for --model cnn; 512 for --task ctr)' },
  epochs: { type: 'int', default: 5, min: 1, configurable: true, help: 'passes over the training data' },
  seed: { type: 'int', default: 42, min: 0, configurable: true, help: 'seeds data, initial weights and shuffles' },
  out: { type: 'string', arg: 'DIR', default: 'runs/latest', configurable: true, help: 'run directory to write' },
  workers: { type: 'int', arg: 'N', min: 1, configurable: true, help: 'worker threads (default: the number of cores); 1 trains on this thread' },
  mode: { type: 'string', choices: MODES, configurable: true, help: 'sync (averaged, lockstep) | async (Hogwild!) | ssp (bounded staleness); default sync (--task ctr: async = sync dense + Hogwild! tables)' },
  staleness: { type: 'int', arg: 'S', min: 0, configurable: true, help: 'ssp only: how many updates a worker may run ahead of the slowest (default: 2)' },
  json: { type: 'boolean', configurable: true, help: 'end standard output with one JSON object of the final metrics' },
  dashboard: { type: 'int', arg: '[PORT]', min: 0, help: `serve loom dashboard of this run (and the runs beside it) on 127.0.0.1:PORT while it trains (PORT: ${DASHBOARD_PORT} when left out)` },
  tensorboard: { type: 'string', arg: 'DIR', configurable: true, help: 'also write the metrics as TensorBoard scalars to an event file in DIR while training' },
  cluster: { type: 'string', arg: 'local:S,W', configurable: true, help: 'train on S parameter-server and W worker processes of this machine, over WebSocket' },
  'checkpoint-every': { type: 'int', arg: 'K', default: 100, min: 0, configurable: true, help: 'with --cluster: the servers save a checkpoint in DIR/checkpoints every K updates (0: only at the end)' },
  resume: { type: 'string', arg: 'DIR', configurable: true, help: 'with --cluster: continue the run in DIR from its latest complete checkpoint (DIR is then also --out)' },
};

export const TRAIN_HELP = helpText(
  'train',
  'Trains a classifier, validates after every epoch, and writes DIR/model.safetensors,\nDIR/config.json and DIR/metrics.jsonl.',
  TRAIN_FLAGS,
  '\nExample:\n  loom train --dataset news --epochs 5 --out runs/news\n',
);

export interface TrainResult extends ValidatedEpochMetrics {
  out: string;
  /** True when SIGINT stopped the run early (the model trained so far was written). */
  interrupted: boolean;
  testAccuracy: number;
  testLoss: number;
  baselines?: Record<string, number>;
  /** --task lm: the unigram baseline's loss on the valid text, and the test perplexity. */
  unigramValidLoss?: number;
  testPerplexity?: number;
}

export async function trainCommand(argv: string[], log: (line: string) => void = console.log): Promise<TrainResult | CtrTrainResult | null> {
  argv = dashboardPortFlag(argv);
  const f = parseFlags('train', argv, TRAIN_FLAGS);
  if (f.help) {
    log(TRAIN_HELP);
    return null;
  }
  // Viewers of the run directory (../dashboard, ../tensorboard): the training does not know them.
  const out = resolve((f.resume as string | undefined) ?? (f.out as string));
  const dashboard = f.dashboard !== undefined ? await dashboardOfRun(out, f.dashboard as number, log) : undefined;
  const tensorboard = f.tensorboard !== undefined ? new TensorboardExport(out, resolve(f.tensorboard as string)) : undefined;
  try {
    return await trainParsed(f, argv, log);
  } finally {
    tensorboard?.close();
    await dashboard?.close();
  }
}

async function trainParsed(f: Values, argv: string[], log: (line: string) => void): Promise<TrainResult | CtrTrainResult | null> {
  if (f.resume !== undefined && alreadyFinished(f, log)) return null;
  if (f.task === 'ctr') return trainCtrCommand(f, log, argv);
  if (f.sparseOptimizer !== 'sparse-adam' || f.sparseLr !== undefined || f.saveInit !== undefined) throw new UsageError('--sparse-optimizer, --sparse-lr and --save-init apply to --task ctr only');
  if (f.dataset === 'news-clicks') throw new UsageError('--dataset news-clicks is a click log: train it with --task ctr');
  const spec = resolveModel(f.model as string);
  f.batchSize ??= denseBatchSize(spec.spec);
  if ((spec.kind === 'gpt') !== (f.task === 'lm')) throw new UsageError(spec.kind === 'gpt' ? `--model ${String(f.model)} is a language model: train it with --task lm` : `--task lm trains a gpt:L,C,H,T model, got --model ${String(f.model)}`);
  const seed = f.seed as number;
  const workers = (f.workers as number | undefined) ?? availableParallelism();
  const mode = (f.mode as Mode | undefined) ?? DENSE_MODE;
  if (f.staleness !== undefined && mode !== 'ssp') throw new UsageError(`--staleness applies to --mode ssp only (got --mode ${mode})`);
  const staleness = (f.staleness as number | undefined) ?? 2;
  const cluster = f.cluster !== undefined ? parseCluster(f.cluster as string) : undefined;
  if (cluster && f.workers !== undefined) throw new UsageError('--workers and --cluster do not go together (--cluster local:S,W names the workers)');
  const data = loadTrainingData(f.dataset as string, { seed, scale: f.scale as number, label: f.label as string | undefined, ...(spec.gpt ? { context: spec.gpt.context } : {}) });
  if (f.task === 'lm' && !data.text) throw new UsageError(`--task lm trains on text (--dataset news-text or text:FILE), got --dataset ${String(f.dataset)}`);
  // Every process of the run is given this spec: a GPT's carries the data's vocabulary.
  const modelSpec = fitModel(f.model as string, data);
  const sizes = spec.sizes ?? [];
  const validate = (m: Module<any>) => evaluatePart(m, data, data.valid);
  if (f.resume !== undefined && !cluster) throw new UsageError('--resume needs --cluster (checkpoints are saved by parameter servers)');
  const out = resolve((f.resume as string | undefined) ?? (f.out as string));
  let resumed: ValidatedEpochMetrics | undefined;
  if (f.resume !== undefined && cluster) {
    // Check every shard's checkpoint before starting anything: a mismatch is a usage error, and no process is left.
    let step = 0;
    try {
      for (let i = 0; i < cluster.servers; i++) {
        const store = new ShardStore({ ...serverModel(modelSpec), seed, optimizer: f.optimizer as string, lr: f.lr as number, mode, staleness: mode === 'ssp' ? staleness : 0, workers: cluster.workers, shard: i, shards: cluster.servers, nonFinite: 'reject' });
        step = loadCheckpoint(out, store).meta.step;
      }
    } catch (e) {
      if (e instanceof CheckpointError) throw new UsageError(`--resume: ${e.message}`);
      throw e;
    }
    const perEpoch = new BatchIterator({ features: data.train.features, labels: data.train.labels, width: data.width }, { batchSize: f.batchSize as number, rows: data.train.rows, shuffle: true, seed }).batchesPerEpoch * (mode === 'async' ? cluster.workers : 1);
    resumed = resumeRun(out, Math.floor((latestCheckpoint(out, cluster.servers) ?? step) / perEpoch)) as ValidatedEpochMetrics | undefined;
    log(`resuming ${out} from its checkpoint at update ${step}`);
  } else startRun(out);
  const opts = {
    optimizer: f.optimizer as OptimizerName, lr: f.lr as number, batchSize: f.batchSize as number, epochs: f.epochs as number,
    seed, width: data.width, numClasses: data.numClasses, task: resolveModel(modelSpec).task(data.width),
  };
  const where = cluster ? `${cluster.servers} server and ${cluster.workers} worker processes, ${mode}${mode === 'ssp' ? ` (staleness ${staleness})` : ''}` : workers === 1 ? 'one thread' : `${workers} worker threads, ${mode}${mode === 'ssp' ? ` (staleness ${staleness})` : ''}`;
  log(`training ${modelSpec} on ${data.spec}: ${data.train.rows.length} train / ${data.valid.rows.length} valid / ${data.test.rows.length} test rows, ${data.text ? `windows of ${data.text.context} + 1 characters, a vocabulary of ${data.numClasses}` : `${data.width} features, ${data.numClasses} classes`}; ${where} (kernels: ${kernelBackend.name})`);

  // Resumed past its last epoch (its final checkpoint was saved, its model was not): the result so far.
  let last = resumed;
  const onEpoch = (m: ValidatedEpochMetrics) => {
    last = m;
    appendMetrics(out, m);
    const perWorker = m.workers ? ` [${m.workers.map((w) => `w${w.rank} ${Math.round(w.samplesPerSec)}/s${mode === 'sync' ? '' : ` stale≤${w.stalenessMax}`}`).join(', ')}]` : '';
    const ppl = (m as { validPerplexity?: number }).validPerplexity;
    log(`epoch ${m.epoch}: train loss ${m.trainLoss.toFixed(4)}, valid loss ${m.validLoss.toFixed(4)}${ppl !== undefined ? `, valid perplexity ${ppl.toFixed(2)}` : ''}, valid accuracy ${(100 * m.validAccuracy).toFixed(2)}%, ${Math.round(m.samplesPerSec)} samples/s, ${m.seconds.toFixed(2)} s${perWorker}`);
  };

  // Ctrl-C: stop after the current step, keep the model trained so far.
  const interrupt = new AbortController();
  const onSigint = () => interrupt.abort();
  process.once('SIGINT', onSigint);
  let model: Module<any>;
  try {
    if (cluster) {
      ({ model } = await trainCluster({
        ...cluster, sizes, model: modelSpec, dataset: { spec: f.dataset as string, label: f.label as string | undefined, scale: f.scale as number },
        seed, mode, staleness, signal: interrupt.signal, optimizer: opts.optimizer, lr: opts.lr, batchSize: opts.batchSize, epochs: opts.epochs,
        out, checkpointEvery: f.checkpointEvery as number, resume: f.resume !== undefined,
        data: { features: data.train.features, labels: data.train.labels, width: data.width, rows: data.train.rows },
        onEpoch: (m, pulled) => {
          const v = validate(pulled);
          onEpoch({ ...m, validLoss: v.loss, validAccuracy: v.accuracy, ...(v.perplexity !== undefined ? { validPerplexity: v.perplexity } : {}) });
        },
      }).catch((e: unknown) => {
        // The run failed: say how to go on from where it got.
        if (e instanceof RunFailure) e.advise(resumeAdvice({ command: 'loom train', argv, dir: (f.resume ?? f.out) as string, path: out, shards: cluster.servers, checkpointEvery: f.checkpointEvery as number }));
        throw e;
      }));
    } else if (workers === 1) {
      model = buildModel(modelSpec, seed);
      await train(model, data, { ...opts, stepLog: new StepLog(out), validate: (m) => { const v = validate(m); return { loss: v.loss, accuracy: v.accuracy, ...(v.perplexity !== undefined ? { validPerplexity: v.perplexity } : {}) }; } }, onEpoch, new Progress(), () => interrupt.signal.aborted);
    } else {
      ({ model } = await trainThreads({
        model: modelSpec, seed, workers, mode, staleness, signal: interrupt.signal,
        optimizer: opts.optimizer, lr: opts.lr, batchSize: opts.batchSize, epochs: opts.epochs,
        data: { features: data.train.features, labels: data.train.labels, width: data.width, rows: data.train.rows },
        onEpoch: (m, shared) => {
          const v = validate(shared);
          onEpoch({ epoch: m.epoch, trainLoss: m.trainLoss, validLoss: v.loss, validAccuracy: v.accuracy, ...(v.perplexity !== undefined ? { validPerplexity: v.perplexity } : {}), samplesPerSec: m.samplesPerSec, seconds: m.seconds, workers: m.workers });
        },
      }));
    }
  } finally {
    process.removeListener('SIGINT', onSigint);
  }
  const interrupted = interrupt.signal.aborted;
  saveRun(out, {
    model: { spec: modelSpec, ...(spec.sizes ? { sizes } : {}) },
    ...(data.text ? { task: 'lm' } : {}),
    dataset: data.spec,
    preprocessing: data.preprocessing,
    classNames: data.classNames,
    train: { optimizer: opts.optimizer, lr: opts.lr, batchSize: opts.batchSize, epochs: opts.epochs, seed, workers: cluster ? cluster.workers : workers, mode, ...(mode === 'ssp' ? { staleness } : {}), ...(cluster ? { cluster: f.cluster } : {}) },
  }, model);
  const test = evaluatePart(model, data, data.test);
  if (data.baselines) {
    const b = Object.entries(data.baselines).map(([k, v]) => `${k} ${(100 * v).toFixed(2)}%`).join(', ');
    log(`baselines on valid: ${b}`);
  }
  if (data.text) log(`unigram baseline on valid: loss ${data.text.unigramValidLoss.toFixed(4)} (perplexity ${Math.exp(data.text.unigramValidLoss).toFixed(2)})`);
  log(`${data.text ? `test loss ${test.loss.toFixed(4)} (perplexity ${Math.exp(test.loss).toFixed(2)}), next-character accuracy ${(100 * test.accuracy).toFixed(2)}%` : `test accuracy ${(100 * test.accuracy).toFixed(2)}%, test loss ${test.loss.toFixed(4)}`}${interrupted ? ' (stopped early by SIGINT)' : ''}; wrote ${out}`);
  const result: TrainResult = {
    ...(last ?? { epoch: 0, trainLoss: NaN, validLoss: NaN, validAccuracy: NaN, samplesPerSec: 0, seconds: 0 }),
    out, testAccuracy: test.accuracy, testLoss: test.loss, interrupted,
    ...(data.baselines ? { baselines: data.baselines } : {}),
    ...(data.text ? { unigramValidLoss: data.text.unigramValidLoss, testPerplexity: Math.exp(test.loss) } : {}),
  };
  if (f.json === true) console.log(JSON.stringify(result));
  return result;
}

/**
 * `--resume DIR` of a run that already trained its `--epochs`: says so and returns true, with
 * nothing loaded, trained or started (on one thread, threads, --cluster, --task ctr alike: the
 * run directory tells). The checkpoint named is the one `--resume` would load.
 */
function alreadyFinished(f: Values, log: (line: string) => void): boolean {
  const dir = f.resume as string;
  const done = finishedRun(resolve(dir), f.epochs as number);
  if (done === undefined) return false;
  const servers = /^local:(\d+),/.exec(String(f.cluster ?? done.config.train?.cluster ?? ''))?.[1];
  const step = servers !== undefined ? latestCheckpoint(resolve(dir), Number(servers)) : null;
  log(`${dir} already finished its ${done.epochs} epoch${done.epochs === 1 ? '' : 's'}${step !== null ? ` (last checkpoint at update ${step})` : ''}; nothing to do`);
  if (f.json === true) console.log(JSON.stringify({ ...done.last, out: resolve(dir), interrupted: false, alreadyFinished: true }));
  return true;
}

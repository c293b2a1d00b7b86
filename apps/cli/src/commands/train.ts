/** `loom train`: train a model, validating after every epoch, and write a run directory. */
import { resolve } from 'node:path';
import { kernelBackend } from '@loom/tensor-core';
import { helpText, parseFlags, type Flags } from '../args.js';
import { loadTrainingData } from '../datasets.js';
import { evaluate } from '../evaluate.js';
import { buildModel, checkModelFits, modelSizes } from '../models.js';
import { OPTIMIZERS, type OptimizerName } from '../optimizers.js';
import { Progress } from '../progress.js';
import { appendMetrics, saveRun, startRun } from '../run-dir.js';
import { train, type EpochMetrics } from '../trainer.js';

export const TRAIN_FLAGS: Flags = {
  config: { type: 'string', arg: 'FILE.json', help: 'read defaults from a JSON file whose keys are these flags in camelCase' },
  dataset: { type: 'string', arg: 'news|idx:DIR|csv:FILE', default: 'news', configurable: true, help: 'what to train on' },
  label: { type: 'string', arg: 'COLUMN', configurable: true, help: 'the class column of a CSV dataset' },
  scale: { type: 'int', arg: 'N', default: 1, min: 1, configurable: true, help: 'news only: N times the default number of users (e.g. 10, 100)' },
  model: { type: 'string', arg: 'reference|mlp:A,B,…', default: 'reference', configurable: true, help: 'reference = Linear 100→50, ReLU, Linear 50→10' },
  optimizer: { type: 'string', default: 'adam', choices: OPTIMIZERS, configurable: true, help: OPTIMIZERS.join('|') },
  lr: { type: 'number', arg: 'X', default: 1e-3, min: 0, exclusiveMin: true, configurable: true, help: 'learning rate' },
  'batch-size': { type: 'int', default: 64, min: 1, configurable: true, help: 'mini-batch size' },
  epochs: { type: 'int', default: 5, min: 1, configurable: true, help: 'passes over the training data' },
  seed: { type: 'int', default: 42, min: 0, configurable: true, help: 'seeds data, initial weights and shuffles' },
  out: { type: 'string', arg: 'DIR', default: 'runs/latest', configurable: true, help: 'run directory to write' },
  json: { type: 'boolean', configurable: true, help: 'end standard output with one JSON object of the final metrics' },
};

export const TRAIN_HELP = helpText(
  'train',
  'Trains a classifier, validates after every epoch, and writes DIR/model.safetensors,\nDIR/config.json and DIR/metrics.jsonl.',
  TRAIN_FLAGS,
  '\nExample:\n  loom train --dataset news --epochs 5 --out runs/news\n',
);

export interface TrainResult extends EpochMetrics {
  out: string;
  testAccuracy: number;
  testLoss: number;
  baselines?: Record<string, number>;
}

export function trainCommand(argv: string[], log: (line: string) => void = console.log): TrainResult | null {
  const f = parseFlags('train', argv, TRAIN_FLAGS);
  if (f.help) {
    log(TRAIN_HELP);
    return null;
  }
  const sizes = modelSizes(f.model as string);
  const seed = f.seed as number;
  const data = loadTrainingData(f.dataset as string, { seed, scale: f.scale as number, label: f.label as string | undefined });
  checkModelFits(f.model as string, sizes, data.width, data.numClasses, f.dataset as string);
  const out = resolve(f.out as string);
  startRun(out);
  const model = buildModel(sizes, seed);
  const json = f.json === true;
  log(`training ${f.model} on ${data.spec}: ${data.train.rows.length} train / ${data.valid.rows.length} valid / ${data.test.rows.length} test rows, ${data.width} features, ${data.numClasses} classes (kernels: ${kernelBackend.name})`);

  let stop = false;
  const onSigint = () => {
    stop = true;
  };
  process.once('SIGINT', onSigint);
  let last: EpochMetrics | undefined;
  try {
    train(
      model,
      data,
      {
        optimizer: f.optimizer as OptimizerName, lr: f.lr as number, batchSize: f.batchSize as number, epochs: f.epochs as number,
        seed, width: data.width, numClasses: data.numClasses,
      },
      (m) => {
        last = m;
        appendMetrics(out, m);
        log(`epoch ${m.epoch}: train loss ${m.trainLoss.toFixed(4)}, valid loss ${m.validLoss.toFixed(4)}, valid accuracy ${(100 * m.validAccuracy).toFixed(2)}%, ${Math.round(m.samplesPerSec)} samples/s, ${m.seconds.toFixed(2)} s`);
      },
      new Progress(),
      () => stop,
    );
  } finally {
    process.removeListener('SIGINT', onSigint);
  }
  saveRun(out, {
    model: { spec: f.model as string, sizes },
    dataset: data.spec,
    preprocessing: data.preprocessing,
    classNames: data.classNames,
    train: { optimizer: f.optimizer as string, lr: f.lr as number, batchSize: f.batchSize as number, epochs: f.epochs as number, seed },
  }, model);
  const test = evaluate(model, data.test, data.width, data.numClasses);
  if (data.baselines) {
    const b = Object.entries(data.baselines).map(([k, v]) => `${k} ${(100 * v).toFixed(2)}%`).join(', ');
    log(`baselines on valid: ${b}`);
  }
  log(`test accuracy ${(100 * test.accuracy).toFixed(2)}%, test loss ${test.loss.toFixed(4)}${stop ? ' (stopped early by SIGINT)' : ''}; wrote ${out}`);
  const result: TrainResult = { ...last!, out, testAccuracy: test.accuracy, testLoss: test.loss, ...(data.baselines ? { baselines: data.baselines } : {}) };
  if (json) console.log(JSON.stringify(result));
  return result;
}

/** `loom eval`: loss, accuracy, per-class precision and recall, and the confusion matrix of a run. */
import { helpText, parseFlags, type Flags } from '../args.js';
import { reloadTrainingData } from '../datasets.js';
import { evaluate, precisionRecall } from '../evaluate.js';
import { fitModel } from '../models.js';
import { loadRun } from '../run-dir.js';
import { UsageError } from '../errors.js';

export const EVAL_FLAGS: Flags = {
  run: { type: 'string', arg: 'DIR', help: 'a run directory written by loom train (required)' },
  dataset: { type: 'string', arg: 'news|idx:DIR|csv:FILE', help: "evaluate on the test split of another dataset of the run's kind, preprocessed as in training (default: the run's own dataset)" },
  json: { type: 'boolean', help: 'print one JSON object instead of tables' },
};

export const EVAL_HELP = helpText('eval', "Evaluates a trained run on its dataset's test split.", EVAL_FLAGS, '\nExample:\n  loom eval --run runs/news\n');

export function evalCommand(argv: string[], log: (line: string) => void = console.log): object | null {
  const f = parseFlags('eval', argv, EVAL_FLAGS);
  if (f.help) {
    log(EVAL_HELP);
    return null;
  }
  if (f.run === undefined) throw new UsageError('loom eval: --run DIR is required');
  const { config, model } = loadRun(f.run as string);
  const data = reloadTrainingData(config.preprocessing, f.dataset as string | undefined);
  if (data.text) throw new UsageError(`--run ${String(f.run)} is a language model: its test loss and perplexity are in its training output; sample it with loom generate`);
  fitModel(config.model.spec, data);
  const e = evaluate(model, data.test, data.width, data.numClasses);
  const perClass = precisionRecall(e.confusion).map((pr, i) => ({ class: config.classNames[i] ?? String(i), ...pr }));
  const result = { dataset: data.spec, rows: e.count, loss: e.loss, accuracy: e.accuracy, perClass, confusion: e.confusion };
  if (f.json) {
    console.log(JSON.stringify(result));
    return result;
  }
  log(`${data.spec} test split: ${e.count} rows, loss ${e.loss.toFixed(4)}, accuracy ${(100 * e.accuracy).toFixed(2)}%\n`);
  const nameWidth = Math.max(5, ...perClass.map((p) => p.class.length));
  log(`${'class'.padEnd(nameWidth)}  precision  recall  support`);
  for (const p of perClass) {
    const pct = (v: number) => (Number.isNaN(v) ? '–' : (100 * v).toFixed(1) + '%').padStart(9);
    log(`${p.class.padEnd(nameWidth)}  ${pct(p.precision)}  ${pct(p.recall).slice(3)}  ${String(p.support).padStart(7)}`);
  }
  log('\nconfusion matrix (rows: actual, columns: predicted)');
  const cell = Math.max(5, ...e.confusion.flat().map((v) => String(v).length)) + 1;
  log(' '.repeat(nameWidth) + e.confusion.map((_, j) => String(j).padStart(cell)).join(''));
  e.confusion.forEach((row, i) => log(perClass[i]!.class.padEnd(nameWidth) + row.map((v) => String(v).padStart(cell)).join('')));
  return result;
}


// Single-thread training throughput of `loom train` beside the same training in PyTorch 1.13 on one
// thread, in the same run:
//   - the reference model on the built-in news data, batch 64, Adam 1e-3;
//   - one epoch of the MLP 784→256→128→10 on Fashion-MNIST, batch 128, both sides training on the
//     same 90% of the training set (when dataset-fashion-mnist is installed).
// Loom's side runs the real CLI in a subprocess and reads its metrics.
// Usage: node bench/train.js [--epochs N]
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { prepareNews } from '@loom/data';
import { median, printTable, ratio, runReference } from './lib.js';

const epochs = Number(process.argv[process.argv.indexOf('--epochs') + 1]) || 3;
const CLI = fileURLToPath(new URL('../apps/cli/dist/main.js', import.meta.url));
const FMNIST = '/usr/share/datasets/fashion-mnist';
const tmp = mkdtempSync(join(tmpdir(), 'loom-bench-train-'));

/** Runs `loom train` and returns its per-epoch metrics and the final result. */
function loomTrain(args, epochs) {
  const out = join(tmp, `run-${Math.random().toString(36).slice(2)}`);
  const r = spawnSync(process.execPath, [CLI, 'train', ...args, '--workers', '1', '--epochs', String(epochs), '--out', out, '--json'], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`loom train failed: ${r.stderr}`);
  const lines = r.stdout.trim().split('\n');
  const epochLines = lines.filter((l) => l.startsWith('epoch ')).map((l) => Number(/(\d+) samples\/s/.exec(l)[1]));
  const steady = epochLines.length > 1 ? epochLines.slice(1) : epochLines;
  return { samplesPerSec: median(steady), result: JSON.parse(lines[lines.length - 1]) };
}

/** The news training and test rows, as train_loop.py reads them. */
function writeNewsForPython() {
  const news = prepareNews({ seed: 42 });
  const rows = [...news.split.train, ...news.split.test];
  const x = new Float32Array(rows.length * news.width);
  const y = new Int32Array(rows.length);
  rows.forEach((r, i) => {
    x.set(news.features.subarray(r * news.width, (r + 1) * news.width), i * news.width);
    y[i] = news.labels[r];
  });
  const path = join(tmp, 'news.bin');
  const header = Buffer.from(JSON.stringify({ rows: rows.length, width: news.width, train: news.split.train.length }) + '\n');
  writeFileSync(path, Buffer.concat([header, Buffer.from(x.buffer), Buffer.from(y.buffer)]));
  return path;
}

const rows = [];
{
  const loom = loomTrain(['--dataset', 'news', '--model', 'reference', '--batch-size', '64'], epochs);
  const torch = runReference('train_loop.py', ['--data', writeNewsForPython(), '--sizes', '100,50,10', '--batch', 64, '--epochs', epochs]);
  rows.push({
    workload: 'news, reference 100→50→10', batch: 64,
    'loom samples/s': loom.samplesPerSec, 'torch samples/s': torch?.samplesPerSec ?? '–', 'loom/torch': ratio(loom.samplesPerSec, torch?.samplesPerSec),
    'loom test acc': loom.result.testAccuracy, 'torch test acc': torch?.testAccuracy ?? '–',
  });
}
if (existsSync(FMNIST)) {
  const loom = loomTrain(['--dataset', `idx:${FMNIST}`, '--model', 'mlp:784,256,128,10', '--batch-size', '128'], 1);
  const torch = runReference('train_loop.py', ['--fmnist', FMNIST, '--holdout', 0.1, '--sizes', '784,256,128,10', '--batch', 128, '--epochs', 1]);
  rows.push({
    workload: 'Fashion-MNIST 784→256→128→10', batch: 128,
    'loom samples/s': loom.samplesPerSec, 'torch samples/s': torch?.samplesPerSec ?? '–', 'loom/torch': ratio(loom.samplesPerSec, torch?.samplesPerSec),
    'loom test acc': loom.result.testAccuracy, 'torch test acc': torch?.testAccuracy ?? '–',
  });
} else {
  console.error(`[skipped] Fashion-MNIST is not installed at ${FMNIST}: apt-get install -y dataset-fashion-mnist`);
}
printTable(`Training, one thread, Adam 1e-3: news ${epochs} epochs (samples/s: median epoch after the first); Fashion-MNIST one epoch`, rows);

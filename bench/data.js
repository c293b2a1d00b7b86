// Benchmarks of @loom/data: news generation and feature extraction by scale, CSV reading, IDX
// loading, and mini-batch iteration — each beside a plain reference measured in the same run
// (there is no PyTorch peer for these; the references are the obvious, allocating JS versions).
//
//   node bench/data.js            scales 1 and 10
//   node bench/data.js --scale 100 also scale 100 (≈ 1 minute and ≈ 7 GB on one core)
import { mkdtempSync, rmSync, writeFileSync, readFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { printTable, median } from './lib.js';
import { generateNews, prepareNews, readCsv, readCsvChunks, loadIdxDataset, BatchIterator, shuffledIndices } from '@loom/data';

const args = process.argv.slice(2);
const scales = [1, 10, ...(args.includes('--scale') ? [Number(args[args.indexOf('--scale') + 1])] : [])];

// 1. News: generate, then clean + extract + standardise.
const news = [];
for (const scale of scales) {
  const t = performance.now();
  const data = prepareNews({ seed: 42, scale });
  news.push({
    scale,
    users: data.stats.users,
    events: data.stats.events,
    examples: data.length,
    'generate s': data.stats.generateMs / 1000,
    'features s': data.stats.featuresMs / 1000,
    'total s': (performance.now() - t) / 1000,
    'examples/s': data.length / (data.stats.featuresMs / 1000),
    'heap+buffers GB': (process.memoryUsage().heapUsed + process.memoryUsage().arrayBuffers) / 1e9,
  });
}
printTable('News dataset (seed 42)', news);

// 2. CSV: the news log at scale 1 written as CSV, read three ways.
const dir = mkdtempSync(join(tmpdir(), 'loom-bench-'));
try {
  const { events } = generateNews({ seed: 42 });
  const cols = [...events.columns.entries()];
  const lines = [cols.map(([k]) => k).join(',')];
  for (let i = 0; i < events.length; i++) lines.push(cols.map(([, c]) => (Number.isNaN(c[i]) ? '' : c[i])).join(','));
  const path = join(dir, 'events.csv');
  writeFileSync(path, lines.join('\n') + '\n');
  const mb = readFileSync(path).length / 1e6;
  const time = (f) => median([0, 1, 2].map(() => { const t = performance.now(); f(); return performance.now() - t; }));
  const timeAsync = async (f) => { const ts = []; for (let i = 0; i < 3; i++) { const t = performance.now(); await f(); ts.push(performance.now() - t); } return median(ts); };
  const naive = time(() => {
    const rows = readFileSync(path, 'utf8').split('\n').filter(Boolean).map((l) => l.split(','));
    return rows.slice(1).map((r) => r.map((v) => (v === '' ? NaN : Number.isNaN(+v) ? v : +v)));
  });
  const sync = time(() => readCsv(path));
  const chunked = await timeAsync(async () => { for await (const c of readCsvChunks(path, { chunkRows: 16384 })) void c; });
  printTable(`CSV: ${events.length} rows × ${cols.length} columns, ${mb.toFixed(1)} MB`, [
    { reader: 'naive split (reference; no quotes, no line numbers)', ms: naive, 'MB/s': mb / (naive / 1000), ratio: '1.00×' },
    { reader: 'readCsv', ms: sync, 'MB/s': mb / (sync / 1000), ratio: (naive / sync).toFixed(2) + '×' },
    { reader: 'readCsvChunks (16384 rows)', ms: chunked, 'MB/s': mb / (chunked / 1000), ratio: (naive / chunked).toFixed(2) + '×' },
  ]);
} finally {
  rmSync(dir, { recursive: true, force: true });
}

// 3. IDX: Fashion-MNIST, if Debian's dataset-fashion-mnist is installed.
const fmnist = '/usr/share/datasets/fashion-mnist';
if (existsSync(fmnist)) {
  const t = performance.now();
  const { train, test } = loadIdxDataset(fmnist);
  printTable('IDX: Fashion-MNIST (gzip)', [{ images: train.length + test.length, 'load s': (performance.now() - t) / 1000 }]);
}

// 4. Batches: BatchIterator against allocating a fresh batch per step.
{
  const data = prepareNews({ seed: 42 });
  const rows = data.split.train;
  const B = 64, D = data.width;
  const it = new BatchIterator(data, { batchSize: B, rows, seed: 1 });
  const t0 = performance.now();
  let sum = 0;
  for (let e = 0; e < 5; e++) for (const b of it) sum += b.y[0];
  const ours = (performance.now() - t0) / 5;
  const t1 = performance.now();
  for (let e = 0; e < 5; e++) {
    const order = shuffledIndices(rows.length, e).map((i) => rows[i]);
    for (let s = 0; s < order.length; s += B) {
      const idx = order.subarray(s, s + B);
      const x = new Float32Array(idx.length * D);
      const y = new Int32Array(idx.length);
      idx.forEach((r, i) => { x.set(data.features.subarray(r * D, r * D + D), i * D); y[i] = data.labels[r]; });
      sum += y[0];
    }
  }
  const naive = (performance.now() - t1) / 5;
  printTable(`Batches: one epoch of ${rows.length} examples × ${D}, batch ${B}`, [
    { iterator: 'shuffled, fresh arrays per batch (reference)', 'ms/epoch': naive, ratio: '1.00×' },
    { iterator: 'BatchIterator (shuffled, no buffer allocated)', 'ms/epoch': ours, ratio: (naive / ours).toFixed(2) + '×' },
  ]);
  if (sum < 0) console.log(sum);
}

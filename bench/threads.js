// Data-parallel training on worker threads: samples/s with 1 and 2 workers in each mode, beside
// PyTorch 1.13 DistributedDataParallel (gloo, 127.0.0.1, 1 thread per process) on 1 and 2
// processes with the same model and global batch, in the same run; and the resident memory of a
// 10M-parameter model trained with 1 and 2 workers (one copy of the parameters, shared).
// Usage: node bench/threads.js [--quick]
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { loadIdxDataset, prepareNews } from '@loom/data';
import { trainThreads } from '@loom/parameter-server';
import { printTable, runReference } from './lib.js';

const quick = process.argv.includes('--quick');
const FMNIST = '/usr/share/datasets/fashion-mnist';

/** Steady-state samples/s: the best of epochs 2..n (epoch 1 includes thread start and JIT warm-up). */
async function loomRate(data, sizes, batchSize, workers, mode, rowsPerEpoch) {
  const rows = data.rows.subarray(0, Math.min(rowsPerEpoch, data.rows.length));
  let best = 0;
  await trainThreads({
    sizes, data: { ...data, rows }, optimizer: 'adam', lr: 1e-3, batchSize, epochs: quick ? 3 : 4, seed: 1, workers, mode, staleness: 2,
    onEpoch: (m) => {
      if (m.epoch > 1) best = Math.max(best, m.samplesPerSec);
    },
  });
  return best;
}

const news = prepareNews({ seed: 42 });
const newsData = { features: news.features, labels: news.labels, width: news.width, rows: news.split.train };
const workloads = [
  { name: 'reference 100→50→10', data: newsData, sizes: [100, 50, 10], batch: 64, rows: 40_000 },
  { name: 'reference 100→50→10', data: newsData, sizes: [100, 50, 10], batch: 512, rows: 76_000 },
];
if (existsSync(FMNIST)) {
  const { train } = loadIdxDataset(FMNIST);
  const rows = Int32Array.from({ length: train.length }, (_, i) => i);
  workloads.push({ name: 'fmnist 784→256→128→10', data: { features: train.features, labels: train.labels, width: 784, rows }, sizes: [784, 256, 128, 10], batch: 128, rows: quick ? 12_800 : 25_600 });
} else {
  console.error(`[skipped] Fashion-MNIST is not installed at ${FMNIST}: apt-get install -y dataset-fashion-mnist`);
}

const rows = [];
for (const w of workloads) {
  const one = await loomRate(w.data, w.sizes, w.batch, 1, 'sync', w.rows);
  const row = { model: w.name, batch: w.batch, '1 worker': one };
  for (const mode of ['sync', 'async', 'ssp']) {
    const two = await loomRate(w.data, w.sizes, w.batch, 2, mode, w.rows);
    row[`2 ${mode}`] = two;
    row[`${mode} ×`] = (two / one).toFixed(2) + '×';
  }
  const ddp1 = runReference('ddp.py', ['--procs', 1, '--sizes', w.sizes.join(','), '--batch', w.batch, '--steps', quick ? 100 : 300]);
  const ddp2 = ddp1 && runReference('ddp.py', ['--procs', 2, '--sizes', w.sizes.join(','), '--batch', w.batch, '--steps', quick ? 100 : 300]);
  row['torch 1 proc'] = ddp1?.samplesPerSec ?? '–';
  row['DDP 2 procs'] = ddp2?.samplesPerSec ?? '–';
  row['DDP ×'] = ddp1 && ddp2 ? (ddp2.samplesPerSec / ddp1.samplesPerSec).toFixed(2) + '×' : '–';
  rows.push(row);
}
printTable('Samples/s on worker threads (2 cores), Adam 1e-3; "×" = 2 workers / 1 worker; DDP = PyTorch gloo, 1 thread per process', rows);

// Resident memory: a child process per configuration, so each measures only itself.
const MEM_SCRIPT = fileURLToPath(new URL('./threads-memory.js', import.meta.url));
const mem = [];
for (const workers of [1, 2]) {
  const r = spawnSync(process.execPath, [MEM_SCRIPT, String(workers)], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(r.stderr);
  mem.push(JSON.parse(r.stdout.trim().split('\n').pop()));
}
printTable('Peak resident memory, MLP 1000→5000→1000→10 (10.0M parameters), sync, Adam', [
  { workers: 1, 'peak RSS MiB': mem[0].peakRssMiB, ratio: '1.00×' },
  { workers: 2, 'peak RSS MiB': mem[1].peakRssMiB, ratio: (mem[1].peakRssMiB / mem[0].peakRssMiB).toFixed(2) + '×' },
]);

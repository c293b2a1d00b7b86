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
import { median, printTable, runReference } from './lib.js';

const quick = process.argv.includes('--quick');
const FMNIST = '/usr/share/datasets/fashion-mnist';

/**
 * Steady-state samples/s of every epoch after the first `warmup` ones (thread start and JIT
 * warm-up: on the Fashion-MNIST MLP, 1 and 2 workers alike still get faster until about the 1000th
 * step, so its runs are longer). The machine is a 2-vCPU guest whose host moves its vCPUs and
 * sometimes stalls one for milliseconds: a stall in either thread holds up both at the next
 * barrier, so 2-worker epochs vary far more than 1-worker ones. The tables give each configuration's best epoch and, beside it, the
 * median one.
 */
async function loomRates(data, sizes, batchSize, workers, mode, rowsPerEpoch, epochs, warmup) {
  const rows = data.rows.subarray(0, Math.min(rowsPerEpoch, data.rows.length));
  const rates = [];
  await trainThreads({
    sizes, data: { ...data, rows }, optimizer: 'adam', lr: 1e-3, batchSize, epochs, seed: 1, workers, mode, staleness: 2,
    onEpoch: (m) => {
      if (m.epoch > warmup) rates.push(m.samplesPerSec);
    },
  });
  return rates;
}

const news = prepareNews({ seed: 42 });
const newsData = { features: news.features, labels: news.labels, width: news.width, rows: news.split.train };
const workloads = [
  { name: 'reference 100→50→10', data: newsData, sizes: [100, 50, 10], batch: 64, rows: 40_000, epochs: quick ? 3 : 6, warmup: 1 },
  { name: 'reference 100→50→10', data: newsData, sizes: [100, 50, 10], batch: 512, rows: 76_000, epochs: quick ? 3 : 6, warmup: 1 },
];
if (existsSync(FMNIST)) {
  const { train } = loadIdxDataset(FMNIST);
  const rows = Int32Array.from({ length: train.length }, (_, i) => i);
  workloads.push({ name: 'fmnist 784→256→128→10', data: { features: train.features, labels: train.labels, width: 784, rows }, sizes: [784, 256, 128, 10], batch: 128, rows: quick ? 12_800 : 25_600, epochs: quick ? 3 : 12, warmup: quick ? 1 : 5 });
} else {
  console.error(`[skipped] Fashion-MNIST is not installed at ${FMNIST}: apt-get install -y dataset-fashion-mnist`);
}

const rows = [];
const best = (xs) => Math.max(...xs);
const med = (xs) => median(xs);
for (const w of workloads) {
  // Rounds alternate the configurations, so that each sees the same drift.
  const rates = { one: [], sync: [], async: [], ssp: [] };
  for (let round = 0; round < (quick ? 1 : 2); round++) {
    rates.one.push(...(await loomRates(w.data, w.sizes, w.batch, 1, 'sync', w.rows, w.epochs, w.warmup)));
    for (const mode of ['sync', 'async', 'ssp']) rates[mode].push(...(await loomRates(w.data, w.sizes, w.batch, 2, mode, w.rows, w.epochs, w.warmup)));
  }
  const row = { model: w.name, batch: w.batch, '1 worker': best(rates.one) };
  for (const mode of ['sync', 'async', 'ssp']) {
    row[`2 ${mode}`] = best(rates[mode]);
    row[`${mode} ×`] = (best(rates[mode]) / best(rates.one)).toFixed(2) + '×';
  }
  row['sync × (median epochs)'] = (med(rates.sync) / med(rates.one)).toFixed(2) + '×';
  const ddp1 = runReference('ddp.py', ['--procs', 1, '--sizes', w.sizes.join(','), '--batch', w.batch, '--steps', quick ? 100 : 300]);
  const ddp2 = ddp1 && runReference('ddp.py', ['--procs', 2, '--sizes', w.sizes.join(','), '--batch', w.batch, '--steps', quick ? 100 : 300]);
  row['torch 1 proc'] = ddp1?.samplesPerSec ?? '–';
  row['DDP 2 procs'] = ddp2?.samplesPerSec ?? '–';
  row['DDP ×'] = ddp1 && ddp2 ? (ddp2.samplesPerSec / ddp1.samplesPerSec).toFixed(2) + '×' : '–';
  // PyTorch's other way to use both cores: one process, 2 intra-op threads (OpenMP OpenBLAS).
  const intra2 = ddp1 && runReference('ddp.py', ['--procs', 1, '--threads', 2, '--sizes', w.sizes.join(','), '--batch', w.batch, '--steps', quick ? 100 : 300], { threads: 2 });
  row['torch 1 proc × 2 threads'] = intra2?.samplesPerSec ?? '–';
  row['loom 2 sync / torch 2 threads'] = intra2 ? (best(rates.sync) / intra2.samplesPerSec).toFixed(2) + '×' : '–';
  rows.push(row);
}
printTable('Samples/s on worker threads (2 cores), Adam 1e-3, best epoch; "×" = 2 workers / 1 worker (best epochs; and medians for sync); DDP = PyTorch gloo, 1 thread per process; torch × 2 threads = one process, 2 intra-op threads', rows);

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

// Child process of bench/threads.js: trains a 10M-parameter MLP for a few steps with N worker
// threads and prints its peak resident set size (threads share the process's memory, so this
// counts every thread).
import { trainThreads } from '@loom/parameter-server';
import { Random } from '@loom/tensor-core';

const workers = Number(process.argv[2]);
const sizes = [1000, 5000, 1000, 10];
const n = 256;
const rng = new Random(1);
const features = new Float32Array(n * sizes[0]).map(() => rng.normal());
const labels = Int32Array.from({ length: n }, () => rng.int(10));
const rows = Int32Array.from({ length: n }, (_, i) => i);
let peak = 0;
const sample = () => (peak = Math.max(peak, process.memoryUsage.rss()));
const timer = setInterval(sample, 5);
await trainThreads({
  sizes, data: { features, labels, width: sizes[0], rows }, optimizer: 'adam', lr: 1e-3, batchSize: 64, epochs: 2, seed: 1, workers, mode: 'sync',
  onEpoch: sample,
});
sample();
clearInterval(timer);
console.log(JSON.stringify({ workers, peakRssMiB: Math.round(peak / 2 ** 20) }));

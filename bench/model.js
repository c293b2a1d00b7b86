// Forward + backward steps per second of Loom's reference model (Linear 100→50, ReLU, Linear
// 50→10, cross-entropy) and the Fashion-MNIST MLP (784→256→128→10) at batch 64, 128 and 512 on one
// thread, beside PyTorch 1.13 on one thread in the same run. Loom runs on the backend LOOM_BACKEND
// selects (default: native when the addon was built, else WebAssembly); the title says which.
// Usage: node bench/model.js [--seconds 2]   e.g. LOOM_BACKEND=wasm node bench/model.js to compare
import { IntTensor, Random, Tensor, crossEntropy, flattenParameters, kernelBackend, mlp } from '@loom/tensor-core';
import { printTable, ratio, runReference } from './lib.js';

const seconds = Number(process.argv[process.argv.indexOf('--seconds') + 1]) || 2;

/** Best steps/s over three windows of `seconds / 3`. */
export function loomStepsPerSec(sizes, batch, seconds) {
  const rng = new Random(0);
  const model = mlp(sizes, { init: 'xavier', rng });
  const flat = flattenParameters(model);
  const x = Tensor.randn([batch, sizes[0]], rng);
  const y = new IntTensor(Int32Array.from({ length: batch }, () => rng.int(sizes[sizes.length - 1])));
  const step = () => {
    flat.grads.fill(0);
    crossEntropy(model.forward(x), y).backward();
  };
  for (let i = 0; i < 50; i++) step();
  let best = 0;
  for (let w = 0; w < 3; w++) {
    let n = 0;
    const t0 = performance.now();
    while (performance.now() - t0 < (seconds * 1000) / 3) {
      step();
      n++;
    }
    best = Math.max(best, n / ((performance.now() - t0) / 1000));
  }
  return best;
}

const rows = [];
const MODELS = [['reference 100→50→10', [100, 50, 10]], ['fmnist 784→256→128→10', [784, 256, 128, 10]]];
for (const [name, sizes, batch] of MODELS.flatMap(([name, sizes]) => [64, 128, 512].map((batch) => [name, sizes, batch]))) {
  const loom = loomStepsPerSec(sizes, batch, seconds);
  const torch = runReference('model_step.py', ['--sizes', sizes.join(','), '--batch', batch, '--seconds', seconds]);
  rows.push({
    model: name,
    batch,
    'loom steps/s': loom,
    'torch steps/s': torch?.stepsPerSec ?? '–',
    'loom/torch': ratio(loom, torch?.stepsPerSec),
    'loom samples/s': loom * batch,
  });
}
printTable(`Forward+backward, one thread (loom backend: ${kernelBackend.name}; torch: 1 thread, OpenBLAS SKYLAKEX)`, rows);

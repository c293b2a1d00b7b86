// conv2d forward + backward in GFLOP/s on the Fashion-MNIST CNN's two layers (batch 32, padding 1,
// as @loom/worker's `cnn` trains them) beside torch.nn.functional.conv2d on one thread measured in
// the same run (bench/reference/conv.py), and, for each layer, its forward GEMM alone —
// (O, C·kh·kw)·(C·kh·kw, N·OH·OW) on the selected backend beside torch.mm — so the conv ratio can be
// read against the matmul ratio of the very product it is built on.
//
// Run after a build:  cd packages/tensor-core && node scripts/build-wasm.js && npx tsc -b && cd ../.. && node bench/conv.js
// Options: --budget=MS (time per case, default 1000)
//
// GFLOP/s = 6·N·O·OH·OW·C·kh·kw / seconds per step (forward, input gradient and weight gradient,
// 2 flops per multiply-add each), from the fastest sample, as bench/matmul.js says why. Loom's step
// is the autograd op inside reusingBuffers, as a training step runs it (im2col, the products, the
// layout swaps, col2im and the bias sums all included); PyTorch's is F.conv2d and
// torch.autograd.grad for the input, weight and bias.
import { Tensor, conv2d, reusingBuffers, BufferPool, Random } from '../packages/tensor-core/dist/index.js';
import { backend } from '../packages/tensor-core/dist/kernels/select.js';
import { printTable, ratio, runReference } from './lib.js';

const arg = (name) => process.argv.find((a) => a.startsWith(`--${name}`));
const budgetMs = Number(arg('budget')?.split('=')[1] ?? 1000);

/**
 * [label, N, C, H, W, O, k, padding]: stride 1, the `cnn` model's two layers at its default batch
 * (packages/worker/src/models.ts: padding 1 keeps 28×28, then 14×14 after the first pool). Sent as
 * is to conv.py.
 */
const CASES = [
  ['conv1 1→32 28×28 pad 1', 32, 1, 28, 28, 32, 3, 1],
  ['conv2 32→64 14×14 pad 1', 32, 32, 14, 14, 64, 3, 1],
];

function best(step, budget) {
  for (let i = 0; i < 3; i++) step();
  let min = Infinity;
  const start = performance.now();
  for (let samples = 0; samples < 5 || (performance.now() - start < budget && samples < 1000); samples++) {
    const t = performance.now();
    step();
    min = Math.min(min, performance.now() - t);
  }
  return min / 1e3;
}

function measure([, n, c, h, w, o, k, pad]) {
  const rng = new Random(1);
  const oh = h + 2 * pad - k + 1, ow = w + 2 * pad - k + 1;
  const x = Tensor.uniform([n, c, h, w], rng, -1, 1, true);
  const wt = Tensor.uniform([o, c, k, k], rng, -0.1, 0.1, true);
  const b = Tensor.uniform([o], rng, -0.1, 0.1, true);
  const dy = Tensor.uniform([n, o, oh, ow], rng, -1, 1);
  const pool = new BufferPool();
  const macs = n * o * oh * ow * c * k * k;
  const conv = best(() => {
    for (const t of [x, wt, b]) t.zeroGrad();
    reusingBuffers(pool, () => conv2d(x, wt, b, { padding: pad }).backward(dy));
  }, budgetMs);
  // The forward product alone, on the same backend: (O, K)·(K, N·P).
  const K = c * k * k, NP = n * oh * ow;
  const A = new Float32Array(o * K).fill(0.5), B = new Float32Array(K * NP).fill(0.25), C = new Float32Array(o * NP);
  const gemm = best(() => backend.matmul(A, B, C, o, K, NP, false, false, false), budgetMs / 2);
  return { conv: (6 * macs) / conv / 1e9, gemm: (2 * macs) / gemm / 1e9, ms: conv * 1e3 };
}

console.log(`conv2d forward+backward GFLOP/s, batch ${CASES[0][1]}, ~${budgetMs} ms per case; PyTorch on 1 thread; backend: ${backend.name}`);
const torch = runReference('conv.py', [JSON.stringify(CASES), budgetMs]);
const rows = [];
for (const c of CASES) {
  const loom = measure(c);
  const t = torch?.results?.[c[0]];
  rows.push({
    case: c[0],
    'loom ms/step': loom.ms,
    loom: loom.conv,
    torch: t?.conv,
    'conv loom/torch': ratio(loom.conv, t?.conv),
    'gemm loom': loom.gemm,
    'gemm torch': t?.gemm,
    'gemm loom/torch': ratio(loom.gemm, t?.gemm),
  });
}
printTable(`@loom/tensor-core conv2d vs F.conv2d ${torch ? `${torch.torch} (${torch.threads} thread)` : '(not run)'}: GFLOP/s, best sample`, rows);

// The GEMM ratio a model's training step is held to (issue #13: conv and the GPT at ≥ the ratio
// Loom's GEMM reaches against PyTorch's): the products of one step — forward, weight gradient and
// input gradient of every Linear, and of every convolution as its im2col product — each timed on
// Loom's selected backend and with torch.mm on one thread (bench/reference/matmul.py), in the same
// run. The ratio is PyTorch's total time over Loom's: what loom/torch for the whole step would be if
// everything but these products took no time on either side. Timing as bench/matmul.js: the
// fastest sample of each product, a sample ≥ 0.5 ms of calls.
import { backend } from '../packages/tensor-core/dist/kernels/select.js';
import { runReference } from './lib.js';

/**
 * The product forms of a layer y = x·Wᵀ (W stored (out, in)) at `rows` rows, as autograd calls
 * them: forward x·Wᵀ (NT), weight gradient dyᵀ·x (TN), input gradient dy·W (NN; left out with
 * `input: false`, for a first layer whose input needs no gradient).
 * @returns {Array<[string, number, number, number, boolean, boolean, number]>} [label, M, K, N, transA, transB, count]
 */
export function linearProducts(name, rows, inF, outF, { count = 1, input = true } = {}) {
  const p = [
    [`${name} x·Wᵀ`, rows, inF, outF, false, true, count],
    [`${name} dyᵀ·x`, outF, rows, inF, true, false, count],
  ];
  if (input) p.push([`${name} dy·W`, rows, outF, inF, false, false, count]);
  return p;
}

/**
 * A stride-1 convolution's products on its im2col matrix cols (C·k·k, N·OH·OW), W as (O, C·k·k):
 * forward W·cols (NN), weight gradient dy·colsᵀ (NT), column gradient Wᵀ·dy (TN; left out with
 * `input: false`).
 */
export function convProducts(name, n, c, o, k, oh, ow, { input = true } = {}) {
  const K = c * k * k, P = n * oh * ow;
  const p = [
    [`${name} W·cols`, o, K, P, false, false, 1],
    [`${name} dy·colsᵀ`, o, P, K, false, true, 1],
  ];
  if (input) p.push([`${name} Wᵀ·dy`, K, o, P, true, false, 1]);
  return p;
}

function seconds([, m, k, n, transA, transB], budgetMs) {
  const a = new Float32Array(m * k).map(() => Math.random());
  const b = new Float32Array(k * n).map(() => Math.random());
  const out = new Float32Array(m * n);
  const call = () => backend.matmul(a, b, out, m, k, n, transA, transB, false);
  const inner = Math.max(1, Math.floor((0.5e-3 * 5e9) / (2 * m * k * n)));
  for (let i = 0; i < 3 * inner; i++) call();
  let best = Infinity;
  const start = performance.now();
  for (let samples = 0; samples < 5 || (performance.now() - start < budgetMs && samples < 1000); samples++) {
    const t = performance.now();
    for (let i = 0; i < inner; i++) call();
    best = Math.min(best, (performance.now() - t) / inner);
  }
  return best / 1e3;
}

/**
 * Times every product of a step on both sides and returns the per-step milliseconds and the ratio
 * (torch time / Loom time: > 1 means Loom's products are faster), or ratio null when PyTorch is
 * missing. `products` as linearProducts and convProducts build them.
 */
export function stepGemm(products, budgetMs = 300) {
  const flops = (p) => 2 * p[1] * p[2] * p[3];
  let loom = 0;
  for (const p of products) loom += p[6] * seconds(p, budgetMs);
  const torch = runReference('matmul.py', [JSON.stringify(products.map((p) => p.slice(0, 6))), budgetMs]);
  let torchS = null;
  if (torch) {
    torchS = 0;
    for (const p of products) torchS += (p[6] * flops(p)) / (torch.results[p[0]] * 1e9);
  }
  const gflop = products.reduce((s, p) => s + p[6] * flops(p), 0) / 1e9;
  return { loomMs: loom * 1e3, torchMs: torchS === null ? null : torchS * 1e3, ratio: torchS === null ? null : torchS / loom, gflop, backend: backend.name };
}

// Matrix multiply in GFLOP/s for each Loom backend (plain JS, WebAssembly SIMD, native when the addon
// was built) beside torch.mm on
// one thread measured in the same run (bench/reference/matmul.py), on square sizes, on every
// transpose combination, and on the reference model's layers (100→50→10) at batch 64 and 512
// (and its first layer's forward at batch 1).
//
// Run after a build:  cd packages/tensor-core && node scripts/build-wasm.js && npx tsc -b && cd ../.. && node bench/matmul.js
// Options: --budget=MS (time per case and backend, default 250)   --no-js (skip the slow JS backend)
//
// GFLOP/s = 2·M·K·N / seconds per call, from the fastest sample (each sample ≥ 0.5 ms of calls),
// here and in matmul.py: on this shared 2-core machine other processes only ever add time, and the
// median of the same run moved by up to 40% between runs while the best sample moved by a few %.
// The wasm figures include copying the operands into and out of linear memory on every call, as
// training pays it; the native figures include the N-API call (~0.25 µs), and read operands in place.
// ratio = the selected backend's GFLOP/s / PyTorch's (>1 means Loom is faster); native/torch is
// printed as well whenever the addon loads, whichever backend is selected.
import { jsBackend } from '../packages/tensor-core/dist/kernels/matmul.js';
import { backend as selected } from '../packages/tensor-core/dist/kernels/select.js';
import { loadNativeBackend, nativeLoadError } from '../packages/tensor-core/dist/kernels/native-backend.js';
import { loadRelaxedWasmBackend, loadWasmBackend } from '../packages/tensor-core/dist/kernels/wasm-backend.js';
import { printTable, ratio, runReference } from './lib.js';

const arg = (name) => process.argv.find((a) => a.startsWith(`--${name}`));
const budgetMs = Number(arg('budget')?.split('=')[1] ?? 250);
const withJs = !arg('no-js');

/** [label, M, K, N, transA, transB]: op(a) is (M, K), op(b) is (K, N). Sent as is to matmul.py. */
const CASES = [];
for (const s of [64, 128, 256, 512, 1024]) CASES.push([`square ${s} NN`, s, s, s, false, false]);
CASES.push(['square 512 TN', 512, 512, 512, true, false]);
CASES.push(['square 512 NT', 512, 512, 512, false, true]);
CASES.push(['square 512 TT', 512, 512, 512, true, true]);
// The reference model's Linear layers, as autograd calls them (W is stored (out, in)):
//   forward      y  = x·Wᵀ   (B, in)·(out, in)ᵀ   NT
//   weight grad  dW = dyᵀ·x  (B, out)ᵀ·(B, in)    TN
//   input grad   dx = dy·W   (B, out)·(out, in)   NN
for (const batch of [64, 512]) {
  for (const [name, inF, outF] of [['fc1', 100, 50], ['fc2', 50, 10]]) {
    CASES.push([`B=${batch} ${name} x·Wᵀ`, batch, inF, outF, false, true]);
    CASES.push([`B=${batch} ${name} dyᵀ·x`, outF, batch, inF, true, false]);
    CASES.push([`B=${batch} ${name} dy·W`, batch, outF, inF, false, false]);
  }
}
CASES.push(['B=1 fc1 x·Wᵀ', 1, 100, 50, false, true]); // single-sample inference

function random(length) {
  const out = new Float32Array(length);
  for (let i = 0; i < length; i++) out[i] = Math.random();
  return out;
}

/** GFLOP/s of backend.matmul on one case: the fastest of the samples taken in about budgetMs. */
function gflops(backend, [, m, k, n, transA, transB], budget = budgetMs) {
  const a = random(m * k), b = random(k * n), out = new Float32Array(m * n);
  const flops = 2 * m * k * n;
  const call = () => backend.matmul(a, b, out, m, k, n, transA, transB, false);
  // Enough calls per sample that a sample lasts ≥ 0.5 ms at 5 GFLOP/s, like matmul.py.
  const inner = Math.max(1, Math.floor((0.5e-3 * 5e9) / flops));
  for (let i = 0; i < 3 * inner; i++) call();
  let best = Infinity;
  const start = performance.now();
  for (let samples = 0; samples < 5 || (performance.now() - start < budget && samples < 1000); samples++) {
    const t = performance.now();
    for (let i = 0; i < inner; i++) call();
    best = Math.min(best, (performance.now() - t) / inner);
  }
  return flops / (best * 1e6);
}

// The best wasm backend, as the selected one would be: relaxed SIMD (FMA) when it loads.
const wasm = loadRelaxedWasmBackend() ?? loadWasmBackend();
if (wasm === null) console.error('[wasm skipped] packages/tensor-core/wasm/gemm*.wasm is missing or did not load: run node scripts/build-wasm.js');
// WebAssembly starts in V8's baseline compiler and tiers up after some calls: get that done first.
if (wasm) for (let i = 0; i < 200; i++) gflops(wasm, ['warm-up', 32, 32, 32, i & 1, i & 2], 0);
// The native addon's best path on this CPU (native-avx512, native-avx2, native-sse), if it was built.
const native = loadNativeBackend();
if (native === null) console.error(`[native skipped] ${nativeLoadError}`);

console.log(`matmul GFLOP/s, ${CASES.length} cases, ~${budgetMs} ms each per backend; PyTorch on 1 thread; selected backend: ${selected.name}`);
const torch = runReference('matmul.py', [JSON.stringify(CASES), budgetMs]);

const rows = [];
for (const c of CASES) {
  const [label, m, k, n, transA, transB] = c;
  const js = withJs ? gflops(jsBackend, c, c[1] * c[2] * c[3] > 1e8 ? 2 * budgetMs : budgetMs) : undefined;
  const w = wasm ? gflops(wasm, c) : undefined;
  const nat = native ? gflops(native, c) : undefined;
  const t = torch?.results?.[label];
  const best = selected.name === 'js' ? js : selected.name.startsWith('native') ? nat : w;
  rows.push({
    case: label,
    'M×K×N': `${m}×${k}×${n}`,
    op: `${transA ? 'T' : 'N'}${transB ? 'T' : 'N'}`,
    ...(withJs ? { js } : {}),
    [wasm?.name ?? 'wasm-simd']: w,
    [native?.name ?? 'native']: nat,
    torch: t,
    [`${selected.name}/torch`]: ratio(best, t),
    ...(native && !selected.name.startsWith('native') ? { 'native/torch': ratio(nat, t) } : {}),
    ...(native && wasm ? { 'native/wasm': ratio(nat, w) } : {}),
    ...(withJs ? { 'wasm/js': ratio(w, js) } : {}),
  });
}
printTable(`@loom/tensor-core matmul vs torch.mm ${torch ? `${torch.torch} (${torch.threads} thread)` : '(not run)'}: GFLOP/s, best sample`, rows);

// One optimizer step over 1M and 10M parameters, for each optimizer, beside torch.optim on one thread
// measured in the same run (bench/reference/optimizer_step.py).
//
// Run after a build:  cd packages/optimizer && npx tsc -b && cd ../.. && node bench/optimizer.js
// Options: --sizes=1000000,10000000   --js (also time the plain JavaScript loops)
//          --rounds=3 (PyTorch and Loom alternately, N times; each cell is the best of its medians:
//          2N on each side, PyTorch's two implementations and Loom's in-place path timed twice)
//          --emulated-fma (kernels compute fused multiply-adds in float64, as on machines without
//          FMA, instead of with relaxed SIMD's relaxed_madd; the same bits, slower)
//
// "loom ms" steps parameters allocated in the optimizer's WebAssembly memory (optimizerMemory.alloc,
// as allocateFlat does for a model), so the kernel runs in place; the ratio is computed from it.
// "copy ms" steps ordinary Float32Arrays, which the kernel copies through its memory in chunks.
//
// GB/s counts the bytes of state an optimizer must touch once per element: params read and
// written, grads read, each state array read and written (4 bytes each). PyTorch's op-by-op
// implementation touches memory several times per element, so its "GB/s" here is the useful rate,
// not its memory traffic. ratio = Loom's throughput / PyTorch's (>1 means Loom is faster).
import { Adagrad, Adam, AdamW, RMSprop, SGD, fmaLowering, optimizerMemory, setFmaLowering, setKernelBackend } from '@loom/optimizer';
import { median, printTable, ratio, runReference } from './lib.js';

const arg = (name) => process.argv.find((a) => a.startsWith(`--${name}`));
const sizes = (arg('sizes')?.split('=')[1] ?? '1000000,10000000').split(',').map(Number);
const withJs = Boolean(arg('js'));
const rounds = Number(arg('rounds')?.split('=')[1] ?? 3);
if (arg('emulated-fma')) setFmaLowering('emulated');

// name, class, options, bytes touched per element (must match bench/reference/optimizer_step.py)
const CONFIGS = [
  ['SGD', SGD, { lr: 0.01 }, 12], // p rw, g r
  ['Momentum', SGD, { lr: 0.01, momentum: 0.9 }, 20], // + momentum buffer rw
  ['Nesterov', SGD, { lr: 0.01, momentum: 0.9, nesterov: true }, 20],
  ['RMSprop', RMSprop, { lr: 0.01 }, 20], // + square avg rw
  ['Adam', Adam, { lr: 1e-3 }, 28], // + exp avg rw, exp avg sq rw
  ['AdamW', AdamW, { lr: 1e-3 }, 28],
  ['Adagrad', Adagrad, { lr: 0.01 }, 20], // + sum rw
];

/** Median ms per step: warm-up (3 steps and ~0.1 s, so the WebAssembly tiers up), then steps until ~0.4 s (at least 5). */
function timeSteps(opt, budgetMs = 400) {
  const warm = performance.now();
  for (let i = 0; i < 3 || (performance.now() - warm < 100 && i < 100); i++) opt.step();
  const times = [];
  const start = performance.now();
  while (times.length < 5 || (performance.now() - start < budgetMs && times.length < 200)) {
    const t = performance.now();
    opt.step();
    times.push(performance.now() - t);
  }
  return median(times);
}

/** A parameter of n random values and its gradient, in ordinary arrays or (with `alloc`) in the optimizer memory. */
function randomParam(n, alloc = (k) => new Float32Array(k)) {
  const data = alloc(n), grad = alloc(n);
  for (let i = 0; i < n; i++) {
    data[i] = Math.random() * 2 - 1;
    grad[i] = (Math.random() * 2 - 1) * 1e-2;
  }
  return { data, grad: { data: grad } };
}

console.log(`optimizer step, ${sizes.map((n) => n.toExponential(0)).join(' and ')} parameters; PyTorch on 1 thread (best of single-tensor and foreach); Loom's fma: ${fmaLowering()}; best of ${rounds} rounds`);

/** The smallest time each cell saw: rounds alternate PyTorch and Loom, so both see the same drift. */
const best = new Map();
const keep = (key, ms) => ms !== undefined && best.set(key, Math.min(best.get(key) ?? Infinity, ms));
let torchVersion;
for (let round = 0; round < rounds; round++) {
  const torch = runReference('optimizer_step.py', sizes);
  torchVersion ??= torch?.torch;
  for (const [name, Cls, options] of CONFIGS) {
    for (const n of sizes) {
      const t = torch?.results?.[name]?.[String(n)];
      keep(`${name} ${n} single`, t?.single);
      keep(`${name} ${n} foreach`, t?.foreach);
      setKernelBackend('auto');
      const param = randomParam(n, optimizerMemory.alloc);
      const opt = new Cls([param], options); // its state is allocated in optimizerMemory too
      // Timed twice, as PyTorch is (single-tensor and foreach, whose best is compared): the same
      // number of samples per cell on both sides, so neither gets more draws from the noise.
      keep(`${name} ${n} loom`, timeSteps(opt));
      keep(`${name} ${n} loom`, timeSteps(opt));
      opt.dispose();
      optimizerMemory.free(param.data);
      optimizerMemory.free(param.grad.data);
      keep(`${name} ${n} copy`, timeSteps(new Cls([randomParam(n)], options)));
      if (withJs) {
        setKernelBackend('js');
        keep(`${name} ${n} js`, timeSteps(new Cls([randomParam(n)], options)));
        setKernelBackend('auto');
      }
    }
  }
}

const rows = [];
for (const [name, , , bytes] of CONFIGS) {
  for (const n of sizes) {
    const get = (what) => best.get(`${name} ${n} ${what}`);
    const ms = get('loom'), copyMs = get('copy'), single = get('single'), foreach = get('foreach');
    const torchMs = single !== undefined ? Math.min(single, foreach) : undefined;
    const gbs = (msPerStep) => (msPerStep ? (bytes * n) / (msPerStep * 1e6) : undefined);
    rows.push({
      optimizer: name,
      params: n,
      'loom ms': ms,
      'copy ms': copyMs,
      ...(withJs ? { 'loom js ms': get('js') } : {}),
      'torch ms': torchMs,
      'torch impl': torchMs !== undefined ? (single <= foreach ? 'single' : 'foreach') : '–',
      'loom GB/s': gbs(ms),
      'torch GB/s': gbs(torchMs),
      'ratio': ratio(gbs(ms), gbs(torchMs)),
      'copy ratio': ratio(gbs(copyMs), gbs(torchMs)),
    });
  }
}
printTable(`@loom/optimizer (in place; copy: ordinary arrays) vs torch.optim ${torchVersion ?? '(not run)'}: one step`, rows);

// The `gpt:L,C,H,T` model's training tokens/s (issue #13): `loom train --task lm` on one thread and
// on 2 sync worker threads, beside the same model written plainly in PyTorch 1.13
// (bench/reference/gpt_loop.py) on one thread and on 2 intra-op threads, in the same run, on the
// same windows at the same batch, Adam 1e-3. And the issue's two targets: one thread's loom/torch
// at least the ratio the step's own products reach (bench/step-gemm.js), and 2 workers at least
// 1.7× one.
//
// Data: the first --chars characters (default 40,000) of the built-in news text (`news-text`,
// seed 42) written to a file, so that a run takes minutes; Loom trains on it as `--dataset
// text:FILE`, and its training windows (T + 1 characters every ⌈T/4⌉, the first 90%, as loom train
// cuts them) are written for gpt_loop.py, which reads the very same ids. Tokens/s counts predicted
// positions, T a window (loom's samples/s × T). Every configuration trains --epochs epochs
// (default 6); the first --warmup (default 2) are warm-up, and the table gives the best and the
// median of the others.
//
// Usage: node bench/gpt.js [--model gpt:2,64,4,64] [--batch 32] [--chars N] [--epochs N] [--warmup N]
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CharVocab, newsText, splitText, tokenWindows } from '@loom/data';
import { cpuName, loomTrain, median, printTable, runReference } from './lib.js';
import { linearProducts, stepGemm } from './step-gemm.js';

const opt = (name, dflt) => (process.argv.includes(`--${name}`) ? process.argv[process.argv.indexOf(`--${name}`) + 1] : dflt);
const spec = opt('model', 'gpt:2,64,4,64');
const batch = Number(opt('batch', 32));
const chars = Number(opt('chars', 40_000));
const epochs = Number(opt('epochs', 6));
const warmup = Number(opt('warmup', 2));
const [L, C, H, T] = /^gpt:(\d+),(\d+),(\d+),(\d+)$/.exec(spec).slice(1).map(Number);

// The text and its training windows, cut as apps/cli's textData cuts them.
const dir = mkdtempSync(join(tmpdir(), 'loom-bench-gpt-'));
const text = newsText({ seed: 42 }).slice(0, chars);
const textFile = join(dir, 'news.txt');
writeFileSync(textFile, text);
const vocab = CharVocab.fromText(text);
const split = splitText(text, vocab);
const train = tokenWindows(split.tokens, T, { stride: Math.ceil(T / 4), from: 0, to: split.validStart }); // (rows, T + 1)
const windowsFile = join(dir, 'windows.bin');
const header = Buffer.from(JSON.stringify({ rows: train.rows, width: T + 1, vocab: vocab.size }) + '\n');
writeFileSync(windowsFile, Buffer.concat([header, Buffer.from(Int32Array.from(train.features).buffer)]));

const best = (xs) => (xs.length ? Math.max(...xs) : null);
const med = (xs) => (xs.length ? Math.round(median(xs)) : null);
const x = (a, b) => (a && b ? (a / b).toFixed(2) + '×' : '–');

const loom = {};
for (const workers of [1, 2]) {
  const r = loomTrain(['--task', 'lm', '--dataset', `text:${textFile}`, '--model', spec, '--batch-size', batch, '--epochs', epochs, '--workers', workers, '--seed', 0].map(String), { warmup });
  const rows = Number(/: (\d+) train/.exec(r.banner)?.[1]);
  if (rows !== train.rows) throw new Error(`loom train cut ${rows} training windows, this bench ${train.rows}: their windows differ`);
  loom[workers] = { ...r, rates: r.rates.map((s) => s * T) };
}
const torchArgs = ['--data', windowsFile, '--layers', L, '--embed', C, '--heads', H, '--batch', batch, '--epochs', epochs];
const torch1 = runReference('gpt_loop.py', [...torchArgs, '--threads', 1]);
const torch2 = torch1 && runReference('gpt_loop.py', [...torchArgs, '--threads', 2], { threads: 2 });
const steady = (t) => (t ? t.rates.slice(warmup).map(Math.round) : []);

// The step's Linear products at B·T rows; attention's per-head products (q·kᵀ and att·v, 4·B·T²·C
// multiply-adds a layer with their gradients) are batched small products left out.
const bt = batch * T;
const gemm = stepGemm([
  ...linearProducts('c_attn', bt, C, 3 * C, { count: L }),
  ...linearProducts('attn.c_proj', bt, C, C, { count: L }),
  ...linearProducts('c_fc', bt, C, 4 * C, { count: L }),
  ...linearProducts('mlp.c_proj', bt, 4 * C, C, { count: L }),
  ...linearProducts('lm_head', bt, C, vocab.size),
]);

const lastLoss = (l) => l.result.trainLoss;
const rows = [];
for (const [label, l, t] of [['1 thread', loom[1], torch1], ['2 threads (loom: 2 sync workers; torch: 2 intra-op)', loom[2], torch2]]) {
  rows.push({
    '': label,
    'loom best': Math.round(best(l.rates)), 'loom median': Math.round(med(l.rates)),
    'torch best': best(steady(t)) ?? '–', 'torch median': med(steady(t)) ?? '–',
    'loom/torch best': x(best(l.rates), best(steady(t))), 'loom/torch median': x(med(l.rates), med(steady(t))),
    'loom last train loss': lastLoss(l), 'torch last train loss': t?.trainLoss.at(-1) ?? '–',
  });
}
rows.push({
  '': '2 / 1',
  'loom best': x(best(loom[2].rates), best(loom[1].rates)), 'loom median': x(med(loom[2].rates), med(loom[1].rates)),
  'torch best': x(best(steady(torch2)), best(steady(torch1))), 'torch median': x(med(steady(torch2)), med(steady(torch1))),
  'loom/torch best': '', 'loom/torch median': '', 'loom last train loss': '', 'torch last train loss': '',
});
printTable(`${spec} (vocabulary ${vocab.size}) training tokens/s, batch ${batch} windows of ${T}, Adam 1e-3, ${train.rows} windows an epoch, epochs ${warmup + 1}–${epochs} (1–${warmup} are warm-up); ${cpuName()}, 2 cores; loom kernels: ${loom[1].backend}; ${torch1 ? `PyTorch ${torch1.threads} and ${torch2?.threads ?? '–'} threads` : 'PyTorch not run'}`, rows);

const one = best(loom[1].rates) / (best(steady(torch1)) ?? NaN);
const twoOverOne = best(loom[2].rates) / best(loom[1].rates);
const twoMedian = med(loom[2].rates) / med(loom[1].rates);
const met = (ok) => (ok ? 'yes' : 'no');
printTable(`Targets (issue #13). The step's Linear products: ${gemm.gflop.toFixed(3)} GFLOP, loom ${gemm.loomMs.toFixed(2)} ms (${gemm.backend}), torch.mm ${gemm.torchMs?.toFixed(2) ?? '–'} ms, one thread each`, [
  { target: "1 thread loom/torch ≥ the step's GEMM loom/torch", needs: gemm.ratio ? `≥ ${gemm.ratio.toFixed(2)}×` : '–', measured: Number.isNaN(one) ? '–' : `${one.toFixed(2)}× (best epochs)`, met: gemm.ratio && !Number.isNaN(one) ? met(one >= gemm.ratio) : '–' },
  { target: '2 sync workers ≥ 1.7× one thread', needs: '≥ 1.70×', measured: `${twoOverOne.toFixed(2)}× best, ${twoMedian.toFixed(2)}× median`, met: `${met(twoOverOne >= 1.7)} (best), ${met(twoMedian >= 1.7)} (median)` },
]);

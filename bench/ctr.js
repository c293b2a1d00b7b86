// The sparse workload (issue #12): the news CTR model — four embedding tables of dim 32, a history
// bag, an MLP 192→128→64→1 — trained on one thread by `loom train --task ctr` beside PyTorch 1.13
// (nn.Embedding(sparse=True), SparseAdam for the tables, Adam for the MLP, one thread) on the
// same generated impressions: Loom writes the click log to a file that PyTorch's side reads.
// Both train one epoch on the training days at batch 512 and are judged on the later days.
// Beside them, Loom on 2 worker threads (sync dense part + Hogwild! tables, `--workers 2`), as a
// ratio to Loom's one thread: the best of --runs runs of each (the machine is shared; a run's
// samples/s is its epoch's rows over the epoch's wall time, thread start-up included).
// PyTorch starts from the weights Loom's one-thread run started from (`--save-init` → ctr.py --init):
// one epoch from a random start varies by several AUC points with the start alone, so only the
// same start makes "the same AUC" a statement about the implementations.
// Last, Loom as a cluster on this machine (`--cluster local:2,2`: 2 servers, 2 workers, WebSocket),
// with its bytes per step beside the least a step can move: each worker's unique rows × 32 × 4 × 2
// (pull and push) + the dense part's pushpull (2 × 33,185 floats × 4) per worker.
// Usage: node bench/ctr.js [--scale N] [--runs R]   (scale 100: 1M users × 200k articles, 10M impressions)
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { clickBaselines, generateClickLog, writeClickLog } from '@loom/data';
import { printTable, ratio, runReference } from './lib.js';

const arg = (name, dflt) => (process.argv.includes(name) ? Number(process.argv[process.argv.indexOf(name) + 1]) : dflt);
const scale = arg('--scale', 10);
const runs = arg('--runs', 3);
const seed = 42;
const CLI = fileURLToPath(new URL('../apps/cli/dist/main.js', import.meta.url));
const tmp = mkdtempSync(join(tmpdir(), 'loom-bench-ctr-'));

const log = generateClickLog({ seed, scale });
const file = join(tmp, 'news.clicks');
writeClickLog(log, file);
const base = clickBaselines(log);

let runId = 0;
function loomTrain(...extra) {
  const out = join(tmp, `run-${runId++}`);
  const r = spawnSync(process.execPath, [CLI, 'train', '--task', 'ctr', '--dataset', 'news-clicks', '--scale', String(scale), '--seed', String(seed), '--epochs', '1', '--batch-size', '512', '--out', out, '--json', ...extra], { encoding: 'utf8', maxBuffer: 64 << 20 });
  if (r.status !== 0) throw new Error(`loom train failed: ${r.stderr}`);
  return { ...JSON.parse(r.stdout.trim().split('\n').pop()), dir: out };
}
const best = (rs) => rs.reduce((a, b) => (b.samplesPerSec > a.samplesPerSec ? b : a));
const oneRuns = [], twoRuns = [];
for (let i = 0; i < runs; i++) {
  oneRuns.push(loomTrain('--workers', '1', '--save-init'));
  twoRuns.push(loomTrain('--workers', '2'));
}
const loom = best(oneRuns), loom2 = best(twoRuns);
const torchRuns = [];
for (let i = 0; i < runs; i++) torchRuns.push(runReference('ctr.py', ['--data', file, '--batch', 512, '--epochs', 1, '--init', join(loom.dir, 'init.safetensors')]));
const torch = torchRuns.includes(null) ? null : best(torchRuns);

// The cluster: one run; its metrics.jsonl has the bytes each step moved.
// No checkpoints (threads keep none either): the row is the transport's cost, not the disk's.
const cluster = loomTrain('--cluster', 'local:2,2', '--checkpoint-every', '0');
const clusterEpoch = JSON.parse(readFileSync(join(cluster.dir, 'metrics.jsonl'), 'utf8').trim().split('\n').pop());
/** The least bytes a step can move with 2 workers: every worker pulls and pushes its unique rows once, and its dense pushpull. */
function leastBytesPerStep() {
  const H = log.historyLength, D = 32, DENSE_PARAMS = 33185;
  const c = log.materialize([0, log.validStart]);
  let total = 0, steps = 0;
  for (let start = 0; start < log.validStart; start += 512) {
    const size = Math.min(512, log.validStart - start);
    for (let w = 0; w < 2; w++) {
      const a = start + Math.floor((w * size) / 2), b = start + Math.floor(((w + 1) * size) / 2);
      const articles = new Set([...c.article.subarray(a, b), ...c.history.subarray(a * H, b * H)]);
      const rows = new Set(c.user.subarray(a, b)).size + articles.size + new Set(c.category.subarray(a, b)).size + new Set(c.subcategory.subarray(a, b)).size;
      total += rows * D * 4 * 2 + 2 * DENSE_PARAMS * 4;
    }
    steps++;
  }
  return total / steps;
}
const least = leastBytesPerStep();

printTable(`CTR model, batch 512, scale ${scale}: ${log.numUsers} users × ${log.numArticles} articles, ${log.validStart} training impressions`, [
  {
    side: 'loom', 'samples/s': loom.samplesPerSec, 'valid AUC': loom.validAuc, 'valid log loss': loom.validLogLoss,
    'loom/torch': ratio(loom.samplesPerSec, torch?.samplesPerSec),
  },
  {
    side: 'loom, 2 threads (sync dense + async tables)', 'samples/s': loom2.samplesPerSec, 'valid AUC': loom2.validAuc, 'valid log loss': loom2.validLogLoss,
    'loom/torch': ratio(loom2.samplesPerSec, torch?.samplesPerSec),
  },
  {
    side: 'loom, --cluster local:2,2 (WebSocket)', 'samples/s': cluster.samplesPerSec, 'valid AUC': cluster.validAuc, 'valid log loss': cluster.validLogLoss,
    'loom/torch': ratio(cluster.samplesPerSec, torch?.samplesPerSec),
  },
  { side: 'torch (same start as loom)', 'samples/s': torch?.samplesPerSec ?? '–', 'valid AUC': torch?.validAuc ?? '–', 'valid log loss': torch?.validLogLoss ?? '–', 'loom/torch': '' },
  { side: 'popularity baseline', 'samples/s': '', 'valid AUC': base.popularityAuc, 'valid log loss': '', 'loom/torch': '' },
  { side: "user's-categories baseline", 'samples/s': '', 'valid AUC': base.userCategoryAuc, 'valid log loss': base.constantLogLoss, 'loom/torch': '' },
]);
console.log(`Loom 2 threads / 1 thread: ${(loom2.samplesPerSec / loom.samplesPerSec).toFixed(2)}× (best of ${runs} runs each; all runs, samples/s: 1 thread ${oneRuns.map((r) => Math.round(r.samplesPerSec)).join(', ')}; 2 threads ${twoRuns.map((r) => Math.round(r.samplesPerSec)).join(', ')})`);
if (torch) console.log(`AUC difference loom − torch, same start: ${(loom.validAuc - torch.validAuc).toFixed(4)}; PyTorch model: ${torch.params} parameters; torch runs, samples/s: ${torchRuns.map((r) => Math.round(r.samplesPerSec)).join(', ')}`);
console.log(`cluster bytes per step: ${Math.round(clusterEpoch.bytesPerStep.all)} (rows ${Math.round(clusterEpoch.bytesPerStep.rows)}, dense ${Math.round(clusterEpoch.bytesPerStep.dense)}); the least a step can move: ${Math.round(least)}; ratio ${(clusterEpoch.bytesPerStep.all / least).toFixed(2)}× (target ≤ 1.2×)`);
rmSync(tmp, { recursive: true, force: true });

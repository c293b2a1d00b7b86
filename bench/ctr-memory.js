// Memory of the sparse workload at 100M parameters (issue #12): the CTR model at --scale 300 (3M
// users × 600k articles, 30M impressions: (3M + 600k + 288) rows × 32 + the MLP's 33k ≈ 115M
// parameters) trained by `loom train --task ctr --cluster local:2,2` — 2 server processes hold the
// tables, each id's row on the server its hash names, 2 worker processes train — for one epoch.
// Every process's peak resident set (VmHWM from /proc, sampled until it exits) is printed with the
// rows the tables grew to (rows exist only once an id was pulled). PyTorch's side would be one
// process holding every table dense; its figure is computed, not run: 115M × 4 bytes × 3 (weights and
// SparseAdam's two moments).
// Usage: node bench/ctr-memory.js [--scale 300] [--epochs 1]   (Linux: reads /proc)
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { printTable } from './lib.js';

const arg = (name, dflt) => (process.argv.includes(name) ? Number(process.argv[process.argv.indexOf(name) + 1]) : dflt);
const scale = arg('--scale', 300);
const epochs = arg('--epochs', 1);
const CLI = fileURLToPath(new URL('../apps/cli/dist/main.js', import.meta.url));
const tmp = mkdtempSync(join(tmpdir(), 'loom-bench-ctr-memory-'));
const out = join(tmp, 'run');

/** Peak RSS (KiB) and command line of every process seen under `root`, by pid. */
const seen = new Map();
function children(pid) {
  const path = `/proc/${pid}/task/${pid}/children`;
  return existsSync(path) ? readFileSync(path, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number) : [];
}
function sample(pid) {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const hwm = Number(/VmHWM:\s+(\d+)/.exec(status)?.[1] ?? 0);
    const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
    const prev = seen.get(pid);
    // An exiting process (a zombie) reads as no memory and no command line: keep what was seen.
    seen.set(pid, { hwm: Math.max(hwm, prev?.hwm ?? 0), cmd: cmd.length > 0 ? cmd : prev?.cmd ?? [] });
  } catch {
    // it exited between the listing and the read: its last sample stands
  }
  for (const c of children(pid)) sample(c);
}

const started = performance.now();
const cli = spawn(process.execPath, [CLI, 'train', '--task', 'ctr', '--dataset', 'news-clicks', '--scale', String(scale), '--epochs', String(epochs), '--cluster', 'local:2,2', '--checkpoint-every', '0', '--out', out, '--json'], { stdio: ['ignore', 'pipe', 'inherit'] });
let stdout = '';
cli.stdout.on('data', (d) => (stdout += d));
const timer = setInterval(() => sample(cli.pid), 200);
const code = await new Promise((r) => cli.on('exit', r));
clearInterval(timer);
if (code !== 0) throw new Error(`loom train exited with ${code}`);
const seconds = (performance.now() - started) / 1000;
const last = JSON.parse(stdout.trim().split('\n').pop());
const epoch = JSON.parse(readFileSync(join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').pop());

/** What a process is, from its arguments. */
function role(cmd) {
  const flag = (f) => cmd[cmd.indexOf(f) + 1];
  if (cmd.includes('serve')) return `server, shard ${flag('--shard')}`;
  if (cmd.includes('worker')) return `worker, rank ${flag('--rank')}`;
  if (cmd.includes('train')) return 'coordinator (loom train)';
  return cmd.slice(0, 3).join(' ');
}
const rows = [...seen.entries()].filter(([, v]) => v.hwm > 0 && v.cmd[0] === process.execPath).map(([pid, v]) => ({ process: role(v.cmd), pid: String(pid), 'peak RSS MiB': Math.round(v.hwm / 1024) }));
rows.sort((a, b) => a.process.localeCompare(b.process));

const tables = epoch.tables ?? {};
const tableRows = Object.values(tables).reduce((s, t) => s + (t.rows ?? 0), 0);
const DIM = 32, DENSE = 33185;
const params = tableRows * DIM + DENSE;
printTable(`CTR model at scale ${scale} on --cluster local:2,2, ${epochs} epoch(s) in ${seconds.toFixed(0)} s (${Math.round(last.samplesPerSec)} samples/s, valid AUC ${last.validAuc?.toFixed(4)})`, rows);
console.log(`table rows at the end: ${Object.entries(tables).map(([k, t]) => `${k} ${t.rows}`).join(', ')} → ${(params / 1e6).toFixed(1)}M parameters (rows × ${DIM} + ${DENSE} dense)`);
console.log(`PyTorch, one process, the same tables dense with SparseAdam's moments: ${Math.round((params * 4 * 3) / 2 ** 20)} MiB of tensors alone (computed, not run)`);
rmSync(tmp, { recursive: true, force: true });

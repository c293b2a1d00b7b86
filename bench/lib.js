// Shared plumbing for Loom's benchmarks: run a PyTorch reference script in the same run, and print
// results as a table. Every benchmark reports Loom beside its reference as a ratio, because this
// machine drifts ±40% between runs and only side-by-side figures mean anything.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const PYTHON = '/usr/bin/python3';
const referenceDir = fileURLToPath(new URL('./reference/', import.meta.url));

/** True when Debian's python3-torch can be imported. */
export function torchAvailable() {
  if (!existsSync(PYTHON)) return false;
  const r = spawnSync(PYTHON, ['-c', 'import torch'], { stdio: 'ignore' });
  return r.status === 0;
}

/**
 * The environment that gives the fair PyTorch peer on this machine: OpenBLAS with its SKYLAKEX
 * kernels (Debian's default is the reference BLAS, and OpenBLAS mis-detects this CPU), with
 * `threads` BLAS threads. Falls back to whatever BLAS is installed when OpenBLAS is not.
 */
export function torchEnv(threads = 1) {
  const lib = '/usr/lib/x86_64-linux-gnu';
  const env = { ...process.env };
  delete env.OPENBLAS_L2_SIZE;
  const omp = threads > 1 && existsSync(`${lib}/openblas-openmp`);
  const dir = omp ? `${lib}/openblas-openmp` : `${lib}/openblas-pthread`;
  if (existsSync(dir)) {
    env.LD_LIBRARY_PATH = dir;
    env.OPENBLAS_CORETYPE = 'SKYLAKEX';
  }
  for (const v of ['OPENBLAS_NUM_THREADS', 'OMP_NUM_THREADS', 'MKL_NUM_THREADS']) env[v] = String(threads);
  return env;
}

/**
 * Runs bench/reference/<script> with Debian's python3 and returns the JSON object on the last line
 * of its output, or null (with a message on stderr) when PyTorch is not installed.
 */
export function runReference(script, args = [], { threads = 1 } = {}) {
  if (!torchAvailable()) {
    console.error(`[reference skipped] python3-torch is not installed: apt-get install -y python3-torch`);
    return null;
  }
  const r = spawnSync(PYTHON, [referenceDir + script, ...args.map(String)], {
    env: torchEnv(threads),
    encoding: 'utf8',
    maxBuffer: 64 << 20,
  });
  if (r.status !== 0) {
    console.error(`[reference failed] ${script}: ${r.stderr.trim().split('\n').slice(-3).join(' | ')}`);
    return null;
  }
  const lines = r.stdout.trim().split('\n');
  return JSON.parse(lines[lines.length - 1]);
}

/** Formats a number for a table: 3 significant digits, k/M suffixes for large values. */
export function fmt(x, digits = 3) {
  if (x === null || x === undefined || Number.isNaN(x)) return '–';
  if (typeof x === 'string') return x;
  const a = Math.abs(x);
  if (Number.isInteger(x) && a < 1e4) return String(x);
  if (a >= 1e6) return (x / 1e6).toPrecision(digits) + 'M';
  if (a >= 1e4) return (x / 1e3).toPrecision(digits) + 'k';
  return x.toPrecision(digits);
}

/** The ratio loom/reference formatted as "1.23×", or '–' when the reference did not run. */
export function ratio(loom, reference) {
  if (!reference || !loom) return '–';
  return (loom / reference).toFixed(2) + '×';
}

/** Prints rows (objects with the same keys) as an aligned plain-text table under a title. */
export function printTable(title, rows) {
  if (rows.length === 0) return;
  const keys = Object.keys(rows[0]);
  const cells = rows.map((r) => keys.map((k) => (typeof r[k] === 'number' ? fmt(r[k]) : String(r[k] ?? '–'))));
  const widths = keys.map((k, i) => Math.max(k.length, ...cells.map((c) => c[i].length)));
  const line = (cols) => cols.map((c, i) => c.padStart(widths[i])).join('  ');
  console.log(`\n${title}`);
  console.log(line(keys));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const c of cells) console.log(line(c));
}

/** Median of an array of numbers. */
export function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

/** The CPU's model name as the OS reports it (lscpu's "Model name"), for table titles. */
export function cpuName() {
  return cpus()[0]?.model.trim() || 'unknown CPU';
}

const CLI = fileURLToPath(new URL('../apps/cli/dist/main.js', import.meta.url));
let runsDir;

/**
 * Runs the built `loom train` in a subprocess with `args` (plus --out and --json) and returns its
 * samples/s of every epoch after the first `warmup` ones, the kernel backend its banner names, and
 * its final JSON result. The subprocess inherits LOOM_BACKEND.
 */
export function loomTrain(args, { warmup = 1 } = {}) {
  runsDir ??= mkdtempSync(join(tmpdir(), 'loom-bench-runs-'));
  const out = join(runsDir, `run-${Math.random().toString(36).slice(2)}`);
  const r = spawnSync(process.execPath, [CLI, 'train', ...args, '--out', out, '--json'], { encoding: 'utf8', maxBuffer: 64 << 20 });
  if (r.status !== 0) throw new Error(`loom train ${args.join(' ')} failed: ${r.stderr.trim()}`);
  const lines = r.stdout.trim().split('\n');
  const banner = lines.find((l) => l.startsWith('training ')) ?? '';
  const rates = lines.filter((l) => l.startsWith('epoch ')).map((l) => Number(/(\d+) samples\/s/.exec(l)[1]));
  return { rates: rates.slice(warmup), backend: /\(kernels: ([^)]+)\)/.exec(banner)?.[1] ?? '?', banner, result: JSON.parse(lines[lines.length - 1]) };
}

// loom dashboard in a real browser: Debian's chromium driven by playwright-core (no browser
// download), against the built CLI's processes. A real training run appears on the page with its
// curve and its workers; a worker of a --cluster run killed with SIGKILL shows as dropped; 10
// synthetic runs of 100k points each are drawn, and how long that takes is printed (not asserted:
// this machine is shared). Screenshots go to each run's directory.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { appendFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { chromium, type Browser, type Page } from 'playwright-core';
import { MAIN, sandbox } from './harness.js';

const CHROMIUM = process.env.LOOM_CHROMIUM || '/usr/bin/chromium';
const { dir, env } = sandbox('dashboard');
const children: ChildProcess[] = [];
let browser: Browser;

afterAll(async () => {
  await browser?.close();
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
});

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`${CHROMIUM} not found: this test drives the dashboard in Debian's chromium — install it with \`apt-get install chromium\` (.ci/run does), or point LOOM_CHROMIUM at a Chromium`);
  }
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    // As root, in a closed network: no sandbox, and no background connections to Google's hosts.
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
});

function loom(args: string[]): { proc: ChildProcess; stdout: string[]; exited: Promise<number | null> } {
  const proc = spawn(process.execPath, [MAIN, ...args], { cwd: dir, env, stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(proc);
  const stdout: string[] = [];
  createInterface({ input: proc.stdout! }).on('line', (l) => stdout.push(l));
  proc.stderr!.on('data', () => {});
  return { proc, stdout, exited: new Promise((r) => proc.once('exit', (code) => r(code))) };
}

/** Starts `loom dashboard --runs DIR --port 0`; resolves with its URL. */
async function dashboard(runs: string): Promise<string> {
  const d = loom(['dashboard', '--runs', runs, '--port', '0']);
  const deadline = Date.now() + 20_000;
  while (Date.now() < deadline) {
    const url = d.stdout.map((l) => / at (http:\/\/\S+\/)/.exec(l)?.[1]).find(Boolean);
    if (url) return url;
    if (d.proc.exitCode !== null) throw new Error(`loom dashboard exited with ${d.proc.exitCode}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error('loom dashboard did not say where it listens');
}

async function until<T>(what: string, f: () => T | undefined | false, ms = 60_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = f();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const events = (run: string): Array<Record<string, unknown>> =>
  existsSync(join(run, 'events.jsonl')) ? readFileSync(join(run, 'events.jsonl'), 'utf8').trim().split('\n').filter(Boolean).map((l) => JSON.parse(l)) : [];

async function open(url: string, runs: string[]): Promise<Page> {
  const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(`${url}#${runs.map(encodeURIComponent).join(',')}`);
  (page as Page & { errors: string[] }).errors = errors;
  return page;
}

/** The loss chart's points and last epoch, as the page drew them. */
const lossChart = (page: Page) => page.evaluate(() => (window as unknown as { loomDashboard: { chart(id: string): { points: number; maxX: number } | null } }).loomDashboard.chart('loss'));
const workerStates = (page: Page) => page.evaluate(() => (window as unknown as { loomDashboard: { workers(): Record<string, string> } }).loomDashboard.workers());

describe('loom dashboard in chromium', () => {
  const runs = join(dir, 'runs');
  mkdirSync(runs, { recursive: true });
  let url: string;
  beforeAll(async () => {
    url = await dashboard(runs);
  });

  it('a 2-worker run: the loss curve grows past two epochs, and a row per worker appears', async () => {
    const out = join(runs, 'threads');
    const train = loom(['train', '--workers', '2', '--mode', 'async', '--epochs', '4', '--scale', '2', '--out', out]);
    await until('the run directory', () => existsSync(join(out, 'metrics.jsonl')));
    const page = await open(url, ['threads']);
    await page.waitForFunction(() => ((window as any).loomDashboard.chart('loss')?.maxX ?? 0) >= 2, null, { timeout: 60_000, polling: 100 });
    const loss = await lossChart(page);
    expect(loss!.maxX).toBeGreaterThanOrEqual(2);
    await page.waitForFunction(() => Object.keys((window as any).loomDashboard.workers()).length === 2, null, { timeout: 30_000, polling: 100 });
    expect(await workerStates(page)).toEqual({ 0: 'thread', 1: 'thread' });
    expect(await page.locator('[data-chart=throughput]').count()).toBe(1);
    expect(await page.locator('[data-chart=staleness]').count()).toBe(1);
    expect(await train.exited).toBe(0);
    await page.waitForFunction(() => document.querySelector('[data-run=threads] .badge')?.textContent === 'finished', null, { timeout: 30_000, polling: 200 });
    await page.screenshot({ path: join(out, 'dashboard.png'), fullPage: true });
    expect((page as Page & { errors: string[] }).errors).toEqual([]);
    await page.close();
  }, 180_000);

  it('a --cluster local:1,2 run: both workers joined, then the one killed with SIGKILL shows as dropped', async () => {
    const out = join(runs, 'cluster');
    const train = loom(['train', '--cluster', 'local:1,2', '--epochs', '6', '--out', out]);
    const page = await until('the run directory', () => existsSync(join(out, 'metrics.jsonl'))).then(() => open(url, ['cluster']));
    await page.waitForFunction(() => {
      const w = (window as any).loomDashboard.workers();
      return w[0] === 'joined' && w[1] === 'joined';
    }, null, { timeout: 60_000, polling: 100 });
    expect(await page.locator('[data-server="0/1"] .badge').textContent()).toBe('joined');
    // Once an epoch is in, kill worker 1 as the OOM killer would.
    await until('an epoch', () => readFileSync(join(out, 'metrics.jsonl'), 'utf8').includes('"epoch":1'));
    const pid = events(out).find((e) => e.event === 'started' && e.role === 'worker' && e.rank === 1)!.pid as number;
    process.kill(pid, 'SIGKILL');
    await page.waitForFunction(() => (window as any).loomDashboard.workers()[1] === 'dropped', null, { timeout: 30_000, polling: 100 });
    expect(await workerStates(page)).toMatchObject({ 0: 'joined', 1: 'dropped' });
    expect(await page.locator('[data-worker="1"]').textContent()).toContain('SIGKILL');
    await page.screenshot({ path: join(out, 'dashboard-dropped.png'), fullPage: true });
    expect(await train.exited).toBe(0); // the run went on with one worker
    await page.waitForFunction(() => (window as any).loomDashboard.chart('loss')?.maxX >= 6, null, { timeout: 30_000, polling: 200 });
    await page.screenshot({ path: join(out, 'dashboard.png'), fullPage: true });
    expect((page as Page & { errors: string[] }).errors).toEqual([]);
    await page.close();
  }, 180_000);

  it('10 runs of 100k points each: first paint and update times (printed, not asserted)', async () => {
    const big = join(dir, 'big');
    const N = 100_000;
    const ids = Array.from({ length: 10 }, (_, r) => `synthetic-${r}`);
    for (const [r, id] of ids.entries()) {
      mkdirSync(join(big, id), { recursive: true });
      const lines: string[] = [];
      for (let i = 1; i <= N; i++) lines.push(`{"step":${i},"epoch":${i / 1000},"loss":${(2 * Math.exp(-i / 20000) + 0.3 + 0.05 * Math.sin(i / 7 + r) + 0.01 * r).toFixed(5)},"time":${1_700_000_000_000 + i}}`);
      writeFileSync(join(big, id, 'steps.jsonl'), lines.join('\n') + '\n');
      const epochs: string[] = [];
      for (let e = 1; e <= 100; e++) epochs.push(JSON.stringify({ epoch: e, trainLoss: 2 * Math.exp(-e / 20) + 0.3, validLoss: 2 * Math.exp(-e / 20) + 0.35, validAccuracy: 1 - Math.exp(-e / 30), samplesPerSec: 1e5 + r * 1e3, seconds: 1 }));
      writeFileSync(join(big, id, 'metrics.jsonl'), epochs.join('\n') + '\n');
    }
    const bigUrl = await dashboard(big);
    const t0 = Date.now();
    const page = await open(bigUrl, ids);
    await page.waitForFunction((n) => (window as any).loomDashboard.chart('loss')?.points > 0 && (window as any).loomDashboard.state.data.size === n, ids.length, { timeout: 120_000, polling: 50 });
    const wall = Date.now() - t0;
    const first = await page.evaluate(() => (window as any).loomDashboard.stats.firstPaintMs as number);
    const drawn = (await lossChart(page))!;
    // Downsampled on the server: far fewer than the 1M points of the loss series.
    expect(drawn.points).toBeLessThan(10 * 3 * 2 * 4000);
    expect(drawn.maxX).toBeCloseTo(100);
    // Updates: a new step appended to every run, until the page has drawn it.
    const updates: number[] = [];
    const handling: number[] = [];
    for (let k = 1; k <= 5; k++) {
      const x = 100 + k / 10;
      const start = Date.now();
      for (const id of ids) appendFileSync(join(big, id, 'steps.jsonl'), `{"step":${N + k},"epoch":${x},"loss":0.3,"time":${Date.now()}}\n`);
      await page.waitForFunction((x) => (window as any).loomDashboard.chart('loss')?.maxX >= x, x, { timeout: 30_000, polling: 'raf' });
      updates.push(Date.now() - start);
      handling.push(await page.evaluate(() => { const s = (window as any).loomDashboard.stats; return (s.lastUpdateMs as number) + (s.lastRenderMs as number); }));
    }
    await page.screenshot({ path: join(big, 'dashboard.png'), fullPage: true });
    const median = (a: number[]) => [...a].sort((p, q) => p - q)[a.length >> 1]!;
    const report = {
      runs: ids.length, pointsPerRun: N, drawnLossPoints: drawn.points,
      firstPaintMs: Math.round(first), openToDrawnMs: wall,
      updateMs: { median: median(updates), all: updates },
      pageHandlingAndDrawingMs: { median: +median(handling).toFixed(1), all: handling.map((h) => +h.toFixed(1)) },
    };
    console.log(`dashboard timings (10 runs × 100k points): ${JSON.stringify(report)}`);
    writeFileSync(join(big, 'timings.json'), JSON.stringify(report, null, 2) + '\n');
    expect((page as Page & { errors: string[] }).errors).toEqual([]);
    await page.close();
  }, 300_000);
});

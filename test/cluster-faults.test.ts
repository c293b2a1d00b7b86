// Failures of real processes of the built CLI (apps/cli/dist) over real sockets on 127.0.0.1:
// kill -9 of a worker in sync mode (the run finishes without it, the others training its share, and
// a restarted one is readmitted and takes its share back), kill -9 of a server (restarted
// with --resume, it continues from its checkpoint and the worker with it, to the very bits of an
// uninterrupted run), another model's checkpoint, and two workers with the same rank; a run that
// fails ends with one line naming the process and the --resume that continues it, and --resume of
// a finished run says so and does nothing. After each, no process is left.
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { PsClient, latestCheckpoint } from '@loom/parameter-server';
import { MAIN, P, runParams, sandbox, writeCsv } from './harness.js';

const { dir, token: TOKEN, env } = sandbox('faults');

/** 6000 distinct rows (duplicates would be dropped): 300 steps of 16 per epoch, about 0.25 s with 2 workers. */
const CSV = join(dir, 'data.csv');
const MODEL = ['--model', 'mlp:5,16,3', '--seed', '5'];
const DATA = ['--dataset', `csv:${CSV}`, '--label', 'label', '--batch-size', '16'];
beforeAll(() => writeCsv(CSV, 6000));

interface Proc {
  proc: ChildProcess;
  out: string[];
  err: string[];
  exited: Promise<number | null>;
  /** Resolves with the first stdout or stderr line matching `re`. */
  line(re: RegExp): Promise<RegExpExecArray>;
}

/** Every process a test started, and their children: none may outlive the test. */
const pids = new Set<number>();
afterEach(async () => {
  await new Promise((r) => setTimeout(r, 300));
  const alive = [...pids].filter((pid) => {
    try {
      process.kill(pid, 0);
      return true;
    } catch {
      return false;
    }
  });
  for (const pid of alive) process.kill(pid, 'SIGKILL');
  pids.clear();
  expect(alive, 'processes left running').toEqual([]);
});

function start(...args: string[]): Proc {
  const proc = spawn(process.execPath, [MAIN, ...args], { cwd: dir, env });
  pids.add(proc.pid!);
  const out: string[] = [];
  const err: string[] = [];
  const watchers: Array<[RegExp, (m: RegExpExecArray) => void]> = [];
  const on = (sink: string[]) => (l: string) => {
    sink.push(l);
    for (const [re, resolve] of watchers) {
      const m = re.exec(l);
      if (m) resolve(m);
    }
  };
  createInterface({ input: proc.stdout! }).on('line', on(out));
  createInterface({ input: proc.stderr! }).on('line', on(err));
  const exited = new Promise<number | null>((r) => proc.once('exit', (code) => r(code)));
  const line = (re: RegExp) =>
    new Promise<RegExpExecArray>((resolve, reject) => {
      for (const l of [...out, ...err]) {
        const m = re.exec(l);
        if (m) return resolve(m);
      }
      watchers.push([re, resolve]);
      void exited.then((code) => reject(new Error(`exited with ${code} before printing ${re}:\n${[...out, ...err].join('\n')}`)));
    });
  return { proc, out, err, exited, line };
}

/** The child processes of `pid` (a coordinator's servers and workers), by their arguments. */
function childrenOf(pid: number): Array<{ pid: number; args: string }> {
  const r = spawnSync('ps', ['-o', 'pid=,args=', '--ppid', String(pid)], { encoding: 'utf8' });
  return r.stdout.trim().split('\n').filter((l) => l.trim() !== '').map((l) => {
    const [, p, args] = /^\s*(\d+)\s+(.*)$/.exec(l)!;
    return { pid: Number(p), args: args! };
  });
}

function loom(...args: string[]) {
  const r = spawnSync(process.execPath, [MAIN, ...args], { encoding: 'utf8', cwd: dir, env, timeout: 60_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

const params = (run: string): Float32Array => runParams(dir, run);

describe('a worker killed mid-run (sync)', () => {
  it('is dropped from the barrier: the run goes on with the other and writes a model `loom eval` reads', async () => {
    const run = start('train', ...DATA, ...MODEL, '--epochs', '10', '--cluster', 'local:1,2', '--out', 'killed-worker');
    await run.line(/^epoch 1: /);
    const kids = childrenOf(run.proc.pid!);
    for (const k of kids) pids.add(k.pid);
    const victim = kids.find((k) => / worker .*--rank 1 /.test(k.args));
    expect(victim, JSON.stringify(kids)).toBeDefined();
    process.kill(victim!.pid, 'SIGKILL');
    expect(await run.exited, run.err.join('\n')).toBe(0);
    expect(run.err).toEqual([`worker 1 (pid ${victim!.pid}) was killed (SIGKILL); the run goes on with 1 of 2 workers`]);
    const metrics = readFileSync(join(dir, 'killed-worker', 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(metrics.map((m) => m.epoch)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    expect(metrics.at(-1).workers.map((w: { rank: number }) => w.rank)).toEqual([0]); // worker 0 alone at the end …
    expect(metrics.at(-1).trainLoss).toBeLessThan(metrics[0].trainLoss); // … still learning
    expect(existsSync(join(dir, 'killed-worker', 'checkpoints'))).toBe(true);
    const e = loom('eval', '--run', 'killed-worker', '--json');
    expect(e.code, e.stderr).toBe(0);
  });
});

describe('a worker killed mid-epoch (sync): its data is not lost', () => {
  /** The epoch lines of a `loom worker --json`. */
  const epochLines = (p: Proc) => p.out.map((l) => JSON.parse(l)).filter((r) => r.event === 'epoch');
  const readMetrics = (run: string) => readFileSync(join(dir, run, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));

  it('3 workers, one killed: the other two take its share from the next step; every example is trained once in every epoch, and the loss is an undisturbed run\'s', async () => {
    const run = start('train', ...DATA, ...MODEL, '--epochs', '4', '--cluster', 'local:1,3', '--out', 'resharded');
    const [, train] = await run.line(/: (\d+) train \//);
    await run.line(/^epoch 1: /);
    const kids = childrenOf(run.proc.pid!);
    for (const k of kids) pids.add(k.pid);
    const victim = kids.find((k) => / worker .*--rank 1 /.test(k.args));
    expect(victim, JSON.stringify(kids)).toBeDefined();
    process.kill(victim!.pid, 'SIGKILL');
    expect(await run.exited, run.err.join('\n')).toBe(0);
    expect(run.err).toEqual([`worker 1 (pid ${victim!.pid}) was killed (SIGKILL); the run goes on with 2 of 3 workers`]);
    const metrics = readMetrics('resharded');
    expect(metrics.map((m) => m.epoch)).toEqual([1, 2, 3, 4]);
    // Every epoch, as the servers counted it: all 4800 training rows, each once.
    expect(Number(train)).toBe(4800);
    for (const m of metrics) expect([m.epoch, m.membership.rows, m.membership.expected]).toEqual([m.epoch, 4800, 4800]);
    // 16-row batches: rows 0–4, 5–9, 10–15 of each to ranks 0, 1, 2 (300 steps); then 8 each to ranks 0 and 2.
    expect(metrics[0].membership).toEqual({ rows: 4800, expected: 4800, ranks: [{ rank: 0, rows: 1500 }, { rank: 1, rows: 1500 }, { rank: 2, rows: 1800 }], changes: [] });
    const k = metrics.findIndex((m) => m.membership.changes.length > 0);
    expect(k, JSON.stringify(metrics.map((m) => m.membership))).toBeGreaterThanOrEqual(1);
    const killed = metrics[k].membership;
    expect(killed.changes.map((c: { live: number[] }) => c.live)).toEqual([[0, 2]]); // from one step on, ranks 0 and 2 …
    expect(killed.ranks.map((r: { rank: number }) => r.rank)).toEqual([0, 1, 2]);
    expect(killed.ranks[1].rows).toBeLessThan(1500); // … take what rank 1 did not train
    for (const m of metrics.slice(k + 1)) expect(m.membership.ranks).toEqual([{ rank: 0, rows: 2400 }, { rank: 2, rows: 2400 }]);
    // The same global batches as an undisturbed run, but for the step whose rows were carried: the same loss.
    const ref = loom('train', ...DATA, ...MODEL, '--epochs', '4', '--workers', '1', '--out', 'undisturbed');
    expect(ref.code, ref.stderr).toBe(0);
    const [last, undisturbed] = [metrics.at(-1), readMetrics('undisturbed').at(-1)];
    expect(Math.abs(last.trainLoss - undisturbed.trainLoss) / undisturbed.trainLoss).toBeLessThan(0.05);
    expect(Math.abs(last.validAccuracy - undisturbed.validAccuracy)).toBeLessThanOrEqual(0.01);
  });

  it('--task ctr (sync dense part, Hogwild! tables): the same — the survivors take the share, every impression is trained once per epoch, the run ends', async () => {
    const run = start('train', '--task', 'ctr', '--dataset', 'news-clicks', '--cluster', 'local:1,3', '--epochs', '4', '--seed', '9', '--out', 'ctr-resharded');
    const [, train] = await run.line(/ (\d+) train \/ \d+ valid impressions/);
    await run.line(/^epoch 1: /);
    const kids = childrenOf(run.proc.pid!);
    for (const k of kids) pids.add(k.pid);
    const victim = kids.find((k) => / worker .*--rank 1 /.test(k.args));
    expect(victim, JSON.stringify(kids)).toBeDefined();
    process.kill(victim!.pid, 'SIGKILL');
    // (The tables count an update per push: with a worker gone, an epoch's end is no longer a count of them.)
    expect(await run.exited, run.err.join('\n')).toBe(0);
    const metrics = readMetrics('ctr-resharded');
    expect(metrics.map((m) => m.epoch)).toEqual([1, 2, 3, 4]);
    for (const m of metrics) expect([m.epoch, m.membership.rows, m.membership.expected]).toEqual([m.epoch, Number(train), Number(train)]);
    expect(metrics.flatMap((m) => m.membership.changes.map((c: { live: number[] }) => c.live))).toEqual([[0, 2]]);
    expect(metrics.at(-1).membership.ranks.map((r: { rank: number }) => r.rank)).toEqual([0, 2]);
  }, 120_000);

  it('async: the rest of its share of the epoch it dies in is lost; from the next epoch the others take it, and the run ends', async () => {
    const run = start('train', ...DATA, ...MODEL, '--epochs', '4', '--cluster', 'local:1,3', '--mode', 'async', '--out', 'async-resharded');
    await run.line(/^epoch 1: /);
    const kids = childrenOf(run.proc.pid!);
    for (const k of kids) pids.add(k.pid);
    const victim = kids.find((k) => / worker .*--rank 1 /.test(k.args));
    expect(victim, JSON.stringify(kids)).toBeDefined();
    process.kill(victim!.pid, 'SIGKILL');
    expect(await run.exited, run.err.join('\n')).toBe(0); // (the update count no longer says where an epoch ends)
    const metrics = readMetrics('async-resharded');
    expect(metrics.map((m) => m.epoch)).toEqual([1, 2, 3, 4]);
    const k = metrics.findIndex((m) => m.membership.rows < 4800);
    expect(k, JSON.stringify(metrics.map((m) => m.membership))).toBeGreaterThanOrEqual(1);
    expect(metrics[k].membership.ranks[1]).toMatchObject({ rank: 1 });
    expect(metrics[k].membership.ranks[1].rows).toBeLessThan(1500);
    for (const m of metrics.slice(k + 1)) expect(m.membership).toMatchObject({ rows: 4800, expected: 4800, ranks: [{ rank: 0, rows: 2400 }, { rank: 2, rows: 2400 }] });
    expect(metrics[k + 1].membership.changes).toEqual([{ step: (k + 1) * 300, live: [0, 2], carried: 0 }]);
  });

  it('restarted with its rank, a killed worker is readmitted and takes its share back; the server counts every example once in every epoch', async () => {
    const s = start('serve', '--port', '0', '--workers', '3', ...MODEL);
    const [, url] = await s.line(/listening on (ws:\/\/\S+)$/);
    const worker = (rank: number) => start('worker', '--connect', url!, '--rank', String(rank), '--workers', '3', ...DATA, ...MODEL, '--epochs', '16', '--json');
    const [w0, w1, w2] = [0, 1, 2].map(worker) as [Proc, Proc, Proc];
    await w0.line(/"epoch":1,/);
    w1.proc.kill('SIGKILL');
    await w1.exited;
    await s.line(/worker 1 dropped at step \d+: disconnected/);
    await w0.line(/"epoch":4,/); // epoch 3 at least went by without rank 1
    const again = worker(1);
    await s.line(/worker 1 readmitted from step \d+ \(3 of 3 workers\)/);
    for (const w of [w0, w2, again]) expect(await w.exited, w.err.join('\n')).toBe(0);
    // Rows per epoch of each rank: a third (5, 5, 6 of every 16), half while rank 1 was away, a third again.
    const rows = (p: Proc) => epochLines(p).map((r) => r.rows);
    expect(rows(w0)[0]).toBe(1500);
    expect(rows(w2)[0]).toBe(1800);
    expect(rows(w0)).toContain(2400);
    expect(rows(w2)).toContain(2400);
    expect([rows(w0).at(-1), rows(again).at(-1), rows(w2).at(-1)]).toEqual([1500, 1500, 1800]);
    expect(epochLines(again).at(-1).epoch).toBe(16);
    // The server's count: every example once in each of the 16 epochs; who trained changed twice.
    const observer = await PsClient.connect([url!], { token: TOKEN, role: 'observer', workers: 3, size: P });
    const [stats] = await observer.stats();
    expect(stats!.trained!.map((t) => [t.epoch, t.rows, t.expected])).toEqual(Array.from({ length: 16 }, (_, e) => [e, 4800, 4800]));
    expect(stats!.trained!.flatMap((t) => t.changes.map((c) => c.live))).toEqual([[0, 2], [0, 1, 2]]);
    expect([stats!.dropped, stats!.readmitted]).toEqual([1, 1]);
    await observer.shutdown(true);
    await observer.close();
    expect(await s.exited).toBe(0);
  });
});

describe('a server killed mid-run', () => {
  it('restarted with --resume, continues from its last checkpoint; the worker reconnects and the run ends bitwise as if uninterrupted', async () => {
    const serveArgs = ['--workers', '1', ...MODEL, '--checkpoint', 'ckpt', '--checkpoint-every', '50'];
    const s1 = start('serve', '--port', '0', ...serveArgs);
    const [, url, port] = (await s1.line(/listening on (ws:\/\/127\.0\.0\.1:(\d+))$/)) as unknown as [string, string, string];
    const w = start('worker', '--connect', url, '--rank', '0', '--workers', '1', ...DATA, ...MODEL, '--epochs', '8', '--json', '--retry-for', '30');
    await w.line(/"epoch":2,/);
    s1.proc.kill('SIGKILL');
    await s1.exited;
    const lost = await w.line(/lost the servers \((.*)\); reconnecting/);
    expect(lost[1]).toContain(url); // "… closed the connection (1006)", or a reset, as the kernel tells it
    const s2 = start('serve', '--port', port, ...serveArgs, '--resume', 'ckpt');
    const [, step] = await s2.line(/resumed from .*ckpt\/checkpoints\/step-0*(\d+)\/shard-0-of-1\.json: \d+ updates applied/);
    expect(Number(step) % 50).toBe(0);
    expect(Number(step)).toBeGreaterThanOrEqual(600); // not back to the beginning: at least the 2 epochs reported
    const rejoined = await w.line(/rejoined at step (\d+) \(epoch (\d+), batch (\d+)\)/);
    expect(rejoined[1]).toBe(step);
    expect(await w.exited, w.err.join('\n')).toBe(0);
    // The loss curve goes on where it was: every epoch after the restart is below the first.
    const epochs = w.out.map((l) => JSON.parse(l)).filter((r) => r.event === 'epoch');
    const loss = (r: { lossSum: number; rows: number }) => r.lossSum / r.rows;
    expect(epochs.at(-1).epoch).toBe(8);
    for (const r of epochs.slice(2)) expect(loss(r)).toBeLessThan(loss(epochs[0]));
    // And to the bit: the same parameters as training the 8 epochs in one go.
    const observer = await PsClient.connect([url], { token: TOKEN, role: 'observer', workers: 1, size: P });
    const trained = new Float32Array(P);
    await observer.pull(0, trained);
    await observer.shutdown(true);
    await observer.close();
    expect(await s2.exited).toBe(0);
    const ref = loom('train', ...DATA, ...MODEL, '--epochs', '8', '--workers', '1', '--out', 'uninterrupted');
    expect(ref.code, ref.stderr).toBe(0);
    expect(trained).toEqual(params('uninterrupted'));
  });

  it('a worker that cannot reach its server gives up after --retry-for with a clear error', async () => {
    const s = start('serve', '--port', '0', '--workers', '1', ...MODEL);
    const [, url] = await s.line(/listening on (ws:\/\/\S+)$/);
    s.proc.kill('SIGKILL');
    await s.exited;
    const w = loom('worker', '--connect', url!, '--rank', '0', '--workers', '1', ...DATA, ...MODEL, '--retry-for', '1');
    expect(w.code).toBe(1);
    expect(w.stderr).toMatch(new RegExp(`loom worker: lost parameter server ${url!.replace(/[/.]/g, '\\$&')}: gave up after 1 s \\(last error: cannot connect to .*ECONNREFUSED`));
  });
});

describe('bad input', () => {
  it('a checkpoint directory of another model or sharding: a clear error naming the file and the field, exit 2, nothing left running', () => {
    const made = loom('train', ...DATA, ...MODEL, '--epochs', '1', '--cluster', 'local:1,1', '--out', 'other', '--checkpoint-every', '0');
    expect(made.code, made.stderr).toBe(0);
    const file = join(dir, 'other', 'checkpoints', 'step-000000300', 'shard-0-of-1.json');
    expect(existsSync(file)).toBe(true);
    const s = loom('serve', '--port', '0', '--workers', '1', '--model', 'mlp:5,8,3', '--seed', '5', '--resume', 'other');
    expect(s.code).toBe(2);
    expect(s.stderr).toContain(`loom serve: --resume: other/checkpoints/step-000000300/shard-0-of-1.json: size is ${P}, but this server has 75 (a checkpoint of another model, shard or optimizer)`);
    const t = loom('train', ...DATA, '--model', 'mlp:5,8,3', '--seed', '5', '--epochs', '2', '--cluster', 'local:1,1', '--resume', 'other');
    expect(t.code).toBe(2);
    expect(t.stderr).toContain(`loom train: --resume: ${file}: size is ${P}, but this server has 75`);
    const sharded = loom('train', ...DATA, ...MODEL, '--epochs', '2', '--cluster', 'local:2,1', '--resume', 'other');
    expect(sharded.code).toBe(2);
    expect(sharded.stderr).toContain(`${join(dir, 'other', 'checkpoints')}: shards: the checkpoints are of 1 shards; this server is shard 0 of 2`);
  });

  it('two workers claiming the same rank: the second fails with a clear error, the first is unaffected', async () => {
    const s = start('serve', '--port', '0', '--workers', '2', ...MODEL);
    const [, url] = await s.line(/listening on (ws:\/\/\S+)$/);
    const first = start('worker', '--connect', url!, '--rank', '0', '--workers', '2', ...DATA, ...MODEL);
    await s.line(/worker 0 connected from/);
    const second = loom('worker', '--connect', url!, '--rank', '0', '--workers', '2', ...DATA, ...MODEL);
    expect(second.code).toBe(1);
    expect(second.stderr).toContain(`loom worker: ${url}: worker rank 0 is already connected`);
    expect(first.proc.exitCode).toBe(null); // still waiting for worker 1
    first.proc.kill('SIGKILL');
    s.proc.kill('SIGTERM');
    expect(await s.exited).toBe(0);
  });
});

describe('a whole cluster killed', () => {
  it('`loom train --cluster --resume DIR` continues from the checkpoint: the loss curve goes on and the metrics are kept', async () => {
    const run = start('train', ...DATA, ...MODEL, '--epochs', '6', '--cluster', 'local:1,1', '--out', 'whole', '--checkpoint-every', '100');
    await run.line(/^epoch 2: /);
    const kids = childrenOf(run.proc.pid!);
    for (const k of [...kids, { pid: run.proc.pid! }]) process.kill(k.pid, 'SIGKILL'); // power cut
    await run.exited;
    const r = loom('train', ...DATA, ...MODEL, '--epochs', '6', '--cluster', 'local:1,1', '--resume', 'whole');
    expect(r.code, r.stderr).toBe(0);
    const step = Number(/resuming .*whole from its checkpoint at update (\d+)/.exec(r.stdout)?.[1]);
    expect(step).toBeGreaterThanOrEqual(600);
    const metrics = readFileSync(join(dir, 'whole', 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(metrics.map((m) => m.epoch)).toEqual([1, 2, 3, 4, 5, 6]);
    for (const m of metrics.slice(1)) expect(m.trainLoss).toBeLessThan(metrics[0].trainLoss);
    const e = loom('eval', '--run', 'whole', '--json');
    expect(e.code, e.stderr).toBe(0);
  });
});

describe('a run that fails says what happened, once', () => {
  /** Starts `loom train --cluster`, and kill -9s its child whose arguments match `victim` once epoch 1 is reported. */
  async function killDuring(cluster: string, out: string, victim: RegExp) {
    const argv = [...DATA, ...MODEL, '--epochs', '3', '--cluster', cluster, '--out', out, '--checkpoint-every', '50'];
    const run = start('train', ...argv);
    await run.line(/^epoch 1: /);
    const kids = childrenOf(run.proc.pid!);
    for (const k of kids) pids.add(k.pid);
    const child = kids.find((k) => victim.test(k.args));
    expect(child, JSON.stringify(kids)).toBeDefined();
    process.kill(child!.pid, 'SIGKILL');
    return { run, argv, pid: child!.pid, code: await run.exited };
  }

  it('kill -9 of server shard 0/2: exit 1, one line naming the server (pid, address) and the --resume that continues from its last checkpoint — which does', async () => {
    const { run, pid, code } = await killDuring('local:2,2', 'dead-server', / serve .*--shard 0\/2 /);
    expect(code, run.err.join('\n')).toBe(1);
    // Not the workers' or the observer's lost connections (1006), which the server's death caused.
    expect(run.err).toHaveLength(1);
    const m = new RegExp(`^loom train: server shard 0/2 \\(pid ${pid}, ws://127\\.0\\.0\\.1:\\d+\\) was killed \\(SIGKILL\\) in epoch [1-3] of 3; the run stopped\\. Continue it with: loom (train .* --resume dead-server) \\(its last checkpoint is update (\\d+)\\)$`).exec(run.err[0]!);
    expect(m, run.err[0]).not.toBeNull();
    const step = Number(m![2]);
    expect(step).toBe(latestCheckpoint(join(dir, 'dead-server'), 2));
    expect(step).toBeGreaterThanOrEqual(300); // epoch 1 was reported
    // The command it names continues the run from there, to its end.
    const resumed = loom(...m![1]!.split(' '));
    expect(resumed.code, resumed.stderr).toBe(0);
    expect(resumed.stdout).toContain(`resuming ${join(dir, 'dead-server')} from its checkpoint at update ${step}`);
    const metrics = readFileSync(join(dir, 'dead-server', 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(metrics.map((x) => x.epoch)).toEqual([1, 2, 3]);
  });

  it('kill -9 of the last worker: exit 1, one line naming worker 0 and its pid, and the --resume', async () => {
    const { run, pid, code } = await killDuring('local:1,1', 'dead-worker', / worker .*--rank 0 /);
    expect(code, run.err.join('\n')).toBe(1);
    expect(run.err).toHaveLength(1);
    expect(run.err[0]).toMatch(new RegExp(`^loom train: worker 0 \\(pid ${pid}\\) was killed \\(SIGKILL\\) in epoch [1-3] of 3; the run stopped\\. Continue it with: loom train .* --resume dead-worker \\(its last checkpoint is update \\d+\\)$`));
  });
});

describe('--resume of a finished run', () => {
  it('says so and exits 0, training nothing and starting nothing: --cluster, one thread, threads, --task ctr', () => {
    const made = loom('train', ...DATA, ...MODEL, '--epochs', '1', '--cluster', 'local:1,1', '--out', 'done', '--checkpoint-every', '0');
    expect(made.code, made.stderr).toBe(0);
    const files = ['metrics.jsonl', 'config.json', 'model.safetensors'].map((f) => join(dir, 'done', f));
    const before = files.map((f) => readFileSync(f));
    const dense = [...DATA, ...MODEL, '--epochs', '1'];
    const runs: string[][] = [[...dense, '--cluster', 'local:1,1'], [...dense, '--workers', '1'], [...dense, '--workers', '2'], ['--task', 'ctr', '--dataset', 'news-clicks', '--epochs', '1', '--cluster', 'local:1,1']];
    for (const flags of runs) {
      const r = loom('train', ...flags, '--resume', 'done');
      expect([r.code, r.stderr], flags.join(' ')).toEqual([0, '']);
      // Only this line: no "training …" (nothing started), no epoch.
      expect(r.stdout, flags.join(' ')).toBe('done already finished its 1 epoch (last checkpoint at update 300); nothing to do\n');
      expect(files.map((f) => readFileSync(f))).toEqual(before);
    }
    expect(latestCheckpoint(join(dir, 'done'), 1)).toBe(300); // the one a resume would load: an epoch of 300 updates
    // Asked for more epochs than it has, it is not finished: it trains them (from its last checkpoint).
    const more = loom('train', ...DATA, ...MODEL, '--epochs', '2', '--cluster', 'local:1,1', '--resume', 'done', '--json');
    expect(more.code, more.stderr).toBe(0);
    expect(more.stdout).toMatch(/^epoch 2: /m);
    expect(JSON.parse(more.stdout.trim().split('\n').at(-1)!).epoch).toBe(2);
  });
});

// `loom launch` as real processes of the built CLI (apps/cli/dist) on 127.0.0.1: two nodes — one
// told by flags, one by torchrun's variables — train to the same bits as local threads; a command
// that differs between nodes, a port in use, a failing node, a missing master and a bad hostfile
// each fail with a clear error and leave no process running. (Machines as network namespaces and
// the ssh launcher: launch-netns.test.ts.)
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { randomBytes } from 'node:crypto';
import { trainFlags, writeCsv } from './harness.js';

const MAIN = fileURLToPath(new URL('../apps/cli/dist/main.js', import.meta.url));
const ROOT = fileURLToPath(new URL('..', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'loom-launch-'));
/** Every process of this file carries MARK in its environment, so leftovers can be found. */
const MARK = randomBytes(8).toString('hex');
const env = { ...process.env, LOOM_TOKEN: randomBytes(24).toString('base64url'), HOME: dir, LOOM_TEST_MARK: MARK };
const CSV = join(dir, 'data.csv');
const TRAIN = trainFlags(CSV);
const children: ChildProcess[] = [];
afterAll(() => {
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
});

beforeAll(() => writeCsv(CSV));

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}
function launch(args: string[], extraEnv: Record<string, string> = {}, cwd = dir): Promise<Run> {
  const proc = spawn(process.execPath, [MAIN, 'launch', ...args], { cwd, env: { ...env, ...extraEnv } });
  children.push(proc);
  let [stdout, stderr] = ['', ''];
  proc.stdout.on('data', (d) => (stdout += d));
  proc.stderr.on('data', (d) => (stderr += d));
  return new Promise((r) => proc.once('exit', (code) => r({ code, stdout, stderr })));
}
function loom(...args: string[]): Run {
  const r = spawnSync(process.execPath, [MAIN, ...args], { encoding: 'utf8', cwd: dir, env, timeout: 60_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Processes (other than this one) whose environment holds MARK. */
function leftovers(): string[] {
  const found: string[] = [];
  for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p) && Number(p) !== process.pid)) {
    try {
      if (readFileSync(`/proc/${pid}/environ`, 'latin1').includes(`LOOM_TEST_MARK=${MARK}`)) found.push(`${pid}: ${readFileSync(`/proc/${pid}/cmdline`, 'latin1').replace(/\0/g, ' ')}`);
    } catch {
      // gone, or not ours
    }
  }
  return found;
}
const settle = () => new Promise((r) => setTimeout(r, 300));

/** A port P with P … P+n−1 free on 127.0.0.1. */
async function freePorts(n: number): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const base = 20000 + Math.floor(Math.random() * 40000);
    const held: Server[] = [];
    try {
      for (let i = 0; i < n; i++) {
        const s = createServer();
        await new Promise<void>((ok, fail) => s.once('error', fail).listen(base + i, '127.0.0.1', () => ok()));
        held.push(s);
      }
      return base;
    } catch {
      // taken: try another
    } finally {
      await Promise.all(held.map((s) => new Promise((r) => s.close(r))));
    }
  }
  throw new Error('no free ports');
}

const modelBytes = (run: string) => readFileSync(join(dir, run, 'model.safetensors'));
const lastJson = (stdout: string) => JSON.parse(stdout.trim().split('\n').pop()!);

describe('loom launch on two nodes of one machine', () => {
  it('node 0 by flags, node 1 by torchrun variables; 2 servers, 3 workers: bitwise equal to 3 local threads, same metrics', async () => {
    const port = await freePorts(3);
    const common = ['--servers', '2', '--slots', '1,2', '--host', '127.0.0.1'];
    const [master, node] = await Promise.all([
      launch(['--nodes', '2', '--node-rank', '0', '--master', `127.0.0.1:${port}`, ...common, '--', ...TRAIN, '--out', 'launched', '--json']),
      launch([...common, '--', ...TRAIN, '--out', 'elsewhere'], { MASTER_ADDR: '127.0.0.1', MASTER_PORT: String(port), RANK: '1', WORLD_SIZE: '2' }),
    ]);
    expect(master.code, master.stderr).toBe(0);
    expect(node.code, node.stderr).toBe(0);
    expect(node.stderr).toContain('node 1 of 2 (RANK of WORLD_SIZE), master 127.0.0.1:' + port + ' (MASTER_ADDR, MASTER_PORT)');
    expect(master.stderr).toMatch(/node 1 joined from 127\.0\.0\.1/);

    const local = loom('train', ...TRAIN, '--workers', '3', '--out', 'threads', '--json');
    expect(local.code, local.stderr).toBe(0);
    expect(modelBytes('launched').equals(modelBytes('threads'))).toBe(true);
    const [l, t] = [lastJson(master.stdout), lastJson(local.stdout)];
    expect(l.testAccuracy).toBe(t.testAccuracy);
    expect(l.validAccuracy).toBe(t.validAccuracy);
    expect(l.trainLoss).toBeCloseTo(t.trainLoss, 6);
    expect(l.testAccuracy).toBeGreaterThan(0.6);
    expect(l.workers.map((w: { rank: number }) => w.rank)).toEqual([0, 1, 2]);
    // The run directory is the same as `loom train` writes, and `loom eval` reads it.
    expect(loom('eval', '--run', 'launched').code).toBe(0);
    await settle();
    expect(leftovers()).toEqual([]);
  });
});

describe('deploy/slurm.sbatch', () => {
  it('runs loom launch on every task of a stand-in srun, which sets the variables srun sets', async () => {
    const port = await freePorts(3); // the master's port and, with LOOM_SERVERS=2, the next two for the servers
    const bin = join(dir, 'bin');
    mkdirSync(bin, { recursive: true });
    writeFileSync(join(bin, 'srun'), [
      '#!/bin/bash',
      '# A stand-in for srun: 2 tasks on this machine, each with the variables srun gives it.',
      'while [[ $1 == --* ]]; do shift; done',
      'pids=()',
      "for i in 0 1; do SLURM_PROCID=$i SLURM_NTASKS=2 SLURM_NODELIST='127.0.0.[1-2]' \"$@\" & pids+=($!); done",
      'rc=0; for p in "${pids[@]}"; do wait "$p" || rc=1; done; exit $rc',
      '',
    ].join('\n'));
    chmodSync(join(bin, 'srun'), 0o755);
    const r = spawnSync('bash', [join(ROOT, 'deploy', 'slurm.sbatch'), ...TRAIN, '--out', join(dir, 'slurm'), '--json'], {
      encoding: 'utf8', timeout: 60_000,
      env: { ...env, PATH: `${bin}:${dirname(process.execPath)}:${process.env.PATH}`, SLURM_SUBMIT_DIR: ROOT, SLURM_JOB_ID: '1', MASTER_PORT: String(port), LOOM_SERVERS: '2' },
    });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toContain(`node 1 of 2 (SLURM_PROCID of SLURM_NTASKS), master 127.0.0.1:${port} (SLURM_NODELIST, MASTER_PORT)`);
    const local = loom('train', ...TRAIN, '--workers', '2', '--out', 'threads2');
    expect(local.code, local.stderr).toBe(0);
    expect(modelBytes('slurm').equals(modelBytes('threads2'))).toBe(true);
    await settle();
    expect(leftovers()).toEqual([]);
  });
});

describe('bad input: a clear error, and no process left running', () => {
  it('a node whose command differs from the master is refused, and the run fails at once on both', async () => {
    const port = await freePorts(2);
    const at = ['--nodes', '2', '--master', `127.0.0.1:${port}`, '--host', '127.0.0.1'];
    const [master, node] = await Promise.all([
      launch([...at, '--node-rank', '0', '--', ...TRAIN]),
      launch([...at, '--node-rank', '1', '--', ...TRAIN, '--epochs', '3']),
    ]);
    expect(master.code).toBe(1);
    expect(master.stderr).toContain('node 1 runs another command than the master');
    expect(node.code).toBe(1);
    expect(node.stderr).toContain(`the master at 127.0.0.1:${port} refused node 1: node 1 runs another command than the master`);
    await settle();
    expect(leftovers()).toEqual([]);
  });

  it('the master port in use, or a server port in use', async () => {
    const port = await freePorts(3);
    const blocker = createServer();
    await new Promise<void>((r) => blocker.listen(port, '127.0.0.1', () => r()));
    const r1 = await launch(['--master', `127.0.0.1:${port}`, '--host', '127.0.0.1', '--', ...TRAIN]);
    expect(r1.code).toBe(1);
    expect(r1.stderr).toContain(`cannot listen on 127.0.0.1:${port} for the rendezvous: the port is in use (port from --master)`);
    blocker.close();
    const blocker2 = createServer();
    await new Promise<void>((r) => blocker2.listen(port + 2, '127.0.0.1', () => r()));
    const r2 = await launch(['--master', `127.0.0.1:${port}`, '--host', '127.0.0.1', '--servers', '2', '--', ...TRAIN]);
    blocker2.close();
    expect(r2.code).toBe(1);
    expect(r2.stderr).toMatch(new RegExp(`server shard 1/2 \\(pid \\d+, 127\\.0\\.0\\.1:${port + 2}\\) failed \\(exit code 1\\): .*EADDRINUSE.*; the run stopped\\. loom launch keeps no checkpoints yet: start the run again`));
    await settle();
    expect(leftovers()).toEqual([]);
  });

  it('a node whose worker fails stops the whole run, naming the node and the worker', async () => {
    const port = await freePorts(2);
    const elsewhere = join(dir, 'node1');
    mkdirSync(elsewhere, { recursive: true });
    // The same command, but on node 1 the relative data path names no file.
    const train = ['--dataset', 'csv:data.csv', ...TRAIN.slice(2)];
    const at = ['--nodes', '2', '--master', `127.0.0.1:${port}`, '--host', '127.0.0.1'];
    const [master, node] = await Promise.all([launch([...at, '--node-rank', '0', '--', ...train]), launch([...at, '--node-rank', '1', '--', ...train], {}, elsewhere)]);
    expect(node.code).toBe(1);
    expect(node.stderr).toMatch(/worker 1 \(node 1, pid \d+\) failed \(exit code \d\): --dataset csv:data\.csv: data\.csv does not exist; the run stopped/);
    expect(master.code).toBe(1);
    expect(master.stderr).toMatch(/node 1 failed( in epoch 1 of \d)?: worker 1 \(node 1, pid \d+\) failed \(exit code \d\): --dataset csv:data\.csv: data\.csv does not exist; the run stopped/);
    await settle();
    expect(leftovers()).toEqual([]);
  });

  it('a master that never answers, a node that never joins', async () => {
    const port = await freePorts(2);
    const node = await launch(['--nodes', '2', '--node-rank', '1', '--master', `127.0.0.1:${port}`, '--join-timeout', '1', '--', ...TRAIN]);
    expect(node.code).toBe(1);
    expect(node.stderr).toContain(`the master at 127.0.0.1:${port} did not answer within 1 s (last: ECONNREFUSED; --join-timeout)`);
    const master = await launch(['--nodes', '3', '--node-rank', '0', '--master', `127.0.0.1:${port}`, '--host', '127.0.0.1', '--join-timeout', '1', '--', ...TRAIN]);
    expect(master.code).toBe(1);
    // A timeout ends the run like a death: one line, who, what, and what to do next.
    expect(master.stderr.trim().split('\n').at(-1)).toBe('loom launch: nodes 1, 2 did not join within 1 s (--join-timeout); the run stopped. loom launch keeps no checkpoints yet: start the run again, with the same loom launch on every node');
    await settle();
    expect(leftovers()).toEqual([]);
  });

  it('usage errors: train flags launch decides, a bad hostfile line, rendezvous variables', async () => {
    const r1 = await launch(['--', ...TRAIN, '--workers', '2']);
    expect([r1.code, r1.stderr.trim()]).toEqual([2, 'loom launch: --workers after -- is decided by launch: use --workers-per-node or --slots']);
    writeFileSync(join(dir, 'hosts'), '# two hosts\n127.0.0.1 slots=1\n127.0.0.2 slots=two\n');
    const r2 = await launch(['--hostfile', 'hosts', '--', ...TRAIN]);
    expect([r2.code, r2.stderr.trim()]).toEqual([2, "loom launch: hosts:3: slots must be a whole number 1 … 1024, got 'two'"]);
    const r3 = await launch(['--', ...TRAIN], { SLURM_PROCID: '4', SLURM_NTASKS: '4', SLURM_NODELIST: 'n[1-4]' });
    expect([r3.code, r3.stderr.trim()]).toEqual([2, 'loom launch: node rank 4 (from SLURM_PROCID) must be less than the number of nodes, 4 (from SLURM_NTASKS)']);
    const r4 = await launch(['--hostfile', 'hosts', '--nodes', '2', '--', ...TRAIN]);
    expect(r4.code).toBe(2);
    expect(r4.stderr).toContain('--nodes does not go with --hostfile');
    await settle();
    expect(leftovers()).toEqual([]);
  });
});

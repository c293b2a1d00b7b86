// The fault-injection soak (issue 16): a sync cluster of `loom serve` and `loom worker` processes —
// 2 server shards and 3 workers, each on a host of its own (network namespaces, ./netns.js) —
// trains with checkpoints while this driver
//
//  - kill -9s a random worker, speaks as its dead rank (./injector.js: replayed old steps, NaN
//    gradients …), and restarts it, which the servers readmit — again and again;
//  - kill -9s a server shard, stops the other (SIGTERM: it saves and exits 0, as an operator
//    would), and restarts both with `--resume DIR`, from the latest checkpoint both completed; the
//    workers reconnect by themselves and rewind to it;
//  - runs the injector's hostile client at a fixed rate of frames per second throughout;
//  - throttles a worker's link for a while (netem delay and loss, or tbf's rate where the kernel
//    has no netem; said in the report);
//
// and then checks what the system guarantees: the run finishes; its test accuracy is within 1
// point of an undisturbed run of the same config; every example was trained in every epoch, as the
// servers' ledgers count it (see `membership` for what a restart rewinds); no server exited but
// the ones killed; every bad frame got its answer; the servers' resident memory stays bounded.
//
// test/soak.test.ts runs it at CI length (`CI_SOAK`), bench/soak.js for --minutes N. Each
// process's output is kept in DIR/logs; SOAK_DEBUG=1 also reports stats polls slower than 300 ms.
import { spawn, spawnSync } from 'node:child_process';
import { createWriteStream, cpSync, mkdirSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { randomBytes } from 'node:crypto';
import WebSocket from 'ws';
import { PROTOCOL_VERSION, PsClient, decodeFrame, encodeFrame, latestCheckpoint } from '@loom/parameter-server';
import { Random, flattenParameters, mlp, saveModel } from '@loom/tensor-core';
import { SOAK_MODEL, writeSoakCsv } from './dataset.js';
import { Injector, expectedCounts } from './injector.js';
import { makeHosts, whyNoNetns } from './netns.js';

export const MAIN = fileURLToPath(new URL('../../apps/cli/dist/main.js', import.meta.url));

/** The CI length: 16 epochs of 300 steps (about a minute on the 2-core machine), one server restart. */
export const CI_SOAK = {
  epochs: 16,
  /** Injected frames per second. */
  rate: 1000,
  /**
   * The faults, each when the run reaches that fraction of its updates (the run's pace on a shared
   * machine varies fourfold, so they follow its progress, not the clock); one that comes due while
   * the one before is still under way (a worker's restart takes 1–2 s) waits for it.
   */
  faults: [
    { at: 0.06, kind: 'worker' }, { at: 0.18, kind: 'worker' }, { at: 0.25, kind: 'throttle' }, { at: 0.3, kind: 'worker' },
    { at: 0.45, kind: 'server' }, { at: 0.55, kind: 'worker' }, { at: 0.65, kind: 'worker' },
  ],
  throttleMs: 6000,
  /**
   * No fault after this fraction of the run's updates: a worker killed in the very last step leaves
   * rows no step can train, and one restarted must be back before the run ends.
   */
  quietAfter: 0.75,
  /** Fail when the run has not finished after this long, ms. */
  deadlineMs: 150_000,
};

const TRAIN = { seed: 5, batchSize: 32, lr: 0.003, optimizer: 'adam', workers: 3, servers: 2, checkpointEvery: 100 };
const SIZES = SOAK_MODEL.slice(4).split(',').map(Number);
const P = flattenParameters(mlp(SIZES, { init: 'none', rng: new Random(0) })).size;

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * `p`, or a rejection naming `what` after `ms`: every wait of the driver is bounded, so that a hang
 * (a reply that never comes, a process that does not exit) ends the soak with a report saying where.
 */
function within(p, ms, what) {
  let timer;
  const late = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${typeof what === 'function' ? what() : what}: nothing after ${ms / 1000} s`)), ms);
  });
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}
const pick = (xs) => xs[Math.floor(Math.random() * xs.length)];

/** A child process, its output as lines (also written to `log`), and waiting for a line. */
class Proc {
  constructor(name, argv, { env, cwd, logDir }) {
    this.name = name;
    this.lines = [];
    this.watchers = [];
    this.proc = spawn(argv[0], argv.slice(1), { cwd, env, stdio: ['pipe', 'pipe', 'pipe'] });
    this.pid = this.proc.pid;
    const file = createWriteStream(join(logDir, `${name}.log`));
    const on = (l) => {
      this.lines.push(l);
      file.write(l + '\n');
      for (const w of [...this.watchers]) w();
    };
    createInterface({ input: this.proc.stdout }).on('line', on);
    createInterface({ input: this.proc.stderr }).on('line', on);
    // 'close', not 'exit': once the process has exited AND its output has been read.
    this.exited = new Promise((r) => this.proc.once('close', (code, signal) => {
      this.exit = { code, signal };
      setTimeout(() => file.end(), 50);
      for (const w of [...this.watchers]) w();
      r(this.exit);
    }));
  }

  get alive() {
    return this.exit === undefined;
  }

  /** The first line at index ≥ `from` matching `re`; rejects on exit or after `timeoutMs`. */
  line(re, { from = 0, timeoutMs = 30_000 } = {}) {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => done(new Error(`${this.name}: no line matching ${re} within ${timeoutMs} ms; last lines:\n${this.lines.slice(-8).join('\n')}`)), timeoutMs);
      const check = () => {
        for (let i = from; i < this.lines.length; i++) {
          const m = re.exec(this.lines[i]);
          if (m) return done(null, m);
        }
        if (!this.alive) done(new Error(`${this.name} exited (${JSON.stringify(this.exit)}) before printing ${re}; last lines:\n${this.lines.slice(-8).join('\n')}`));
      };
      const done = (e, m) => {
        clearTimeout(timer);
        this.watchers = this.watchers.filter((w) => w !== check);
        e ? reject(e) : resolve(m);
      };
      this.watchers.push(check);
      check();
    });
  }
}

/** A process's state and what it waits in (for a worker that hangs). */
function procState(pid) {
  try {
    const st = readFileSync(`/proc/${pid}/status`, 'utf8');
    return `${/State:\s+(.*)/.exec(st)?.[1]}, waiting in ${readFileSync(`/proc/${pid}/wchan`, 'utf8')}`;
  } catch (e) {
    return `gone (${e.code})`;
  }
}

/** Runs `loom …` to its end; resolves with its exit code and output. */
function loom(args, { cwd, env }) {
  const r = spawnSync(process.execPath, [MAIN, ...args], { cwd, env, encoding: 'utf8', timeout: 120_000 });
  if (r.status !== 0) throw new Error(`loom ${args.join(' ')} exited with ${r.status}: ${r.stderr}`);
  return r.stdout;
}

/** Rows of steps [a, b) of an epoch of `perEpoch` steps over `rows` rows (the last batch may be short). */
function rowsOfSteps(a, b, { perEpoch, rows, batchSize }) {
  let n = 0;
  for (let s = a; s < b; s++) n += s % perEpoch === perEpoch - 1 ? rows - (perEpoch - 1) * batchSize : batchSize;
  return n;
}

/**
 * Runs the soak; resolves with its report (see `verdicts` for what is checked, `printReport`).
 * `o`: CI_SOAK's fields; `dir` (default a new temporary directory); `log(line)` for progress;
 * `loopback` to skip network namespaces (else used when root and `ip` are there).
 */
export async function runSoak(options = {}) {
  const o = { ...CI_SOAK, ...options };
  const log = o.log ?? ((l) => console.log(l));
  const dir = o.dir ?? mkdtempSync(join(tmpdir(), 'loom-soak-'));
  const logDir = join(dir, 'logs');
  mkdirSync(logDir, { recursive: true });
  const t0 = performance.now();
  const elapsed = () => (performance.now() - t0) / 1000;
  const say = (l) => log(`[${elapsed().toFixed(1).padStart(5)} s] ${l}`);

  const token = randomBytes(24).toString('base64url');
  const env = { ...process.env, HOME: dir, LOOM_TOKEN: token, LOOM_EXIT_WITH_PARENT: '1' };
  delete env.LOOM_DEBUG;
  const csv = join(dir, 'soak.csv');
  writeSoakCsv(csv);
  const data = ['--dataset', `csv:${csv}`, '--label', 'label'];
  const model = ['--model', SOAK_MODEL, '--seed', String(TRAIN.seed)];
  const trainFlags = [...data, ...model, '--batch-size', String(TRAIN.batchSize), '--epochs', String(o.epochs)];

  // ---- the undisturbed run ---------------------------------------------------------------------
  // 3 sync worker threads: the same updates, bit for bit, as 2 server and 3 worker processes
  // (test/launch-netns.test.ts checks that equality), in a fraction of the time.
  say(`undisturbed run: loom train ${SOAK_MODEL}, ${o.epochs} epochs, --workers 3 (sync threads: the updates of 2 servers and 3 workers, bit for bit)`);
  const refOut = loom(['train', ...trainFlags, '--optimizer', TRAIN.optimizer, '--lr', String(TRAIN.lr), '--workers', String(TRAIN.workers), '--out', 'undisturbed', '--json'], { cwd: dir, env });
  const rows = Number(/: (\d+) train \//.exec(refOut)?.[1]);
  const perEpoch = Math.ceil(rows / TRAIN.batchSize);
  const total = o.epochs * perEpoch;
  const schedule = { perEpoch, rows, batchSize: TRAIN.batchSize };
  const evalRun = (run) => JSON.parse(loom(['eval', '--run', run, '--json'], { cwd: dir, env }).trim().split('\n').at(-1));
  const undisturbed = evalRun('undisturbed');
  say(`undisturbed: test accuracy ${(100 * undisturbed.accuracy).toFixed(2)}% (${rows} train rows, ${perEpoch} steps per epoch, ${total} updates)`);

  // ---- hosts -----------------------------------------------------------------------------------
  const why = o.loopback ? 'asked for loopback' : whyNoNetns();
  if (why !== null && process.env.CI === 'true' && !o.loopback) throw new Error(`soak: network namespaces are needed under CI: ${why} (.ci/run installs iproute2 and runs as root)`);
  const hosts = makeHosts({ servers: TRAIN.servers, workers: TRAIN.workers, loopback: why !== null });
  const report = {
    dir, hosts: why === null ? 'network namespaces: a host per server and per worker, joined by a bridge' : `loopback (127.0.0.1): network namespaces unavailable: ${why}`,
    throttle: { how: hosts.throttle.how, windows: [] }, epochs: o.epochs, perEpoch, rows, total, undisturbed: undisturbed.accuracy,
    workerKills: [], serverKills: [], servers: [], workers: [], injected: null, membership: [], logLines: null, serverCounts: null, failures: [],
  };
  say(`hosts: ${report.hosts}; throttling: ${hosts.throttle.how}`);

  const ckpt = join(dir, 'soak');
  const servers = []; // current incarnation, by shard
  const serverLog = []; // every server process ever started
  const workers = []; // current process, by rank
  const workerLog = [];
  let incarnation = 0;
  const ports = Array.from({ length: TRAIN.servers }, (_, i) => (hosts.kind === 'netns' ? 7070 : 0));
  const urls = [];

  const startServer = async (shard, resume) => {
    const argv = [
      process.execPath, MAIN, 'serve', '--host', hosts.addr(`s${shard}`), '--port', String(ports[shard]), '--shard', `${shard}/${TRAIN.servers}`,
      '--workers', String(TRAIN.workers), ...model, '--optimizer', TRAIN.optimizer, '--lr', String(TRAIN.lr),
      '--checkpoint', ckpt, '--checkpoint-every', String(TRAIN.checkpointEvery), ...(resume ? ['--resume', ckpt] : []),
    ];
    const p = new Proc(`server${shard}.${incarnation}`, hosts.command(`s${shard}`, argv), { env, cwd: dir, logDir });
    Object.assign(p, { shard, incarnation, rss: [], held: new Map() });
    servers[shard] = p;
    serverLog.push(p);
    const [, url, port] = await p.line(/listening on (ws:\/\/\S+:(\d+))$/, { timeoutMs: 20_000 });
    p.listening = true;
    ports[shard] = Number(port);
    urls[shard] = url;
    return p;
  };
  const startWorker = (rank) => {
    const argv = [process.execPath, MAIN, 'worker', '--connect', urls.join(','), '--rank', String(rank), '--workers', String(TRAIN.workers), ...trainFlags, '--json', '--retry-for', '60'];
    const p = new Proc(`worker${rank}.${workerLog.filter((w) => w.rank === rank).length}`, hosts.command(`w${rank}`, argv), { env, cwd: dir, logDir });
    Object.assign(p, { rank, started: performance.now() });
    workers[rank] = p;
    workerLog.push(p);
    return p;
  };

  // Which worker ranks each server holds a connection of, from its log (for the injector's 'duplicate rank').
  const heldRanks = (shard) => {
    const s = servers[shard];
    if (!s?.alive) return [];
    s.held.clear();
    for (const l of s.lines) {
      let m = /worker (\d+) connected from (\S+)$/.exec(l);
      if (m) s.held.set(Number(m[1]), m[2]);
      m = /worker (\d+) \((\S+)\) (disconnected|sent nothing)/.exec(l);
      if (m && s.held.get(Number(m[1])) === m[2]) s.held.delete(Number(m[1]));
    }
    // Only workers that are up and whose connection is theirs (not the injector's, in a dead rank's window).
    // Not near the end either: a worker that finishes closes its connection on its own, and a rank
    // freed a moment before the probe would be taken by it.
    if (progress > total - 50) return [];
    const last = `"epoch":${o.epochs},`;
    return [...s.held.keys()].filter((r) => workers[r]?.alive && !workers[r].dying && performance.now() - workers[r].started > 3000 && !workers[r].lines.some((l) => l.includes(last)));
  };

  let observer = null;
  let progress = 0;
  /** (seconds, updates applied) as polled: the run's speed before and during a throttle. */
  const history = [];
  const stepsPerSec = (from, to) => {
    const xs = history.filter(([t]) => t >= from && t <= to);
    return xs.length >= 2 ? (xs.at(-1)[1] - xs[0][1]) / (xs.at(-1)[0] - xs[0][0]) : null;
  };
  /** Per incarnation and shard, the last ledger record seen of each epoch. */
  const ledgers = [];
  const stats = []; // per incarnation and shard: the last stats seen
  const record = (inc, shard, st) => {
    ((stats[inc] ??= [])[shard] = st);
    const book = ((ledgers[inc] ??= [])[shard] ??= new Map());
    for (const t of st.trained ?? []) book.set(t.epoch, t);
  };
  const connectObserver = async () => {
    observer = await within(PsClient.connect(urls, { token, role: 'observer', workers: TRAIN.workers, size: P, heartbeatMs: 0 }), 20_000, `the observer connecting to ${urls.join(', ')}`);
  };
  let stopped = false;
  const poller = (async () => {
    while (!stopped) {
      await sleep(200);
      if (observer === null) continue;
      try {
        const t = performance.now();
        const sts = await within(observer.stats(), 10_000, 'the observer\'s stats poll');
        if (process.env.SOAK_DEBUG && performance.now() - t > 300) say(`poll took ${(performance.now() - t).toFixed(0)} ms (applied ${sts.map((x) => x.applied)})`);
        sts.forEach((st, shard) => record(incarnation, shard, st));
        progress = sts[0].applied;
        history.push([elapsed(), progress]);
      } catch {
        // a server went away: the restart reconnects
      }
    }
  })();
  const sampler = setInterval(() => {
    for (const s of servers) {
      if (!s?.alive || !s.listening) continue; // (a process still starting is not the server's memory)
      try {
        const kb = Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${s.pid}/status`, 'utf8'))?.[1]);
        if (kb > 0) s.rss.push([elapsed(), kb]);
      } catch {
        // it exited between the check and the read
      }
    }
  }, 250);

  const injector = new Injector({
    urls, token, workers: TRAIN.workers, size: P, rate: o.rate, heldRanks,
  });

  // ---- the faults ------------------------------------------------------------------------------
  /** kill -9 of a random worker; the injector speaks as its dead rank; restarted, it is readmitted. */
  const killWorker = async () => {
    const w = pick(workers.filter((x) => x.alive));
    const rank = w.rank;
    const marks = servers.map((s) => s.lines.length);
    w.dying = true;
    const at = progress;
    w.proc.kill('SIGKILL');
    await within(w.exited, 10_000, `${w.name} (pid ${w.pid}) exiting after kill -9`);
    w.killedByUs = true;
    const dropped = await Promise.all(servers.map((s, i) => s.line(new RegExp(`worker ${rank} dropped at step (\\d+)`), { from: marks[i], timeoutMs: 35_000 })));
    const kill = { rank, pid: w.pid, progress: at, droppedAt: dropped.map((m) => Number(m[1])) };
    if (progress > 60) {
      const shard = Math.floor(Math.random() * servers.length);
      const r = await within(injector.deadRankSession(shard, rank), 30_000, `the injector speaking as dead rank ${rank} to shard ${shard}`);
      kill.deadRank = { shard, welcomed: r.welcome };
    }
    await sleep(300);
    const again = startWorker(rank);
    const readmitted = await Promise.race([
      Promise.all(servers.map((s, i) => s.line(new RegExp(`worker ${rank} readmitted from step (\\d+)`), { from: marks[i], timeoutMs: 60_000 }))),
      again.exited.then((x) => Promise.reject(new Error(`worker ${rank}, restarted, exited (${JSON.stringify(x)}) before the servers readmitted it: ${again.lines.slice(-3).join(' | ')}`))),
    ]);
    kill.readmittedAt = readmitted.map((m) => Number(m[1]));
    kill.newPid = again.pid;
    report.workerKills.push(kill);
    say(`worker ${rank} (pid ${w.pid}) kill -9ed at update ~${at}: dropped at step ${kill.droppedAt.join('/')}; restarted (pid ${again.pid}), readmitted from step ${kill.readmittedAt.join('/')}`);
  };

  /** kill -9 of a random shard; the other stopped; both restarted with --resume from the latest complete checkpoint. */
  const restartServers = async (over) => {
    // The workers are stopped (SIGSTOP, far within the servers' 30 s heartbeat timeout) while the
    // injector's sessions settle, which takes up to 8 s: on a quiet machine the run would otherwise
    // train to its end meanwhile, and the kill would come too late to be made.
    const frozen = workers.filter((w) => w.alive);
    for (const w of frozen) w.proc.kill('SIGSTOP');
    const thaw = () => {
      for (const w of frozen) if (w.alive) w.proc.kill('SIGCONT');
    };
    let before;
    try {
      await within(injector.pause(), 20_000, 'the injector pausing');
      before = await within(observer.stats(), 10_000, 'stats before a server kill').catch(() => null); // the killed one's counts die with it: kept here (the injector is quiet)
    } catch (e) {
      thaw();
      throw e;
    }
    const victim = Math.floor(Math.random() * servers.length);
    before?.forEach((st, shard) => record(incarnation, shard, st));
    if (before) progress = before[0].applied;
    if (over()) {
      thaw();
      say(`server fault skipped: the run is at update ${progress} of ${total}`);
      return injector.start();
    }
    const marks = workers.map((w) => w.lines.length);
    const s = servers[victim];
    const at = before?.[victim]?.applied ?? progress;
    s.proc.kill('SIGKILL');
    thaw();
    await within(s.exited, 10_000, `${s.name} (pid ${s.pid}) exiting after kill -9`);
    s.killedByUs = true;
    const observerLost = observer.close().catch(() => {});
    observer = null;
    await within(observerLost, 5000, 'the observer closing').catch(() => {});
    // What a worker says when a server dies: lost the servers (…); reconnecting.
    const lost = await Promise.all(workers.map((w, r) => w.line(/lost the servers \((.*)\); reconnecting$/, { from: marks[r], timeoutMs: 20_000 })));
    // The survivor's ledger as this incarnation leaves it (every worker has left it), then it is stopped as an operator would: SIGTERM saves and exits 0.
    const others = servers.filter((x) => x !== s);
    for (const other of others) {
      await sleep(300); // (the workers' closes are handled)
      record(incarnation, other.shard, await within(statsOf(urls[other.shard], token), 10_000, `stats of ${other.name}`));
      other.proc.kill('SIGTERM');
      other.stoppedByUs = true;
      await within(other.exited, 20_000, () => `${other.name} (pid ${other.pid}) exiting after SIGTERM (${procState(other.pid)}; last lines: ${other.lines.slice(-4).join(' | ')})`);
    }
    const resumeStep = latestCheckpoint(ckpt, TRAIN.servers);
    const ended = { victim, survivors: others.map((x) => x.shard), progress: at, appliedAtStop: Math.max(...others.map((x) => stats[incarnation][x.shard].applied)), resumeStep, workerSaid: lost[0][0], pid: s.pid };
    incarnation++;
    ended.incarnation = incarnation;
    const restarted = await Promise.all(Array.from({ length: TRAIN.servers }, (_, shard) => startServer(shard, true)));
    ended.resumedFrom = await Promise.all(restarted.map((p) => p.line(/resumed from \S+: (\d+) updates applied/).then((m) => Number(m[1]))));
    progress = resumeStep ?? 0; // (the poll of the first servers is stale: the run is back there)
    const rejoined = await Promise.all(workers.map((w, r) => w.line(/rejoined at step (\d+) \(epoch (\d+), batch (\d+)\)/, { from: marks[r], timeoutMs: 90_000 })));
    ended.rejoined = rejoined.map((m) => m[0]);
    ended.workerLines = workers[0].lines.slice(marks[0]).filter((l) => / \[0\]: /.test(l));
    await connectObserver();
    report.serverKills.push(ended);
    say(`server shard ${victim}/${TRAIN.servers} (pid ${s.pid}) kill -9ed at update ~${at}; shard ${ended.survivors.join(',')} stopped at ${ended.appliedAtStop}; both resumed from checkpoint ${resumeStep}; the workers ${ended.rejoined[0]}`);
    injector.start();
  };

  // ---- the run ---------------------------------------------------------------------------------
  try {
    for (let shard = 0; shard < TRAIN.servers; shard++) await startServer(shard, false);
    for (let rank = 0; rank < TRAIN.workers; rank++) startWorker(rank);
    await connectObserver();
    await Promise.all(workers.map((w) => Promise.all(servers.map((s) => s.line(new RegExp(`worker ${w.rank} connected from`), { timeoutMs: 30_000 }))).catch((e) => {
      throw new Error(`${e.message}\n${w.name} (pid ${w.pid}): ${procState(w.pid)}; its output: ${w.lines.join(' | ')}`);
    })));
    injector.start();
    say(`cluster up: servers ${urls.join(', ')}; 3 workers; injecting ${o.rate} frames/s`);
    let throttled = null;
    const unthrottle = () => {
      if (throttled === null) return;
      clearTimeout(throttled.timer);
      hosts.throttle.off(throttled.host);
      Object.assign(throttled.window, { offAt: progress, seconds: elapsed() - throttled.window.t, stepsPerSec: stepsPerSec(throttled.window.t, elapsed()) });
      throttled = null;
    };
    const throttle = () => {
      if (throttled !== null || hosts.throttle.how.startsWith('none')) return;
      const host = `w${1 + Math.floor(Math.random() * (TRAIN.workers - 1))}`;
      const window = { host, onAt: progress, t: elapsed(), stepsPerSecBefore: stepsPerSec(elapsed() - 5, elapsed()) };
      hosts.throttle.on(host);
      report.throttle.windows.push(window);
      throttled = { host, window, timer: setTimeout(() => unthrottle(), o.throttleMs) };
      say(`throttling ${host}'s link (${hosts.throttle.how.split(' on ')[0]}) for ${o.throttleMs / 1000} s`);
    };
    const deadline = performance.now() + o.deadlineMs;
    // A server restart brings no new process to readmit: it may come later than a worker's kill.
    const over = (kind = 'worker') => workers.some((w) => !w.alive && !w.dying) || progress >= (kind === 'server' ? 0.9 : o.quietAfter) * total || performance.now() > deadline;
    for (const f of [...o.faults].sort((a, b) => a.at - b.at)) {
      while (progress < f.at * total && !over(f.kind)) await sleep(50);
      if (over(f.kind)) {
        say(`${f.kind} fault due at ${Math.round(f.at * total)} skipped: the run is at update ${progress} of ${total}`);
        continue;
      }
      if (f.kind === 'throttle') throttle();
      else if (f.kind === 'server') await restartServers(() => over('server'));
      else await killWorker();
    }
    unthrottle();
    say(`faults over at update ${progress} of ${total}; waiting for the run to end`);
    // The faults are over: the workers now are the run's last; it ends when they do.
    const ends = await Promise.race([Promise.all(workers.map((w) => w.exited)), sleep(Math.max(10_000, deadline - performance.now() + 30_000)).then(() => null)]);
    if (ends === null) throw new Error(`the run did not finish: update ${progress} of ${total} after ${elapsed().toFixed(0)} s`);
    await within(injector.pause(), 20_000, 'the injector pausing');
    report.injected = injector.tally;

    // ---- after the run ---------------------------------------------------------------------------
    const final = await within(observer.stats(), 10_000, 'the final stats');
    final.forEach((st, shard) => record(incarnation, shard, st));
    const params = new Float32Array(P);
    await within(observer.pull(0, params), 10_000, 'the final parameters');
    await within(observer.shutdown(true), 10_000, 'the shutdown request').catch(() => {});
    await within(observer.close(), 5000, 'the observer closing').catch(() => {});
    observer = null;
    for (const s of servers) await Promise.race([s.exited, sleep(10_000)]);
    report.applied = final.map((st) => st.applied);
    const net = mlp(SIZES, { init: 'none', rng: new Random(0) });
    flattenParameters(net, { params });
    mkdirSync(join(dir, 'soaked'), { recursive: true });
    cpSync(join(dir, 'undisturbed', 'config.json'), join(dir, 'soaked', 'config.json'));
    saveModel(join(dir, 'soaked', 'model.safetensors'), net, { format: 'loom-run', model: SOAK_MODEL });
    report.soaked = evalRun('soaked').accuracy;
    say(`soaked: test accuracy ${(100 * report.soaked).toFixed(2)}% (undisturbed ${(100 * undisturbed.accuracy).toFixed(2)}%)`);
  } catch (e) {
    report.failures.push(e.message);
  } finally {
    stopped = true;
    clearInterval(sampler);
    await within(injector.pause(), 20_000, 'the injector pausing').catch((e) => report.failures.push(e.message));
    report.injected ??= injector.tally;
    if (observer !== null) await within(observer.close(), 5000, 'the observer closing').catch(() => {});
    for (const p of [...serverLog, ...workerLog]) if (p.alive) p.proc.kill('SIGKILL');
    await Promise.all([...serverLog, ...workerLog].map((p) => Promise.race([p.exited, sleep(5000)])));
    await within(poller, 15_000, 'the stats poller ending').catch((e) => report.failures.push(e.message));
    hosts.tearDown();
  }
  report.seconds = elapsed();
  report.servers = serverLog.map((s) => ({
    name: s.name, shard: s.shard, incarnation: s.incarnation, pid: s.pid, exit: s.exit, killedByUs: !!s.killedByUs, stoppedByUs: !!s.stoppedByUs,
    seconds: s.rss.length ? s.rss.at(-1)[0] - s.rss[0][0] : 0,
    rss: s.rss.length ? {
      minKiB: Math.min(...s.rss.map((r) => r[1])), maxKiB: Math.max(...s.rss.map((r) => r[1])), samples: s.rss.length, firstKiB: s.rss[0][1], lastKiB: s.rss.at(-1)[1],
      // The largest sample of each minute it lived: a leak climbs from minute to minute.
      perMinuteMaxKiB: s.rss.reduce((acc, [t, kb]) => ((acc[Math.floor((t - s.rss[0][0]) / 60)] = Math.max(acc[Math.floor((t - s.rss[0][0]) / 60)] ?? 0, kb)), acc), []),
    } : null,
    lines: s.lines,
  }));
  report.workers = workerLog.map((w) => ({ name: w.name, rank: w.rank, pid: w.pid, exit: w.exit, killedByUs: !!w.killedByUs, done: w.lines.map((l) => /"event":"done".*"epochs":(\d+)/.exec(l)).find(Boolean)?.[1] }));
  report.serverCounts = countServerSide(stats);
  report.expectedCounts = expectedCounts(report.injected);
  report.membership = membership(ledgers, report.serverKills, { ...schedule, epochs: o.epochs, survivorOf: (k) => report.serverKills[k]?.survivors[0] ?? 0 });
  report.logLines = classifyLogLines(serverLog, report.injected);
  return report;
}

/** One server's `stats`, asked over a connection of its own (PsClient wants every shard of a run). */
async function statsOf(url, token) {
  const ws = new WebSocket(url);
  try {
    await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
    const replies = [];
    const next = () => new Promise((resolve, reject) => {
      ws.once('message', (d) => resolve(decodeFrame(d).header));
      ws.once('close', () => reject(new Error(`${url} closed the connection`)));
    });
    let reply = next();
    ws.send(encodeFrame({ type: 'hello', v: PROTOCOL_VERSION, token, role: 'observer', rank: -1, workers: TRAIN.workers, size: P }));
    replies.push(await reply);
    reply = next();
    ws.send(encodeFrame({ type: 'stats', id: 1 }));
    const r = await reply;
    if (r.type !== 'stats') throw new Error(`${url} answered stats with ${JSON.stringify(r)}`);
    return r.stats;
  } finally {
    ws.close();
  }
}

/** What the servers counted: refusals by kind and error replies by code, summed over every server process (the killed one's up to the kill). */
function countServerSide(stats) {
  const refused = {}, errors = {};
  for (const inc of stats) for (const st of inc ?? []) {
    if (!st) continue;
    for (const [k, v] of Object.entries(st.refused ?? {})) refused[k] = (refused[k] ?? 0) + v;
    for (const [k, v] of Object.entries(st.errors ?? {})) errors[k] = (errors[k] ?? 0) + v;
  }
  return { refused, errors };
}

/**
 * Every epoch's rows as the servers' ledgers count them (stats().trained: shard 0's is what
 * metrics.jsonl records; each shard keeps its own). Across a restart from checkpoint c, the first
 * servers' updates from c on were rewound and the resumed servers trained those steps again: an
 * epoch cut by c is counted as the rows of its steps before c (which the first servers applied —
 * their ledger's `expected` covers them, and rows = expected up to rows carried at their end),
 * less rows carried into step c (a worker that died in step c − 1: its rows were carried into an
 * update the rewind undid, and a resumed server does not know them — the documented gap: carried
 * rows are not in checkpoints), plus the resumed servers' count from c on.
 */
function membership(ledgers, kills, s) {
  const out = [];
  const starts = [0, ...kills.map((k) => k.resumeStep)];
  for (let e = 0; e < s.epochs; e++) {
    const [lo, hi] = [e * s.perEpoch, (e + 1) * s.perEpoch];
    const expected = rowsOfSteps(lo, hi, s);
    const row = { epoch: e + 1, expected, trained: 0, lost: 0, parts: [], problems: [] };
    for (let k = 0; k < starts.length; k++) {
      const [a, b] = [Math.max(lo, starts[k]), Math.min(hi, k + 1 < starts.length ? starts[k + 1] : Infinity)];
      const cut = k + 1 < starts.length && starts[k + 1] < hi && starts[k + 1] >= lo;
      if (a >= b) continue;
      // Shard 0's ledger is the run's (the workers follow its plans; metrics.jsonl records it). Of
      // servers that were stopped, its last sample may predate the end (it may be the one killed):
      // the survivor's then, which saw every update of them.
      const c = cut ? starts[k + 1] : Infinity;
      const fromShard0 = ledgers[k]?.[0]?.get(e);
      const usable = (rec) => rec !== undefined && (cut ? rec.expected >= rowsOfSteps(a, c, s) : k === starts.length - 1 || rec.open === false);
      const shard = usable(fromShard0) ? 0 : kills[k]?.survivors[0] ?? 0;
      const rec = ledgers[k]?.[shard]?.get(e);
      if (rec === undefined) {
        row.problems.push(`no ledger of servers ${k} for updates ${a}–${b}`);
        continue;
      }
      if (!cut) {
        if (rec.expected !== rowsOfSteps(a, b, s)) row.problems.push(`servers ${k} expected ${rec.expected} rows for updates ${a}–${b}, the batches hold ${rowsOfSteps(a, b, s)}`);
        row.trained += rec.rows;
        row.parts.push({ servers: k, shard, updates: [a, b], rows: rec.rows, ranks: rec.ranks, changes: rec.changes.length });
      } else {
        const before = rowsOfSteps(a, c, s);
        if (rec.expected < before) row.problems.push(`servers ${k} applied ${rec.expected} rows of this epoch, less than the ${before} of its updates before checkpoint ${c}`);
        const lost = (ledgers[k]?.[shard] ? [...ledgers[k][shard].values()] : []).flatMap((t) => t.changes).filter((ch) => ch.step === c).reduce((n, ch) => n + ch.carried, 0);
        row.lost += lost;
        row.trained += before - lost;
        row.parts.push({ servers: k, shard, updates: [a, c], rows: before - lost, derived: true, rewound: [c, kills[k].appliedAtStop] });
      }
    }
    out.push(row);
  }
  // Do the shards agree? Each counts what it applied, and a worker killed between its writes to the
  // two shards' sockets leaves that step's share on one shard only — the documented gap
  // (packages/parameter-server/README.md, *Several shards agree*). For each closed epoch: shard 1's
  // rows and expected beside shard 0's.
  for (const row of out) {
    const e = row.epoch - 1;
    row.shards = ledgers.map((inc) => (inc ?? []).map((book) => {
      const t = book?.get(e);
      return t && !t.open ? { rows: t.rows, expected: t.expected } : null;
    }));
  }
  return out;
}

/** The servers' log lines by what they are about; the injector's worker sessions write two each (connected, disconnected). */
function classifyLogLines(serverLog, injected) {
  const kinds = { refusals: 0, 'worker connected/disconnected/dropped/readmitted': 0, 'start, checkpoint, resume, stop': 0, 'authenticated peers\' WebSocket errors': 0, other: 0 };
  const other = [];
  for (const s of serverLog) for (const l of s.lines) {
    if (/: refused /.test(l)) kinds.refusals++;
    else if (/: worker \d+ (connected|\(|dropped|readmitted)/.test(l)) kinds['worker connected/disconnected/dropped/readmitted']++;
    else if (/using the token|resumed from|listening on|closed after|stopping after|shutdown requested|checkpoint/.test(l)) kinds['start, checkpoint, resume, stop']++;
    else if (/: connection \S+: /.test(l)) kinds['authenticated peers\' WebSocket errors']++;
    else kinds.other++, other.length < 10 && other.push(l);
  }
  const refusedConnections = Object.values(injected?.byKind ?? {}).filter((k) => k.group === 'before authentication').reduce((a, k) => a + k.sessions, 0);
  return { kinds, other, refusedFrames: injected?.refusedFrames ?? 0, refusedConnections };
}

/** The checks, each { check, ok, detail }. */
export function verdicts(r) {
  const out = [];
  const add = (check, ok, detail) => out.push({ check, ok: !!ok, detail });
  add('no failure while driving the run', r.failures.length === 0, r.failures.join('; '));
  const finals = r.servers.filter((s) => !s.killedByUs && !s.stoppedByUs);
  add('the run finished: every update applied', r.applied?.every((a) => a === r.total), `applied ${JSON.stringify(r.applied)} of ${r.total}`);
  const last = r.workers.filter((w) => !w.killedByUs);
  add('every worker not killed ended its run (exit 0, all epochs)', last.every((w) => w.exit?.code === 0 && Number(w.done) === r.epochs), JSON.stringify(last.map((w) => [w.name, w.exit, w.done])));
  add('test accuracy within 1 point of the undisturbed run', r.soaked !== undefined && Math.abs(r.soaked - r.undisturbed) <= 0.01, `${pct(r.soaked)} vs ${pct(r.undisturbed)}`);
  const crashed = r.servers.filter((s) => !(s.killedByUs && s.exit?.signal === 'SIGKILL') && s.exit?.code !== 0);
  add('no server exited but the one killed (the stopped and the final ones exit 0)', crashed.length === 0 && finals.length === 2, JSON.stringify(r.servers.map((s) => [s.name, s.exit, s.killedByUs ? 'killed' : s.stoppedByUs ? 'stopped' : 'final'])));
  const internal = r.servers.flatMap((s) => s.lines.filter((l) => /internal error/.test(l)));
  add('no internal error in any server log', internal.length === 0, internal.slice(0, 3).join(' | '));
  add('every worker kill was followed by its readmission', r.workerKills.every((k) => k.readmittedAt?.length === 2), `${r.workerKills.length} kills`);
  const bad = r.membership.filter((m) => m.problems.length > 0 || m.trained + m.lost !== m.expected);
  add('every example trained in every epoch (shard 0\'s ledger, the run\'s; a restart\'s documented gap apart)', r.membership.length === r.epochs && bad.length === 0, JSON.stringify(bad));
  // A killed worker's push of the step it died in may reach one shard and not the other: that
  // shard's ledger then differs by the worker's share of the step (10–16 rows of a 32-row batch,
  // more with carried rows) — at most a batch per kill in the epoch.
  const gaps = shardGaps(r);
  const unexplained = gaps.filter((g) => g.rows > TRAIN.batchSize * g.kills);
  add('the shards\' ledgers differ only where a worker was killed, by at most a batch a kill', unexplained.length === 0, JSON.stringify(unexplained));
  const i = r.injected;
  const failed = Object.values(i?.byKind ?? {}).reduce((n, k) => n + k.failed, 0);
  add('every bad frame got its answer', i && failed === 0 && i.frames > 0, i?.mismatches.slice(0, 5).join(' | '));
  // The servers' own counts: every refusal the injector saw, by kind, and at least its bad requests
  // by code (the workers' own refusals add to some: a join retried as bad-step, a rank-taken reconnect).
  const e = r.expectedCounts ?? { refused: {}, errors: {} }, s = r.serverCounts ?? { refused: {}, errors: {} };
  const short = [
    ...Object.entries(e.refused).filter(([k, v]) => (s.refused[k] ?? 0) !== v).map(([k, v]) => `refused '${k}': injector ${v}, servers ${s.refused[k] ?? 0}`),
    ...Object.entries(e.errors).filter(([k, v]) => (s.errors[k] ?? 0) < v).map(([k, v]) => `error '${k}': injector ${v}, servers ${s.errors[k] ?? 0}`),
  ];
  add('the servers counted every refusal and error the injector received', r.serverCounts && short.length === 0, short.join('; '));
  const rss = r.servers.filter((s) => s.rss).map((s) => s.rss.maxKiB);
  add('server RSS bounded (< 256 MiB)', rss.length > 0 && Math.max(...rss) < 256 * 1024, `max ${Math.max(...rss)} KiB`);
  return out;
}

/** Closed epochs where shard 1's ledger differs from shard 0's, with the worker kills in them. */
function shardGaps(r) {
  const out = [];
  for (const m of r.membership) {
    (m.shards ?? []).forEach((inc, k) => {
      const [a, b] = inc;
      if (!a || !b || (a.rows === b.rows && a.expected === b.expected)) return;
      // (a kill in an epoch's last step may leave its rows to the next: the epoch before counts too)
      const kills = r.workerKills.filter((x) => [m.epoch - 1, m.epoch].includes(Math.floor(Math.min(...x.droppedAt) / r.perEpoch) + 1)).length;
      out.push({ epoch: m.epoch, servers: k, shard0: a, shard1: b, rows: Math.max(Math.abs(a.rows - b.rows), Math.abs(a.expected - b.expected)), kills });
    });
  }
  return out;
}

const pct = (x) => (x === undefined ? '–' : `${(100 * x).toFixed(2)}%`);
const n = (x) => x.toLocaleString('en-US');

/** The figures issue 16 asks for, as lines. */
export function printReport(r, log = console.log) {
  const i = r.injected ?? { frames: 0, connections: 0, byKind: {}, refusedFrames: 0, authedFrames: 0 };
  log(`\nsoak: ${r.epochs} epochs × ${r.perEpoch} steps (${n(r.total)} updates, ${n(r.rows)} rows an epoch) in ${r.seconds.toFixed(0)} s; ${r.hosts}`);
  log(`link throttling: ${r.throttle.how}`);
  for (const w of r.throttle.windows) log(`  ${w.host} throttled for ${w.seconds?.toFixed(1)} s, updates ${w.onAt} to ${w.offAt}: ${w.stepsPerSec?.toFixed(0)} updates/s, against ${w.stepsPerSecBefore?.toFixed(0)} in the 5 s before`);
  log(`injected: ${n(i.frames)} frames on ${n(i.connections)} connections (${n(i.refusedFrames)} on connections refused before authentication, ${n(i.authedFrames)} bad requests after it); most sockets held at once ${i.sockets?.maxHeld}`);
  const kinds = Object.values(i.byKind).sort((a, b) => a.group.localeCompare(b.group) || b.frames - a.frames);
  log('  (before authentication: one refusal a connection, its later frames ignored; after: one error reply a request)');
  for (const k of kinds) log(`  ${`${k.group}: ${k.name}`.padEnd(62)} ${String(k.frames).padStart(6)} frames, ${String(k.ok).padStart(5)} of ${String(k.ok + k.failed).padStart(5)} answered as expected${k.resets ? ` (${k.resets} more reset before the close frame could be read)` : ''}`);
  if (r.serverCounts) {
    const e = r.expectedCounts;
    log('  the servers counted (all processes, the killed one up to its kill) against what the injector was answered:');
    log(`    refused: ${Object.entries(r.serverCounts.refused).map(([k, v]) => `${k} ${v}${e?.refused[k] !== undefined ? ` (${e.refused[k]})` : ''}`).join(', ')}`);
    log(`    errors:  ${Object.entries(r.serverCounts.errors).map(([k, v]) => `${k} ${v}${e?.errors[k] !== undefined ? ` (${e.errors[k]})` : ''}`).join(', ')}`);
  }
  log(`kills survived: ${r.workerKills.length} workers (kill -9, restarted, readmitted), ${r.serverKills.length} server shard${r.serverKills.length === 1 ? '' : 's'} (kill -9, resumed from a checkpoint)`);
  for (const k of r.serverKills) {
    log(`  server shard ${k.victim} (pid ${k.pid}) killed at update ~${k.progress}; shard ${k.survivors.join(',')} stopped at ${k.appliedAtStop}; both resumed from checkpoint ${k.resumeStep} (their logs: ${k.resumedFrom?.join(', ')}), so updates ${k.resumeStep}–${k.appliedAtStop} were rewound and trained again; what worker 0 said:`);
    for (const l of k.workerLines ?? []) log(`    ${l}`);
  }
  log(`examples trained per epoch (the servers' ledgers) against expected${r.serverKills.length > 0 ? '; servers 0 are the first processes, 1 the resumed ones …' : ''}:`);
  for (const m of r.membership) {
    const by = (p) => (r.serverKills.length > 0 ? `servers ${p.servers} (shard ${p.shard}'s ledger): ` : '');
    const how = m.parts.map((p) => (p.derived ? `${by(p)}${n(p.rows)}, the rows of its updates before checkpoint ${p.updates[1]}` : `${by(p)}${n(p.rows)}${p.changes ? `, ${p.changes} plan change${p.changes > 1 ? 's' : ''}` : ''}`)).join(' + ');
    log(`  epoch ${String(m.epoch).padStart(3)}: ${n(m.trained)} / ${n(m.expected)}${m.lost ? ` (${m.lost} lost: carried across the checkpoint)` : ''}  [${how}]${m.problems.length ? ' PROBLEMS: ' + m.problems.join('; ') : ''}`);
  }
  const gaps = shardGaps(r);
  log(`  the other shard's ledger: ${gaps.length === 0 ? 'the same in every closed epoch' : gaps.map((g) => `epoch ${g.epoch}: shard 1 ${g.shard1.rows}/${g.shard1.expected} against shard 0's ${g.shard0.rows}/${g.shard0.expected} (${g.kills} worker kill${g.kills === 1 ? '' : 's'} in it)`).join('; ')}`);
  log('server RSS (VmRSS, sampled every 250 ms from "listening"):');
  for (const s of r.servers) {
    if (!s.rss) continue;
    const minutes = s.rss.perMinuteMaxKiB.length > 1 ? `; max by minute ${s.rss.perMinuteMaxKiB.map((kb) => (kb / 1024).toFixed(0)).join(', ')} MiB` : '';
    log(`  ${s.name.padEnd(11)} min ${(s.rss.minKiB / 1024).toFixed(1)} MiB, max ${(s.rss.maxKiB / 1024).toFixed(1)} MiB (first ${(s.rss.firstKiB / 1024).toFixed(1)}, last ${(s.rss.lastKiB / 1024).toFixed(1)}, ${s.rss.samples} samples over ${s.seconds.toFixed(0)} s${minutes}); ${s.killedByUs ? 'killed' : s.stoppedByUs ? 'stopped' : 'ran to the end'}, exit ${JSON.stringify(s.exit)}`);
  }
  if (r.logLines) {
    const per = r.logLines.refusedFrames > 0 ? (r.logLines.kinds.refusals * 10_000) / r.logLines.refusedFrames : 0;
    log(`server log lines: ${Object.entries(r.logLines.kinds).map(([k, v]) => `${k} ${v}`).join(', ')}`);
    log(`  ${r.logLines.kinds.refusals} refusal lines in all for ${n(r.logLines.refusedFrames)} frames on ${n(r.logLines.refusedConnections)} connections refused before authentication: ${per.toFixed(1)} lines per 10,000 refused frames (the log is per address and 10 s window, not per frame)`);
    for (const l of r.logLines.other) log(`  other: ${l}`);
  }
  log(`test accuracy: soaked ${pct(r.soaked)}, undisturbed ${pct(r.undisturbed)}`);
  log(`logs: ${r.dir}/logs`);
}

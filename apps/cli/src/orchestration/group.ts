/**
 * The child processes of one run on this machine — its `loom serve` and `loom worker` processes —
 * and what their exits mean. Children get the cluster token in LOOM_TOKEN (never on a command
 * line) and LOOM_EXIT_WITH_PARENT=1, and run in their own process groups (processes.ts).
 *
 * A server that exits at all fails the run, and so does a worker that exits with an error. A
 * worker killed by a signal (kill -9, the OOM killer) fails it too, unless the group drops killed
 * workers: then the servers drop it from the barrier and the run goes on with the others, until
 * none would be left.
 *
 * When the run fails, `explain` names its root cause (failure.ts): a server that died comes before
 * anything it caused — the observer's and the workers' connections to it close (1006) before its
 * exit reaches this process — then a worker that died, then a connection lost or a timeout, named
 * by the server behind it. Once the run is over (`end`, `stop`), exits are no longer failures.
 */
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { PsError } from '@loom/parameter-server';
import { ProcessGroup, type Child } from '../processes.js';
import { RunFailure, describeExit, duringEpoch, processLabel, type RunProcess } from './failure.js';
import { parseEpochLine, type EpochReports, type WorkerEpochLine } from './reports.js';

const MAIN = fileURLToPath(new URL('../main.js', import.meta.url));

/** How long `explain` waits for a server's exit after a connection to it was lost. */
const SERVER_EXIT_GRACE_MS = 1000;

export interface TrainingGroupOptions {
  /** The cluster token, handed to every child in LOOM_TOKEN. */
  token: string;
  /** Each epoch line of a worker of this group (EpochReports.add, or a forward to the master). */
  onReport: (r: WorkerEpochLine) => void;
  /**
   * Drop a worker killed by a signal from `reports` instead of failing the run, and say so with
   * `log`. Only where every worker of the run is a child of this group.
   */
  dropKilledWorkers?: { reports: EpochReports; log: (line: string) => void };
  /**
   * The run's membership as this group sees it (loom train --cluster writes it to DIR/events.jsonl
   * for loom dashboard): each child `started` (pid), a server `joined` once it listens (address),
   * a worker `dropped` or `readmitted` as a server logs it (rank, step, why), and each child `exited`
   * (code, or signal when killed).
   */
  onEvent?: (e: GroupEvent) => void;
}

/** One change of the run's membership (TrainingGroupOptions.onEvent). */
export interface GroupEvent {
  event: 'started' | 'joined' | 'dropped' | 'readmitted' | 'exited';
  role: 'server' | 'worker';
  /** Workers: the rank. Servers: the key range, as i/S. */
  rank?: number;
  shard?: string;
  [k: string]: unknown;
}

/** A server's log lines about a worker's membership (parameter-server's handler.ts). */
const DROPPED = /worker (\d+) dropped at step (\d+): (.*?); training goes on/;
const READMITTED = /worker (\d+) readmitted from step (\d+)/;

/** A child's exit while the run was on, in the order exits arrived. */
interface Exit {
  child: Child;
  code: number | null;
  /** A killed worker the run went on without: not a failure. */
  dropped: boolean;
}

export class TrainingGroup {
  readonly processes = new ProcessGroup();
  readonly servers: Child[] = [];
  readonly workers: Child[] = [];
  /** Rejects with the run's first failure; never resolves. Race it with whatever the run awaits. */
  readonly failure: Promise<never>;
  private rejectFailure!: (e: Error) => void;
  private readonly roles = new Map<Child, RunProcess>();
  private readonly exits: Exit[] = [];
  private serverExited!: () => void;
  private readonly anyServerExited = new Promise<void>((r) => (this.serverExited = r));
  private ended = false;
  private latest = 0;

  constructor(private readonly o: TrainingGroupOptions) {
    this.failure = new Promise<never>((_, reject) => (this.rejectFailure = reject));
    this.failure.catch(() => {}); // awaited by whoever races it; the first failure wins
  }

  /** Fails the run (a failure from outside the group: another node, a timeout). */
  fail(e: Error): void {
    this.rejectFailure(e);
  }

  /**
   * Starts `loom serve` with `argv` (serverArgv) for key range `shard`; its exit, whenever it
   * comes, fails the run. `address`: where it was told to listen, until it says where it does.
   */
  startServer(shard: { index: number; count: number }, argv: string[], address?: string): Child {
    const role: RunProcess = { role: 'server', shard, ...(address !== undefined ? { address } : {}) };
    const c = this.spawn(`server shard ${shard.index}/${shard.count}`, role, argv);
    this.servers.push(c);
    const who = { role: 'server', shard: `${shard.index}/${shard.count}` } as const;
    this.o.onEvent?.({ event: 'started', ...who, pid: c.proc.pid });
    void c.exited.then((code) => {
      this.o.onEvent?.({ event: 'exited', ...who, code, signal: c.proc.signalCode });
      if (this.ended) return;
      this.exits.push({ child: c, code, dropped: false });
      this.serverExited();
      this.fail(this.failureOf(c, code));
    });
    return c;
  }

  /** Starts `loom worker` with `argv` (workerArgv) as rank `rank` (of node `node`, loom launch); its epoch lines go to the reports. */
  startWorker(rank: number, argv: string[], node?: number): Child {
    const c = this.spawn(`worker ${rank}`, { role: 'worker', rank, ...(node !== undefined ? { node } : {}) }, argv);
    this.workers.push(c);
    this.o.onEvent?.({ event: 'started', role: 'worker', rank, pid: c.proc.pid });
    createInterface({ input: c.proc.stdout! }).on('line', (l) => {
      const r = parseEpochLine(l);
      if (!r) return;
      this.latest = Math.max(this.latest, r.epoch);
      this.o.onReport(r);
    });
    void c.exited.then((code) => {
      this.o.onEvent?.({ event: 'exited', role: 'worker', rank, code, signal: c.proc.signalCode });
      if (code === 0 || this.ended) return;
      const drop = this.o.dropKilledWorkers;
      const dropped = code === null && drop !== undefined && drop.reports.dropped + 1 < drop.reports.workers;
      this.exits.push({ child: c, code, dropped });
      if (dropped) {
        const { reports } = drop!;
        reports.drop(rank);
        drop!.log(`${processLabel(this.roles.get(c)!)} ${describeExit(code, c.proc.signalCode)}; the run goes on with ${reports.workers - reports.dropped} of ${reports.workers} workers`);
      } else this.fail(this.failureOf(c, code));
    });
    return c;
  }

  /** Resolves with the URL a server prints once it listens; rejects with its failure if it exits first. */
  listening(server: Child): Promise<string> {
    return new Promise<string>((resolve, reject) => {
      createInterface({ input: server.proc.stdout! }).on('line', (l) => {
        const m = / listening on (wss?:\/\/\S+)$/.exec(l);
        if (!m) return;
        const role = this.roles.get(server)! as RunProcess & { shard: { index: number; count: number } };
        role.address = m[1]!;
        this.o.onEvent?.({ event: 'joined', role: 'server', shard: `${role.shard.index}/${role.shard.count}`, address: m[1]! });
        resolve(m[1]!);
      });
      void server.exited.then((code) => reject(this.failureOf(server, code)));
    });
  }

  /**
   * The highest epoch any worker of this group has finished (0: none yet): where the training is,
   * which may be ahead of the epochs the observer has reported.
   */
  get latestEpoch(): number {
    return this.latest;
  }

  /** Resolves when every worker of this group has exited (each with 0, or the failure came first). */
  workersDone(): Promise<Array<number | null>> {
    return Promise.all(this.workers.map((w) => w.exited));
  }

  /**
   * The run's root cause for `e`, the error that ended it (failure.ts): the first server that died
   * (waiting a moment for its exit after a lost connection), else the first worker that died, else
   * a lost connection or a timeout named by the server behind it; any other error as it is.
   */
  async explain(e: unknown): Promise<unknown> {
    if (!(e instanceof Error)) return e;
    const killedWorker = e instanceof RunFailure && e.kind === 'worker' && e.what.startsWith('was killed');
    const isServer = (x: Exit) => this.roles.get(x.child)!.role === 'server';
    if (!killedWorker && !this.exits.some(isServer) && this.servers.some((s) => s.running)) {
      // A server's sockets close before its exit reaches this process.
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([this.anyServerExited, new Promise((r) => (timer = setTimeout(r, SERVER_EXIT_GRACE_MS)))]);
      clearTimeout(timer);
    }
    const died = this.exits.find(isServer) ?? this.exits.find((x) => !x.dropped);
    if (died) return this.failureOf(died.child, died.code);
    if (e instanceof PsError && (e.code === 'closed' || e.code === 'timeout')) {
      const server = this.servers.find((s) => { const a = this.roles.get(s)!.address; return a !== undefined && e.message.includes(a); });
      if (server) {
        const who = processLabel(this.roles.get(server)!);
        return e.code === 'closed'
          ? new RunFailure('connection', `the connection to ${who}`, 'was lost', `${e.message}${server.running ? '; the server still runs' : ''}`)
          : new RunFailure('timeout', who, 'did not answer in time', e.message);
      }
    }
    return e;
  }

  /**
   * The error a run of `epochs` epochs ends with for `e`: its root cause (explain), said to have
   * happened in the workers' latest epoch (the observer's may lag behind it), or while starting
   * when no epoch was observed yet (`first` undefined).
   */
  async failedDuring(e: unknown, first: number | undefined, epochs: number): Promise<unknown> {
    const cause = await this.explain(e);
    if (!(cause instanceof RunFailure)) return cause;
    return cause.during(first === undefined ? 'while starting' : duringEpoch(Math.max(first, this.latestEpoch + 1), epochs));
  }

  /** Waits until every server has exited after a shutdown, or `ms`: one that hangs is end()'s to kill. */
  async serversExited(ms = 5000): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([Promise.all(this.servers.map((s) => s.exited)), new Promise((r) => (timer = setTimeout(r, ms)))]);
    clearTimeout(timer);
  }

  /** The run is over: exits from now on are not failures; every child still running is SIGKILLed at once. */
  end(): void {
    this.ended = true;
    this.processes.killAll();
  }

  /** The run is over: exits from now on are not failures; every child is stopped (processes.ts: stopAll). */
  stop(graceMs?: number): Promise<void> {
    this.ended = true;
    return this.processes.stopAll(graceMs);
  }

  /** A server's log line saying a worker was dropped or readmitted, as an event. */
  private membershipLine(line: string): void {
    const d = DROPPED.exec(line);
    if (d) this.o.onEvent!({ event: 'dropped', role: 'worker', rank: Number(d[1]), step: Number(d[2]), why: d[3] });
    const r = READMITTED.exec(line);
    if (r) this.o.onEvent!({ event: 'readmitted', role: 'worker', rank: Number(r[1]), step: Number(r[2]) });
  }

  private failureOf(c: Child, code: number | null): RunFailure {
    const role = this.roles.get(c)!;
    // A killed process's last words were not about its death.
    const last = code === null ? undefined : c.tail.at(-1)?.replace(/^loom \w+( \[[^\]]*\])?: /, '');
    return new RunFailure(role.role, processLabel(role), describeExit(code, c.proc.signalCode), last);
  }

  private spawn(name: string, role: RunProcess, argv: string[]): Child {
    const c = this.processes.spawn(name, process.execPath, [MAIN, ...argv], {
      env: { ...process.env, LOOM_TOKEN: this.o.token, LOOM_EXIT_WITH_PARENT: '1' },
      onStderr: (l) => {
        if (process.env.LOOM_DEBUG) console.error(`[${name}] ${l}`);
        if (role.role === 'server' && this.o.onEvent) this.membershipLine(l);
      },
    });
    if (c.proc.pid !== undefined) role.pid = c.proc.pid;
    this.roles.set(c, role);
    return c;
  }
}

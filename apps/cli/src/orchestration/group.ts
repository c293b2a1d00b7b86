/**
 * The child processes of one run on this machine — its `loom serve` and `loom worker` processes —
 * and what their exits mean. Children get the cluster token in LOOM_TOKEN (never on a command
 * line) and LOOM_EXIT_WITH_PARENT=1, and run in their own process groups (processes.ts).
 *
 * A server that exits at all fails the run, and so does a worker that exits with an error. A
 * worker killed by a signal (kill -9, the OOM killer) fails it too, unless the group drops killed
 * workers: then the servers drop it from the barrier and the run goes on with the others, until
 * none would be left. A failure names the child and its last words (`worker 1 failed: …`).
 */
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { ProcessGroup, type Child } from '../processes.js';
import { parseEpochLine, type EpochReports, type WorkerEpochLine } from './reports.js';

const MAIN = fileURLToPath(new URL('../main.js', import.meta.url));

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
}

export class TrainingGroup {
  readonly processes = new ProcessGroup();
  readonly servers: Child[] = [];
  readonly workers: Child[] = [];
  /** Rejects with the run's first failure; never resolves. Race it with whatever the run awaits. */
  readonly failure: Promise<never>;
  private rejectFailure!: (e: Error) => void;

  constructor(private readonly o: TrainingGroupOptions) {
    this.failure = new Promise<never>((_, reject) => (this.rejectFailure = reject));
    this.failure.catch(() => {}); // awaited by whoever races it; the first failure wins
  }

  /** Fails the run (a failure from outside the group: another node, a timeout). */
  fail(e: Error): void {
    this.rejectFailure(e);
  }

  /** Starts `loom serve` with `argv` (serverArgv); its exit, whenever it comes, fails the run. */
  startServer(index: number, name: string, argv: string[]): Child {
    const c = this.spawn(`server ${index}`, name, argv);
    this.servers.push(c);
    void c.exited.then((code) => this.fail(c.failure(code)));
    return c;
  }

  /** Starts `loom worker` with `argv` (workerArgv); its epoch lines go to the reports. */
  startWorker(rank: number, name: string, argv: string[]): Child {
    const c = this.spawn(`worker ${rank}`, name, argv);
    this.workers.push(c);
    createInterface({ input: c.proc.stdout! }).on('line', (l) => {
      const r = parseEpochLine(l);
      if (r) this.o.onReport(r);
    });
    void c.exited.then((code) => {
      if (code === 0) return;
      const drop = this.o.dropKilledWorkers;
      if (code === null && drop && drop.reports.dropped + 1 < drop.reports.workers) {
        const { reports } = drop;
        reports.drop(rank);
        drop.log(`${c.name} was killed (${c.proc.signalCode}); the run goes on with ${reports.workers - reports.dropped} of ${reports.workers} workers`);
      } else this.fail(c.failure(code));
    });
    return c;
  }

  /** Resolves with the URL a server prints once it listens; rejects with its failure if it exits first. */
  listening(server: Child): Promise<string> {
    return new Promise<string>((resolve, reject) => {
      createInterface({ input: server.proc.stdout! }).on('line', (l) => {
        const m = / listening on (wss?:\/\/\S+)$/.exec(l);
        if (m) resolve(m[1]!);
      });
      void server.exited.then((code) => reject(server.failure(code)));
    });
  }

  /** Resolves when every worker of this group has exited (each with 0, or the failure came first). */
  workersDone(): Promise<Array<number | null>> {
    return Promise.all(this.workers.map((w) => w.exited));
  }

  private spawn(label: string, name: string, argv: string[]): Child {
    return this.processes.spawn(name, process.execPath, [MAIN, ...argv], {
      env: { ...process.env, LOOM_TOKEN: this.o.token, LOOM_EXIT_WITH_PARENT: '1' },
      onStderr: (l) => {
        if (process.env.LOOM_DEBUG) console.error(`[${label}] ${l}`);
      },
    });
  }
}

/**
 * How a run of processes says that it failed: ONE message naming the process behind the failure
 * (its role, shard or rank, pid and address), what happened to it, when, and what to do next —
 *
 *   server shard 0/2 (pid 1234, ws://127.0.0.1:43175) was killed (SIGKILL) in epoch 3 of 10; the
 *   run stopped. Continue it with: loom train … --resume runs/x (its last checkpoint is update 800)
 *
 * The group (group.ts) finds the process and what happened; the command that started the run
 * knows when (its epoch) and what comes next (resumeAdvice, or starting again), and adds them.
 */
import { latestCheckpoint } from '@loom/parameter-server';

/** A child of a run as a failure names it. */
export interface RunProcess {
  role: 'server' | 'worker';
  /** A server's key range. */
  shard?: { index: number; count: number };
  /** A worker's rank, and (loom launch) its node. */
  rank?: number;
  node?: number;
  pid?: number;
  /** A server's URL once it listens, or the address it was told to listen on. */
  address?: string;
}

/** `server shard 0/2 (pid 1234, ws://127.0.0.1:43175)`, `worker 3 (node 1, pid 1240)`. */
export function processLabel(p: RunProcess): string {
  const name = p.role === 'server' ? `server shard ${p.shard!.index}/${p.shard!.count}` : `worker ${p.rank}`;
  const details = [...(p.node !== undefined ? [`node ${p.node}`] : []), ...(p.pid !== undefined ? [`pid ${p.pid}`] : []), ...(p.address !== undefined ? [p.address] : [])];
  return details.length > 0 ? `${name} (${details.join(', ')})` : name;
}

/**
 * What a child's exit was: `was killed (SIGKILL)`, `failed (exit code 1)`, or `exited` (code 0,
 * before the run was over).
 */
export function describeExit(code: number | null, signal: string | null): string {
  if (code === null) return `was killed (${signal ?? 'by a signal'})`;
  return code === 0 ? 'exited' : `failed (exit code ${code})`;
}

/**
 * What ended the run: `server` or `worker` (a child died), `connection` (this process lost a
 * server that still runs), `timeout` (something did not answer in time), `node` (loom launch:
 * another node failed or never joined).
 */
export type FailureKind = 'server' | 'worker' | 'connection' | 'timeout' | 'node';

/**
 * The run's failure, as one line: `<who> <what>[ <when>][: <detail>]; the run stopped[. <next>]`.
 * `during` and `advise` fill in when and what next, each once (the first caller knows best).
 */
export class RunFailure extends Error {
  override name = 'RunFailure';
  private when?: string;
  private next?: string;

  constructor(
    readonly kind: FailureKind,
    /** The process or node: processLabel(), `node 1`, `the connection to …`. */
    readonly who: string,
    /** What happened to it: describeExit(), `was lost`, `did not answer in time`. */
    readonly what: string,
    /** Its last words, or the error that told of it. */
    readonly detail?: string,
  ) {
    super();
    this.render();
  }

  /** When it happened: `in epoch 3 of 10`, `while starting`. */
  during(when: string): this {
    this.when ??= when;
    this.render();
    return this;
  }

  /** What to do next: `Continue it with: …`. */
  advise(next: string): this {
    this.next ??= next;
    this.render();
    return this;
  }

  /** The message without what to do next: what another node forwards to the master. */
  get summary(): string {
    return `${this.who} ${this.what}${this.when !== undefined ? ` ${this.when}` : ''}${this.detail ? `: ${this.detail}` : ''}`;
  }

  private render(): void {
    this.message = `${this.summary}; the run stopped${this.next !== undefined ? `. ${this.next}` : ''}`;
  }
}

/** `in epoch 3 of 10`, or `after its last epoch` once every epoch was reported. */
export function duringEpoch(epoch: number, epochs: number): string {
  return epoch > epochs ? `after its last epoch (${epochs})` : `in epoch ${epoch} of ${epochs}`;
}

/** An argument as a POSIX shell reads it back: bare when safe, else in single quotes. */
export function shellQuote(arg: string): string {
  return /^[\w@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replace(/'/g, `'\\''`)}'`;
}

/** `argv` without its `--out`/`--resume` (either spelling), and with `--resume dir`. */
export function resumeArgv(argv: readonly string[], dir: string): string[] {
  const kept: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--') {
      kept.push(...argv.slice(i));
      break;
    }
    if (a === '--out' || a === '--resume') i++; // and its value
    else if (!a.startsWith('--out=') && !a.startsWith('--resume=')) kept.push(a);
  }
  return [...kept, '--resume', dir];
}

/**
 * What to do after a failed `loom train --cluster` run: continue it from its latest complete
 * checkpoint (the one `--resume` will load), or, when it saved none, start it again.
 *
 * @example
 * resumeAdvice({ command: 'loom train', argv: ['--epochs', '10', '--cluster', 'local:2,2', '--out', 'runs/x'], dir: 'runs/x', path: '/home/me/runs/x', shards: 2, checkpointEvery: 100 })
 * // 'Continue it with: loom train --epochs 10 --cluster local:2,2 --resume runs/x (its last checkpoint is update 800)'
 */
export function resumeAdvice(o: { command: string; argv: readonly string[]; dir: string; path: string; shards: number; checkpointEvery: number }): string {
  const step = latestCheckpoint(o.path, o.shards);
  if (step !== null) return `Continue it with: ${[o.command, ...resumeArgv(o.argv, o.dir).map(shellQuote)].join(' ')} (its last checkpoint is update ${step})`;
  const why = o.checkpointEvery === 0 ? 'with --checkpoint-every 0 the servers save one only at the end' : `the servers save one every ${o.checkpointEvery} updates`;
  return `It saved no checkpoint to continue from (${why}); start it again with: ${[o.command, ...o.argv.map(shellQuote)].join(' ')}`;
}

/**
 * Child processes that live and die together (a run's servers and workers, a launch's ssh
 * sessions): every child keeps the last lines of its standard error for error messages, and
 * `stopAll` ends every one still running — closing its stdin first (loom children started with
 * LOOM_EXIT_WITH_PARENT=1, and ssh sessions, end on that), then SIGTERM, then SIGKILL after a
 * grace period; `killAll` SIGKILLs them at once. Children run in their own process groups, so a
 * terminal's Ctrl-C reaches only the parent, which then stops them.
 */
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { createInterface } from 'node:readline';

export class Child {
  /** Resolves with the exit code, or null when a signal ended it. */
  readonly exited: Promise<number | null>;
  readonly tail: string[] = [];

  constructor(
    readonly name: string,
    readonly proc: ChildProcess,
    onStderr?: (line: string) => void,
  ) {
    this.exited = new Promise((r) => {
      proc.once('exit', (code, signal) => r(signal ? null : code));
      proc.once('error', () => r(-1)); // not started (ENOENT …): 'exit' never comes
    });
    proc.once('error', (e) => this.tail.push(e.message));
    if (proc.stderr) {
      createInterface({ input: proc.stderr }).on('line', (l) => {
        onStderr?.(l);
        if (l.trim() === '') return;
        this.tail.push(l);
        if (this.tail.length > 20) this.tail.shift();
      });
    }
    proc.stdin?.on('error', () => {}); // EPIPE when it has already gone
  }

  get running(): boolean {
    return this.proc.exitCode === null && this.proc.signalCode === null && this.proc.pid !== undefined;
  }

  /** The child's last words, without the `loom <command>: ` prefix. */
  lastLine(code: number | null): string {
    const line = this.tail.at(-1) ?? (code === null ? 'killed' : `exit code ${code}`);
    return line.replace(/^loom \w+: /, '');
  }

  failure(code: number | null): Error {
    return new Error(`${this.name} failed: ${this.lastLine(code)}`);
  }
}

export class ProcessGroup {
  readonly children: Child[] = [];
  private readonly onExit = () => this.killNow();

  constructor() {
    process.once('exit', this.onExit);
  }

  spawn(name: string, command: string, args: string[], options: SpawnOptions & { onStderr?: (line: string) => void } = {}): Child {
    const { onStderr, ...rest } = options;
    const proc = spawn(command, args, { stdio: ['pipe', 'pipe', 'pipe'], detached: true, ...rest });
    const child = new Child(name, proc, onStderr);
    this.children.push(child);
    return child;
  }

  /** SIGKILLs every child still running, at once (for process exit). */
  killNow(): void {
    for (const c of this.children) if (c.running) c.proc.kill('SIGKILL');
  }

  /**
   * SIGKILLs every child still running, at once, and stops watching this process's exit: the end
   * of a group whose children must not outlive a failure by a grace period (a server given
   * SIGTERM would write a checkpoint on its way out).
   */
  killAll(): void {
    this.killNow();
    process.removeListener('exit', this.onExit);
  }

  /**
   * Ends every child still running and resolves when all have exited: stdin closed and SIGTERM
   * now, SIGKILL after `graceMs`. Never waits longer than about `graceMs` + 1 s.
   */
  async stopAll(graceMs = 3000): Promise<void> {
    for (const c of this.children) {
      if (!c.running) continue;
      c.proc.stdin?.end();
      c.proc.kill('SIGTERM');
    }
    let timer: NodeJS.Timeout | undefined;
    const all = Promise.all(this.children.map((c) => c.exited));
    await Promise.race([all, new Promise((r) => (timer = setTimeout(r, graceMs)))]);
    clearTimeout(timer);
    this.killNow();
    await Promise.race([all, new Promise((r) => (timer = setTimeout(r, 1000)))]);
    clearTimeout(timer);
    process.removeListener('exit', this.onExit);
  }
}

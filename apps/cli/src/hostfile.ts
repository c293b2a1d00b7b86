/**
 * `loom launch --hostfile FILE`: the horovodrun / DeepSpeed way. FILE lists one host per line,
 *
 *     # comments and blank lines are ignored
 *     10.0.0.1 slots=2      ← the first host is the master: it also runs the parameter servers
 *     user@10.0.0.2         ← slots (worker processes on the host) default to --workers-per-node
 *
 * and the launcher runs `loom launch --nodes N --node-rank i --master HOST0:PORT -- …` on each over
 * ssh (BatchMode: keys only, never a password prompt), with the same node, CLI and working
 * directory paths as here. The cluster token is fresh for the run and goes to each host on the
 * ssh session's standard input, read into LOOM_TOKEN by the remote shell: it is never in an
 * argument list, here or there. Every host is reached once (`ssh host true`) before anything
 * starts, so an unreachable host fails the launch with nothing running; once started, the first
 * host to fail stops all the others, and so does the end of the run or Ctrl-C. A remote launch
 * ends when its ssh session does (its standard input closes), and takes its processes with it.
 */
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { UsageError } from './errors.js';
import { ProcessGroup, type Child } from './processes.js';

export interface HostEntry {
  /** As written: HOST or USER@HOST (ssh's destination). */
  destination: string;
  /** The host alone, as other hosts reach it (the master's address). */
  host: string;
  /** Worker processes on this host. */
  slots: number;
  /** 1-based line in the hostfile, for error messages. */
  line: number;
}

/** Reads and validates a hostfile; errors name the file and line. */
export function readHostfile(path: string, defaultSlots: number): HostEntry[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new UsageError(`--hostfile: cannot read ${path} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  return parseHostfile(text, path, defaultSlots);
}

export function parseHostfile(text: string, file: string, defaultSlots: number): HostEntry[] {
  const hosts: HostEntry[] = [];
  const seen = new Map<string, number>();
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = i + 1;
    const content = raw.replace(/#.*$/, '').trim();
    if (content === '') return;
    const m = /^((?:[A-Za-z0-9._-]+@)?([A-Za-z0-9._-]+|\[[0-9A-Fa-f:.]+\]))(?:\s+slots=(\S*))?$/.exec(content);
    if (!m) throw new UsageError(`${file}:${line}: expected 'HOST [slots=N]', got '${content}'`);
    let slots = defaultSlots;
    if (m[3] !== undefined) {
      if (!/^\d+$/.test(m[3]) || Number(m[3]) < 1 || Number(m[3]) > 1024) throw new UsageError(`${file}:${line}: slots must be a whole number 1 … 1024, got '${m[3]}'`);
      slots = Number(m[3]);
    }
    const host = m[2]!.replace(/^\[|\]$/g, '');
    const before = seen.get(host);
    if (before !== undefined) throw new UsageError(`${file}:${line}: ${host} is already listed on line ${before} (give it slots=N instead)`);
    seen.set(host, line);
    hosts.push({ destination: m[1]!, host, slots, line });
  });
  if (hosts.length === 0) throw new UsageError(`${file}: lists no hosts (one 'HOST [slots=N]' per line)`);
  return hosts;
}

/** Quotes a word for a POSIX shell (the remote login shell that runs ssh's command). */
export const shellQuote = (s: string): string => (/^[A-Za-z0-9_./:=@%+,-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`);

export interface HostfileLaunchOptions {
  file: string;
  hosts: HostEntry[];
  masterPort: number;
  /** Flags for every node's `loom launch` besides --nodes/--node-rank/--master/--slots. */
  launchArgs: string[];
  trainArgs: string[];
  token: string;
  /** ssh -F FILE. */
  sshConfig?: string;
  /** ssh's ConnectTimeout, seconds. */
  connectTimeout: number;
  log: (line: string) => void;
  say: (line: string) => void;
}

const MAIN = fileURLToPath(new URL('./main.js', import.meta.url));

function sshArgs(o: HostfileLaunchOptions, destination: string): string[] {
  return [
    ...(o.sshConfig !== undefined ? ['-F', o.sshConfig] : []),
    '-o', 'BatchMode=yes', '-o', `ConnectTimeout=${o.connectTimeout}`, '-o', 'ServerAliveInterval=5', '-o', 'ServerAliveCountMax=3',
    '-o', 'LogLevel=ERROR', destination,
  ];
}

/**
 * Why a host's launch failed: its last error line (`loom launch: …`), not one of its progress
 * lines (`loom launch [node N]: …`), else what ssh's exit status says.
 */
function why(c: Child, code: number | null): string {
  const error = c.tail.filter((l) => !/^loom launch \[node \d+\]: /.test(l)).at(-1);
  if (error !== undefined) return error.replace(/^loom launch: /, '');
  if (code === 255) return 'its ssh session ended without an exit status (the connection was lost, or its launch was killed)';
  return code === null ? 'ssh was killed' : `exit code ${code}`;
}

/** Runs the launch on every host; resolves when the master's run has ended well, else rejects. */
export async function launchHostfile(o: HostfileLaunchOptions): Promise<void> {
  const at = (h: HostEntry) => `${h.host} (${o.file}:${h.line})`;

  // 1. Every host answers before anything starts.
  const probes = new ProcessGroup();
  try {
    const results = await Promise.all(
      o.hosts.map(async (h) => {
        const c = probes.spawn(`ssh ${h.host}`, 'ssh', [...sshArgs(o, h.destination), 'true'], { stdio: ['ignore', 'ignore', 'pipe'] });
        const code = await c.exited;
        return code === 0 ? null : `cannot reach ${at(h)} over ssh: ${c.lastLine(code)}`;
      }),
    );
    const unreachable = results.filter((r): r is string => r !== null);
    if (unreachable.length > 0) throw new Error(`${unreachable.join('; ')} — nothing was started`);
  } finally {
    await probes.stopAll();
  }

  // 2. The same launch on every host, node rank = line order.
  const master = `${o.hosts[0]!.host.includes(':') ? `[${o.hosts[0]!.host}]` : o.hosts[0]!.host}:${o.masterPort}`;
  const slots = o.hosts.map((h) => h.slots).join(',');
  const group = new ProcessGroup();
  let interrupted = false;
  const stop = () => {
    interrupted = true;
    void group.stopAll();
  };
  process.once('SIGINT', stop).once('SIGTERM', stop);
  // The master's last line (its --json result) must stay the last line of our output, so each of its
  // lines is held until the next arrives, and the final one is printed after every host's output ended.
  let masterLine: string | null = null;
  const outputsClosed: Array<Promise<void>> = [];
  try {
    const children: Child[] = o.hosts.map((h, rank) => {
      const remote = [
        process.execPath, MAIN, 'launch', '--nodes', String(o.hosts.length), '--node-rank', String(rank), '--master', master, '--slots', slots,
        ...o.launchArgs, '--', ...o.trainArgs,
      ];
      // The token arrives on stdin; the rest of stdin stays open, and its end ends the remote run.
      const command = `cd ${shellQuote(process.cwd())} && IFS= read -r LOOM_TOKEN && export LOOM_TOKEN LOOM_EXIT_WITH_PARENT=1 && exec ${remote.map(shellQuote).join(' ')}`;
      const prefix = `[${h.host}] `;
      const c = group.spawn(`${at(h)}`, 'ssh', [...sshArgs(o, h.destination), command], { onStderr: (l) => process.stderr.write(prefix + l + '\n') });
      c.proc.stdin!.write(o.token + '\n');
      const lines = createInterface({ input: c.proc.stdout! });
      lines.on('line', (l) => {
        if (rank !== 0) return o.log(prefix + l);
        if (masterLine !== null) o.log(masterLine);
        masterLine = l;
      });
      outputsClosed.push(new Promise((r) => lines.once('close', () => r())));
      return c;
    });
    o.say(`started ${children.length} nodes over ssh (master ${master}; slots ${slots})`);

    // The first failure stops everyone; the master's success ends the run.
    await new Promise<void>((resolve, reject) => {
      children.forEach((c, rank) => {
        void c.exited.then((code) => {
          if (interrupted) reject(new Error('interrupted: stopped every host'));
          else if (code !== 0) reject(new Error(`${c.name} failed: ${why(c, code)}`));
          else if (rank === 0) resolve();
        });
      });
    });
    // Other nodes end with their workers, at about the same time as the master.
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([Promise.all([...children.map((c) => c.exited), ...outputsClosed]), new Promise((r) => (timer = setTimeout(r, 10_000)))]);
    clearTimeout(timer);
  } finally {
    process.removeListener('SIGINT', stop).removeListener('SIGTERM', stop);
    await group.stopAll();
    if (masterLine !== null) o.log(masterLine);
  }
}

/**
 * `loom dashboard`: a web page showing the runs of a directory while they train (../dashboard/),
 * and `loom train --dashboard [PORT]`, which serves the run being trained beside its siblings.
 */
import { existsSync, mkdirSync, statSync } from 'node:fs';
import { basename, dirname, resolve } from 'node:path';
import { helpText, parseFlags, type Flags } from '../args.js';
import { resolveToken } from '../cluster-token.js';
import { isLoopback } from '../dashboard/auth.js';
import { startDashboard, type Dashboard } from '../dashboard/server.js';
import { UsageError } from '../errors.js';

/** Where `loom dashboard` and a bare `loom train --dashboard` listen. */
export const DASHBOARD_PORT = 7080;

export const DASHBOARD_FLAGS: Flags = {
  runs: { type: 'string', arg: 'DIR', default: 'runs', help: 'show the runs in DIR: every directory with a metrics.jsonl, DIR itself and two levels below' },
  port: { type: 'int', arg: 'P', default: DASHBOARD_PORT, min: 0, help: 'port to listen on (0: any free port)' },
  host: { type: 'string', arg: 'ADDR', default: '127.0.0.1', help: 'address to listen on; any but a loopback address requires the cluster token from every browser' },
  'token-file': { type: 'string', arg: 'PATH', help: 'the cluster token (else LOOM_TOKEN, else ~/.loom/token); required with a --host other than loopback, and then asked for by the page' },
  select: { type: 'string', arg: 'RUN', help: 'the run to show first (its path under --runs)' },
};

export const DASHBOARD_HELP = helpText(
  'dashboard',
  'Serves a page showing training runs as they train: losses, accuracy or AUC, throughput and\nstaleness per worker, a cluster\'s processes and checkpoints, several runs overlaid.',
  DASHBOARD_FLAGS,
  '\nExample:\n  loom dashboard --runs runs        # then open http://127.0.0.1:7080/\n',
);

/**
 * Starts a dashboard; the caller closes it. Usage errors (no such --runs directory, a network
 * --host without a token) are thrown before anything listens.
 */
export async function openDashboard(o: { runs: string; port: number; host: string; tokenFile?: string | undefined; select?: string | undefined }): Promise<{ dashboard: Dashboard; tokenSource?: string }> {
  const runs = resolve(o.runs);
  if (!existsSync(runs)) throw new UsageError(`--runs ${o.runs}: no such directory (\`loom train --out ${o.runs}/NAME\` makes one)`);
  if (!statSync(runs).isDirectory()) throw new UsageError(`--runs ${o.runs}: not a directory`);
  let token: { token: string; source: string } | undefined;
  if (!isLoopback(o.host) || o.tokenFile !== undefined) token = resolveToken(o.tokenFile, false);
  const dashboard = await startDashboard({ runs, host: o.host, port: o.port, ...(token ? { token: token.token } : {}), ...(o.select !== undefined ? { select: o.select } : {}) });
  return { dashboard, ...(token ? { tokenSource: token.source } : {}) };
}

export async function dashboardCommand(argv: string[], log: (line: string) => void = console.log): Promise<null> {
  const f = parseFlags('dashboard', argv, DASHBOARD_FLAGS);
  if (f.help) {
    log(DASHBOARD_HELP);
    return null;
  }
  const { dashboard, tokenSource } = await openDashboard({ runs: f.runs as string, port: f.port as number, host: f.host as string, tokenFile: f.tokenFile as string | undefined, select: f.select as string | undefined });
  const n = dashboard.index.runs().length;
  log(`loom dashboard: ${n} run${n === 1 ? '' : 's'} in ${dashboard.index.root}, at ${dashboard.url}${tokenSource ? ` (asks for ${tokenSource})` : ''}`);
  await new Promise<void>((r) => {
    process.once('SIGINT', r);
    process.once('SIGTERM', r);
  });
  await dashboard.close();
  return null;
}

/**
 * `loom train --dashboard [PORT]`: the flag's value is optional — a bare `--dashboard` (last, or
 * before another flag) means DASHBOARD_PORT. Returns argv with the value filled in.
 */
export function dashboardPortFlag(argv: readonly string[]): string[] {
  return argv.map((a, i) => (a === '--dashboard' && (i + 1 === argv.length || argv[i + 1]!.startsWith('-')) ? `--dashboard=${DASHBOARD_PORT}` : a));
}

/** For `loom train --dashboard PORT --out DIR`: a dashboard of DIR's parent, DIR shown first. */
export async function dashboardOfRun(out: string, port: number, log: (line: string) => void): Promise<Dashboard> {
  mkdirSync(dirname(out), { recursive: true });
  try {
    const { dashboard } = await openDashboard({ runs: dirname(out), port, host: '127.0.0.1', select: basename(out) });
    log(`dashboard of ${out} at ${dashboard.url} (until this run ends; \`loom dashboard --runs ${dirname(out)}\` shows it again)`);
    return dashboard;
  } catch (e) {
    throw new Error(`--dashboard: ${(e as Error).message.replace('pass --port with another, or --port 0', 'pass --dashboard with another, or --dashboard 0')}`);
  }
}

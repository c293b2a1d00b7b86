/**
 * `loom launch`: one training run over several machines, the way torchrun, horovodrun and Slurm
 * users start one. The same command runs on every node:
 *
 *     loom launch --nodes 3 --node-rank R --master 10.0.0.1:7070 --servers 2 -- --dataset news --epochs 5
 *
 * (or takes nodes, rank and master from the scheduler's environment: see rendezvous.ts). Node 0,
 * the master, starts the S parameter servers on ports PORT+1 … PORT+S of every interface, its own
 * workers, and a small rendezvous endpoint on PORT: the other nodes POST `join` there (with the
 * cluster token, and a fingerprint of their command that must match the master's), learn the
 * server URLs, start their workers, and forward each worker's per-epoch report. The master
 * validates the parameters after every epoch (pulled as an observer, as `loom train --cluster`
 * does), and writes the same run directory and metrics as `loom train`.
 *
 * Failure: a node whose worker fails tells the master, which stops the servers, so that every
 * other node's workers end; a node that has not joined within --join-timeout fails the run. Every
 * process a node started ends with it (see processes.ts). Each node ends with one message naming
 * the process at the root of the failure (a dead server before the workers that lost it: see
 * orchestration/failure.ts) and what to do next: start again, as launch keeps no checkpoints yet.
 *
 * With --hostfile FILE the same is started over ssh on the listed hosts (hostfile.ts).
 */
import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { resolve } from 'node:path';
import { Gate, RefusalLog, generateToken, tokensEqual, type GateOptions, type PsClient } from '@loom/parameter-server';
import { flattenParameters } from '@loom/tensor-core';
import { helpText, parseFlags, type Flags } from '../args.js';
import { exitWithParent, resolveToken } from '../cluster-token.js';
import { loadTrainingData } from '../datasets.js';
import { UsageError } from '../errors.js';
import { evaluate } from '../evaluate.js';
import { launchHostfile, readHostfile } from '../hostfile.js';
import { buildModel, fitModel, resolveModel } from '../models.js';
import {
  EpochReports, RunFailure, TrainingGroup, connectObserver, duringEpoch, observeEpochs, pullFinal, serverArgv, trainingFromFlags, updatesPerEpoch, workerArgv,
  type TrainingConfig, type WorkerEpochLine,
} from '../orchestration/index.js';
import { describeRendezvous, resolveRendezvous, DEFAULT_MASTER_PORT, type Rendezvous } from '../rendezvous.js';
import { appendMetrics, saveRun, startRun } from '../run-dir.js';
import type { EpochMetrics } from '../trainer.js';
import { TRAIN_FLAGS } from './train.js';

export const LAUNCH_FLAGS: Flags = {
  nodes: { type: 'int', arg: 'N', min: 1, help: 'nodes in the run (else WORLD_SIZE, SLURM_NTASKS; default 1)' },
  'node-rank': { type: 'int', arg: 'R', min: 0, help: 'this node, 0 … N−1; 0 is the master (else RANK, SLURM_PROCID, JOB_COMPLETION_INDEX)' },
  master: { type: 'string', arg: 'HOST[:PORT]', help: `the master node's address (else MASTER_ADDR, first of SLURM_NODELIST; port: MASTER_PORT, default ${DEFAULT_MASTER_PORT})` },
  servers: { type: 'int', arg: 'S', default: 1, min: 1, help: 'parameter servers the master runs, on ports PORT+1 … PORT+S' },
  'workers-per-node': { type: 'int', arg: 'K', default: 1, min: 1, help: 'worker processes on each node (one per core at most)' },
  slots: { type: 'string', arg: 'K0,K1,…', help: 'worker processes on each node, when they differ (the hostfile launcher passes its slots=)' },
  host: { type: 'string', arg: 'ADDR', default: '0.0.0.0', help: 'master: the address its servers and rendezvous listen on' },
  'token-file': { type: 'string', arg: 'PATH', help: 'the cluster token (else LOOM_TOKEN, else ~/.loom/token); the same on every node' },
  'join-timeout': { type: 'int', arg: 'SECONDS', default: 300, min: 1, help: 'how long nodes wait for the master, and the master for every node' },
  hostfile: { type: 'string', arg: 'FILE', help: "start the run over ssh on the hosts of FILE ('HOST [slots=N]' per line; the first is the master)" },
  'master-port': { type: 'int', arg: 'P', default: DEFAULT_MASTER_PORT, min: 1, help: 'hostfile only: the port of the master on the first host' },
  'ssh-config': { type: 'string', arg: 'FILE', help: 'hostfile only: ssh -F FILE (identity, user, port, host keys)' },
  'connect-timeout': { type: 'int', arg: 'SECONDS', default: 10, min: 1, help: "hostfile only: ssh's ConnectTimeout" },
};

export const LAUNCH_HELP = helpText(
  'launch',
  'Runs one training over several machines: the same command on every node (node 0 also runs the\nparameter servers), or, with --hostfile, started on every host over ssh. Everything after `--`\nis `loom train` flags (--dataset, --model, --epochs, --mode, --out …); --workers and --cluster\nare decided by launch.',
  LAUNCH_FLAGS,
  `
Nodes, rank and master come from the flags, else from the environment: torchrun's MASTER_ADDR,
MASTER_PORT, RANK, WORLD_SIZE; Slurm's SLURM_PROCID, SLURM_NTASKS, SLURM_NODELIST; Kubernetes'
JOB_COMPLETION_INDEX (with MASTER_ADDR and WORLD_SIZE set in the manifest: deploy/k8s.yaml).

Examples:
  LOOM_TOKEN=… loom launch --nodes 2 --node-rank 0 --master 10.0.0.1:7070 -- --epochs 5 --out runs/x
  LOOM_TOKEN=… loom launch --nodes 2 --node-rank 1 --master 10.0.0.1:7070 -- --epochs 5 --out runs/x
  srun loom launch --servers 2 -- --epochs 5          # deploy/slurm.sbatch
  loom launch --hostfile hosts.txt --servers 2 -- --epochs 5
`,
);

/** What to do after a failed launch. */
const LAUNCH_AGAIN = 'loom launch keeps no checkpoints yet: start the run again, with the same loom launch on every node';

/** Train flags that launch decides itself. */
const NOT_TRAIN_FLAGS = { workers: '--workers-per-node or --slots', cluster: '--nodes and --servers' } as const;

/** What this node knows of the run before it starts anything. */
interface Plan {
  /** Nodes, this node's rank, and the master's address (with where each came from). */
  rendezvous: Rendezvous;
  token: string;
  /** Parameter servers, on the master's ports masterPort+1 … masterPort+serverCount. */
  serverCount: number;
  /** Workers on each node; node n's ranks start at the sum of the slots before it. */
  slots: number[];
  /** The address the master's servers and rendezvous listen on. */
  bindHost: string;
  joinTimeoutMs: number;
  /** The training, from the `loom train` flags after --. */
  training: TrainingConfig;
  /** The master's run directory (`--out` after --) and whether it ends with a JSON line (`--json`). */
  out: string;
  json: boolean;
  /** Must match between every node and the master. */
  fingerprint: string;
  /** Progress, on standard error (`loom launch [node R]: …`). */
  say: (line: string) => void;
  /** Results, on standard output. */
  log: (line: string) => void;
}

export interface LaunchResult extends EpochMetrics {
  out: string;
  testAccuracy: number;
  testLoss: number;
  interrupted: boolean;
}

export async function launchCommand(argv: string[], log: (line: string) => void = console.log): Promise<LaunchResult | { interrupted: boolean } | null> {
  const dash = argv.indexOf('--');
  const [own, trainArgv] = dash < 0 ? [argv, []] : [argv.slice(0, dash), argv.slice(dash + 1)];
  const f = parseFlags('launch', own, LAUNCH_FLAGS);
  if (f.help) {
    log(LAUNCH_HELP);
    return null;
  }
  const t = parseFlags('launch -- (train flags)', trainArgv, TRAIN_FLAGS);
  if (t.help) throw new UsageError('the flags after -- are `loom train` flags: see `loom train --help`');
  for (const [flag, instead] of Object.entries(NOT_TRAIN_FLAGS)) {
    if (t[flag] !== undefined) throw new UsageError(`--${flag} after -- is decided by launch: use ${instead}`);
  }
  if (t.resume !== undefined) throw new UsageError('--resume after --: launch does not resume runs yet (use loom train --cluster --resume)');
  if (t.staleness !== undefined && t.mode !== 'ssp') throw new UsageError(`--staleness applies to --mode ssp only (got --mode ${String(t.mode)})`);

  if (f.hostfile !== undefined) {
    for (const flag of ['nodes', 'nodeRank', 'master', 'slots'] as const) {
      if (f[flag] !== undefined) throw new UsageError(`--${flag === 'nodeRank' ? 'node-rank' : flag} does not go with --hostfile (the hostfile names the nodes)`);
    }
    if (f.tokenFile !== undefined) throw new UsageError('--token-file does not go with --hostfile (the launcher makes a fresh token for the run and hands it to every host)');
    const hosts = readHostfile(f.hostfile as string, f.workersPerNode as number);
    const launchArgs = ['--servers', String(f.servers), '--host', String(f.host), '--join-timeout', String(f.joinTimeout)];
    await launchHostfile({
      file: f.hostfile as string, hosts, masterPort: f.masterPort as number, launchArgs, trainArgs: trainArgv, token: generateToken(),
      ...(f.sshConfig !== undefined ? { sshConfig: f.sshConfig as string } : {}), connectTimeout: f.connectTimeout as number,
      log, say: (l) => console.error(`loom launch: ${l}`),
    });
    return { interrupted: false };
  }

  const r = resolveRendezvous({ nodes: f.nodes as number | undefined, nodeRank: f.nodeRank as number | undefined, master: f.master as string | undefined }, process.env);
  const servers = f.servers as number;
  if (r.masterPort + servers > 65535) throw new UsageError(`the servers' ports ${r.masterPort + 1} … ${r.masterPort + servers} run past 65535: choose a lower master port`);
  let slots: number[];
  if (f.slots !== undefined) {
    slots = (f.slots as string).split(',').map((s) => (/^\d+$/.test(s.trim()) && Number(s) >= 1 ? Number(s) : NaN));
    if (slots.some(Number.isNaN)) throw new UsageError(`--slots must be whole numbers ≥ 1, one per node, got '${String(f.slots)}'`);
    if (slots.length !== r.nodes) throw new UsageError(`--slots names ${slots.length} nodes, but the run has ${r.nodes} (from ${r.source.nodes})`);
  } else slots = Array.from({ length: r.nodes }, () => f.workersPerNode as number);
  const { token } = resolveToken(f.tokenFile as string | undefined, false);
  // What every node must agree on: the training (not where the master writes it), servers and nodes.
  const training = Object.fromEntries(Object.entries(t).filter(([k]) => !['out', 'json', 'config', 'help'].includes(k)));
  const fingerprint = createHash('sha256').update(JSON.stringify({ training, servers, nodes: r.nodes, slots, port: r.masterPort })).digest('hex').slice(0, 16);
  const say = (line: string) => console.error(`loom launch [node ${r.nodeRank}]: ${line}`);
  say(describeRendezvous(r));
  const plan: Plan = {
    rendezvous: r, token, serverCount: servers, slots, bindHost: f.host as string, joinTimeoutMs: (f.joinTimeout as number) * 1000,
    training: trainingFromFlags(t), out: t.out as string, json: t.json === true, fingerprint, say, log,
  };
  exitWithParent();
  return r.nodeRank === 0 ? runMaster(plan) : runNode(plan);
}

// ——— what every node shares ———


const firstRank = (p: Plan, node: number) => p.slots.slice(0, node).reduce((a, b) => a + b, 0);
const totalWorkers = (p: Plan) => p.slots.reduce((a, b) => a + b, 0);
const urlHost = (h: string) => (h.includes(':') ? `[${h}]` : h);

/** Starts this node's workers, connecting to `urls`. */
function startWorkers(p: Plan, group: TrainingGroup, urls: string[]): void {
  const node = p.rendezvous.nodeRank;
  const first = firstRank(p, node);
  for (let k = 0; k < p.slots[node]!; k++) {
    const rank = first + k;
    group.startWorker(rank, workerArgv(p.training, urls, rank, totalWorkers(p)), node);
  }
}

/** POSTs JSON to the master's rendezvous endpoint; resolves with the status and body. */
async function post(p: Plan, path: string, body: object, timeoutMs = 10_000): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`http://${urlHost(p.rendezvous.masterHost)}:${p.rendezvous.masterPort}/loom/v1/${path}`, {
    method: 'POST', headers: { authorization: `Bearer ${p.token}`, 'content-type': 'application/json' },
    body: JSON.stringify(body), signal: AbortSignal.timeout(timeoutMs),
  });
  const text = await res.text();
  let parsed: Record<string, unknown> = {};
  try {
    parsed = JSON.parse(text) as Record<string, unknown>;
  } catch {
    parsed = { error: text.slice(0, 200) };
  }
  return { status: res.status, body: parsed };
}

// ——— node R > 0 ———

async function runNode(p: Plan): Promise<{ interrupted: boolean }> {
  const where = `${p.rendezvous.masterHost}:${p.rendezvous.masterPort}`;
  const deadline = Date.now() + p.joinTimeoutMs;
  let urls: string[] | undefined;
  let lastError = '';
  for (let attempt = 0; urls === undefined; attempt++) {
    try {
      const res = await post(p, 'join', { nodeRank: p.rendezvous.nodeRank, fingerprint: p.fingerprint }, Math.max(1000, deadline - Date.now()));
      if (res.status === 503) throw new Error(`busy: ${String(res.body.error ?? res.status)}`); // (tried again)
      if (res.status !== 200) throw new Error(`the master at ${where} refused node ${p.rendezvous.nodeRank}: ${String(res.body.error ?? res.status)}`);
      urls = res.body.servers as string[];
    } catch (e) {
      if ((e as Error).message.startsWith('the master')) throw e;
      const cause = (e as { cause?: { code?: string; message?: string } }).cause;
      lastError = cause?.code ?? cause?.message ?? (e as Error).message;
      if (attempt === 0) p.say(`waiting for the master at ${where} (${lastError}) …`);
      if (Date.now() >= deadline) throw new Error(`the master at ${where} did not answer within ${p.joinTimeoutMs / 1000} s (last: ${lastError}; --join-timeout)`);
      await new Promise((r) => setTimeout(r, Math.min(1000, Math.max(0, deadline - Date.now()))));
    }
  }
  p.say(`joined; servers ${urls.join(', ')}`);

  const forwarded: Promise<unknown>[] = [];
  const group = new TrainingGroup({
    token: p.token,
    onReport: (report) => forwarded.push(post(p, 'report', { nodeRank: p.rendezvous.nodeRank, report }).catch(() => {})),
  });
  try {
    startWorkers(p, group, urls);
    const codes = await Promise.race([group.workersDone(), group.failure]).catch(async (e: Error) => {
      const cause = await group.explain(e);
      const message = cause instanceof RunFailure ? cause.summary : (cause as Error).message;
      await post(p, 'failed', { nodeRank: p.rendezvous.nodeRank, message }, 3000).catch(() => {});
      throw cause instanceof RunFailure ? cause.advise(LAUNCH_AGAIN) : cause;
    });
    await Promise.all(forwarded);
    p.say(`${codes.length} worker${codes.length === 1 ? '' : 's'} done`);
    p.log(`node ${p.rendezvous.nodeRank}: done`);
    return { interrupted: false };
  } finally {
    await group.stop();
  }
}

// ——— node 0, the master ———

interface Endpoint {
  server: Server;
  joined: Set<number>;
  /** Its deadline, limits and refusal log (the parameter servers' own rules). */
  gate: Gate;
}

/**
 * The rendezvous endpoint: POST /loom/v1/{join,report,failed} with `Authorization: Bearer TOKEN`
 * and a JSON body of at most 64 KiB. `join` is answered once the servers listen.
 *
 * Before a request with the token, a peer holds what a parameter server's would (@loom/parameter-
 * server's Gate, the same defaults): 5 s from accept to its first request's headers, 503 past 1024
 * sockets or 64 that have not authenticated, and a refusal (401, 503) is answered and the socket
 * destroyed at once, logged through a RefusalLog (the first from an address in full, then counted).
 * `limits` changes the defaults (tests).
 */
export function listenRendezvous(
  p: Pick<Plan, 'token' | 'say' | 'rendezvous' | 'fingerprint' | 'bindHost'>,
  urls: Promise<string[]>,
  /** `failed`: a node refused (`node` absent), or a node's own failure (`node`: its message follows `node N failed: `). */
  on: { report: (r: WorkerEpochLine) => void; failed: (message: string, node?: number) => void },
  limits: Pick<GateOptions, 'deadlineMs' | 'maxConnections' | 'maxUnauthenticated'> & { refusalWindowMs?: number } = {},
): Promise<Endpoint> {
  const joined = new Set<number>();
  const reply = (res: ServerResponse, status: number, body: object) => {
    res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
  };
  /** Answers a peer that has not authenticated, then hangs up on it. */
  const refuse = (req: IncomingMessage, res: ServerResponse, status: number, kind: string, error: string) => {
    gate.refuse(req.socket, kind, `${req.method} ${String(req.url).slice(0, 80)}`);
    res.writeHead(status, { 'content-type': 'application/json', connection: 'close' }).end(JSON.stringify({ error }), () => gate.hangUp(req.socket));
  };
  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const addr = `${req.socket.remoteAddress}:${req.socket.remotePort}`;
    const full = gate.full(req.socket);
    if (full !== null) return refuse(req, res, 503, full, `the master is busy (${full}); try again`);
    const auth = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1] ?? '';
    if (!tokensEqual(auth, p.token)) return refuse(req, res, 401, auth === '' ? 'no token' : 'bad token', 'the cluster token is missing or wrong');
    gate.authenticated(req.socket);
    const m = /^\/loom\/v1\/(join|report|failed)$/.exec(req.url ?? '');
    if (req.method !== 'POST' || !m) return reply(res, 404, { error: 'POST /loom/v1/join, /report or /failed' });
    if (Number(req.headers['content-length'] ?? 0) > 64 * 1024) return reply(res, 413, { error: 'body over 64 KiB' });
    let size = 0;
    const chunks: Buffer[] = [];
    for await (const chunk of req) {
      size += (chunk as Buffer).length;
      if (size > 64 * 1024) return reply(res, 413, { error: 'body over 64 KiB' });
      chunks.push(chunk as Buffer);
    }
    let body: { nodeRank?: unknown; fingerprint?: unknown; report?: WorkerEpochLine; message?: unknown };
    try {
      body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
    } catch {
      return reply(res, 400, { error: 'body is not JSON' });
    }
    const node = body.nodeRank;
    if (typeof node !== 'number' || !Number.isInteger(node) || node < 1 || node >= p.rendezvous.nodes) {
      return reply(res, 400, { error: `nodeRank must be 1 … ${p.rendezvous.nodes - 1}, got ${JSON.stringify(node)}` });
    }
    if (m[1] === 'join') {
      if (body.fingerprint !== p.fingerprint) {
        const error = `node ${node} runs another command than the master (the train flags after --, --servers, --slots, --nodes or the port differ)`;
        on.failed(error);
        return reply(res, 409, { error });
      }
      if (joined.has(node)) {
        const error = `node rank ${node} joined twice (two nodes with one rank?), the second time from ${addr}`;
        on.failed(error);
        return reply(res, 409, { error });
      }
      joined.add(node);
      p.say(`node ${node} joined from ${addr}`);
      return reply(res, 200, { servers: await urls });
    }
    if (m[1] === 'report' && body.report?.event === 'epoch') on.report(body.report);
    if (m[1] === 'failed') on.failed(`node ${node} failed: ${String(body.message).slice(0, 1000)}`, node);
    return reply(res, 200, {});
  };
  const server = createServer((req, res) => {
    handle(req, res).catch((e: Error) => {
      if (!res.headersSent) reply(res, 500, { error: e.message });
      else res.destroy();
    });
  });
  const gate = new Gate(server, {
    refusals: new RefusalLog({ log: p.say, ...(limits.refusalWindowMs !== undefined ? { windowMs: limits.refusalWindowMs } : {}) }),
    awaiting: 'request', deadlineMs: limits.deadlineMs, maxConnections: limits.maxConnections, maxUnauthenticated: limits.maxUnauthenticated,
  });
  return new Promise((resolveListen, reject) => {
    server.once('error', (e: NodeJS.ErrnoException) => {
      reject(new Error(`cannot listen on ${p.bindHost}:${p.rendezvous.masterPort} for the rendezvous: ${e.code === 'EADDRINUSE' ? 'the port is in use' : e.message} (port from ${p.rendezvous.source.masterPort})`));
    });
    server.listen(p.rendezvous.masterPort, p.bindHost, () => resolveListen({ server, joined, gate }));
  });
}

async function runMaster(p: Plan): Promise<LaunchResult> {
  const t = p.training;
  const W = totalWorkers(p);
  const { mode, seed, staleness } = t;
  const spec = resolveModel(t.model);
  if (spec.kind === 'gpt') throw new UsageError(`loom launch trains classifiers (reference, mlp:…, cnn) in this version, got --model ${t.model}; train a gpt with loom train --task lm (--cluster local:S,W for processes)`);
  const data = loadTrainingData(t.dataset.spec, { seed, scale: t.dataset.scale, label: t.dataset.label });
  fitModel(t.model, data);
  const out = resolve(p.out);
  startRun(out);
  p.log(`training ${t.model} on ${data.spec}: ${data.train.rows.length} train / ${data.valid.rows.length} valid / ${data.test.rows.length} test rows; ${p.rendezvous.nodes} node${p.rendezvous.nodes === 1 ? '' : 's'}, ${p.serverCount} server${p.serverCount === 1 ? '' : 's'}, ${W} worker${W === 1 ? '' : 's'}, ${mode}${mode === 'ssp' ? ` (staleness ${staleness})` : ''}`);

  // Reports come from this node's workers and, forwarded, from the other nodes'.
  const reports = new EpochReports(W);
  const group = new TrainingGroup({ token: p.token, onReport: (r) => reports.add(r) });
  let setUrls!: (urls: string[]) => void;
  const urlsReady = new Promise<string[]>((r) => (setUrls = r));

  let endpoint: Endpoint | undefined;
  let observer: PsClient | null = null;
  let joinTimer: NodeJS.Timeout | undefined;
  let interrupted = false;
  /** Epochs are observed: a failure names the epoch it came in. */
  let observing = false;
  const interrupt = () => {
    interrupted = true;
    void observer?.shutdown(false).catch(() => {});
  };
  process.once('SIGINT', interrupt);
  try {
    endpoint = await listenRendezvous(p, urlsReady, {
      report: (r) => reports.add(r),
      failed: (message, node) => group.fail(node === undefined ? new Error(message) : new RunFailure('node', `node ${node}`, 'failed', message.replace(/^node \d+ failed: /, ''))),
    });
    const joined = endpoint.joined;
    joinTimer = setTimeout(() => {
      const missing = Array.from({ length: p.rendezvous.nodes - 1 }, (_, i) => i + 1).filter((n) => !joined.has(n));
      if (missing.length > 0) group.fail(new RunFailure('timeout', `node${missing.length === 1 ? '' : 's'} ${missing.join(', ')}`, `did not join within ${p.joinTimeoutMs / 1000} s (--join-timeout)`));
    }, p.joinTimeoutMs);
    joinTimer.unref();

    // The servers, on PORT+1 … PORT+S of the bind address, advertised at the master's address.
    const port = (i: number) => p.rendezvous.masterPort + 1 + i;
    const servers = Array.from({ length: p.serverCount }, (_, i) =>
      group.startServer({ index: i, count: p.serverCount }, serverArgv(t, { shard: { index: i, count: p.serverCount }, workers: W, host: p.bindHost, port: port(i) }), `${urlHost(p.bindHost)}:${port(i)}`),
    );
    await Promise.race([Promise.all(servers.map((s) => group.listening(s))), group.failure]);
    const urls = servers.map((_, i) => `ws://${urlHost(p.rendezvous.masterHost)}:${port(i)}`);
    const local = servers.map((_, i) => `ws://${urlHost(p.bindHost === '0.0.0.0' ? '127.0.0.1' : p.bindHost)}:${port(i)}`);
    setUrls(urls);
    p.say(`servers listening: ${urls.join(', ')}`);
    startWorkers(p, group, local);

    // Validate after every epoch, on the parameters as of the epoch's last update.
    const model = buildModel(t.model, seed);
    const size = flattenParameters(model).size;
    observer = await connectObserver(local, { token: p.token, workers: W, size, failure: group.failure });
    const train = { features: data.train.features, labels: data.train.labels, width: data.width, rows: data.train.rows };
    let last: EpochMetrics | undefined;
    observing = true;
    await observeEpochs({
      observer, reports, size, first: 1, last: t.epochs, failure: group.failure,
      perEpoch: updatesPerEpoch(train, { batchSize: t.batchSize, seed, mode, workers: W }),
      // Reports travel beside the updates; wait for them a little, then go on with those there are.
      lateReports: { afterMs: 30_000, onLate: (epoch, arrived) => p.say(`epoch ${epoch}: ${arrived} of ${W} worker reports arrived; the train loss counts those`) },
      onEpoch: (m, params) => {
        flattenParameters(model, { params });
        const v = evaluate(model, data.valid, data.width, data.numClasses);
        // metrics.jsonl keeps the field order it has always had.
        last = { epoch: m.epoch, trainLoss: m.trainLoss, validLoss: v.loss, validAccuracy: v.accuracy, samplesPerSec: m.samplesPerSec, seconds: m.seconds, workers: m.workers, ...(m.membership !== undefined ? { membership: m.membership } : {}) };
        appendMetrics(out, last);
        p.log(`epoch ${m.epoch}: train loss ${m.trainLoss.toFixed(4)}, valid loss ${v.loss.toFixed(4)}, valid accuracy ${(100 * v.accuracy).toFixed(2)}%, ${Math.round(m.samplesPerSec)} samples/s, ${m.seconds.toFixed(2)} s`);
      },
    });
    // Every local worker has ended; every update of the run is applied (the last pull waited for it).
    flattenParameters(model, { params: await pullFinal(observer, { size, workersDone: group.workersDone(), failure: group.failure }) });
    saveRun(out, {
      model: { spec: t.model, ...(spec.sizes ? { sizes: spec.sizes } : {}) }, dataset: data.spec, preprocessing: data.preprocessing, classNames: data.classNames,
      train: { optimizer: t.optimizer, lr: t.lr, batchSize: t.batchSize, epochs: t.epochs, seed, workers: W, mode, ...(mode === 'ssp' ? { staleness } : {}), launch: { nodes: p.rendezvous.nodes, servers: p.serverCount, slots: p.slots } },
    }, model);
    const test = evaluate(model, data.test, data.width, data.numClasses);
    p.log(`test accuracy ${(100 * test.accuracy).toFixed(2)}%, test loss ${test.loss.toFixed(4)}${interrupted ? ' (stopped early by SIGINT)' : ''}; wrote ${out}`);
    const result: LaunchResult = {
      ...(last ?? { epoch: 0, trainLoss: NaN, validLoss: NaN, validAccuracy: NaN, samplesPerSec: 0, seconds: 0 }),
      out, testAccuracy: test.accuracy, testLoss: test.loss, interrupted,
    };
    if (p.json) p.log(JSON.stringify(result));
    return result;
  } catch (e) {
    const cause = await group.explain(e);
    if (cause instanceof RunFailure) {
      // The epoch of this node's workers (the observer's may lag behind it); not for a node that
      // never joined, or a server that never answered: nothing had started for them.
      if (observing && cause.kind !== 'timeout') cause.during(duringEpoch(group.latestEpoch + 1, t.epochs));
      cause.advise(LAUNCH_AGAIN);
    }
    throw cause;
  } finally {
    process.removeListener('SIGINT', interrupt);
    clearTimeout(joinTimer);
    if (observer !== null) {
      // A failed run: stop the servers, so that every other node's workers end too.
      await observer.shutdown(true).catch(() => {});
      await observer.close().catch(() => {});
    }
    await group.stop();
    endpoint?.gate.close();
    endpoint?.server.closeAllConnections();
    await new Promise((r) => (endpoint ? endpoint.server.close(r) : r(null)));
  }
}

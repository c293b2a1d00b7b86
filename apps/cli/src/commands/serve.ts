/** `loom serve`: a parameter server owning one key range of the model, over WebSocket. */
import { readFileSync } from 'node:fs';
import { CheckpointError, GATE_DEFAULTS, MODES, ParameterServer, parseShard, type Mode, type RowTableSpec, type ServerOptions } from '@loom/parameter-server';
import { generateClickLog } from '@loom/data';
import { CTR_DIM, CTR_TABLES, CtrModel } from '@loom/worker';
import { SPARSE_OPTIMIZERS, defaultSparseLr, type SparseOptimizerName } from '../ctr.js';
import { helpText, parseFlags, type Flags } from '../args.js';
import { exitWithParent, resolveToken } from '../cluster-token.js';
import { UsageError } from '../errors.js';
import { serverModel } from '../models.js';
import { OPTIMIZERS } from '../optimizers.js';

export const SERVE_FLAGS: Flags = {
  config: { type: 'string', arg: 'FILE.json', help: 'read defaults from a JSON file whose keys are these flags in camelCase' },
  port: { type: 'int', arg: 'P', default: 7070, min: 0, configurable: true, help: 'port to listen on (0: any free port)' },
  host: { type: 'string', arg: 'ADDR', default: '127.0.0.1', configurable: true, help: 'address to listen on (0.0.0.0 for every interface)' },
  shard: { type: 'string', arg: 'i/S', default: '0/1', configurable: true, help: 'own key range i of S' },
  workers: { type: 'int', arg: 'W', default: 1, min: 1, configurable: true, help: 'workers in the run (sync and ssp wait for all of them)' },
  model: { type: 'string', arg: 'reference|mlp:A,B,…', default: 'reference', configurable: true, help: 'the model, as the workers name it' },
  task: { type: 'string', default: 'classify', choices: ['classify', 'ctr'], configurable: true, help: 'classify (the dense MLP of --model) | ctr (the CTR model: its dense part as a key range, its embedding tables user, article, category, subcategory (dim 32) as row tables, this server holding the ids that hash to its shard)' },
  'sparse-optimizer': { type: 'string', default: 'sparse-adam', choices: SPARSE_OPTIMIZERS, configurable: true, help: `--task ctr: the tables' optimizer, ${SPARSE_OPTIMIZERS.join('|')}` },
  'sparse-lr': { type: 'number', arg: 'X', min: 0, exclusiveMin: true, configurable: true, help: '--task ctr: the tables\' learning rate (default: --lr for sparse-adam, 0.05 for the adagrads, 0.1 for sgd)' },
  'row-mode': { type: 'string', choices: MODES, configurable: true, help: '--task ctr: the tables\' policy when it differs from --mode (async: Hogwild! tables beside a sync dense part)' },
  'admit-after': { type: 'int', arg: 'N', min: 1, configurable: true, help: '--task ctr: an id gets its row at its N-th pull; before, it reads zeros and its gradients are dropped (default 1: at once)' },
  'evict-after': { type: 'int', arg: 'K', min: 0, configurable: true, help: '--task ctr: evict rows not pulled or pushed for K steps, checked every ⌈K/8⌉ steps (default 0: never)' },
  'table-capacity': { type: 'int', arg: 'R', min: 0, configurable: true, help: '--task ctr: at most R rows per table on this server; a new row first evicts the least recently touched eighth (default 0: no bound)' },
  seed: { type: 'int', default: 42, min: 0, configurable: true, help: 'seeds the initial weights (the same as the workers)' },
  optimizer: { type: 'string', default: 'adam', choices: OPTIMIZERS, configurable: true, help: OPTIMIZERS.join('|') },
  lr: { type: 'number', arg: 'X', default: 1e-3, min: 0, exclusiveMin: true, configurable: true, help: 'learning rate' },
  mode: { type: 'string', default: 'sync', choices: MODES, configurable: true, help: 'sync | async | ssp' },
  staleness: { type: 'int', arg: 'S', min: 0, configurable: true, help: 'ssp only: how many updates a worker may run ahead (default: 2)' },
  'token-file': { type: 'string', arg: 'PATH', configurable: true, help: 'the cluster token (else LOOM_TOKEN, else ~/.loom/token, created if missing)' },
  'tls-cert': { type: 'string', arg: 'PEM', configurable: true, help: 'certificate file: serve wss:// (with --tls-key)' },
  'tls-key': { type: 'string', arg: 'PEM', configurable: true, help: 'private key file for --tls-cert' },
  'max-frame-mib': { type: 'int', arg: 'N', default: 256, min: 1, configurable: true, help: 'largest frame accepted, in MiB' },
  'max-in-flight': { type: 'int', arg: 'N', default: 64, min: 1, configurable: true, help: 'unanswered requests one connection may have' },
  'non-finite': { type: 'string', default: 'reject', choices: ['reject', 'skip'], configurable: true, help: 'a gradient with NaN/Inf: reject it with an error, or skip it (counted as zero)' },
  checkpoint: { type: 'string', arg: 'DIR', configurable: true, help: 'save this range and its optimizer state in DIR/checkpoints (a run directory) every --checkpoint-every updates and on shutdown' },
  'checkpoint-every': { type: 'int', arg: 'K', default: 100, min: 0, configurable: true, help: 'updates between checkpoints (0: only on shutdown)' },
  resume: { type: 'string', arg: 'DIR', configurable: true, help: 'start from the latest complete checkpoint in DIR/checkpoints, and go on saving there' },
  'heartbeat-timeout-ms': { type: 'int', arg: 'T', default: 30000, min: 0, configurable: true, help: 'drop a worker from the barrier after T ms without a message or heartbeat (0: never)' },
  'hello-timeout-ms': { type: 'int', arg: 'T', default: GATE_DEFAULTS.deadlineMs, min: 1, configurable: true, help: 'a connection that has not sent a hello with the token T ms after it was accepted is refused and closed' },
  'max-connections': { type: 'int', arg: 'N', default: GATE_DEFAULTS.maxConnections, min: 1, configurable: true, help: 'sockets held at most; a further connection is answered HTTP 503' },
  'max-unauthenticated': { type: 'int', arg: 'N', default: GATE_DEFAULTS.maxUnauthenticated, min: 1, configurable: true, help: 'sockets held at most that have not sent their hello yet; a further connection is answered HTTP 503' },
};

export const SERVE_HELP = helpText(
  'serve',
  'Runs a parameter server: owns key range i of S of the model, applies the optimizer to it, and\nanswers workers\' pulls and pushes. Every connection must present the cluster token first.',
  SERVE_FLAGS,
  '\nExample:\n  LOOM_TOKEN=… loom serve --port 7070 --shard 0/2 --workers 4 --mode sync\n',
);

export async function serveCommand(argv: string[], log: (line: string) => void = console.log): Promise<null> {
  const f = parseFlags('serve', argv, SERVE_FLAGS);
  if (f.help) {
    log(SERVE_HELP);
    return null;
  }
  let shard;
  try {
    shard = parseShard(f.shard as string);
  } catch (e) {
    throw new UsageError(`--shard ${(e as Error).message.replace(/^shard /, '')}`);
  }
  const mode = f.mode as Mode;
  if (f.staleness !== undefined && mode !== 'ssp') throw new UsageError(`--staleness applies to --mode ssp only (got --mode ${mode})`);
  if ((f.tlsCert === undefined) !== (f.tlsKey === undefined)) throw new UsageError('--tls-cert and --tls-key go together');
  const readPem = (flag: string, path: string) => {
    try {
      return readFileSync(path);
    } catch (e) {
      throw new UsageError(`${flag}: cannot read ${path} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
    }
  };
  const tls = f.tlsCert !== undefined ? { cert: readPem('--tls-cert', f.tlsCert as string), key: readPem('--tls-key', f.tlsKey as string) } : undefined;
  const { token, source } = resolveToken(f.tokenFile as string | undefined, true);
  const say = (line: string) => console.error(`loom serve [${shard.index}/${shard.count}]: ${line}`);
  say(`using ${source}`);
  const checkpointDir = (f.checkpoint as string | undefined) ?? (f.resume as string | undefined);
  const ctr = f.task === 'ctr'
    ? ctrServerOptions({
        seed: f.seed as number, lr: f.lr as number, sparseOptimizer: f.sparseOptimizer as SparseOptimizerName, sparseLr: f.sparseLr as number | undefined,
        rowMode: f.rowMode as Mode | undefined, tables: tableLimits(f),
      })
    : serverModel(f.model as string);
  if (f.task !== 'ctr' && (f.rowMode !== undefined || f.sparseLr !== undefined || f.sparseOptimizer !== 'sparse-adam' || Object.keys(tableLimits(f)).length > 0)) {
    throw new UsageError('--sparse-optimizer, --sparse-lr, --row-mode, --admit-after, --evict-after and --table-capacity apply to --task ctr only');
  }
  const start = ParameterServer.start({
    ...ctr, seed: f.seed as number, optimizer: f.optimizer as string, lr: f.lr as number,
    mode, staleness: mode === 'ssp' ? ((f.staleness as number | undefined) ?? 2) : 0, workers: f.workers as number,
    shard: shard.index, shards: shard.count, token, host: f.host as string, port: f.port as number, ...(tls ? { tls } : {}),
    maxFrameBytes: (f.maxFrameMib as number) * 1024 * 1024 + 64 * 1024, maxInFlight: f.maxInFlight as number,
    nonFinite: f.nonFinite as 'reject' | 'skip', log: say, heartbeatTimeoutMs: f.heartbeatTimeoutMs as number,
    helloTimeoutMs: f.helloTimeoutMs as number, maxConnections: f.maxConnections as number, maxUnauthenticated: f.maxUnauthenticated as number,
    ...(checkpointDir !== undefined ? { checkpoint: { dir: checkpointDir, every: f.checkpointEvery as number } } : {}),
    ...(f.resume !== undefined ? { resume: f.resume as string } : {}),
  });
  let server: ParameterServer;
  try {
    server = await start;
  } catch (e) {
    if (e instanceof CheckpointError) throw new UsageError(`--resume: ${e.message}`);
    throw e;
  }
  const s = server.store;
  const rowTables = Object.values(server.rowTables);
  const tables = rowTables.length > 0 ? `; row tables ${rowTables.map((t) => `${t.name} (dim ${t.dim})`).join(', ')}, ${rowTables[0]!.policy.mode}` : '';
  log(`shard ${shard.index}/${shard.count}: keys [${s.lo}, ${s.hi}) of ${s.size}, ${mode}, ${s.o.workers} workers${tables}; listening on ${server.url}`);
  exitWithParent();
  const stop = () => void server.close();
  process.once('SIGINT', stop).once('SIGTERM', stop);
  await server.closed;
  process.removeListener('SIGINT', stop).removeListener('SIGTERM', stop);
  const st = server.stats();
  say(`closed after ${st.applied} updates (${st.pushes} pushes, ${st.pulls} pulls, refused: ${JSON.stringify(st.errors)})`);
  return null;
}

/** The row tables' admission and eviction, from --admit-after, --evict-after and --table-capacity (only those given). */
export type TableLimits = Pick<RowTableSpec, 'admitAfter' | 'evictAfter' | 'capacity'>;

export function tableLimits(f: Record<string, unknown>): TableLimits {
  const t: TableLimits = {};
  if (f.admitAfter !== undefined) t.admitAfter = f.admitAfter as number;
  if (f.evictAfter !== undefined) t.evictAfter = f.evictAfter as number;
  if (f.tableCapacity !== undefined) t.capacity = f.tableCapacity as number;
  return t;
}

/**
 * What a `--task ctr` server hosts: the CTR model's dense part as its key range (built from the
 * seed, as the workers build it) and the four embedding tables as row tables. The tables' shapes
 * come from the task, not the data: ids are created on first pull, whatever the log's scale.
 * `loom train --task ctr --cluster --resume` builds the same to check the checkpoints first.
 */
export function ctrServerOptions(o: { seed: number; lr: number; sparseOptimizer: SparseOptimizerName; sparseLr?: number; rowMode?: Mode; tables?: TableLimits }): Pick<ServerOptions, 'sizes' | 'model' | 'rowTables' | 'rowMode'> & { rowTables: RowTableSpec[] } {
  const probe = generateClickLog({ seed: o.seed, scale: 1 });
  const shape = { historyLength: probe.historyLength, denseWidth: probe.denseWidth };
  const lr = o.sparseLr ?? defaultSparseLr(o.sparseOptimizer, o.lr);
  return {
    sizes: [], model: (rng) => new CtrModel(shape, { rng }),
    rowTables: CTR_TABLES.map((name) => ({ name, dim: CTR_DIM, optimizer: o.sparseOptimizer, lr, ...o.tables })),
    ...(o.rowMode !== undefined ? { rowMode: o.rowMode } : {}),
  };
}

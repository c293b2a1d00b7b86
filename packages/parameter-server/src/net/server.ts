/**
 * A parameter server over WebSocket, as ps-lite has it: connections (./connection.ts: the hello,
 * frames, backpressure), one request handler (./handler.ts: what each request does, when it is
 * answered) over the server's tables (./table.ts), and the stores (./store.ts: the dense key range
 * this process owns, with its policy, ./policy.ts). This file is the process around them: it
 * listens, watches for silent workers, saves checkpoints and closes.
 *
 * Memory stays bounded: frames are at most `maxFrameBytes` (ws closes larger ones with 1009), a
 * connection has at most `maxInFlight` unanswered requests, pushes are accepted only within the
 * policy's window of steps, and a client that does not read its replies stops being read.
 * Before a peer authenticates it holds little (./gate.ts): `helloTimeoutMs` from accept to hello,
 * `maxHelloBytes` of data, at most `maxUnauthenticated` such sockets and `maxConnections` in all;
 * a refusal destroys its socket at once and is logged rate-limited (./refusal-log.ts).
 *
 * Membership: a worker that disconnects, or sends nothing (not even a WebSocket ping, its
 * heartbeat) for `heartbeatTimeoutMs`, is closed and dropped from every table's clock, so the
 * others go on; it is admitted again when it reconnects and joins. Both are logged and counted.
 * Checkpoints: with `checkpoint`, the range and optimizer state are saved every `every` updates and
 * when the server closes (./checkpoint.ts); with `resume`, the server starts from the latest
 * complete checkpoint of its run directory. With row tables, each checkpoint also holds this
 * shard's rows (./row-checkpoint.ts: a base, or the rows changed since the previous checkpoint),
 * taken when every table has applied the checkpoint's step: the dense range reaches update N
 * first, and the rows of step N−1 may still be on their way (a worker sends its pushrows after its
 * pushpull), so the save waits until each row table has them — sync tables, update N applied;
 * async tables, a push of step N−1 from every member worker. Nothing of step N can have arrived
 * by then, since no worker starts step N before every server applied dense update N.
 */
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';
import { loadCheckpoint, saveCheckpoint } from './checkpoint.js';
import { RowCheckpointer } from './row-checkpoint.js';
import { Connection, Streams, Tally } from './connection.js';
import { FramePool } from './frame.js';
import { GATE_DEFAULTS, Gate } from './gate.js';
import { RefusalLog } from './refusal-log.js';
import { RequestHandler } from './handler.js';
import type { ServerStats } from './protocol.js';
import type { Mode } from '../mode.js';
import { RowStore, type RowTableSpec } from './row-store.js';
import { ShardStore, type StoreOptions } from './store.js';
import { DENSE_TABLE } from './table.js';
import { Tables } from './tables.js';

export interface ServerOptions extends Omit<StoreOptions, 'staleness' | 'shard' | 'shards' | 'nonFinite'> {
  staleness?: number;
  /** This server's shard i of S (default 0 of 1). */
  shard?: number;
  shards?: number;
  nonFinite?: 'reject' | 'skip';
  /** The cluster token every connection must present first. */
  token: string;
  host?: string;
  /** 0 (the default) picks a free port; see `port` after start. */
  port?: number;
  /** PEM certificate and key: serve wss:// instead of ws://. */
  tls?: { cert: string | Buffer; key: string | Buffer };
  /** Largest frame accepted, in bytes (default 256 MiB + 64 KiB: 64M floats and a header). */
  maxFrameBytes?: number;
  /** Unanswered requests one connection may have (default 64). */
  maxInFlight?: number;
  /**
   * How long a new connection has, from TCP accept (over TLS: from the handshake, which has as
   * long), to upgrade to WebSocket and send a hello with the token; then it is refused and
   * destroyed (default 5 s).
   */
  helloTimeoutMs?: number;
  /** Sockets held at most, authenticated or not; a further upgrade is answered 503 (default 1024). */
  maxConnections?: number;
  /** Sockets not yet authenticated held at most; a further upgrade is answered 503 (default 64). */
  maxUnauthenticated?: number;
  /** Bytes a peer may send before its hello is accepted; more is refused, not buffered (default 64 KiB). */
  maxHelloBytes?: number;
  /** Refusals from one address are logged once per window of this many ms, then summarised (default 10 s). */
  refusalWindowMs?: number;
  /** Where the server reports connections, refusals and shutdown (default: nowhere). */
  log?: (line: string) => void;
  /**
   * A worker that sends nothing — no request, no WebSocket ping — for this long is closed and
   * dropped from the barrier (default 30 s; 0: never). Workers ping every `heartbeatMs` (1 s).
   */
  heartbeatTimeoutMs?: number;
  /** Save checkpoints in the run directory `dir` every `every` updates (0: only on close), keeping the last `keep` (3). */
  checkpoint?: { dir: string; every: number; keep?: number };
  /** Start from the latest complete checkpoint in this run directory (throws CheckpointError when there is none or it does not fit). */
  resume?: string;
  /**
   * Row-keyed embedding tables to host beside the dense range (protocol 3's pullrows/pushrows): this
   * server holds the rows whose ids hash to its shard (shardOfId(id, shards)). Every server of a run
   * is given the same list; tables get ids 1, 2, … in this order.
   */
  rowTables?: RowTableSpec[];
  /**
   * The row tables' policy when it differs from the dense range's `mode`: e.g. Persia's sync dense
   * part with async (Hogwild!) tables. Default: `mode`.
   */
  rowMode?: Mode;
}

const DEFAULT_MAX_FRAME = 256 * 1024 * 1024 + 64 * 1024;

/**
 * A running parameter server.
 *
 * @example
 * const server = await ParameterServer.start({ sizes: [100, 50, 10], seed: 42, optimizer: 'adam', lr: 1e-3,
 *   mode: 'sync', workers: 2, shard: 0, shards: 1, token: process.env.LOOM_TOKEN!, port: 0 });
 * console.log(server.url); // ws://127.0.0.1:40123
 * await server.closed;     // resolves after a `shutdown {exit: true}` or close()
 */
export class ParameterServer {
  /** The dense key range this server owns: table 0, 'dense'. */
  readonly store: ShardStore;

  /** The row tables this server hosts (its shard of each), by name. */
  get rowTables(): Record<string, RowStore> {
    return Object.fromEntries(this.tables.rowTables().map((r) => [r.name, r]));
  }
  /** Resolves when the server has closed (after close() or a shutdown request with exit). */
  readonly closed: Promise<void>;
  private readonly http: HttpServer;
  private readonly wss: WebSocketServer;
  private readonly gate: Gate;
  private readonly conns = new Set<Connection>();
  private readonly tables = new Tables();
  private readonly handler: RequestHandler;
  private readonly tally = new Tally();
  private closing = false;
  private resolveClosed!: () => void;
  private readonly log: (line: string) => void;
  private readonly timers: NodeJS.Timeout[] = [];
  /** The step of the last checkpoint saved or resumed from (−1: none). */
  private checkpointStep = -1;
  /** A checkpoint due at this dense step, waiting for the row tables to apply it (−1: none). */
  private dueStep = -1;
  private readonly rowCheckpoints: RowCheckpointer;

  private constructor(readonly o: ServerOptions) {
    if (typeof o.token !== 'string' || o.token.length === 0) throw new Error('ParameterServer: a non-empty token is required');
    this.store = new ShardStore({ ...o, staleness: o.staleness ?? 0, shard: o.shard ?? 0, shards: o.shards ?? 1, nonFinite: o.nonFinite ?? 'reject' });
    this.tables.register(DENSE_TABLE.id, DENSE_TABLE.name, this.store);
    (o.rowTables ?? []).forEach((spec, i) => {
      const s = this.store.o;
      this.tables.register(i + 1, spec.name, new RowStore({ spec, seed: o.seed, mode: o.rowMode ?? s.mode, staleness: s.staleness, workers: s.workers, nonFinite: s.nonFinite }));
    });
    this.rowCheckpoints = new RowCheckpointer(this.tables.rowTables());
    this.log = o.log ?? (() => {});
    const maxFrameBytes = o.maxFrameBytes ?? DEFAULT_MAX_FRAME;
    // When the last reply still being stepped part by part is out, the tables step the rest.
    const streams = new Streams(() => {
      for (const t of this.tables) t.settle();
    });
    const frames = new FramePool();
    this.handler = new RequestHandler({
      tables: this.tables, workers: o.workers, shard: this.store.o.shard, shards: this.store.o.shards, staleness: this.store.o.staleness,
      maxInFlight: o.maxInFlight ?? 64, heartbeatTimeoutMs: o.heartbeatTimeoutMs ?? 30_000, tally: this.tally, streams, frames, log: this.log,
      stats: () => this.stats(), exit: () => void this.close(),
    });
    const refusals = new RefusalLog({ log: this.log, ...(o.refusalWindowMs !== undefined ? { windowMs: o.refusalWindowMs } : {}) });
    const deadlineMs = o.helloTimeoutMs ?? GATE_DEFAULTS.deadlineMs;
    this.http = o.tls ? createHttpsServer({ cert: o.tls.cert, key: o.tls.key, handshakeTimeout: deadlineMs }) : createHttpServer();
    this.gate = new Gate(this.http, { refusals, awaiting: 'upgrade', deadlineMs, maxConnections: o.maxConnections, maxUnauthenticated: o.maxUnauthenticated });
    const gate = this.gate;
    const context = {
      token: o.token, handler: this.handler, tally: this.tally, streams, frames, log: this.log, maxFloats: maxFrameBytes / 4,
      gate, preAuthBytes: o.maxHelloBytes ?? GATE_DEFAULTS.preAuthBytes,
    };
    this.http.on('request', (req, res) => {
      gate.refuse(req.socket, 'not WebSocket', `${req.method} ${String(req.url).slice(0, 80)}`);
      res.writeHead(426, { 'content-type': 'text/plain', connection: 'close' }).end('a Loom parameter server: connect with WebSocket\n', () => gate.hangUp(req.socket));
    });
    // The upgrade is ours to accept (not ws's), so that the limits answer 503 before any handshake.
    this.wss = new WebSocketServer({ noServer: true, maxPayload: maxFrameBytes, perMessageDeflate: false });
    this.http.on('upgrade', (req, socket: Socket, head: Buffer) => {
      const full = gate.full(socket);
      if (full !== null) {
        gate.refuse(socket, full, `${gate.counts.open} sockets open, ${gate.counts.unauthenticated} not authenticated`);
        return gate.reject(socket, 503, `server busy (${full}); try again later\n`);
      }
      this.wss.handleUpgrade(req, socket, head, (ws) => this.wss.emit('connection', ws, req));
    });
    // A malformed upgrade (no key, wrong version …): ws hands it to us to answer.
    this.wss.on('wsClientError', (e: Error, socket: Socket) => {
      gate.refuse(socket, 'bad upgrade', e.message);
      gate.reject(socket, 400, `${e.message}\n`);
    });
    this.wss.on('connection', (ws, req) => {
      const c = new Connection(ws, req.socket, `${req.socket.remoteAddress}:${req.socket.remotePort}`, context);
      this.conns.add(c);
      ws.on('close', () => this.conns.delete(c));
    });
    this.wss.on('error', (e) => this.log(`server error: ${e.message}`));
    this.closed = new Promise((r) => (this.resolveClosed = r));
    if (o.resume !== undefined) {
      const { meta, path, notes } = loadCheckpoint(o.resume, this.store, this.rowCheckpoints);
      this.checkpointStep = meta.step;
      this.handler.stepsPerEpoch = meta.data?.stepsPerEpoch ?? 0;
      this.log(`resumed from ${path}: ${meta.step} updates applied${notes.length > 0 ? ` (${notes.join('; ')})` : ''}`);
    }
    // Replies still copying the parameters, part by part, are finished before an update changes them.
    for (const t of this.tables) t.beforeUpdate = () => streams.finishAll();
    const every = o.checkpoint?.every ?? 0;
    if (o.checkpoint !== undefined && every > 0) {
      this.store.onApply = (applied) => {
        if (applied % every === 0) this.dueStep = applied;
        this.saveIfDue();
      };
      for (const r of this.tables.rowTables()) r.onApply = () => this.saveIfDue();
    }
  }

  /** Saves the due checkpoint once every row table has applied its step (see the file's comment). */
  private saveIfDue(): void {
    const due = this.dueStep;
    if (due < 0 || this.store.applied !== due) return;
    const members = this.store.members();
    for (const r of this.tables.rowTables()) {
      if (r.policy.mode === 'async' ? members.some((m) => (r.pushedThrough.get(m) ?? -1) < due - 1) : r.applied < due) return;
    }
    this.dueStep = -1;
    this.saveCheckpoint();
  }

  /** Saves a checkpoint of the current step (unless it is already saved); logs instead of throwing. */
  private saveCheckpoint(): void {
    const cp = this.o.checkpoint;
    this.store.settle(); // (which may itself save this step, through onApply)
    if (cp === undefined || this.store.applied === this.checkpointStep) return;
    try {
      const path = saveCheckpoint(cp.dir, this.store, { stepsPerEpoch: this.handler.stepsPerEpoch }, cp.keep ?? 3, this.rowCheckpoints);
      this.checkpointStep = this.store.applied;
      this.log(`checkpoint ${path}`);
    } catch (e) {
      this.log(`checkpoint at step ${this.store.applied} failed: ${(e as Error).message}`);
    }
  }

  /** Watches for silent workers and, after a resume, for workers that never come back. */
  private startWatching(): void {
    const timeout = this.o.heartbeatTimeoutMs ?? 30_000;
    if (timeout <= 0) return;
    const check = setInterval(() => {
      const now = performance.now();
      for (const c of this.conns) {
        if (!c.authed || c.role !== 'worker' || c.silent || now - c.lastSeen <= timeout) continue;
        c.silent = true;
        c.ws.terminate(); // the close handler drops it
      }
    }, Math.max(10, Math.min(1000, timeout / 4)));
    check.unref();
    this.timers.push(check);
    if (this.store.applied > 0 && this.o.mode !== 'async') {
      // Resumed: every rank is expected again; one that has not come back within the timeout is dropped.
      const absent = setTimeout(() => this.handler.dropAbsent(`did not reconnect within ${timeout} ms of the restart`), timeout);
      absent.unref();
      this.timers.push(absent);
    }
  }

  /** Starts a server and resolves once it listens. */
  static async start(o: ServerOptions): Promise<ParameterServer> {
    const s = new ParameterServer(o);
    await new Promise<void>((resolve, reject) => {
      s.http.once('error', reject);
      s.http.listen(o.port ?? 0, o.host ?? '127.0.0.1', () => {
        s.http.off('error', reject);
        resolve();
      });
    });
    s.startWatching();
    return s;
  }

  get port(): number {
    return (this.http.address() as AddressInfo).port;
  }

  get url(): string {
    const host = this.o.host ?? '127.0.0.1';
    return `${this.o.tls ? 'wss' : 'ws'}://${host.includes(':') ? `[${host}]` : host}:${this.port}`;
  }

  stats(): ServerStats {
    const s = this.store, t = this.tally;
    return {
      shard: s.o.shard, shards: s.o.shards, lo: s.lo, hi: s.hi, mode: s.o.mode, workers: s.o.workers, applied: s.applied,
      stopped: this.handler.stopped, connections: this.conns.size, pushes: t.pushes, pulls: t.pulls, bytesIn: t.bytesIn, bytesOut: t.bytesOut,
      errors: { ...t.errors }, refused: { ...this.gate.refusals.totals }, skippedNonFinite: s.skippedNonFinite, members: this.handler.members(), ...this.handler.membership, checkpoint: this.checkpointStep,
      trained: s.policy.trained(),
      ...(this.tables.rowTables().length > 0 ? { tables: Object.fromEntries(this.tables.rowTables().map((r) => [r.name, r.stats()])) } : {}),
    };
  }

  /** Stops training: every waiting and later worker pull is answered with `stop`. */
  stop(): void {
    this.handler.stop();
  }

  /** Saves a last checkpoint (with `checkpoint`), then closes every connection and the listening socket. */
  async close(): Promise<void> {
    if (this.closing) return this.closed;
    this.closing = true;
    this.handler.closing = true;
    for (const t of this.timers) clearTimeout(t);
    this.gate.close();
    this.saveCheckpoint();
    for (const c of this.conns) c.ws.close(1001, 'server shutting down');
    await new Promise<void>((r) => this.wss.close(() => r()));
    const force = setTimeout(() => {
      for (const c of this.conns) c.ws.terminate();
    }, 1000);
    await new Promise<void>((r) => this.http.close(() => r()));
    clearTimeout(force);
    // (after the update still stepped part by part, which reads its gradient from the table's memory)
    for (const t of this.tables) t.dispose();
    this.resolveClosed();
  }
}

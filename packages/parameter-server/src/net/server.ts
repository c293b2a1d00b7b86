/**
 * A parameter server over WebSocket: one process owns one key range of the flat parameter vector
 * (a ShardStore) and answers workers' pulls and pushes under the run's policy.
 *
 * What the server guarantees whatever it receives:
 *  - nothing is read from a connection before a hello with the cluster token; a connection that
 *    sends anything else first, or a wrong token, is closed with 1008 and a reason, and the attempt
 *    is logged with its address (never the token);
 *  - every request is checked before it is used; a bad one is answered with an error reply naming
 *    the problem (and counted in stats), and the server goes on serving everyone else;
 *  - memory stays bounded: frames are at most `maxFrameBytes` (ws closes larger ones with 1009),
 *    a connection has at most `maxInFlight` unanswered requests, pushes are accepted only within
 *    the policy's window of steps, and a client that does not read its replies stops being read.
 *
 * Membership: a worker that disconnects, or sends nothing (not even a WebSocket ping, its
 * heartbeat) for `heartbeatTimeoutMs`, is closed and dropped from the barrier (ShardStore.drop), so
 * the others go on; it is admitted again when it reconnects and joins. Both are logged and counted.
 * Checkpoints: with `checkpoint`, the range and optimizer state are saved every `every` updates and
 * when the server closes (./checkpoint.ts); with `resume`, the server starts from the latest
 * complete checkpoint of its run directory.
 */
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';
import { allFinite } from '@loom/optimizer';
import { loadCheckpoint, saveCheckpoint } from './checkpoint.js';
import { PsError } from './errors.js';
import { FramePool, PART_FLOATS, Reassembly, decodeFrame, encodeFrame, frames } from './frame.js';
import { PROTOCOL_VERSION, idOf, parseHello, parseRequest, type ErrorReply, type Params, type Pull, type Push, type Request, type ServerStats, type Welcome } from './protocol.js';
import { ShardStore, type StoreOptions } from './store.js';
import { tokensEqual } from './token.js';

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
  /** How long a new connection has to send its hello (default 10 s). */
  helloTimeoutMs?: number;
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
}

const DEFAULT_MAX_FRAME = 256 * 1024 * 1024 + 64 * 1024;
/** Stop reading a client whose unsent replies exceed this; resume below half of it. */
const HIGH_WATER = 64 * 1024 * 1024;
/** A reply in parts makes its next frame only while less than one part waits to be written to the socket. */
const PUMP_WATER = 4 * PART_FLOATS;

interface Conn {
  ws: WebSocket;
  addr: string;
  authed: boolean;
  role: 'worker' | 'observer';
  rank: number;
  inflight: number;
  paused: boolean;
  /** When the last frame or ping arrived (ms, monotonic). */
  lastSeen: number;
  /** Closed for silence past the heartbeat timeout. */
  silent: boolean;
  /** No NaN or ±Inf in the pieces of the gradient being joined so far (each is scanned as it lands). */
  finite: boolean;
}

interface Waiter {
  conn: Conn;
  id: number;
  step: number;
  lo: number;
  hi: number;
  need: number;
  stale: number;
}

/** WebSocket close reasons are at most 123 bytes. */
const reason = (s: string) => (Buffer.byteLength(s) <= 123 ? s : Buffer.from(s).subarray(0, 120).toString('utf8').replace(/\uFFFD*$/, '') + '…');

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
  readonly store: ShardStore;
  /** Resolves when the server has closed (after close() or a shutdown request with exit). */
  readonly closed: Promise<void>;
  private readonly http: HttpServer;
  private readonly wss: WebSocketServer;
  private readonly conns = new Set<Conn>();
  private readonly ranks = new Map<number, Conn>();
  private waiters: Waiter[] = [];
  private readonly barriers = new Map<string, Map<number, { conn: Conn; id: number }>>();
  private stopped = false;
  private closing = false;
  private resolveClosed!: () => void;
  private readonly counts = { pushes: 0, pulls: 0, bytesIn: 0, bytesOut: 0 };
  private readonly errors: ServerStats['errors'] = {};
  private readonly log: (line: string) => void;
  private readonly maxInFlight: number;
  private readonly frames = new FramePool();
  private readonly membership = { dropped: 0, readmitted: 0 };
  /** The step of the last checkpoint saved or resumed from (−1: none), and the workers' batches per epoch (0: unknown). */
  private checkpointStep = -1;
  private stepsPerEpoch = 0;
  private readonly timers: NodeJS.Timeout[] = [];
  /** Gradients sent in parts are joined here, one message at a time per connection. */
  private readonly joining = new WeakMap<Conn, Reassembly>();
  /**
   * Replies of parameters still being sent, at most one per connection: each frame is made — its
   * range stepped if an update is in progress, then copied — only when the socket has taken the
   * previous one, so the socket sends part k while part k + 1 is stepped. Finished at once (every
   * remaining frame made) before anything else is sent on that connection, and before the next
   * update changes the parameters (ShardStore.beforeUpdate).
   */
  private readonly outgoing = new Map<Conn, Generator<Buffer>>();

  private constructor(readonly o: ServerOptions) {
    if (typeof o.token !== 'string' || o.token.length === 0) throw new Error('ParameterServer: a non-empty token is required');
    this.store = new ShardStore({ ...o, staleness: o.staleness ?? 0, shard: o.shard ?? 0, shards: o.shards ?? 1, nonFinite: o.nonFinite ?? 'reject' });
    this.log = o.log ?? (() => {});
    this.maxInFlight = o.maxInFlight ?? 64;
    this.http = o.tls ? createHttpsServer({ cert: o.tls.cert, key: o.tls.key }) : createHttpServer();
    this.http.on('request', (_req, res) => res.writeHead(426, { 'content-type': 'text/plain' }).end('a Loom parameter server: connect with WebSocket\n'));
    this.wss = new WebSocketServer({ server: this.http, maxPayload: o.maxFrameBytes ?? DEFAULT_MAX_FRAME, perMessageDeflate: false });
    this.wss.on('connection', (ws, req) => this.onConnection(ws, `${req.socket.remoteAddress}:${req.socket.remotePort}`));
    this.wss.on('error', (e) => this.log(`server error: ${e.message}`));
    this.closed = new Promise((r) => (this.resolveClosed = r));
    if (o.resume !== undefined) {
      const { meta, path, notes } = loadCheckpoint(o.resume, this.store);
      this.checkpointStep = meta.step;
      this.stepsPerEpoch = meta.data?.stepsPerEpoch ?? 0;
      this.log(`resumed from ${path}: ${meta.step} updates applied${notes.length > 0 ? ` (${notes.join('; ')})` : ''}`);
    }
    this.store.beforeUpdate = () => {
      for (const c of [...this.outgoing.keys()]) this.finish(c);
    };
    const every = o.checkpoint?.every ?? 0;
    if (o.checkpoint !== undefined && every > 0) this.store.onApply = (applied) => applied % every === 0 && this.saveCheckpoint();
  }

  /** Saves a checkpoint of the current step (unless it is already saved); logs instead of throwing. */
  private saveCheckpoint(): void {
    const cp = this.o.checkpoint;
    this.store.settle(); // (which may itself save this step, through onApply)
    if (cp === undefined || this.store.applied === this.checkpointStep) return;
    try {
      const path = saveCheckpoint(cp.dir, this.store, { stepsPerEpoch: this.stepsPerEpoch }, cp.keep ?? 3);
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
      const absent = setTimeout(() => {
        for (let r = 0; r < this.store.o.workers; r++) if (!this.ranks.has(r) && this.store.isMember(r)) this.dropRank(r, `did not reconnect within ${timeout} ms of the restart`);
      }, timeout);
      absent.unref();
      this.timers.push(absent);
    }
  }

  /** Drops worker `rank` from the barrier, logs why, and answers the pulls its absence unblocks. */
  private dropRank(rank: number, why: string): void {
    const s = this.store;
    if (!s.isMember(rank)) return;
    const at = s.applied;
    const appliedNow = s.drop(rank);
    this.membership.dropped++;
    const live = s.members().length;
    this.log(`worker ${rank} dropped at step ${at}: ${why}; training goes on with ${live} of ${s.o.workers} workers`);
    if (appliedNow > 0) this.answerWaiters();
    this.releaseBarriers();
  }

  /** Answers every named barrier that each member worker has reached (all W, unless some were dropped). */
  private releaseBarriers(): void {
    for (const [name, arrived] of this.barriers) {
      let all = arrived.size > 0;
      for (let r = 0; r < this.store.o.workers && all; r++) if (this.store.isMember(r) && !arrived.has(r)) all = false;
      if (!all) continue;
      this.barriers.delete(name);
      for (const a of arrived.values()) this.reply(a.conn, encodeFrame({ type: 'ack', id: a.id, stale: 0 }));
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
    const s = this.store;
    return {
      shard: s.o.shard, shards: s.o.shards, lo: s.lo, hi: s.hi, mode: s.o.mode, workers: s.o.workers, applied: s.applied,
      stopped: this.stopped, connections: this.conns.size, ...this.counts, errors: { ...this.errors }, skippedNonFinite: s.skippedNonFinite,
      members: s.o.mode === 'async' ? [...this.ranks.keys()].sort((a, b) => a - b) : s.members(), ...this.membership, checkpoint: this.checkpointStep,
    };
  }

  /** Stops training: every waiting and later worker pull is answered with `stop`. */
  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    this.log(`stopping after ${this.store.applied} updates`);
    this.answerWaiters();
  }

  /** Saves a last checkpoint (with `checkpoint`), then closes every connection and the listening socket. */
  async close(): Promise<void> {
    if (this.closing) return this.closed;
    this.closing = true;
    for (const t of this.timers) clearTimeout(t);
    this.saveCheckpoint();
    for (const c of this.conns) c.ws.close(1001, 'server shutting down');
    await new Promise<void>((r) => this.wss.close(() => r()));
    const force = setTimeout(() => {
      for (const c of this.conns) c.ws.terminate();
    }, 1000);
    await new Promise<void>((r) => this.http.close(() => r()));
    clearTimeout(force);
    this.store.dispose(); // (after the update still stepped part by part, which reads its gradient from the pool)
    this.resolveClosed();
  }

  // ---- connections ---------------------------------------------------------------------------

  private onConnection(ws: WebSocket, addr: string): void {
    const c: Conn = { ws, addr, authed: false, role: 'observer', rank: -1, inflight: 0, paused: false, lastSeen: performance.now(), silent: false, finite: true };
    this.conns.add(c);
    ws.on('ping', () => (c.lastSeen = performance.now())); // a worker's heartbeat (ws answers the pong)
    const timer = setTimeout(() => this.refuse(c, 'authentication required', 'no hello within the time allowed'), this.o.helloTimeoutMs ?? 10_000);
    ws.on('message', (data, isBinary) => {
      const bytes = data as Buffer; // binaryType 'nodebuffer': fragmented messages arrive joined
      c.lastSeen = performance.now();
      this.counts.bytesIn += bytes.length;
      if (!c.authed) {
        clearTimeout(timer);
        this.onHello(c, bytes, isBinary);
      } else {
        this.onRequest(c, bytes, isBinary);
      }
    });
    ws.on('error', (e) => this.log(`connection ${addr}: ${e.message}`));
    ws.on('close', (code, why) => {
      clearTimeout(timer);
      this.conns.delete(c);
      if (this.outgoing.delete(c) && this.outgoing.size === 0) this.store.settle();
      this.waiters = this.waiters.filter((w) => w.conn !== c);
      for (const arrived of this.barriers.values()) if (arrived.get(c.rank)?.conn === c) arrived.delete(c.rank);
      if (c.authed && c.role === 'worker' && this.ranks.get(c.rank) === c) {
        this.ranks.delete(c.rank);
        if (this.closing) return;
        const how = c.silent ? `sent nothing for ${this.o.heartbeatTimeoutMs ?? 30_000} ms` : `disconnected (${code}${why.length ? ` ${why.toString()}` : ''})`;
        this.log(`worker ${c.rank} (${addr}) ${how}`);
        // A worker that ends its run (or reconnects on purpose) closes with 1000: it leaves the
        // barrier without counting as dropped. Anything else is a failure.
        if (code !== 1000 || c.silent) this.dropRank(c.rank, how);
        else if (this.store.drop(c.rank) > 0) this.answerWaiters();
      }
    });
  }

  private count(code: keyof ServerStats['errors']): void {
    this.errors[code] = (this.errors[code] ?? 0) + 1;
  }

  /** Closes an unauthenticated connection with 1008 and logs the attempt (never the token). */
  private refuse(c: Conn, why: string, detail: string): void {
    this.count('auth');
    this.log(`refused ${c.addr}: ${why} (${detail})`);
    c.ws.close(1008, why);
  }

  private onHello(c: Conn, bytes: Buffer, isBinary: boolean): void {
    if (!isBinary) return this.refuse(c, 'authentication required', 'sent a text frame before hello');
    let header: unknown;
    try {
      header = decodeFrame(bytes).header;
    } catch (e) {
      return this.refuse(c, 'authentication required', `first frame unreadable: ${(e as Error).message}`);
    }
    const h = header as Record<string, unknown> | null;
    if (typeof h !== 'object' || h === null || h.type !== 'hello') {
      return this.refuse(c, 'authentication required', `first message was ${typeof h?.type === 'string' ? `'${h.type.slice(0, 40)}'` : 'not a hello'}`);
    }
    if (h.v !== PROTOCOL_VERSION) {
      this.count('version');
      const msg = `protocol version ${typeof h.v === 'number' ? h.v : String(h.v)} is not supported (this server speaks ${PROTOCOL_VERSION})`;
      this.log(`refused ${c.addr}: ${msg}`);
      this.sendError(c, -1, new PsError('version', msg));
      return c.ws.close(1002, reason(msg));
    }
    if (typeof h.token !== 'string' || !tokensEqual(h.token, this.o.token)) return this.refuse(c, 'bad token', 'hello with a wrong token');
    let hello;
    try {
      hello = parseHello(h)!;
    } catch (e) {
      return this.closeWith(c, e as PsError);
    }
    const s = this.store;
    if (hello.size !== s.size || hello.workers !== s.o.workers) {
      return this.closeWith(c, new PsError('config-mismatch', `this server trains ${s.size} parameters with ${s.o.workers} workers; the client has ${hello.size} and ${hello.workers}`));
    }
    if (hello.role === 'worker') {
      if (this.ranks.has(hello.rank)) return this.closeWith(c, new PsError('rank-taken', `worker rank ${hello.rank} is already connected`));
      this.ranks.set(hello.rank, c);
      this.log(`worker ${hello.rank} connected from ${c.addr}`);
    }
    Object.assign(c, { authed: true, role: hello.role, rank: hello.rank });
    const welcome: Welcome = {
      type: 'welcome', v: PROTOCOL_VERSION, shard: s.o.shard, shards: s.o.shards, lo: s.lo, hi: s.hi, size: s.size,
      workers: s.o.workers, mode: s.o.mode, staleness: s.o.staleness, applied: s.applied,
    };
    this.send(c, encodeFrame(welcome));
  }

  /** Sends an error reply, then closes with 1008 and the message. */
  private closeWith(c: Conn, e: PsError): void {
    this.log(`refused ${c.addr}: ${e.message}`);
    this.sendError(c, -1, e);
    c.ws.close(1008, reason(e.message));
  }

  // ---- requests ------------------------------------------------------------------------------

  private onRequest(c: Conn, bytes: Buffer, isBinary: boolean): void {
    if (!isBinary) return this.sendError(c, -1, new PsError('bad-frame', 'text frames are not part of the protocol; send binary frames'));
    let header: unknown = undefined;
    let payload: Float32Array;
    let pooled = false;
    try {
      ({ header, payload } = decodeFrame(bytes));
      let joining = this.joining.get(c);
      if (joining === undefined) this.joining.set(c, (joining = new Reassembly((this.o.maxFrameBytes ?? DEFAULT_MAX_FRAME) / 4)));
      const whole = joining.feed(header, payload, (_h, floats) => this.store.receive(floats), (h, into, lo, hi) => {
        // Scan each piece of a gradient while the next ones arrive, instead of all of it at the end.
        if (lo === 0) c.finite = true;
        if (c.finite && (h.type === 'push' || h.type === 'pushpull')) c.finite = allFinite(into.subarray(lo, hi));
      });
      if (whole === null) return; // more parts to come
      ({ header, payload, joined: pooled } = whole);
    } catch (e) {
      return this.sendError(c, idOf(header), e);
    }
    // A pooled payload is reused once the store is done with it: at once when it was refused, else
    // once the update that reads it is stepped whole (the push's readUntil, on the store's clock; an
    // update may be stepped part by part as its replies go out, after this handler has returned).
    const done = (readUntil: number) => {
      if (!pooled) return;
      if (readUntil < 0) this.store.release(payload);
      else this.store.holdUntil(payload, readUntil);
    };
    let req: Request;
    try {
      req = parseRequest(header);
    } catch (e) {
      done(-1);
      return this.sendError(c, idOf(header), e);
    }
    if (c.inflight >= this.maxInFlight) {
      done(-1);
      return this.sendError(c, req.id, new PsError('too-many-requests', `more than ${this.maxInFlight} requests in flight on one connection`));
    }
    c.inflight++;
    try {
      done(this.handle(c, req, payload, pooled ? c.finite : undefined));
    } catch (e) {
      done(-1);
      c.inflight--;
      this.sendError(c, req.id, e);
    }
  }

  /**
   * `finite`: whether a payload joined from parts is free of NaN and ±Inf (scanned as it arrived),
   * else unknown. Returns until which update the store reads the payload (−1: it did not take it).
   */
  private handle(c: Conn, req: Request, payload: Float32Array, finite?: boolean): number {
    const s = this.store;
    switch (req.type) {
      case 'pull': {
        if (req.lo > req.hi || req.lo < s.lo || req.hi > s.hi) throw new PsError('not-owner', `pull [${req.lo}, ${req.hi}) is not within this server's range [${s.lo}, ${s.hi})`);
        this.counts.pulls++;
        this.park(c, req, 0);
        return -1;
      }
      case 'push':
      case 'pushpull':
        return this.onPush(c, req, payload, finite);
      case 'barrier': {
        if (c.role !== 'worker') throw new PsError('not-worker', 'barrier: only workers take part in barriers');
        let arrived = this.barriers.get(req.name);
        if (arrived === undefined) this.barriers.set(req.name, (arrived = new Map()));
        arrived.set(c.rank, { conn: c, id: req.id });
        this.releaseBarriers();
        return -1;
      }
      case 'stats':
        this.reply(c, encodeFrame({ type: 'stats', id: req.id, stats: this.stats() }));
        return -1;
      case 'join': {
        if (c.role !== 'worker') throw new PsError('not-worker', 'join: only workers join the barrier');
        const again = !s.isMember(c.rank);
        const appliedNow = s.join(c.rank, req.step);
        if (req.stepsPerEpoch > 0) this.stepsPerEpoch = req.stepsPerEpoch;
        if (again) {
          this.membership.readmitted++;
          this.log(`worker ${c.rank} readmitted from step ${req.step} (${s.o.mode === 'async' ? this.ranks.size : s.members().length + (req.step > s.applied ? 1 : 0)} of ${s.o.workers} workers)`);
        }
        this.reply(c, encodeFrame({ type: 'ack', id: req.id, stale: 0 }));
        if (appliedNow > 0) this.answerWaiters();
        return -1;
      }
      case 'shutdown':
        this.log(`shutdown requested by ${c.addr}${req.exit ? ' (exit)' : ''}`);
        this.stop();
        this.reply(c, encodeFrame({ type: 'ack', id: req.id, stale: 0 }));
        if (req.exit) setImmediate(() => void this.close());
        return -1;
    }
  }

  /**
   * Takes a gradient and answers what it unblocks. The update it completes is stepped part by part
   * as the replies are sent (ShardStore.push's `defer`, `outgoing`): each part of the parameters
   * goes to the socket as soon as it is stepped, so the download overlaps the step, which used to
   * run whole between the upload and the download. The store steps the rest before anyone else
   * reads the parameters or starts the next update, so nothing sees a half-stepped range. The push
   * is whole and scanned before any part is stepped: a NaN in its last part must still refuse (or
   * skip) all of it, which an already stepped part could not honour.
   */
  private onPush(c: Conn, req: Push, payload: Float32Array, finite?: boolean): number {
    const s = this.store;
    if (c.role !== 'worker') throw new PsError('not-worker', `${req.type}: an observer cannot push`);
    if (req.lo !== s.lo) throw new PsError('not-owner', `${req.type} at key ${req.lo}: this server owns [${s.lo}, ${s.hi})`);
    if (payload.length !== s.hi - s.lo) throw new PsError('bad-length', `${req.type}: a gradient for [${s.lo}, ${s.hi}) has ${s.hi - s.lo} floats, got ${payload.length}`);
    const { appliedNow, stale, readUntil } = s.push(c.rank, req.step, req.rows, req.batchRows, payload, { finite, defer: true });
    try {
      this.counts.pushes++;
      if (req.type === 'push') this.reply(c, encodeFrame({ type: 'ack', id: req.id, stale }));
      else this.park(c, { type: 'pull', id: req.id, step: req.step + 1, lo: s.lo, hi: s.hi }, stale);
      if (appliedNow > 0) this.answerWaiters();
    } finally {
      if (this.outgoing.size === 0) s.settle(); // else the last reply to go out settles it
    }
    return readUntil;
  }

  /** Answers a pull now if its step is ready, or keeps it until it is. */
  private park(c: Conn, p: Pull, stale: number): void {
    const s = this.store;
    const need = c.role === 'worker' ? s.needFor(p.step) : p.step;
    const w: Waiter = { conn: c, id: p.id, step: p.step, lo: p.lo, hi: p.hi, need, stale };
    if (this.stopped || s.applied >= need) this.answer(w);
    else this.waiters.push(w);
  }

  private answerWaiters(): void {
    const s = this.store;
    const still: Waiter[] = [];
    for (const w of this.waiters) {
      if (this.stopped || s.applied >= w.need) this.answer(w);
      else still.push(w);
    }
    this.waiters = still;
  }

  private answer(w: Waiter): void {
    const s = this.store;
    if (w.conn.role === 'worker') s.notePull(w.conn.rank);
    const header: Params = { type: 'params', id: w.id, step: w.step, applied: s.applied, stop: this.stopped, lo: w.lo, stale: w.stale };
    const lo = w.lo - s.lo, hi = w.hi - s.lo;
    w.conn.inflight--;
    this.finish(w.conn);
    this.outgoing.set(w.conn, frames(header, s.paramsThrough(lo), lo, hi, this.frames, PART_FLOATS, (_a, b) => s.paramsThrough(b)));
    this.pump(w.conn);
  }

  /** Makes and sends the next frames of `c`'s reply in progress while the socket keeps up; when it is done, settles the store if no other reply is left. */
  private pump(c: Conn): void {
    const gen = this.outgoing.get(c);
    if (gen === undefined) return;
    while (c.ws.readyState === c.ws.OPEN && c.ws.bufferedAmount < PUMP_WATER) {
      const next = gen.next();
      if (next.done) {
        this.outgoing.delete(c);
        if (this.outgoing.size === 0) this.store.settle();
        return;
      }
      this.write(c, next.value, () => this.pump(c));
    }
  }

  /** Sends every remaining frame of `c`'s reply in progress now. */
  private finish(c: Conn): void {
    const gen = this.outgoing.get(c);
    if (gen === undefined) return;
    this.outgoing.delete(c);
    for (const frame of gen) this.write(c, frame);
  }

  // ---- sending -------------------------------------------------------------------------------

  /** Sends the answer to a request. */
  private reply(c: Conn, frame: Buffer): void {
    c.inflight--;
    this.send(c, frame);
  }

  private sendError(c: Conn, id: number, e: unknown): void {
    const err = e instanceof PsError ? e : new PsError('internal', (e as Error)?.message ?? String(e));
    if (err.code === 'internal') this.log(`internal error on ${c.addr}: ${(e as Error)?.stack ?? String(e)}`);
    this.count(err.code);
    const reply: ErrorReply = { type: 'error', id, code: err.code, message: err.message };
    this.send(c, encodeFrame(reply));
  }

  /** Sends a frame after the rest of any reply in progress on that connection. */
  private send(c: Conn, frame: Buffer): void {
    this.finish(c);
    this.write(c, frame);
  }

  private write(c: Conn, frame: Buffer, sent?: () => void): void {
    if (c.ws.readyState !== c.ws.OPEN) return;
    this.counts.bytesOut += frame.length;
    c.ws.send(frame, { binary: true }, (e) => {
      if (!e) this.frames.give(frame);
      sent?.();
      if (c.paused && c.ws.bufferedAmount < HIGH_WATER / 2) {
        c.paused = false;
        c.ws.resume();
      }
    });
    if (!c.paused && c.ws.bufferedAmount > HIGH_WATER) {
      c.paused = true;
      c.ws.pause();
    }
  }
}

/**
 * The worker's side of the network parameter server, ps-lite style: `push`, `pull` and `pushPull`
 * over the whole flat parameter vector, returning promises. The client slices by key range — shard
 * i's [lo, hi) from shardRange(P, S, i) — sends each slice to its owner and waits for all of them
 * in parallel. Each connection keeps at most `maxInFlight` requests outstanding (a p-queue); the
 * rest wait in the queue, so a fast caller cannot flood a server.
 */
import PQueue from 'p-queue';
import WebSocket from 'ws';
import type { Mode } from '../mode.js';
import { PsError } from './errors.js';
import { shardOfId } from '../tables/placement.js';
import { FramePool, Reassembly, decodeFrame, encodeFrame, encodeFrames, encodeKeyedFrame, frames } from './frame.js';
import type { StepPlan } from '@loom/worker';
import { PROTOCOL_VERSION, parseReply, planFromWire, type Hello, type Params, type Reply, type Rows, type ServerStats, type Welcome } from './protocol.js';
import { shardRange } from './shards.js';

export interface ClientOptions {
  token: string;
  /** A worker pushes as `rank`; an observer only pulls (a coordinator evaluating, a checkpointer). */
  role?: 'worker' | 'observer';
  rank?: number;
  /** W, checked by every server. */
  workers: number;
  /** P, the model's parameter count, checked by every server. */
  size: number;
  /** Requests outstanding per server (default 4). */
  maxInFlight?: number;
  /** PEM certificate(s) to trust for wss:// (a self-signed server certificate). */
  ca?: string | Buffer;
  /** Largest reply frame accepted (default 256 MiB + 64 KiB). */
  maxFrameBytes?: number;
  /** How long connecting and the hello may take (default 10 s). */
  connectTimeoutMs?: number;
  /** A worker's heartbeat: a WebSocket ping to every server this often, in ms (default 1000; 0: none). */
  heartbeatMs?: number;
}

/** Rows of a pushed gradient: the mean over `rows` rows of a global batch of `batchRows`. */
export interface PushInfo {
  rows: number;
  batchRows: number;
  /** The live ranks of the step's plan (PullResult.plan) the rows were cut by; absent: a fixed split. */
  live?: readonly number[];
}

/** What a pull learned besides the parameters. */
export interface PullResult {
  /** True when a server is stopping the run: the caller should end it. */
  stop: boolean;
  /** The fewest updates applied on any shard when the parameters were read. */
  applied: number;
  /** The largest staleness any shard reported for the push (async), else 0. */
  stale: number;
  /**
   * Sync and ssp, to a worker: the plan of the step pulled, as shard 0 fixed it — every worker
   * follows shard 0's, so all cut the step alike (the other shards wait for the live ranks the
   * pushes name). Absent from observers' pulls, async servers and a stopping server.
   */
  plan?: StepPlan;
}

interface Pending {
  resolve: (r: { header: Reply; payload: Float32Array }) => void;
  reject: (e: Error) => void;
  /** Where a reply's payload sent in parts is copied (the caller's array), piece by piece. */
  into?: Float32Array;
  /** Bytes of this request's frames and its reply's, added as they go (row tables' traffic). */
  count?: Traffic;
}

/** Bytes sent and received, whole frames counted. */
export interface Traffic {
  out: number;
  in: number;
}

/** One authenticated connection to one server. */
class ShardConnection {
  private nextId = 0;
  private readonly pending = new Map<number, Pending>();
  private readonly queue: PQueue;
  private failure: PsError | null = null;
  private readonly frames = new FramePool();
  private readonly joining: Reassembly;
  private heartbeat: NodeJS.Timeout | undefined;

  private constructor(
    readonly url: string,
    private readonly ws: WebSocket,
    readonly welcome: Welcome,
    maxInFlight: number,
  ) {
    this.queue = new PQueue({ concurrency: maxInFlight });
    this.joining = new Reassembly(Math.max(welcome.hi - welcome.lo, 1));
    ws.on('message', (data) => this.onMessage(data as Buffer));
    ws.on('close', (code, why) => this.fail(new PsError('closed', `${url} closed the connection (${code}${why.length ? `: ${why.toString()}` : ''})`)));
    ws.on('error', (e) => this.fail(new PsError('closed', `${url}: ${e.message}`)));
  }

  static open(url: string, hello: Hello, o: ClientOptions): Promise<ShardConnection> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url, {
        perMessageDeflate: false,
        maxPayload: o.maxFrameBytes ?? 256 * 1024 * 1024 + 64 * 1024,
        // A zero mask: ws then skips masking (and the server skips unmasking) the 4·P-byte
        // payloads. Masking protects browsers' HTTP proxies from cache poisoning; this client is
        // not a browser, and over wss:// the bytes are encrypted anyway.
        generateMask: (mask: Buffer) => void mask.fill(0),
        ...(o.ca !== undefined ? { ca: o.ca } : {}),
      });
      const timer = setTimeout(() => {
        ws.terminate();
        reject(new PsError('timeout', `${url}: no welcome within ${o.connectTimeoutMs ?? 10_000} ms`));
      }, o.connectTimeoutMs ?? 10_000);
      let refusal: PsError | null = null;
      const onOpen = () => ws.send(encodeFrame(hello));
      const onError = (e: Error) => done(new PsError('closed', `cannot connect to ${url}: ${e.message}`));
      const onClose = (code: number, why: Buffer) =>
        done(refusal ?? new PsError(code === 1008 ? 'auth' : 'closed', `${url} refused the connection (${code}${why.length ? `: ${why.toString()}` : ''})`));
      const onMessage = (data: WebSocket.RawData) => {
        try {
          const h = parseReply(decodeFrame(data as Buffer).header);
          if (h.type === 'error') {
            refusal = new PsError(h.code, `${url}: ${h.message}`);
            return;
          }
          if (h.type !== 'welcome' || h.v !== PROTOCOL_VERSION) throw new PsError('bad-frame', `${url}: expected a welcome, got '${h.type}'`);
          done(null, h);
        } catch (e) {
          done(e as Error);
        }
      };
      const done = (e: Error | null, welcome?: Welcome) => {
        clearTimeout(timer);
        ws.off('open', onOpen).off('error', onError).off('close', onClose).off('message', onMessage);
        if (e) {
          ws.on('error', () => {});
          ws.terminate();
          reject(e);
        } else {
          const conn = new ShardConnection(url, ws, welcome!, o.maxInFlight ?? 4);
          if (hello.role === 'worker' && (o.heartbeatMs ?? 1000) > 0) conn.startHeartbeat(o.heartbeatMs ?? 1000);
          resolve(conn);
        }
      };
      ws.on('open', onOpen).on('error', onError).on('close', onClose).on('message', onMessage);
    });
  }

  /**
   * Sends a request and resolves with its reply; rejects with the server's error as a PsError.
   * The payload is copied before this returns: into each frame just before the socket takes it
   * when the request goes out at once (so the server reads part k while part k+1 is copied), or
   * into all its frames first when it has to wait in the queue.
   * A reply payload sent in parts is copied into `into` as it arrives (then it is the reply's payload).
   */
  request(header: Record<string, unknown>, payload?: Float32Array, lo = 0, hi = payload?.length ?? 0, into?: Float32Array, keyed?: { ids?: ArrayLike<number>; count: Traffic }): Promise<{ header: Reply; payload: Float32Array }> {
    const full = { ...header, id: this.nextId++ & 0x7fffffff };
    let queued: Buffer[] | null = null;
    if (keyed?.ids !== undefined) {
      // A keyed frame is made now, whole: its ids and values are the caller's scratch, reused next step.
      queued = [encodeKeyedFrame(full, keyed.ids, payload?.subarray(lo, hi), this.frames)];
    }
    let started = false;
    const sent = this.queue.add(() => {
      started = true;
      if (this.failure) return Promise.reject(this.failure);
      return new Promise<{ header: Reply; payload: Float32Array }>((resolve, reject) => {
        this.pending.set(full.id, { resolve, reject, ...(into !== undefined ? { into } : {}), ...(keyed !== undefined ? { count: keyed.count } : {}) });
        for (const frame of queued ?? frames(full, payload, lo, hi, this.frames)) {
          if (keyed !== undefined) keyed.count.out += frame.length;
          this.ws.send(frame, { binary: true }, (e) => {
            if (!e) this.frames.give(frame);
          });
        }
      });
    });
    if (!started && queued === null) queued = encodeFrames(full, payload, lo, hi, this.frames); // p-queue starts a job synchronously when it can
    return sent;
  }

  private onMessage(data: Buffer): void {
    let reply: Reply;
    let payload: Float32Array;
    try {
      const f = decodeFrame(data);
      const whole = this.joining.feed(f.header, f.payload, (h, floats) => {
        const into = this.pending.get(h.id as number)?.into;
        return into !== undefined && into.length === floats ? into : new Float32Array(floats);
      });
      if (whole === null) return; // more parts to come
      reply = parseReply(whole.header) as Reply;
      payload = whole.payload;
    } catch (e) {
      return this.fail(new PsError('bad-frame', `${this.url} sent an unreadable reply: ${(e as Error).message}`));
    }
    const p = this.pending.get(reply.id);
    if (p === undefined) {
      if (reply.type === 'error') return this.fail(new PsError(reply.code, `${this.url}: ${reply.message}`));
      return; // a reply to nothing we asked: ignore
    }
    this.pending.delete(reply.id);
    if (p.count !== undefined) p.count.in += data.length;
    if (reply.type === 'error') p.reject(new PsError(reply.code, `${this.url}: ${reply.message}`));
    else p.resolve({ header: reply, payload });
  }

  /** Pings the server every `ms` (the server drops a worker it has not heard from for its timeout). */
  private startHeartbeat(ms: number): void {
    this.heartbeat = setInterval(() => {
      if (this.ws.readyState === WebSocket.OPEN) this.ws.ping();
    }, ms);
    this.heartbeat.unref();
  }

  private fail(e: PsError): void {
    clearInterval(this.heartbeat);
    if (this.failure) return;
    this.failure = e;
    for (const p of this.pending.values()) p.reject(e);
    this.pending.clear();
  }

  close(): Promise<void> {
    // Requests still waiting are rejected now: once `failure` is set, the socket's close event rejects nothing.
    this.fail(new PsError('closed', `${this.url}: closed by this client`));
    if (this.ws.readyState === WebSocket.CLOSED) return Promise.resolve();
    return new Promise((r) => {
      this.ws.once('close', () => r());
      this.ws.close(1000, 'done');
    });
  }
}

/**
 * A connection to every server of a cluster (one per key range).
 *
 * Calls may be made without awaiting earlier ones; each returns a promise and never blocks the
 * thread. Pulls write into the caller's array as each shard's reply arrives, so the caller must not
 * read it until the promise resolves. Not for use by two tasks on the same arrays at once.
 *
 * @example
 * const client = await PsClient.connect(['ws://10.0.0.1:7070', 'ws://10.0.0.2:7070'],
 *   { token, rank: 0, workers: 2, size: flat.size });
 * await client.pull(0, flat.params);                                   // parameters for step 0
 * const r = await client.pushPull(0, flat.grads, flat.params, { rows: 32, batchRows: 64 }); // … for step 1
 */
export class PsClient {
  readonly mode: Mode;
  readonly staleness: number;
  private constructor(
    private readonly conns: ShardConnection[],
    readonly size: number,
    /** The worker rank this client pushes as (−1: an observer). */
    readonly rank: number,
  ) {
    this.mode = conns[0]!.welcome.mode;
    this.staleness = conns[0]!.welcome.staleness;
  }

  /**
   * Connects and authenticates to every server, checking that together they are the shards
   * 0 … S−1 of a P-parameter model (URLs may come in any order). Rejects with a PsError naming the
   * server that refused or disagreed.
   */
  static async connect(urls: readonly string[], o: ClientOptions): Promise<PsClient> {
    if (urls.length === 0) throw new PsError('bad-request', 'PsClient.connect: no server URLs');
    const role = o.role ?? 'worker';
    const hello: Hello = { type: 'hello', v: PROTOCOL_VERSION, token: o.token, role, rank: role === 'worker' ? o.rank ?? 0 : -1, workers: o.workers, size: o.size };
    const settled = await Promise.allSettled(urls.map((u) => ShardConnection.open(u, hello, o)));
    const conns = settled.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []));
    const failed = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected');
    const problem = failed ? (failed.reason as Error) : checkShards(conns, o.size, urls.length);
    if (problem) {
      await Promise.all(conns.map((c) => c.close()));
      throw problem;
    }
    conns.sort((a, b) => a.welcome.shard - b.welcome.shard);
    return new PsClient(conns, o.size, hello.rank);
  }

  /** Updates each server had applied when it welcomed this client, in key order. */
  get applied(): number[] {
    return this.conns.map((c) => c.welcome.applied);
  }

  /** Each server's URL, in key order. */
  get urls(): string[] {
    return this.conns.map((c) => c.url);
  }

  /**
   * Asks every server to count this worker from step `step` on (see the `join` message). Rejects
   * with PsError('bad-step') when a server has already applied that step.
   */
  async join(step: number, stepsPerEpoch = 0): Promise<void> {
    await Promise.all(this.conns.map((c) => c.request({ type: 'join', step, stepsPerEpoch })));
  }

  /** Each server's [lo, hi), in key order. */
  get ranges(): Array<[number, number]> {
    return this.conns.map((c) => [c.welcome.lo, c.welcome.hi]);
  }

  /**
   * Pulls the parameters to compute step `step` with into `into` (all P of them, from every shard in
   * parallel). Resolves when the servers' policy allows that step (sync: after update step−1;
   * ssp: after update step−S−1; async: at once); an observer's pull waits for update step−1.
   */
  async pull(step: number, into: Float32Array): Promise<PullResult> {
    this.checkLength('pull', into);
    const count = this.trafficOf('dense');
    const replies = await Promise.all(this.conns.map((c) => c.request({ type: 'pull', step, lo: c.welcome.lo, hi: c.welcome.hi }, undefined, 0, 0, into.subarray(c.welcome.lo, c.welcome.hi), { count })));
    return this.collect(replies, into);
  }

  /** Pushes the gradient of step `step` (all P floats; each shard gets its slice). Resolves when every server has taken it. */
  async push(step: number, grads: Float32Array, info: PushInfo): Promise<{ stale: number }> {
    this.checkLength('push', grads);
    const replies = await Promise.all(this.conns.map((c) => c.request({ type: 'push', step, lo: c.welcome.lo, ...rowsOf(info) }, grads, c.welcome.lo, c.welcome.hi)));
    return { stale: Math.max(0, ...replies.map((r) => (r.header.type === 'ack' ? r.header.stale : 0))) };
  }

  /**
   * Pushes the gradient of step `step` and pulls the parameters for step `step + 1` in one round
   * trip per server. `grads` is copied before this returns; `into` is written as replies arrive.
   */
  async pushPull(step: number, grads: Float32Array, into: Float32Array, info: PushInfo): Promise<PullResult> {
    this.checkLength('pushPull', grads);
    this.checkLength('pushPull', into);
    const count = this.trafficOf('dense');
    const replies = await Promise.all(this.conns.map((c) => c.request({ type: 'pushpull', step, lo: c.welcome.lo, ...rowsOf(info) }, grads, c.welcome.lo, c.welcome.hi, into.subarray(c.welcome.lo, c.welcome.hi), { count })));
    return this.collect(replies, into);
  }

  /** Resolves when every worker has reached the barrier `name` on every server. */
  async barrier(name: string): Promise<void> {
    await Promise.all(this.conns.map((c) => c.request({ type: 'barrier', name })));
  }

  /** Every server's stats, in shard order. */
  async stats(): Promise<ServerStats[]> {
    const replies = await Promise.all(this.conns.map((c) => c.request({ type: 'stats' })));
    return replies.map((r) => (r.header as { stats: ServerStats }).stats);
  }

  /** Asks every server to stop training (pulls answer `stop`) and, with `exit`, to close. */
  async shutdown(exit: boolean): Promise<void> {
    await Promise.all(this.conns.map((c) => c.request({ type: 'shutdown', exit })));
  }

  async close(): Promise<void> {
    await Promise.all(this.conns.map((c) => c.close()));
  }

  // ---- row tables (protocol 3) -------------------------------------------------------------------

  /** The row tables the servers host, by name: their dims (from the welcome). */
  get rowTables(): Record<string, number> {
    return Object.fromEntries((this.conns[0]!.welcome.tables ?? []).map((t) => [t.name, t.dim]));
  }

  /**
   * Bytes so far, out (requests) and in (replies), summed over servers: each row table's frames,
   * and 'dense' for pull and pushpull (a reply in parts counts its last frame only).
   */
  get rowTraffic(): Readonly<Record<string, Traffic>> {
    return this.traffic;
  }

  /**
   * Pulls the rows of `ids` (N, any order; non-negative integers < 2^53) of table `table` into
   * `into` (N, D), each id from the server that holds it (shardOfId(id, S)), in parallel: only
   * those ids travel, each server gets its own. Resolves when the table's policy allows step `step`
   * on every server (as `pull`); a worker's pull creates rows never seen, an observer's only reads
   * them (nothing is created). Never blocks the thread; `into` is written as replies arrive.
   */
  async pullRows(table: string, step: number, ids: ArrayLike<number>, into: Float32Array): Promise<PullResult> {
    const D = this.dimOf('pullRows', table);
    if (into.length !== ids.length * D) throw new PsError('bad-length', `pullRows '${table}': ${ids.length} ids need into of ${ids.length} × ${D} floats, got ${into.length}`);
    const route = this.route(`pull:${table}`, D).split(ids, this.conns.length);
    const count = this.trafficOf(table);
    const replies = await Promise.all(this.conns.map((c, s) => c.request({ type: 'pullrows', table, step }, undefined, 0, 0, undefined, { ids: route.ids(s), count })));
    const out: PullResult = { stop: false, applied: Infinity, stale: 0 };
    replies.forEach((r, s) => {
      const h = r.header as Rows;
      const pos = route.positions(s);
      if (h.type !== 'rows' || r.payload.length !== pos.length * D) {
        throw new PsError('bad-frame', `${this.conns[s]!.url}: expected ${pos.length} rows of table '${table}', got ${h.type} of ${r.payload.length} floats`);
      }
      for (let k = 0; k < pos.length; k++) into.set(r.payload.subarray(k * D, (k + 1) * D), pos[k]! * D);
      out.stop ||= h.stop;
      out.applied = Math.min(out.applied, h.applied);
    });
    return out;
  }

  /**
   * Pushes the gradient of step `step` for the rows of `ids` (N) of table `table`, `grads` (N, D):
   * each server gets the rows it holds — and every server gets a push, empty when it holds none of
   * them, so that each counts the step. `grads` is copied before this returns; resolves when every
   * server has taken its rows. Rejects with the server's PsError (bad-id, not-pulled, bad-length, …).
   */
  async pushRows(table: string, step: number, ids: ArrayLike<number>, grads: Float32Array, info: PushInfo): Promise<void> {
    const D = this.dimOf('pushRows', table);
    if (grads.length !== ids.length * D) throw new PsError('bad-length', `pushRows '${table}': ${ids.length} ids need ${ids.length} × ${D} gradient floats, got ${grads.length}`);
    const route = this.route(`push:${table}`, D).split(ids, this.conns.length, grads);
    const count = this.trafficOf(table);
    await Promise.all(this.conns.map((c, s) => c.request({ type: 'pushrows', table, step, ...rowsOf(info) }, route.values(s), 0, route.positions(s).length * D, undefined, { ids: route.ids(s), count })));
  }

  private readonly routes = new Map<string, RowRoute>();
  private readonly traffic: Record<string, Traffic> = {};

  private route(key: string, dim: number): RowRoute {
    let r = this.routes.get(key);
    if (r === undefined) this.routes.set(key, (r = new RowRoute(dim)));
    return r;
  }

  private trafficOf(table: string): Traffic {
    return (this.traffic[table] ??= { out: 0, in: 0 });
  }

  private dimOf(op: string, table: string): number {
    const dim = this.rowTables[table];
    if (dim === undefined) {
      const names = Object.keys(this.rowTables);
      throw new PsError('unknown-table', `${op}: the servers host no row table ${JSON.stringify(table)} (they host ${names.length > 0 ? names.map((n) => `'${n}'`).join(', ') : 'none'})`);
    }
    return dim;
  }

  private checkLength(op: string, a: Float32Array): void {
    if (!(a instanceof Float32Array) || a.length !== this.size) {
      throw new PsError('bad-length', `${op}: expected a Float32Array of ${this.size} parameters, got ${a instanceof Float32Array ? a.length : typeof a}`);
    }
  }

  private collect(replies: Array<{ header: Reply; payload: Float32Array }>, into: Float32Array): PullResult {
    const out: PullResult = { stop: false, applied: Infinity, stale: 0 };
    replies.forEach((r, i) => {
      const h = r.header as Params;
      const c = this.conns[i]!.welcome;
      if (h.type !== 'params' || h.lo !== c.lo || r.payload.length !== c.hi - c.lo) {
        throw new PsError('bad-frame', `${this.conns[i]!.url}: expected parameters [${c.lo}, ${c.hi}), got ${h.type} of ${r.payload.length} floats`);
      }
      if (r.payload.buffer !== into.buffer || r.payload.byteOffset !== into.byteOffset + 4 * c.lo) into.set(r.payload, c.lo); // else copied in as its parts arrived
      out.stop ||= h.stop;
      out.applied = Math.min(out.applied, h.applied);
      out.stale = Math.max(out.stale, h.stale);
      if (i === 0 && h.plan !== undefined) out.plan = planFromWire(h.plan); // shard 0's: see PullResult.plan
    });
    return out;
  }
}

/** A push's header fields for its rows (and live ranks, with a plan). */
function rowsOf(info: PushInfo): { rows: number; batchRows: number; live?: readonly number[] } {
  return { rows: info.rows, batchRows: info.batchRows, ...(info.live !== undefined ? { live: info.live } : {}) };
}

/**
 * One table's ids split by server (shardOfId), in buffers that grow to the largest step and are
 * reused: per server, its ids, their positions in the caller's list, and (for a push) their rows
 * of the gradient gathered contiguously.
 */
class RowRoute {
  private idBuf: Float64Array[] = [];
  private posBuf: Int32Array[] = [];
  private valBuf: Float32Array[] = [];
  private counts: number[] = [];

  constructor(private readonly dim: number) {}

  split(ids: ArrayLike<number>, servers: number, grads?: Float32Array): this {
    const n = ids.length;
    const D = this.dim;
    while (this.idBuf.length < servers) {
      this.idBuf.push(new Float64Array(0));
      this.posBuf.push(new Int32Array(0));
      this.valBuf.push(new Float32Array(0));
    }
    this.counts = this.counts.length === servers ? this.counts.fill(0) : new Array<number>(servers).fill(0);
    for (let s = 0; s < servers; s++) {
      if (this.idBuf[s]!.length < n) {
        const cap = Math.max(n, 2 * this.idBuf[s]!.length);
        this.idBuf[s] = new Float64Array(cap);
        this.posBuf[s] = new Int32Array(cap);
      }
      if (grads !== undefined && this.valBuf[s]!.length < n * D) this.valBuf[s] = new Float32Array(Math.max(n * D, 2 * this.valBuf[s]!.length));
    }
    for (let k = 0; k < n; k++) {
      const id = ids[k]!;
      // A bad id is sent as it is (a float64 can say −1 or 2.5) and refused by its server by name.
      const s = Number.isSafeInteger(id) && id >= 0 ? shardOfId(id, servers) : 0;
      const j = this.counts[s]!++;
      this.idBuf[s]![j] = id;
      this.posBuf[s]![j] = k;
      if (grads !== undefined) this.valBuf[s]!.set(grads.subarray(k * D, (k + 1) * D), j * D);
    }
    return this;
  }

  ids(s: number): Float64Array {
    return this.idBuf[s]!.subarray(0, this.counts[s]!);
  }

  positions(s: number): Int32Array {
    return this.posBuf[s]!.subarray(0, this.counts[s]!);
  }

  values(s: number): Float32Array {
    return this.valBuf[s]!.subarray(0, this.counts[s]! * this.dim);
  }
}

/** Checks that the servers are shards 0 … S−1 of a P-parameter model, each with its shardRange. */
function checkShards(conns: ShardConnection[], size: number, count: number): PsError | null {
  const seen = new Set<number>();
  for (const c of conns) {
    const w = c.welcome;
    if (w.shards !== count) return new PsError('config-mismatch', `${c.url} is shard ${w.shard} of ${w.shards}, but ${count} servers were given`);
    if (seen.has(w.shard)) return new PsError('config-mismatch', `two servers are shard ${w.shard} (one is ${c.url})`);
    seen.add(w.shard);
    const [lo, hi] = shardRange(size, w.shards, w.shard);
    if (w.lo !== lo || w.hi !== hi) return new PsError('config-mismatch', `${c.url} owns [${w.lo}, ${w.hi}); shard ${w.shard} of ${w.shards} should own [${lo}, ${hi})`);
  }
  return null;
}

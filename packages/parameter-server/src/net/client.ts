/**
 * The worker's side of the network parameter server, ps-lite style: `push`, `pull` and `pushPull`
 * over the whole flat parameter vector, returning promises. The client slices by key range — shard
 * i's [lo, hi) from shardRange(P, S, i) — sends each slice to its owner and waits for all of them
 * in parallel. Each connection keeps at most `maxInFlight` requests outstanding (a p-queue); the
 * rest wait in the queue, so a fast caller cannot flood a server.
 */
import PQueue from 'p-queue';
import WebSocket from 'ws';
import type { Mode } from '../local/shared.js';
import { PsError } from './errors.js';
import { FramePool, PROTOCOL_VERSION, decodeFrame, encodeFrame, parseReply, type Hello, type Params, type Reply, type ServerStats, type Welcome } from './protocol.js';
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
}

/** Rows of a pushed gradient: the mean over `rows` rows of a global batch of `batchRows`. */
export interface PushInfo {
  rows: number;
  batchRows: number;
}

/** What a pull learned besides the parameters. */
export interface PullResult {
  /** True when a server is stopping the run: the caller should end it. */
  stop: boolean;
  /** The fewest updates applied on any shard when the parameters were read. */
  applied: number;
  /** The largest staleness any shard reported for the push (async), else 0. */
  stale: number;
}

interface Pending {
  resolve: (r: { header: Reply; payload: Float32Array }) => void;
  reject: (e: Error) => void;
}

/** One authenticated connection to one server. */
class ShardConnection {
  private nextId = 0;
  private readonly pending = new Map<number, Pending>();
  private readonly queue: PQueue;
  private failure: PsError | null = null;
  private readonly frames = new FramePool();

  private constructor(
    readonly url: string,
    private readonly ws: WebSocket,
    readonly welcome: Welcome,
    maxInFlight: number,
  ) {
    this.queue = new PQueue({ concurrency: maxInFlight });
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
        } else resolve(new ShardConnection(url, ws, welcome!, o.maxInFlight ?? 4));
      };
      ws.on('open', onOpen).on('error', onError).on('close', onClose).on('message', onMessage);
    });
  }

  /**
   * Sends a request and resolves with its reply; rejects with the server's error as a PsError.
   * The frame (and so the payload) is built before this returns, whenever the queue sends it.
   */
  request(header: Record<string, unknown>, payload?: Float32Array, lo?: number, hi?: number): Promise<{ header: Reply; payload: Float32Array }> {
    const id = this.nextId++ & 0x7fffffff;
    const frame = encodeFrame({ ...header, id }, payload, lo, hi, this.frames);
    return this.queue.add(() => {
      if (this.failure) return Promise.reject(this.failure);
      return new Promise<{ header: Reply; payload: Float32Array }>((resolve, reject) => {
        this.pending.set(id, { resolve, reject });
        this.ws.send(frame, { binary: true }, (e) => {
          if (!e) this.frames.give(frame);
        });
      });
    });
  }

  private onMessage(data: Buffer): void {
    let reply: Reply;
    let payload: Float32Array;
    try {
      const f = decodeFrame(data);
      reply = parseReply(f.header) as Reply;
      payload = f.payload;
    } catch (e) {
      return this.fail(new PsError('bad-frame', `${this.url} sent an unreadable reply: ${(e as Error).message}`));
    }
    const p = this.pending.get(reply.id);
    if (p === undefined) {
      if (reply.type === 'error') return this.fail(new PsError(reply.code, `${this.url}: ${reply.message}`));
      return; // a reply to nothing we asked: ignore
    }
    this.pending.delete(reply.id);
    if (reply.type === 'error') p.reject(new PsError(reply.code, `${this.url}: ${reply.message}`));
    else p.resolve({ header: reply, payload });
  }

  private fail(e: PsError): void {
    if (this.failure) return;
    this.failure = e;
    for (const p of this.pending.values()) p.reject(e);
    this.pending.clear();
  }

  close(): Promise<void> {
    this.failure ??= new PsError('closed', `${this.url}: closed by this client`);
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
    return new PsClient(conns, o.size);
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
    const replies = await Promise.all(this.conns.map((c) => c.request({ type: 'pull', step, lo: c.welcome.lo, hi: c.welcome.hi })));
    return this.collect(replies, into);
  }

  /** Pushes the gradient of step `step` (all P floats; each shard gets its slice). Resolves when every server has taken it. */
  async push(step: number, grads: Float32Array, info: PushInfo): Promise<{ stale: number }> {
    this.checkLength('push', grads);
    const replies = await Promise.all(this.conns.map((c) => c.request({ type: 'push', step, lo: c.welcome.lo, rows: info.rows, batchRows: info.batchRows }, grads, c.welcome.lo, c.welcome.hi)));
    return { stale: Math.max(0, ...replies.map((r) => (r.header.type === 'ack' ? r.header.stale : 0))) };
  }

  /**
   * Pushes the gradient of step `step` and pulls the parameters for step `step + 1` in one round
   * trip per server. `grads` is copied before this returns; `into` is written as replies arrive.
   */
  async pushPull(step: number, grads: Float32Array, into: Float32Array, info: PushInfo): Promise<PullResult> {
    this.checkLength('pushPull', grads);
    this.checkLength('pushPull', into);
    const replies = await Promise.all(this.conns.map((c) => c.request({ type: 'pushpull', step, lo: c.welcome.lo, rows: info.rows, batchRows: info.batchRows }, grads, c.welcome.lo, c.welcome.hi)));
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
      into.set(r.payload, c.lo);
      out.stop ||= h.stop;
      out.applied = Math.min(out.applied, h.applied);
      out.stale = Math.max(out.stale, h.stale);
    });
    return out;
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

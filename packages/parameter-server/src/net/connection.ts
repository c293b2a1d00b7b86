/**
 * One client's WebSocket on a parameter server: the hello and its token, frames in (decoded, joined
 * from parts, gradients scanned for NaN as their pieces land), frames out (a reply in parts pumped
 * as the socket drains), and backpressure. What a request means is the handler's business
 * (./handler.ts): a connection hands it each whole message and sends what it answers.
 *
 * What it guarantees whatever it receives:
 *  - nothing is read before a hello with the cluster token; anything else first, a wrong token, a
 *    wrong version, no hello by the gate's deadline (counted from accept), or more than
 *    `preAuthBytes` sent before authenticating, is a refusal: a close frame (1008 with a reason;
 *    1002 and a `version` error for a wrong version), then the socket is destroyed at once
 *    (./gate.ts `hangUp`), and the refusal goes to the rate-limited RefusalLog (never the token).
 *    Whatever the peer sends after a refusal is ignored: not answered, not logged;
 *  - the pre-auth limit is counted on the socket's bytes as they arrive, so a large first message
 *    is refused after `preAuthBytes` (plus one socket read) of it, not buffered whole (ws's
 *    `maxPayload`, one per server, is the authenticated limit; ws has no per-connection one);
 *  - once authenticated, a bad frame is answered with an error and the connection stays;
 *  - a client that does not read its replies (more than HIGH_WATER bytes unsent) stops being read
 *    until it does.
 */
import type { Socket } from 'node:net';
import type { WebSocket } from 'ws';
import { allFinite } from '@loom/optimizer';
import { PsError, type ErrorCode } from './errors.js';
import type { Fields } from './fields.js';
import { FramePool, PART_FLOATS, Reassembly, decodeFrame, encodeFrame } from './frame.js';
import type { Gate } from './gate.js';
import { PROTOCOL_VERSION, idOf, parseHello, type ErrorReply, type Hello, type Welcome } from './protocol.js';
import { tokensEqual } from './token.js';

/** Stop reading a client whose unsent replies exceed this; resume below half of it. */
const HIGH_WATER = 64 * 1024 * 1024;
/** A reply in parts makes its next frame only while less than one part waits to be written to the socket. */
const PUMP_WATER = 4 * PART_FLOATS;

/** WebSocket close reasons are at most 123 bytes. */
const reason = (s: string) => (Buffer.byteLength(s) <= 123 ? s : Buffer.from(s).subarray(0, 120).toString('utf8').replace(/\uFFFD*$/, '') + '…');

/** What a server counts across its connections (reported by `stats`). */
export class Tally {
  pushes = 0;
  pulls = 0;
  bytesIn = 0;
  bytesOut = 0;
  /** Refused requests and connections, by error code. */
  readonly errors: Partial<Record<ErrorCode, number>> = {};

  count(code: ErrorCode): void {
    this.errors[code] = (this.errors[code] ?? 0) + 1;
  }
}

/** What a connection asks of the server's request handler. */
export interface ConnectionHandler {
  /** A hello with the right version and token: checks it against the server and registers the peer; returns the welcome, or throws a PsError (the connection is then closed with it). */
  admit(c: Connection, hello: Hello): Welcome;
  /** Memory for the payload of a message sent in parts (`floats` values), before its pieces arrive. */
  receive(header: Fields, floats: number): Float32Array;
  /**
   * A whole message from an admitted peer: its header (not yet checked) and payload. `parts` when it
   * came in parts, into memory from `receive`: then whether its payload is free of NaN and ±Inf.
   * `keyed` when its frame had a key section (protocol 3's row messages): the ids, and the frame's bytes.
   */
  message(c: Connection, header: unknown, payload: Float32Array, parts: { finite: boolean } | null, keyed?: { ids: Float64Array; bytes: number }): void;
  /** The connection closed (`code` and `why` as the peer or ws gave them). */
  closed(c: Connection, code: number, why: string): void;
}

/**
 * The replies of parameters still being made, at most one per connection: each frame is made — its
 * range stepped if an update is in progress, then copied — only when the socket has taken the
 * previous one, so the socket sends part k while part k + 1 is stepped. `idle` is called when the
 * last one is done (the store may then step the rest of its update).
 */
export class Streams {
  readonly busy = new Set<Connection>();
  constructor(readonly idle: () => void) {}

  /** Makes and sends every remaining frame of every reply in progress, now (before the parameters change). */
  finishAll(): void {
    for (const c of [...this.busy]) c.finish();
  }
}

/** What the connections of one server share. */
export interface ConnectionContext {
  token: string;
  handler: ConnectionHandler;
  tally: Tally;
  streams: Streams;
  frames: FramePool;
  log: (line: string) => void;
  /** The most floats a message in parts may carry (the largest frame's worth). */
  maxFloats: number;
  /** The deadline, limits and refusal log of the server's listener. */
  gate: Gate;
  /** The most bytes a peer may send before it has authenticated. */
  preAuthBytes: number;
}

export class Connection {
  authed = false;
  /** Refused before authenticating: hung up, and whatever still arrives is ignored. */
  private refused = false;
  role: 'worker' | 'observer' = 'observer';
  rank = -1;
  /** Requests taken and not yet answered. */
  inflight = 0;
  /** When the last frame or ping arrived (ms, monotonic). */
  lastSeen = performance.now();
  /** Closed for silence past the heartbeat timeout. */
  silent = false;
  private paused = false;
  /** No NaN or ±Inf in the pieces of the gradient being joined so far (each is scanned as it lands). */
  private finite = true;
  /** Gradients sent in parts are joined here, one message at a time. */
  private readonly joining: Reassembly;
  /** The reply of parameters being sent part by part (see Streams). */
  private outgoing: Generator<Buffer> | null = null;

  constructor(
    readonly ws: WebSocket,
    /** The peer's socket (TCP, or TLS over it), for the gate. */
    readonly socket: Socket,
    readonly addr: string,
    private readonly ctx: ConnectionContext,
  ) {
    this.joining = new Reassembly(ctx.maxFloats);
    ws.on('ping', () => (this.lastSeen = performance.now())); // a worker's heartbeat (ws answers the pong)
    ctx.gate.onLate(socket, () => this.refuse('no hello', 'authentication required', `no hello within ${ctx.gate.deadlineMs} ms of connecting`));
    // Bytes before the hello, counted as they arrive (after ws has read the chunk: a hello in it has
    // then been handled and the count stops).
    let preAuth = 0;
    const count = (chunk: Buffer) => {
      if (this.authed) return void socket.off('data', count);
      if (this.refused) return;
      preAuth += chunk.length;
      if (preAuth > ctx.preAuthBytes) this.refuse('too large', 'authentication required', `sent ${preAuth} bytes without a hello; a hello is at most ${ctx.preAuthBytes}`);
    };
    socket.on('data', count);
    ws.on('message', (data, isBinary) => {
      if (this.refused) return;
      const bytes = data as Buffer; // binaryType 'nodebuffer': fragmented messages arrive joined
      this.lastSeen = performance.now();
      ctx.tally.bytesIn += bytes.length;
      if (!this.authed) this.onHello(bytes, isBinary);
      else this.onFrame(bytes, isBinary);
    });
    ws.on('error', (e) => {
      if (this.authed) ctx.log(`connection ${addr}: ${e.message}`);
      else this.refuse('bad frame', 'authentication required', e.message);
    });
    ws.on('close', (code, why) => {
      this.outgoing = null;
      if (ctx.streams.busy.delete(this) && ctx.streams.busy.size === 0) ctx.streams.idle();
      ctx.handler.closed(this, code, why.toString());
    });
  }

  // ---- hello -----------------------------------------------------------------------------------

  private onHello(bytes: Buffer, isBinary: boolean): void {
    const notHello = (detail: string) => this.refuse('not a hello', 'authentication required', detail);
    if (!isBinary) return notHello('sent a text frame before hello');
    let header: unknown;
    try {
      header = decodeFrame(bytes).header;
    } catch (e) {
      return notHello(`first frame unreadable: ${(e as Error).message}`);
    }
    const h = header as Record<string, unknown> | null;
    if (typeof h !== 'object' || h === null || h.type !== 'hello') {
      return notHello(`first message was ${typeof h?.type === 'string' ? `'${h.type.slice(0, 40)}'` : 'not a hello'}`);
    }
    if (h.v !== PROTOCOL_VERSION) {
      const msg = `protocol version ${typeof h.v === 'number' ? h.v : String(h.v).slice(0, 40)} is not supported (this server speaks ${PROTOCOL_VERSION})`;
      return this.refuse('version', msg, msg, new PsError('version', msg), 1002);
    }
    if (typeof h.token !== 'string' || !tokensEqual(h.token, this.ctx.token)) return this.refuse('bad token', 'bad token', 'hello with a wrong token');
    let welcome: Welcome;
    try {
      const hello = parseHello(h)!;
      welcome = this.ctx.handler.admit(this, hello);
      Object.assign(this, { authed: true, role: hello.role, rank: hello.rank });
    } catch (e) {
      const err = e instanceof PsError ? e : new PsError('internal', (e as Error)?.message ?? String(e));
      return this.refuse(err.code, err.message, err.message, err);
    }
    this.ctx.gate.authenticated(this.socket);
    this.send(encodeFrame(welcome));
  }

  /**
   * Refuses a peer that has not authenticated: counts it (`auth`, or the code of `error`, which is
   * also sent), logs it through the gate (rate-limited; never the token), sends a close frame with
   * `code` and `why`, and hangs up — the socket is destroyed once the frame is out, and anything
   * the peer sends meanwhile is ignored.
   */
  private refuse(kind: string, why: string, detail: string, error?: PsError, code = 1008): void {
    if (this.refused) return;
    this.refused = true;
    this.ctx.gate.refuse(this.socket, kind, detail);
    if (error !== undefined) this.sendError(-1, error);
    else this.ctx.tally.count('auth');
    if (this.ws.readyState === this.ws.OPEN) this.ws.close(code, reason(why));
    this.ctx.gate.hangUp(this.socket);
  }

  // ---- frames in -------------------------------------------------------------------------------

  private onFrame(bytes: Buffer, isBinary: boolean): void {
    if (!isBinary) return this.sendError(-1, new PsError('bad-frame', 'text frames are not part of the protocol; send binary frames'));
    let header: unknown = undefined;
    let payload: Float32Array;
    let ids: Float64Array | undefined;
    let joined = false;
    try {
      ({ header, payload, ids } = decodeFrame(bytes));
      if (ids !== undefined && (header as Fields | null)?.parts !== undefined) throw new PsError('bad-frame', 'a frame with a key section travels whole, never in parts');
      const whole = this.joining.feed(header, payload, (h, floats) => this.ctx.handler.receive(h, floats), (h, into, lo, hi) => {
        // Scan each piece of a gradient while the next ones arrive, instead of all of it at the end.
        if (lo === 0) this.finite = true;
        if (this.finite && (h.type === 'push' || h.type === 'pushpull')) this.finite = allFinite(into.subarray(lo, hi));
      });
      if (whole === null) return; // more parts to come
      ({ header, payload, joined } = whole);
    } catch (e) {
      return this.sendError(idOf(header), e);
    }
    this.ctx.handler.message(this, header, payload, joined ? { finite: this.finite } : null, ids !== undefined ? { ids, bytes: bytes.length } : undefined);
  }

  // ---- frames out ------------------------------------------------------------------------------

  /** Sends the answer to a request. */
  reply(frame: Buffer): void {
    this.inflight--;
    this.send(frame);
  }

  /** Answers a request with the frames of a reply in parts, each made only as the socket drains (see Streams). */
  stream(reply: Generator<Buffer>): void {
    this.inflight--;
    this.finish();
    this.outgoing = reply;
    this.ctx.streams.busy.add(this);
    this.pump();
  }

  /** Sends an error reply (counted by code; an internal error is logged with its stack). */
  sendError(id: number, e: unknown): void {
    const err = e instanceof PsError ? e : new PsError('internal', (e as Error)?.message ?? String(e));
    if (err.code === 'internal') this.ctx.log(`internal error on ${this.addr}: ${(e as Error)?.stack ?? String(e)}`);
    this.ctx.tally.count(err.code);
    const reply: ErrorReply = { type: 'error', id, code: err.code, message: err.message };
    this.send(encodeFrame(reply));
  }

  /** Sends a frame after the rest of any reply in progress on this connection. */
  send(frame: Buffer): void {
    this.finish();
    this.write(frame);
  }

  /** Sends every remaining frame of the reply in progress now. */
  finish(): void {
    const gen = this.outgoing;
    if (gen === null) return;
    this.outgoing = null;
    this.ctx.streams.busy.delete(this);
    for (const frame of gen) this.write(frame);
  }

  /** Makes and sends the next frames of the reply in progress while the socket keeps up; when it is done, tells Streams. */
  private pump(): void {
    const gen = this.outgoing;
    if (gen === null) return;
    while (this.ws.readyState === this.ws.OPEN && this.ws.bufferedAmount < PUMP_WATER) {
      const next = gen.next();
      if (next.done) {
        this.outgoing = null;
        const streams = this.ctx.streams;
        streams.busy.delete(this);
        if (streams.busy.size === 0) streams.idle();
        return;
      }
      this.write(next.value, () => this.pump());
    }
  }

  private write(frame: Buffer, sent?: () => void): void {
    const ws = this.ws;
    if (ws.readyState !== ws.OPEN) return;
    this.ctx.tally.bytesOut += frame.length;
    ws.send(frame, { binary: true }, (e) => {
      if (!e) this.ctx.frames.give(frame);
      sent?.();
      if (this.paused && ws.bufferedAmount < HIGH_WATER / 2) {
        this.paused = false;
        ws.resume();
      }
    });
    if (!this.paused && ws.bufferedAmount > HIGH_WATER) {
      this.paused = true;
      ws.pause();
    }
  }
}

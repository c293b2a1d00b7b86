/**
 * What a Loom listener lets a peer hold before it has authenticated: a parameter server's
 * WebSocket port (./server.ts, ./connection.ts) and `loom launch`'s rendezvous endpoint share it.
 *
 *  - a deadline: a socket that has not authenticated `deadlineMs` after it was accepted (TCP, or
 *    the TLS handshake done) is refused and destroyed, whatever stage it stopped at — no request,
 *    an upgrade and no hello, half a header; over TLS the handshake itself has the same deadline;
 *  - limits: a new request is turned away with HTTP 503 when the listener already holds
 *    `maxConnections` sockets, or `maxUnauthenticated` sockets that have not authenticated; past
 *    both together, a TCP connection is closed at accept (net.Server's maxConnections), unanswered;
 *  - a refused socket is hung up at once: what was written to it (a close frame, a 401, a 503) is
 *    flushed, nothing more is read, and it is destroyed — it does not wait for the peer to answer
 *    a close;
 *  - every refusal goes to one RefusalLog (./refusal-log.ts), so a flood writes a few lines.
 *
 * An authenticated socket is the owner's business: the gate only counts it, against maxConnections.
 */
import type { Server as NetServer, Socket } from 'node:net';
import { Server as TlsServer } from 'node:tls';
import { RefusalLog } from './refusal-log.js';

/** The defaults of `loom serve` and of `loom launch`'s rendezvous. */
export const GATE_DEFAULTS = {
  /** From accept to authenticated, in ms. */
  deadlineMs: 5_000,
  maxConnections: 1024,
  maxUnauthenticated: 64,
  /** What a peer may send before it has authenticated (a hello is a few hundred bytes). */
  preAuthBytes: 64 * 1024,
} as const;

/** A hung-up socket whose writes have not gone out after this long is destroyed anyway (its peer reads nothing). */
const HANG_UP_GRACE_MS = 200;

export interface GateOptions {
  /** Where refusals are logged, rate-limited. */
  refusals: RefusalLog;
  /** What a silent socket did not send in time, for the log: 'upgrade' (a WebSocket port) or 'request' (an HTTP endpoint). */
  awaiting: string;
  deadlineMs?: number;
  maxConnections?: number;
  maxUnauthenticated?: number;
}

interface Entry {
  timer: NodeJS.Timeout;
  authed: boolean;
  /** What to do when the deadline passes, instead of destroying the socket (a WebSocket sends a close frame first). */
  late: (() => void) | null;
}

export class Gate {
  readonly deadlineMs: number;
  readonly maxConnections: number;
  readonly maxUnauthenticated: number;
  readonly refusals: RefusalLog;
  private readonly entries = new Map<Socket, Entry>();
  private unauthed = 0;
  private flushTimer: NodeJS.Timeout | undefined;

  /** Watches every socket `server` accepts; call before it listens. */
  constructor(server: NetServer, private readonly o: GateOptions) {
    this.refusals = o.refusals;
    this.deadlineMs = o.deadlineMs ?? GATE_DEFAULTS.deadlineMs;
    this.maxConnections = o.maxConnections ?? GATE_DEFAULTS.maxConnections;
    this.maxUnauthenticated = o.maxUnauthenticated ?? GATE_DEFAULTS.maxUnauthenticated;
    for (const [name, v, min] of [['deadlineMs', this.deadlineMs, 1], ['maxConnections', this.maxConnections, 1], ['maxUnauthenticated', this.maxUnauthenticated, 1]] as const) {
      if (!(Number.isInteger(v) && v >= min)) throw new RangeError(`${name} must be an integer ≥ ${min}, got ${v}`);
    }
    server.maxConnections = this.maxConnections + this.maxUnauthenticated;
    server.on('drop', (d?: { remoteAddress?: string; remotePort?: number }) =>
      this.log(d?.remoteAddress ?? 'unknown', d?.remotePort, 'connection limit', `${server.maxConnections} sockets open: closed at accept`));
    // Over TLS, the socket a request arrives on is the TLS one, made once the handshake is done.
    if (server instanceof TlsServer) server.on('secureConnection', (s: Socket) => this.accept(s));
    else server.on('connection', (s: Socket) => this.accept(s));
  }

  /** Sockets held, and of them those not authenticated. */
  get counts(): { open: number; unauthenticated: number } {
    return { open: this.entries.size, unauthenticated: this.unauthed };
  }

  private accept(socket: Socket): void {
    const entry: Entry = { timer: setTimeout(() => this.expire(socket), this.deadlineMs).unref(), authed: false, late: null };
    this.entries.set(socket, entry);
    this.unauthed++;
    socket.once('close', () => {
      clearTimeout(entry.timer);
      if (this.entries.delete(socket) && !entry.authed) this.unauthed--;
    });
  }

  private expire(socket: Socket): void {
    const entry = this.entries.get(socket);
    if (entry === undefined || entry.authed) return;
    if (entry.late !== null) return entry.late();
    this.refuse(socket, `no ${this.o.awaiting}`, `nothing within ${this.deadlineMs} ms`);
    this.hangUp(socket);
  }

  /**
   * Why a new request on `socket` is to be turned away with 503 — 'connection limit' or
   * 'unauthenticated limit' — or null when it may go on. (The socket itself is among those counted.)
   */
  full(socket: Socket): 'connection limit' | 'unauthenticated limit' | null {
    const mine = this.entries.get(socket);
    if (mine?.authed) return null;
    if (this.entries.size > this.maxConnections) return 'connection limit';
    if (this.unauthed > this.maxUnauthenticated) return 'unauthenticated limit';
    return null;
  }

  /** The peer on `socket` proved it holds the token: no deadline, no longer counted as unauthenticated. */
  authenticated(socket: Socket): void {
    const entry = this.entries.get(socket);
    if (entry === undefined || entry.authed) return;
    entry.authed = true;
    clearTimeout(entry.timer);
    this.unauthed--;
  }

  /** At the deadline, call `late` instead of destroying the socket (it must refuse and hang up itself). */
  onLate(socket: Socket, late: () => void): void {
    const entry = this.entries.get(socket);
    if (entry !== undefined) entry.late = late;
  }

  /** Logs a refusal of the peer on `socket` (rate-limited, see RefusalLog). */
  refuse(socket: Socket, kind: string, detail?: string): void {
    this.log(socket.remoteAddress ?? 'unknown', socket.remotePort, kind, detail);
  }

  private log(address: string, port: number | undefined, kind: string, detail?: string): void {
    this.refusals.refused(address, port, kind, detail);
    if (this.flushTimer === undefined) this.scheduleFlush();
  }

  /** Writes the refusal summaries when their window ends, even if no refusal comes after it. */
  private scheduleFlush(): void {
    const due = this.refusals.dueIn();
    if (due === null) return;
    this.flushTimer = setTimeout(() => {
      this.flushTimer = undefined;
      this.refusals.flush();
      this.scheduleFlush();
    }, due + 1);
    this.flushTimer.unref();
  }

  /**
   * Hangs up on a refused peer: what was written to `socket` goes out, then it is destroyed; nothing
   * more is read from it meanwhile. A peer that does not read gets HANG_UP_GRACE_MS.
   */
  hangUp(socket: Socket): void {
    if (socket.destroyed) return;
    socket.pause();
    const destroy = () => socket.destroy();
    socket.end(destroy);
    setTimeout(destroy, HANG_UP_GRACE_MS).unref();
  }

  /** Answers an HTTP request on a raw socket (an upgrade turned away) with `status`, then hangs up. */
  reject(socket: Socket, status: 400 | 503, message: string): void {
    if (socket.destroyed) return;
    const text = status === 503 ? 'Service Unavailable' : 'Bad Request';
    socket.write(`HTTP/1.1 ${status} ${text}\r\nConnection: close\r\nContent-Type: text/plain\r\nContent-Length: ${Buffer.byteLength(message)}\r\n\r\n${message}`);
    this.hangUp(socket);
  }

  /** Destroys the sockets that have not authenticated, stops the timers and writes the last summaries. */
  close(): void {
    for (const [socket, e] of this.entries) {
      clearTimeout(e.timer);
      if (!e.authed) socket.destroy();
    }
    clearTimeout(this.flushTimer);
    this.flushTimer = undefined;
    this.refusals.end();
  }
}

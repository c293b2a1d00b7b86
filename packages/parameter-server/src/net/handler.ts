/**
 * The request handler of a parameter server, ps-lite's "server handle": what each request does to
 * the server's tables (./table.ts) and when it is answered. It checks every request before using
 * it, answers a bad one with an error naming the problem (counted in stats) and goes on serving
 * everyone else; it parks pulls until their table's policy allows their step, gathers named
 * barriers, and keeps the membership of workers: a worker whose connection is lost is dropped from
 * every table's clock, so the others go on, and admitted again when it joins. Sockets and frames
 * are ./connection.ts's; listening, watching and checkpoints are ./server.ts's.
 */
import { PsError } from './errors.js';
import type { Fields } from './fields.js';
import { PART_FLOATS, encodeFrame, encodeFrameWith, frames, type FramePool } from './frame.js';
import { PROTOCOL_VERSION, idOf, parseRequest, planToWire, type Hello, type Params, type Pull, type PullRows, type Push, type PushRows, type Request, type Rows, type ServerStats, type Welcome } from './protocol.js';
import { checkIds, type RowStore } from './row-store.js';
import type { Connection, ConnectionHandler, Streams, Tally } from './connection.js';
import { DENSE_TABLE, type DenseTable, type Table } from './table.js';
import type { Tables } from './tables.js';

export interface HandlerOptions {
  tables: Tables;
  /** W: the worker ranks 0 … W−1 every table counts. */
  workers: number;
  /** This server's shard i of S, reported in the welcome. */
  shard: number;
  shards: number;
  staleness: number;
  /** Unanswered requests one connection may have. */
  maxInFlight: number;
  /** How long a worker may send nothing before it is closed (for the log line that says so). */
  heartbeatTimeoutMs: number;
  tally: Tally;
  streams: Streams;
  frames: FramePool;
  log: (line: string) => void;
  /** The whole server's stats, for a `stats` request. */
  stats: () => ServerStats;
  /** A `shutdown` with `exit`: close the server (after the ack is sent). */
  exit: () => void;
}

/** A pull parked until its table has applied `need` updates. */
interface Waiter {
  conn: Connection;
  table: DenseTable;
  id: number;
  step: number;
  lo: number;
  hi: number;
  need: number;
  stale: number;
}

/** A row pull parked until its table has applied `need` updates. */
interface RowWaiter {
  conn: Connection;
  table: RowStore;
  id: number;
  step: number;
  ids: Float64Array;
  need: number;
}

export class RequestHandler implements ConnectionHandler {
  /** Pulls answer `stop: true` from now on. */
  stopped = false;
  /** The server is closing: a closed connection is no longer a dropped worker. */
  closing = false;
  /** The workers' batches per epoch as their join said (0: unknown), recorded in checkpoints and in each table's ledger. */
  get stepsPerEpoch(): number {
    return this.dense.policy.stepsPerEpoch;
  }

  set stepsPerEpoch(n: number) {
    for (const t of this.o.tables) t.policy.stepsPerEpoch = n;
  }

  readonly membership = { dropped: 0, readmitted: 0 };
  /** The connection of each worker rank. */
  readonly ranks = new Map<number, Connection>();
  private waiters: Waiter[] = [];
  private rowWaiters: RowWaiter[] = [];
  private readonly barriers = new Map<string, Map<number, { conn: Connection; id: number }>>();
  /** The dense table: the one protocol 2 addresses, whose range and clock the welcome and stats describe. */
  private readonly dense: DenseTable;

  constructor(private readonly o: HandlerOptions) {
    this.dense = o.tables.dense(DENSE_TABLE.id);
  }

  // ---- connections -----------------------------------------------------------------------------

  admit(c: Connection, hello: Hello): Welcome {
    const d = this.dense;
    if (hello.size !== d.size || hello.workers !== this.o.workers) {
      throw new PsError('config-mismatch', `this server trains ${d.size} parameters with ${this.o.workers} workers; the client has ${hello.size} and ${hello.workers}`);
    }
    if (hello.role === 'worker') {
      if (this.ranks.has(hello.rank)) throw new PsError('rank-taken', `worker rank ${hello.rank} is already connected`);
      this.ranks.set(hello.rank, c);
      this.o.log(`worker ${hello.rank} connected from ${c.addr}`);
    }
    return {
      type: 'welcome', v: PROTOCOL_VERSION, shard: this.o.shard, shards: this.o.shards, lo: d.lo, hi: d.hi, size: d.size,
      workers: this.o.workers, mode: d.policy.mode, staleness: this.o.staleness, applied: d.applied,
      tables: this.o.tables.rowTables().map((t) => ({ name: t.name, dim: t.dim })),
    };
  }

  closed(c: Connection, code: number, why: string): void {
    this.waiters = this.waiters.filter((w) => w.conn !== c);
    this.rowWaiters = this.rowWaiters.filter((w) => w.conn !== c);
    for (const arrived of this.barriers.values()) if (arrived.get(c.rank)?.conn === c) arrived.delete(c.rank);
    if (!(c.authed && c.role === 'worker' && this.ranks.get(c.rank) === c)) return;
    this.ranks.delete(c.rank);
    if (this.closing) return;
    const how = c.silent ? `sent nothing for ${this.o.heartbeatTimeoutMs} ms` : `disconnected (${code}${why.length ? ` ${why}` : ''})`;
    this.o.log(`worker ${c.rank} (${c.addr}) ${how}`);
    // A worker that ends its run (or reconnects on purpose) closes with 1000: it leaves the
    // barrier without counting as dropped. Anything else is a failure.
    if (code !== 1000 || c.silent) this.dropRank(c.rank, how);
    else if (this.eachTable((t) => t.policy.drop(c.rank)) > 0) this.answerWaiters();
  }

  /** Protocol 2 sends every payload to the dense table; the next version's messages name their table. */
  private tableOf(_header: unknown): Table {
    return this.dense;
  }

  receive(header: Fields, floats: number): Float32Array {
    return this.tableOf(header).receive(floats);
  }

  // ---- membership ------------------------------------------------------------------------------

  /** Drops worker `rank` from every table's clock, logs why, and answers the pulls its absence unblocks. */
  dropRank(rank: number, why: string): void {
    const d = this.dense;
    if (!d.policy.isMember(rank)) return;
    const at = d.applied;
    const appliedNow = this.eachTable((t) => t.policy.drop(rank));
    this.membership.dropped++;
    this.o.log(`worker ${rank} dropped at step ${at}: ${why}; training goes on with ${d.policy.members().length} of ${this.o.workers} workers`);
    if (appliedNow > 0) this.answerWaiters();
    this.releaseBarriers();
  }

  /** Drops every member rank that has no connection (after a restart, one that did not come back). */
  dropAbsent(why: string): void {
    for (let r = 0; r < this.o.workers; r++) if (!this.ranks.has(r) && this.dense.policy.isMember(r)) this.dropRank(r, why);
  }

  /** The worker ranks the next update waits for (async: every connected worker). */
  members(): number[] {
    return this.dense.policy.mode === 'async' ? [...this.ranks.keys()].sort((a, b) => a - b) : this.dense.policy.members();
  }

  /** Sums what `f` returns for every table (the updates a membership change applied). */
  private eachTable(f: (t: Table) => number): number {
    let n = 0;
    for (const t of this.o.tables) n += f(t);
    return n;
  }

  /** Answers every named barrier that each member worker has reached (all W, unless some were dropped). */
  private releaseBarriers(): void {
    for (const [name, arrived] of this.barriers) {
      let all = arrived.size > 0;
      for (let r = 0; r < this.o.workers && all; r++) if (this.dense.policy.isMember(r) && !arrived.has(r)) all = false;
      if (!all) continue;
      this.barriers.delete(name);
      for (const a of arrived.values()) a.conn.reply(encodeFrame({ type: 'ack', id: a.id, stale: 0 }));
    }
  }

  // ---- requests --------------------------------------------------------------------------------

  message(c: Connection, header: unknown, payload: Float32Array, parts: { finite: boolean } | null, keyed?: { ids: Float64Array; bytes: number }): void {
    // A payload joined from parts lives in its table's memory and is reused once the table is done
    // with it: at once when it was refused, else once the update that reads it is stepped whole (the
    // push's readUntil, on the table's clock; an update may be stepped part by part as its replies
    // go out, after this handler has returned).
    const done = (readUntil: number) => {
      if (parts === null) return;
      const table = this.tableOf(header);
      if (readUntil < 0) table.release(payload);
      else table.holdUntil(payload, readUntil);
    };
    let req: Request;
    try {
      req = parseRequest(header);
    } catch (e) {
      done(-1);
      return c.sendError(idOf(header), e);
    }
    if (c.inflight >= this.o.maxInFlight) {
      done(-1);
      return c.sendError(req.id, new PsError('too-many-requests', `more than ${this.o.maxInFlight} requests in flight on one connection`));
    }
    c.inflight++;
    try {
      done(this.handle(c, req, payload, parts?.finite, keyed));
    } catch (e) {
      done(-1);
      c.inflight--;
      c.sendError(req.id, e);
    }
  }

  /**
   * `finite`: whether a payload joined from parts is free of NaN and ±Inf (scanned as it arrived),
   * else unknown. Returns until which update the table reads the payload (−1: it did not take it).
   */
  private handle(c: Connection, req: Request, payload: Float32Array, finite?: boolean, keyed?: { ids: Float64Array; bytes: number }): number {
    if (keyed !== undefined && req.type !== 'pullrows' && req.type !== 'pushrows') throw new PsError('bad-frame', `${req.type}: only pullrows and pushrows carry a key section`);
    switch (req.type) {
      case 'pullrows':
      case 'pushrows':
        if (keyed === undefined) throw new PsError('bad-request', `${req.type} '${req.table}': the ids travel in the frame's key section (flag 0x1), and this frame has none`);
        if (req.type === 'pullrows') this.onPullRows(c, req, payload, keyed);
        else this.onPushRows(c, req, payload, keyed);
        return -1;
      case 'pull': {
        const t = this.o.tables.dense(DENSE_TABLE.id);
        if (req.lo > req.hi || req.lo < t.lo || req.hi > t.hi) throw new PsError('not-owner', `pull [${req.lo}, ${req.hi}) is not within this server's range [${t.lo}, ${t.hi})`);
        this.o.tally.pulls++;
        this.park(c, t, req, 0);
        return -1;
      }
      case 'push':
      case 'pushpull':
        return this.onPush(c, this.o.tables.dense(DENSE_TABLE.id), req, payload, finite);
      case 'barrier': {
        if (c.role !== 'worker') throw new PsError('not-worker', 'barrier: only workers take part in barriers');
        let arrived = this.barriers.get(req.name);
        if (arrived === undefined) this.barriers.set(req.name, (arrived = new Map()));
        arrived.set(c.rank, { conn: c, id: req.id });
        this.releaseBarriers();
        return -1;
      }
      case 'stats':
        c.reply(encodeFrame({ type: 'stats', id: req.id, stats: this.o.stats() }));
        return -1;
      case 'join': {
        if (c.role !== 'worker') throw new PsError('not-worker', 'join: only workers join the barrier');
        const d = this.dense;
        const again = !d.policy.isMember(c.rank);
        const appliedNow = this.eachTable((t) => t.policy.join(c.rank, req.step));
        if (req.stepsPerEpoch > 0) this.stepsPerEpoch = req.stepsPerEpoch;
        if (again) {
          this.membership.readmitted++;
          const live = d.policy.mode === 'async' ? this.ranks.size : d.policy.members().length + (req.step > d.applied ? 1 : 0);
          this.o.log(`worker ${c.rank} readmitted from step ${req.step} (${live} of ${this.o.workers} workers)`);
        }
        c.reply(encodeFrame({ type: 'ack', id: req.id, stale: 0 }));
        if (appliedNow > 0) this.answerWaiters();
        return -1;
      }
      case 'shutdown':
        this.o.log(`shutdown requested by ${c.addr}${req.exit ? ' (exit)' : ''}`);
        this.stop();
        c.reply(encodeFrame({ type: 'ack', id: req.id, stale: 0 }));
        if (req.exit) setImmediate(this.o.exit);
        return -1;
    }
  }

  /**
   * Takes a gradient and answers what it unblocks. The update it completes is stepped part by part
   * as the replies are sent (the table's `defer`, Streams): each part of the parameters goes to the
   * socket as soon as it is stepped, so the download overlaps the step, which used to run whole
   * between the upload and the download. The table steps the rest before anyone else reads the
   * parameters or starts the next update, so nothing sees a half-stepped range. The push is whole
   * and scanned before any part is stepped: a NaN in its last part must still refuse (or skip) all
   * of it, which an already stepped part could not honour.
   */
  private onPush(c: Connection, t: DenseTable, req: Push, payload: Float32Array, finite?: boolean): number {
    if (c.role !== 'worker') throw new PsError('not-worker', `${req.type}: an observer cannot push`);
    if (req.lo !== t.lo) throw new PsError('not-owner', `${req.type} at key ${req.lo}: this server owns [${t.lo}, ${t.hi})`);
    if (payload.length !== t.hi - t.lo) throw new PsError('bad-length', `${req.type}: a gradient for [${t.lo}, ${t.hi}) has ${t.hi - t.lo} floats, got ${payload.length}`);
    const { appliedNow, stale, readUntil } = t.push(c.rank, req.step, req.rows, req.batchRows, payload, { finite, defer: true, ...(req.live !== undefined ? { live: req.live } : {}) });
    try {
      this.o.tally.pushes++;
      if (req.type === 'push') c.reply(encodeFrame({ type: 'ack', id: req.id, stale }));
      else this.park(c, t, { type: 'pull', id: req.id, step: req.step + 1, lo: t.lo, hi: t.hi }, stale);
      if (appliedNow > 0) this.answerWaiters();
    } finally {
      if (this.o.streams.busy.size === 0) t.settle(); // else the last reply to go out settles it
    }
    return readUntil;
  }

  /** Parks a row pull until its table allows its step (as a dense pull), then answers it with the rows. */
  private onPullRows(c: Connection, req: PullRows, payload: Float32Array, keyed: { ids: Float64Array; bytes: number }): void {
    const t = this.o.tables.rows(req.table);
    if (payload.length !== 0) throw new PsError('bad-length', `pullrows '${req.table}': a pull carries ids only, got ${payload.length} floats of payload`);
    checkIds(t.name, keyed.ids);
    t.traffic.bytesIn += keyed.bytes;
    t.traffic.pulls++;
    t.traffic.rowsPulled += keyed.ids.length;
    this.o.tally.pulls++;
    const need = c.role === 'worker' ? t.policy.needFor(req.step) : req.step;
    const w: RowWaiter = { conn: c, table: t, id: req.id, step: req.step, ids: keyed.ids, need };
    if (this.stopped || t.applied >= need) this.answerRows(w);
    else this.rowWaiters.push(w);
  }

  /** Takes one worker's rows of a step: refused whole (nothing stored changes) unless every id, length and value is good. */
  private onPushRows(c: Connection, req: PushRows, payload: Float32Array, keyed: { ids: Float64Array; bytes: number }): void {
    if (c.role !== 'worker') throw new PsError('not-worker', 'pushrows: an observer cannot push');
    const t = this.o.tables.rows(req.table);
    t.traffic.bytesIn += keyed.bytes;
    const finite = t.check(keyed.ids, payload);
    const { appliedNow, stale } = t.push(c.rank, req.step, req.rows, req.batchRows, { ids: keyed.ids, grads: payload }, finite, req.live);
    t.traffic.pushes++;
    t.traffic.rowsPushed += keyed.ids.length;
    this.o.tally.pushes++;
    const ack = encodeFrame({ type: 'ack', id: req.id, stale });
    t.traffic.bytesOut += ack.length;
    c.reply(ack);
    if (appliedNow > 0) this.answerWaiters();
  }

  private answerRows(w: RowWaiter): void {
    const t = w.table;
    if (w.conn.role === 'worker') t.policy.notePull(w.conn.rank);
    const header: Rows = { type: 'rows', id: w.id, table: t.name, step: w.step, applied: t.applied, stop: this.stopped };
    // The rows are written straight into the reply frame: no copy, no buffer per request besides it.
    const frame = encodeFrameWith(header, w.ids.length * t.dim, (out) => (w.conn.role === 'worker' ? t.pull(w.ids, out, w.step) : t.read(w.ids, out)), this.o.frames);
    t.traffic.bytesOut += frame.length;
    w.conn.reply(frame);
  }

  /** Answers a pull now if its step is ready, or keeps it until it is. */
  private park(c: Connection, table: DenseTable, p: Pull, stale: number): void {
    const need = c.role === 'worker' ? table.policy.needFor(p.step) : p.step;
    const w: Waiter = { conn: c, table, id: p.id, step: p.step, lo: p.lo, hi: p.hi, need, stale };
    if (this.stopped || table.applied >= need) this.answer(w);
    else this.waiters.push(w);
  }

  private answerWaiters(): void {
    const still: Waiter[] = [];
    for (const w of this.waiters) {
      if (this.stopped || w.table.applied >= w.need) this.answer(w);
      else still.push(w);
    }
    this.waiters = still;
    if (this.rowWaiters.length === 0) return;
    const rowsStill: RowWaiter[] = [];
    for (const w of this.rowWaiters) {
      if (this.stopped || w.table.applied >= w.need) {
        try {
          this.answerRows(w);
        } catch (e) {
          w.conn.inflight--;
          w.conn.sendError(w.id, e);
        }
      } else rowsStill.push(w);
    }
    this.rowWaiters = rowsStill;
  }

  private answer(w: Waiter): void {
    const t = w.table;
    if (w.conn.role === 'worker') t.policy.notePull(w.conn.rank);
    // A worker is told the plan of the step it computes next (fixed once the step may be computed).
    const plan = w.conn.role === 'worker' ? t.policy.plan(w.step) : undefined;
    const header: Params = { type: 'params', id: w.id, step: w.step, applied: t.applied, stop: this.stopped, lo: w.lo, stale: w.stale, ...(plan !== undefined ? { plan: planToWire(plan) } : {}) };
    const lo = w.lo - t.lo, hi = w.hi - t.lo;
    w.conn.stream(frames(header, t.paramsThrough(lo), lo, hi, this.o.frames, PART_FLOATS, (_a, b) => t.paramsThrough(b)));
  }

  /** Stops training: every waiting and later worker pull is answered with `stop`. */
  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    this.o.log(`stopping after ${this.dense.applied} updates`);
    this.answerWaiters();
  }
}

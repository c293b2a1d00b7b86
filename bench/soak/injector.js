// A hostile client for the soak: it opens connections to the parameter servers at a fixed rate of
// frames per second and sends what a buggy or malicious peer would — random bytes, frames whose
// header length is wrong, other protocol versions, wrong or missing tokens, a rank another worker
// holds, and once authenticated, mutated requests (unknown types, missing fields, duplicate ranks,
// ranges the server does not own, NaN in fields) — and checks that every one got its answer: a
// refusal (close frame, or an error then a close) and a destroyed socket before authentication,
// one error reply with the request's id and the right code after. `deadRankSession` speaks as a
// worker whose process was just killed (its rank is free and dropped): replayed old steps, NaN and
// Inf gradients, wrong lengths, foreign keys, a join at an applied step — each refused, nothing
// joined, nothing applied.
//
// It writes WebSocket frames by hand over a TCP socket (as packages/parameter-server's
// hostile.test.ts does), so that it can break the framing too, and builds valid-looking protocol
// frames with the server's own codec (encodeFrame) before mutating them.
import { connect } from 'node:net';
import { randomBytes } from 'node:crypto';
import { PROTOCOL_VERSION, decodeFrame, encodeFrame } from '@loom/parameter-server';

/** A client frame, masked with a zero key (as PsClient sends), announcing `declared` bytes. */
function wsFrame(payload, { opcode = 2, declared = payload.length, fin = true } = {}) {
  const len = declared < 126 ? [declared] : declared < 65536 ? [126, declared >> 8, declared & 255] : [127, 0, 0, 0, 0, (declared >>> 24) & 255, (declared >> 16) & 255, (declared >> 8) & 255, declared & 255];
  return Buffer.concat([Buffer.from([(fin ? 0x80 : 0) | opcode, 0x80 | len[0], ...len.slice(1), 0, 0, 0, 0]), payload]);
}

/** A frame of the protocol's codec whose first word (header length | flags << 24) is replaced. */
function withWord(header, word, payload) {
  const f = Buffer.from(encodeFrame(header, payload));
  f.writeUInt32LE(word >>> 0, 0);
  return f;
}

/**
 * A WebSocket peer over a raw TCP socket. `frames` are the server's (opcode, payload), `status` the
 * HTTP status line of its answer to the upgrade, `gone` resolves (with performance.now()) when the
 * server ends or closes the socket.
 */
class RawPeer {
  constructor(url, { upgrade = true } = {}) {
    const { hostname, port } = new URL(url);
    this.host = `${hostname}:${port}`;
    this.frames = [];
    this.status = '';
    this.waiters = [];
    this.socket = connect(Number(port), hostname);
    this.socket.on('error', (e) => {
      if (e.code === 'ECONNRESET' || e.code === 'EPIPE') this.reset = true;
    });
    this.gone = new Promise((resolve) => {
      const end = () => {
        resolve(performance.now());
        for (const w of this.waiters.splice(0)) w();
      };
      this.socket.once('end', end);
      this.socket.once('close', end);
    });
    this.opened = new Promise((resolve, reject) => {
      this.socket.once('connect', resolve);
      this.socket.once('error', reject);
    });
    this.upgraded = upgrade;
    let buf = Buffer.alloc(0);
    this.socket.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      if (this.status === '' && this.upgraded) {
        const end = buf.indexOf('\r\n\r\n');
        if (end < 0) return;
        this.status = buf.subarray(0, buf.indexOf('\r\n')).toString();
        buf = buf.subarray(end + 4);
      } else if (!this.upgraded) {
        if (this.status === '' && buf.indexOf('\r\n') > 0) this.status = buf.subarray(0, buf.indexOf('\r\n')).toString();
        return;
      }
      for (;;) {
        if (buf.length < 2) break;
        let len = buf[1] & 0x7f, at = 2;
        if (len === 126) (len = buf.length >= 4 ? buf.readUInt16BE(2) : -1), (at = 4);
        else if (len === 127) (len = buf.length >= 10 ? Number(buf.readBigUInt64BE(2)) : -1), (at = 10);
        if (len < 0 || buf.length < at + len) break;
        this.frames.push({ opcode: buf[0] & 0x0f, payload: buf.subarray(at, at + len) });
        buf = buf.subarray(at + len);
      }
      for (const w of this.waiters.splice(0)) w();
    });
  }

  /** Connects and (unless told not to) sends the upgrade; resolves with the HTTP status line. */
  async open(timeoutMs) {
    await this.opened;
    if (!this.upgraded) return '';
    this.socket.write(`GET / HTTP/1.1\r\nHost: ${this.host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n\r\n`);
    await this.until(() => this.status !== '', timeoutMs);
    return this.status;
  }

  write(bytes) {
    if (!this.socket.destroyed) this.socket.write(bytes);
  }

  /** Waits until `ok()` holds, the socket is gone, or `ms` pass. */
  async until(ok, ms) {
    const deadline = performance.now() + ms;
    let closed = false;
    void this.gone.then(() => (closed = true));
    while (!ok() && !closed && performance.now() < deadline) {
      await new Promise((r) => {
        const t = setTimeout(r, Math.max(1, deadline - performance.now()));
        this.waiters.push(() => (clearTimeout(t), r()));
      });
    }
    return ok();
  }

  /** The server's frames, read: {close: code, reason} | {error: code, id} | {type} | {opcode}. */
  replies() {
    return this.frames.map(({ opcode, payload }) => {
      if (opcode === 8) return { close: payload.length >= 2 ? payload.readUInt16BE(0) : 1005, reason: payload.subarray(2).toString() };
      if (opcode !== 2) return { opcode };
      try {
        const h = decodeFrame(payload).header;
        return h.type === 'error' ? { error: h.code, id: h.id } : { type: h.type, header: h };
      } catch {
        return { opcode, unreadable: true };
      }
    });
  }

  /** Sends a close frame (1000) and ends the socket. */
  bye() {
    const p = Buffer.alloc(2);
    p.writeUInt16BE(1000, 0);
    this.write(wsFrame(p, { opcode: 8 }));
    this.socket.end();
    setTimeout(() => this.socket.destroy(), 200).unref();
  }
}

// ---- what is sent, and what must come back -------------------------------------------------------

/**
 * Before authentication, one connection each: what the first frame is (`first(ctx)` → the bytes
 * after the upgrade), the server's refusal kind (its `stats().refused` key), and the frames it must
 * send before destroying the socket. 99 random frames follow the first (`trailing`): a refused
 * peer's later frames must be ignored — not answered, not logged.
 */
const AUTH_REQUIRED = [{ close: 1008, reason: 'authentication required' }];
const hello = (ctx, fields = {}) => encodeFrame({ type: 'hello', v: PROTOCOL_VERSION, token: ctx.token, role: 'observer', rank: -1, workers: ctx.workers, size: ctx.size, ...fields });
export const PRE_AUTH = {
  'random bytes': { refused: 'not a hello', first: () => wsFrame(randomBytes(1 + Math.floor(Math.random() * 200))), expect: AUTH_REQUIRED },
  'header length past the frame': { refused: 'not a hello', first: (ctx) => wsFrame(withWord({ type: 'hello', v: PROTOCOL_VERSION, token: ctx.token }, 4000)), expect: AUTH_REQUIRED },
  'a request before hello': { refused: 'not a hello', first: () => wsFrame(encodeFrame({ type: 'push', id: 1, step: 0, lo: 0, rows: 1, batchRows: 1 }, new Float32Array(8))), expect: AUTH_REQUIRED },
  'text frame': { refused: 'not a hello', first: () => wsFrame(Buffer.from('{"type":"hello"}'), { opcode: 1 }), expect: AUTH_REQUIRED },
  'no token': { refused: 'bad token', first: (ctx) => wsFrame(hello(ctx, { token: undefined })), expect: [{ close: 1008, reason: 'bad token' }] },
  'wrong token': { refused: 'bad token', first: (ctx) => wsFrame(hello(ctx, { token: randomBytes(24).toString('base64url') })), expect: [{ close: 1008, reason: 'bad token' }] },
  'wrong version': { refused: 'version', first: (ctx) => wsFrame(hello(ctx, { v: [1, 2, 3, 5, 99][Math.floor(Math.random() * 5)] })), expect: [{ error: 'version', id: -1 }, { close: 1002 }] },
  'another model': { refused: 'config-mismatch', first: (ctx) => wsFrame(hello(ctx, { size: ctx.size + 1 })), expect: [{ error: 'config-mismatch', id: -1 }, { close: 1008 }] },
  'duplicate rank': { refused: 'rank-taken', first: (ctx) => wsFrame(hello(ctx, { role: 'worker', rank: ctx.heldRank })), expect: [{ error: 'rank-taken', id: -1 }, { close: 1008 }], needs: 'heldRank' },
  'reserved opcode': { refused: 'bad frame', first: () => wsFrame(randomBytes(8), { opcode: 3 }), expect: [{ close: [1002, 1008] }] },
  // Refused while it is still sending: the server destroys the socket with bytes unread, so its TCP
  // reset may overtake the close frame (in a 600-epoch soak, 1 of 165 saw the reset alone).
  'oversized first frame': { refused: 'too large', first: () => wsFrame(randomBytes(80 * 1024), { declared: 1 << 20 }), expect: AUTH_REQUIRED, trailing: 0, orReset: true },
  'truncated first frame': { refused: 'no hello', first: () => wsFrame(randomBytes(20), { declared: 300 }), expect: AUTH_REQUIRED, trailing: 0, slow: true },
  'plain HTTP': { refused: 'not WebSocket', upgrade: false, first: (ctx) => Buffer.from(`GET /metrics HTTP/1.1\r\nHost: ${ctx.host}\r\n\r\n`), status: /^HTTP\/1\.1 426 /, trailing: 0, frames: 1 },
  'silent TCP connection': { refused: 'no upgrade', upgrade: false, first: () => Buffer.alloc(0), status: /^$/, trailing: 0, frames: 0, slow: true },
};

/**
 * After an observer's hello with the token: requests mutated from valid ones, each answered by one
 * error reply with `code` and the request's id (−1 when the frame is unreadable, so it has none).
 */
const push = (id, extra = {}) => ({ type: 'push', id, step: 1, lo: 0, rows: 1, batchRows: 1, ...extra });
export const AUTHENTICATED = {
  'header length past the frame': { code: 'bad-frame', id: -1, frame: (id) => withWord(push(id), 5000) },
  'header length 0': { code: 'bad-frame', id: -1, frame: (id) => withWord(push(id), 0) },
  'payload not whole floats': { code: 'bad-frame', id: -1, frame: (id) => Buffer.concat([encodeFrame(push(id), new Float32Array(4)), Buffer.from([1, 2])]) },
  'header not msgpack': { code: 'bad-frame', id: -1, frame: () => Buffer.concat([Buffer.from([8, 0, 0, 0]), Buffer.from([0xc1, 0xc1, 0xc1, 0xc1, 0xc1, 0xc1, 0xc1, 0xc1])]) },
  'unknown frame flags': { code: 'bad-frame', id: -1, frame: (id) => { const f = Buffer.from(encodeFrame(push(id))); f.writeUInt32LE((f.readUInt32LE(0) | (0x6 << 24)) >>> 0, 0); return f; } },
  'key section past the frame': { code: 'bad-frame', id: -1, frame: (id) => keyedFrame({ type: 'pullrows', id, table: 'user', step: 0 }, [1, 2], 1000) },
  'text frame': { code: 'bad-frame', id: -1, frame: () => Buffer.from('{"type":"stats","id":1}'), opcode: 1 },
  'a part of no message': { code: 'bad-frame', frame: (id) => encodeFrame({ type: 'part', id }, new Float32Array(4)) },
  'unknown type': { code: 'unknown-type', frame: (id) => encodeFrame({ type: ['gimme', 'hello', 'params', 'welcome', 'error'][id % 5], id }) },
  'missing field': { code: 'bad-request', frame: (id) => encodeFrame({ type: 'push', id, lo: 0, rows: 1, batchRows: 1 }, new Float32Array(4)) },
  'NaN in a field': { code: 'bad-request', frame: (id) => encodeFrame(push(id, { step: NaN }), new Float32Array(4)) },
  'rows past the batch': { code: 'bad-request', frame: (id) => encodeFrame(push(id, { rows: 70, batchRows: 64 }), new Float32Array(4)) },
  'duplicate ranks in live': { code: 'bad-request', frame: (id) => encodeFrame(push(id, { live: [0, 0, 2] }), new Float32Array(4)) },
  'pull outside the range': { code: 'not-owner', frame: (id, ctx) => encodeFrame({ type: 'pull', id, step: 0, lo: ctx.range[1], hi: ctx.range[1] + 8 }) },
  'a push from an observer': { code: 'not-worker', frame: (id, ctx) => encodeFrame(push(id, { step: 0, lo: ctx.range[0] }), new Float32Array(ctx.range[1] - ctx.range[0])) },
  'pullrows without ids': { code: 'bad-request', frame: (id) => encodeFrame({ type: 'pullrows', id, table: 'user', step: 0 }) },
  'pullrows of no table': { code: 'unknown-table', frame: (id) => keyedFrame({ type: 'pullrows', id, table: 'nope', step: 0 }, [1, 2, 3]) },
};

/** As a worker whose rank is free and dropped (its process was just killed): each refused, nothing joined or applied. */
export const DEAD_RANK = {
  'replayed old step': { code: 'bad-step', frame: (id, ctx) => encodeFrame({ type: 'pushpull', id, step: Math.max(0, ctx.applied - 1 - (id % 50)), lo: ctx.range[0], rows: 10, batchRows: 32 }, gradient(ctx)) },
  'NaN gradient': { code: 'non-finite', frame: (id, ctx) => encodeFrame({ type: 'push', id, step: ctx.applied, lo: ctx.range[0], rows: 10, batchRows: 32 }, gradient(ctx, NaN)) },
  'Infinity gradient': { code: 'non-finite', frame: (id, ctx) => encodeFrame({ type: 'push', id, step: ctx.applied, lo: ctx.range[0], rows: 10, batchRows: 32 }, gradient(ctx, -Infinity)) },
  'gradient of the wrong length': { code: 'bad-length', frame: (id, ctx) => encodeFrame({ type: 'push', id, step: ctx.applied, lo: ctx.range[0], rows: 10, batchRows: 32 }, new Float32Array(ctx.range[1] - ctx.range[0] + 1 + (id % 7))) },
  'push at a key it does not own': { code: 'not-owner', frame: (id, ctx) => encodeFrame({ type: 'push', id, step: ctx.applied, lo: ctx.range[0] + 4, rows: 10, batchRows: 32 }, gradient(ctx)) },
  'join at an applied step': { code: 'bad-step', frame: (id, ctx) => encodeFrame({ type: 'join', id, step: Math.max(0, ctx.applied - 1), stepsPerEpoch: 0 }) },
};

function gradient(ctx, poison) {
  const g = new Float32Array(ctx.range[1] - ctx.range[0]).fill(1e-3);
  if (poison !== undefined) g[Math.floor(Math.random() * g.length)] = poison;
  return g;
}

/** A frame with a key section of float64 ids (protocol 3's layout, see frame.ts), its header announcing `declared` of them. */
function keyedFrame(header, ids, declared = ids.length) {
  const h = Buffer.from(encodeFrame({ ...header, sections: [['ids', 'f64', declared]] }));
  const hl = h.readUInt32LE(0);
  const at = (4 + hl + 7) & ~7;
  const f = Buffer.alloc(at + 8 * ids.length);
  f.writeUInt32LE((hl | (1 << 24)) >>> 0, 0);
  h.copy(f, 4, 4, 4 + hl);
  ids.forEach((v, k) => f.writeDoubleLE(v, at + 8 * k));
  return f;
}

// ---- the injector ----------------------------------------------------------------------------------

/** Per kind: sessions (connections), frames sent, answers as expected, and the first few that were not. */
function tallyOf() {
  return { connections: 0, frames: 0, byKind: {}, mismatches: [], refusedFrames: 0, authedFrames: 0, sockets: { held: 0, maxHeld: 0 } };
}

export class Injector {
  /**
   * `urls`: the servers (index = shard). `token`, `workers`, `size`: the run's. `rate`: frames per
   * second. `heldRanks(shard)`: ranks whose workers are connected to that shard now (for 'duplicate
   * rank'). `ranges[shard]`: its [lo, hi).
   */
  constructor(o) {
    this.o = { trailing: 99, authFrames: 20, concurrency: 8, maxInFlight: 64, ...o };
    this.slowActive = 0;
    this.tally = tallyOf();
    this.active = new Set();
    this.running = false;
    this.sent = 0;
    this.id = 1;
  }

  get ctxBase() {
    return { token: this.o.token, workers: this.o.workers, size: this.o.size };
  }

  kind(group, name) {
    const key = `${group}: ${name}`;
    return (this.tally.byKind[key] ??= { group, name, sessions: 0, frames: 0, ok: 0, failed: 0 });
  }

  miss(k, detail) {
    k.failed++;
    if (this.tally.mismatches.length < 20) this.tally.mismatches.push(`${k.group}: ${k.name}: ${detail}`);
  }

  /** Starts sending at the fixed rate. */
  start() {
    if (this.running) return;
    this.running = true;
    this.t0 = performance.now();
    this.sentAtStart = this.sent;
    this.timer = setInterval(() => this.tick(), 20);
  }

  /** Stops starting sessions and waits for those under way (a paused injector sends nothing). */
  async pause() {
    this.running = false;
    clearInterval(this.timer);
    await Promise.allSettled([...this.active]);
  }

  tick() {
    const due = this.sentAtStart + ((performance.now() - this.t0) / 1000) * this.o.rate;
    while (this.running && this.sent < due && this.active.size < this.o.concurrency) {
      const shard = Math.floor(Math.random() * this.o.urls.length);
      const r = Math.random();
      const p = r < 0.5 ? this.preAuth(shard) : r < 0.98 ? this.authenticated(shard) : this.inFlightSession(shard, this.o.maxInFlight);
      this.active.add(p);
      void p.finally(() => this.active.delete(p));
    }
  }

  track(peer) {
    const s = this.tally.sockets;
    s.held++;
    s.maxHeld = Math.max(s.maxHeld, s.held);
    void peer.gone.then(() => s.held--);
  }

  /** One connection refused before authentication, and the frames it sends after. */
  async preAuth(shard) {
    // At most two sessions at a time wait for the hello deadline (5 s), so that the rate holds.
    const held = this.o.heldRanks(shard);
    const names = Object.keys(PRE_AUTH).filter((n) => (PRE_AUTH[n].needs !== 'heldRank' || held.length > 0) && !(PRE_AUTH[n].slow && this.slowActive >= 2));
    const name = names[Math.floor(Math.random() * names.length)];
    const spec = PRE_AUTH[name];
    const k = this.kind('before authentication', name);
    const url = this.o.urls[shard];
    const ctx = { ...this.ctxBase, host: new URL(url).host, heldRank: held[Math.floor(Math.random() * held.length)] };
    const trailing = spec.trailing ?? this.o.trailing;
    const frames = spec.frames ?? 1 + trailing;
    this.sent += Math.max(1, frames);
    if (spec.slow) this.slowActive++;
    k.sessions++;
    k.frames += frames;
    this.tally.connections++;
    this.tally.frames += frames;
    this.tally.refusedFrames += frames;
    const peer = new RawPeer(url, { upgrade: spec.upgrade !== false });
    this.track(peer);
    try {
      const status = await peer.open(3000);
      if (spec.upgrade !== false && !status.startsWith('HTTP/1.1 101')) return this.miss(k, `upgrade answered '${status}'`), peer.socket.destroy();
      const t0 = performance.now();
      peer.write(Buffer.concat([spec.first(ctx), ...Array.from({ length: trailing }, () => wsFrame(randomBytes(1 + Math.floor(Math.random() * 100))))]));
      if (spec.upgrade === false) await peer.until(() => peer.status !== '', 3000);
      // The deadline kinds wait for it (5 s by default); the others must be hung up at once.
      const goneIn = await Promise.race([peer.gone.then((t) => t - t0), new Promise((r) => setTimeout(() => r(Infinity), spec.slow ? 8000 : 2000))]);
      if (spec.status) {
        if (!spec.status.test(peer.status)) return this.miss(k, `answered '${peer.status}'`);
      } else {
        const got = peer.replies();
        const ok = got.length === spec.expect.length && spec.expect.every((e, i) => matches(got[i], e));
        if (!ok && spec.orReset && got.length === 0 && peer.reset) return void (k.resets = (k.resets ?? 0) + 1);
        if (!ok) return this.miss(k, `answered ${JSON.stringify(got)}, expected ${JSON.stringify(spec.expect)}`);
      }
      if (goneIn === Infinity) return this.miss(k, 'the socket was not closed');
      k.ok++;
    } catch (e) {
      this.miss(k, `failed: ${e.message}`);
    } finally {
      if (spec.slow) this.slowActive--;
      peer.socket.destroy();
    }
  }

  /** One observer connection with the token, then mutated requests, each answered by its error. */
  async authenticated(shard) {
    const names = Object.keys(AUTHENTICATED);
    const picks = Array.from({ length: this.o.authFrames }, () => names[Math.floor(Math.random() * names.length)]);
    this.sent += 1 + picks.length;
    await this.session(shard, 'after authentication', AUTHENTICATED, picks, {});
  }

  /**
   * As worker `rank` of `shard`, whose process is dead and which the server has dropped: each of
   * DEAD_RANK once. Closes with 1000 (a worker leaving on purpose: no drop) before returning.
   */
  async deadRankSession(shard, rank) {
    return this.session(shard, 'as a dropped worker', DEAD_RANK, Object.keys(DEAD_RANK), { role: 'worker', rank });
  }

  async session(shard, group, table, picks, helloFields) {
    const url = this.o.urls[shard];
    const peer = new RawPeer(url);
    this.track(peer);
    this.tally.connections++;
    this.tally.frames += 1 + picks.length;
    this.tally.authedFrames += picks.length;
    const kinds = picks.map((n) => this.kind(group, n));
    for (const k of kinds) k.sessions++, k.frames++;
    try {
      const status = await peer.open(3000);
      if (!status.startsWith('HTTP/1.1 101')) throw new Error(`upgrade answered '${status}'`);
      peer.write(wsFrame(hello(this.ctxBase, helloFields)));
      await peer.until(() => peer.frames.length > 0, 3000);
      const welcome = peer.replies()[0];
      if (welcome?.type !== 'welcome') {
        // A dead rank still held (its old connection not yet closed) is refused as rank-taken: say so, send nothing.
        for (const k of kinds) this.miss(k, `hello answered ${JSON.stringify(welcome)}`);
        return { welcome: false, got: welcome };
      }
      const ctx = { ...this.ctxBase, range: [welcome.header.lo, welcome.header.hi], applied: welcome.header.applied };
      const sent = picks.map((n) => {
        const id = this.id++ % 2 ** 31;
        const spec = table[n];
        return { id: spec.id ?? id, code: spec.code, bytes: wsFrame(spec.frame(id, ctx), { opcode: spec.opcode ?? 2 }) };
      });
      peer.write(Buffer.concat(sent.map((s) => s.bytes)));
      await peer.until(() => peer.frames.length >= 1 + sent.length, 5000);
      const got = peer.replies().slice(1);
      sent.forEach((s, i) => {
        const g = got[i];
        if (g?.error === s.code && g.id === s.id) kinds[i].ok++;
        else this.miss(kinds[i], `answered ${JSON.stringify(g)}, expected ${JSON.stringify({ error: s.code, id: s.id })}`);
      });
      return { welcome: true, applied: ctx.applied };
    } catch (e) {
      for (const k of kinds) this.miss(k, `failed: ${e.message}`);
      return { welcome: false, error: e.message };
    } finally {
      peer.bye();
      await Promise.race([peer.gone, new Promise((r) => setTimeout(r, 1000))]);
      peer.socket.destroy();
    }
  }

  /**
   * The in-flight limit: 64 pulls of a step that never comes (parked: an observer's pull waits
   * for that update), then one more, which must be refused with too-many-requests; closing the
   * connection frees the parked ones.
   */
  async inFlightSession(shard, limit) {
    const url = this.o.urls[shard];
    const peer = new RawPeer(url);
    this.track(peer);
    const k = this.kind('after authentication', `${limit + 1} requests in flight`);
    this.sent += limit + 2;
    k.sessions++;
    k.frames += limit + 1;
    this.tally.connections++;
    this.tally.frames += limit + 2;
    this.tally.authedFrames += limit + 1;
    try {
      await peer.open(3000);
      peer.write(wsFrame(hello(this.ctxBase)));
      await peer.until(() => peer.frames.length > 0, 3000);
      const w = peer.replies()[0];
      if (w?.type !== 'welcome') return this.miss(k, `hello answered ${JSON.stringify(w)}`);
      const pulls = Array.from({ length: limit + 1 }, (_, i) => wsFrame(encodeFrame({ type: 'pull', id: 1 + i, step: 2 ** 40, lo: w.header.lo, hi: w.header.lo + 1 })));
      peer.write(Buffer.concat(pulls));
      await peer.until(() => peer.frames.length >= 2, 3000);
      const got = peer.replies().slice(1);
      if (got.length === 1 && got[0].error === 'too-many-requests' && got[0].id === limit + 1) k.ok++;
      else this.miss(k, `answered ${JSON.stringify(got)}`);
    } catch (e) {
      this.miss(k, `failed: ${e.message}`);
    } finally {
      peer.bye();
      await Promise.race([peer.gone, new Promise((r) => setTimeout(r, 1000))]);
      peer.socket.destroy();
    }
  }
}

/**
 * What the servers should have counted of it: `refused` by kind (one per connection refused before
 * authentication) and `errors` by code (one per bad request after it).
 */
export function expectedCounts(tally) {
  const refused = {}, errors = {};
  for (const k of Object.values(tally.byKind)) {
    const answered = k.ok + (k.resets ?? 0); // (a mismatch is reported as such, not counted here)
    if (k.group === 'before authentication') refused[PRE_AUTH[k.name].refused] = (refused[PRE_AUTH[k.name].refused] ?? 0) + answered;
    else {
      const code = (k.group === 'as a dropped worker' ? DEAD_RANK : AUTHENTICATED)[k.name]?.code ?? 'too-many-requests';
      errors[code] = (errors[code] ?? 0) + answered;
    }
  }
  return { refused, errors };
}

function matches(got, want) {
  if (got === undefined) return false;
  if (want.close !== undefined) return Array.isArray(want.close) ? want.close.includes(got.close) : got.close === want.close && (want.reason === undefined || got.reason === want.reason);
  return got.error === want.error && (want.id === undefined || got.id === want.id);
}

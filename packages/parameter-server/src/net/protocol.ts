/**
 * The wire protocol between workers and parameter servers, version 2: every message type, in one
 * place. The package README documents each field; keep the two in step.
 *
 * Every message is ONE binary WebSocket frame:
 *
 *   offset 0     u32 little-endian   H: byte length of the header
 *   offset 4     H bytes             the header: a msgpack map (the message fields below)
 *   4 + H        0–3 zero bytes      padding, so that the payload starts at a multiple of 4
 *   aligned      4·n bytes           the payload: n float32 little-endian values (may be empty)
 *
 * The payload is never msgpack-encoded: a receiver views it in place as a Float32Array (no
 * per-element decoding, no copy), and a sender copies the floats once, into the frame it hands the
 * socket. Headers are decoded with msgpackr's build that never compiles code, into plain objects
 * that are then checked field by field; nothing received is ever evaluated.
 *
 * Large payloads travel in PARTS (version 2): a message whose payload exceeds PART_FLOATS floats is
 * its first frame — the header with `parts` K and `floats` n, and the first piece — followed at once
 * by K − 1 frames `{type: 'part', id}`, each with the next piece. The receiver copies the pieces
 * into memory it reuses (a server: a pooled buffer; a client: the caller's array). Why: ws puts
 * every received message into a fresh Buffer, and glibc maps each allocation over 32 MiB afresh, so
 * a 40 MB message cost ~24 ms of page faults per hop before a byte of it was used; pieces of a few
 * MiB are recycled by malloc and copied into memory that is already mapped.
 */
import { Packr, Unpackr } from 'msgpackr/index-no-eval';
import { PsError, type ErrorCode } from './errors.js';
import type { Mode } from '../mode.js';

export const PROTOCOL_VERSION = 2;

/** Floats per frame of a payload sent in parts (1 MiB): small enough for malloc to recycle, large enough to cost nothing per frame. */
export const PART_FLOATS = 1 << 18;

/** Headers are small: a few numbers and short strings (stats replies are the largest). */
export const MAX_HEADER_BYTES = 64 * 1024;

// ---- client → server -------------------------------------------------------------------------

/** The first message on every connection; nothing else is read before it. */
export interface Hello {
  type: 'hello';
  v: number;
  token: string;
  /** A worker pushes gradients as `rank`; an observer (a coordinator, a checkpointer) only pulls. */
  role: 'worker' | 'observer';
  rank: number; // 0 ≤ rank < workers for a worker; -1 for an observer
  workers: number; // W, checked against the server's
  size: number; // P, the model's parameter count, checked against the server's
}

/** Pull [lo, hi) of the parameters to compute step `step` with (see the README for when it answers). */
export interface Pull {
  type: 'pull';
  id: number;
  step: number;
  lo: number;
  hi: number;
}

/**
 * Push the gradient of step `step` for the server's whole range, starting at key `lo`, payload
 * hi − lo floats: the mean over the worker's `rows` rows of a global batch of `batchRows` rows.
 */
export interface Push {
  type: 'push' | 'pushpull';
  id: number;
  step: number;
  lo: number;
  rows: number;
  batchRows: number;
}

/**
 * The fields a message whose payload travels in parts adds to its header (push, pushpull, params):
 * `parts` K ≥ 2 frames in all, this one first, then K − 1 `Part` frames; `floats` n, the whole payload.
 */
export interface InParts {
  parts: number;
  floats: number;
}

/** A continuation of message `id`: the next piece of its payload (sent right after the message's first frame). */
export interface Part {
  type: 'part';
  id: number;
}

/** Resolves when every worker has sent a barrier of the same name. */
export interface Barrier {
  type: 'barrier';
  id: number;
  name: string;
}

export interface StatsRequest {
  type: 'stats';
  id: number;
}

/** Stop training (pulls answer `stop`); with `exit`, then close the server. */
export interface Shutdown {
  type: 'shutdown';
  id: number;
  exit: boolean;
}

/**
 * A worker asks to be counted from step `step` on (sync and ssp): clocks before it no longer wait
 * for it, clocks from it do. Sent after hello by every worker of this version — at the start, after
 * a resume, and when it reconnects after being dropped. `stepsPerEpoch` (0: not said) lets the
 * server record the data position in its checkpoints. Answered with `ack`, or `bad-step` when
 * `step` is already applied.
 */
export interface Join {
  type: 'join';
  id: number;
  step: number;
  stepsPerEpoch: number;
}

export type Request = Pull | Push | Barrier | StatsRequest | Shutdown | Join;

// ---- server → client -------------------------------------------------------------------------

export interface Welcome {
  type: 'welcome';
  v: number;
  shard: number;
  shards: number;
  lo: number;
  hi: number;
  size: number;
  workers: number;
  mode: Mode;
  staleness: number;
  /** Updates applied so far. */
  applied: number;
}

/** The answer to pull and pushpull: parameters [lo, hi) as the payload. */
export interface Params {
  type: 'params';
  id: number;
  /** The step these parameters are for. */
  step: number;
  /** Updates applied when they were read: the parameters are the result of updates 0 … applied−1. */
  applied: number;
  /** The server is stopping: the worker should end its run (the payload still holds the parameters). */
  stop: boolean;
  lo: number;
  /** pushpull only: updates applied by others between this worker's last pull and its push. */
  stale: number;
}

export interface Ack {
  type: 'ack';
  id: number;
  stale: number;
}

export interface StatsReply {
  type: 'stats';
  id: number;
  stats: ServerStats;
}

export interface ErrorReply {
  type: 'error';
  /** The request's id, or -1 when the frame could not be read far enough to find one. */
  id: number;
  code: ErrorCode;
  message: string;
}

export type Reply = Params | Ack | StatsReply | ErrorReply;

/** What `stats` reports: configuration, progress and everything refused, by cause. */
export interface ServerStats {
  shard: number;
  shards: number;
  lo: number;
  hi: number;
  mode: Mode;
  workers: number;
  applied: number;
  stopped: boolean;
  connections: number;
  pushes: number;
  pulls: number;
  bytesIn: number;
  bytesOut: number;
  /** Refused requests and connections, by error code. */
  errors: Partial<Record<ErrorCode, number>>;
  /** Gradients with NaN or Inf that were skipped (counted as zero) instead of refused. */
  skippedNonFinite: number;
  /** Worker ranks the next update waits for (sync, ssp; every connected worker in async). */
  members?: number[];
  /** Workers dropped (disconnected or silent past the heartbeat timeout) and readmitted (joined again). */
  dropped?: number;
  readmitted?: number;
  /** The step of the last checkpoint this server saved or resumed from (−1: none). */
  checkpoint?: number;
}

// ---- frames ----------------------------------------------------------------------------------

const packr = new Packr({ useRecords: false });
const unpackr = new Unpackr({ useRecords: false, mapsAsObjects: true });

const align4 = (n: number) => (n + 3) & ~3;

/**
 * One frame: header, padding, then floats [lo, hi) of `payload` copied in once. The returned
 * Buffer is the sender's to hand to the socket (the floats may change after this returns).
 */
export function encodeFrame(header: object, payload?: Float32Array, lo = 0, hi = payload?.length ?? 0, pool?: FramePool): Buffer {
  const h = packr.pack(header);
  const off = align4(4 + h.length);
  const n = payload === undefined ? 0 : hi - lo;
  const frame = pool !== undefined ? pool.take(off + 4 * n) : Buffer.allocUnsafe(off + 4 * n);
  frame.writeUInt32LE(h.length, 0);
  h.copy(frame, 4);
  frame.fill(0, 4 + h.length, off);
  if (payload !== undefined && n > 0) frame.set(new Uint8Array(payload.buffer, payload.byteOffset + 4 * lo, 4 * n), off);
  return frame;
}

/**
 * Reuses the memory of large frames once the socket has sent them: a fresh 40 MB buffer costs
 * about 20 ms of page faults before the copy into it (4 ms) even starts, and a message sent in
 * parts needs all its frames at once. Keeps up to `keepBytes` (default 64 MiB: the frames of a
 * 10M-float message and then some). Frames under 64 KiB come from Node's own pool. `give` a frame
 * back only from its send callback.
 */
export class FramePool {
  private readonly free: Buffer[] = [];
  private kept = 0;
  constructor(private readonly keepBytes = 64 * 1024 * 1024) {}

  take(bytes: number): Buffer {
    if (bytes < 64 * 1024) return Buffer.allocUnsafe(bytes);
    let i = this.free.length - 1;
    while (i >= 0 && !(this.free[i]!.length >= bytes && this.free[i]!.length <= 2 * bytes)) i--;
    if (i < 0) return Buffer.allocUnsafeSlow(bytes);
    const whole = this.free.splice(i, 1)[0]!;
    this.kept -= whole.length;
    return whole.subarray(0, bytes);
  }

  give(frame: Buffer): void {
    const bytes = frame.buffer.byteLength - frame.byteOffset;
    if (frame.byteLength < 64 * 1024 || this.kept + bytes > this.keepBytes) return;
    this.free.push(Buffer.from(frame.buffer, frame.byteOffset, bytes));
    this.kept += bytes;
  }
}

/**
 * One message as frames: a single frame (encodeFrame) when floats [lo, hi) of `payload` fit in
 * `partFloats`, else the header with `parts` and `floats` and the first piece, then one
 * `{type: 'part', id}` frame per further piece. Send them in order, with nothing in between.
 * Lazy, so that a sender can hand each frame to the socket before it copies the next one;
 * `ready(a, b)`, when given, is called just before floats [a, b) are copied (a server steps them then).
 */
export function* frames(header: { id: number } & object, payload: Float32Array | undefined, lo: number, hi: number, pool?: FramePool, partFloats = PART_FLOATS, ready?: (lo: number, hi: number) => void): Generator<Buffer> {
  const n = payload === undefined ? 0 : hi - lo;
  if (n <= partFloats) {
    ready?.(lo, hi);
    return yield encodeFrame(header, payload, lo, hi, pool);
  }
  ready?.(lo, lo + partFloats);
  yield encodeFrame({ ...header, parts: Math.ceil(n / partFloats), floats: n }, payload, lo, lo + partFloats, pool);
  for (let a = lo + partFloats; a < hi; a += partFloats) {
    const b = Math.min(hi, a + partFloats);
    ready?.(a, b);
    yield encodeFrame({ type: 'part', id: header.id }, payload, a, b, pool);
  }
}

/** Every frame of a message at once (see `frames`). */
export function encodeFrames(header: { id: number } & object, payload: Float32Array | undefined, lo: number, hi: number, pool?: FramePool, partFloats = PART_FLOATS): Buffer[] {
  return [...frames(header, payload, lo, hi, pool, partFloats)];
}

/**
 * Joins the frames of messages sent in parts, on one connection: `feed` each decoded frame; it
 * returns the whole message once its last piece is in (at once for a message in one frame, whose
 * payload stays a view of the frame; `joined` when it came in parts, into the sink's memory), else
 * null. `sink(header, floats)` gives the memory a message in parts is copied into — the receiver's
 * to reuse. `piece(header, into, lo, hi)`, when given, is called as each piece lands in
 * into[lo, hi) (a server scans it for NaN there while the next pieces are still on their way).
 * Throws PsError('bad-frame') on a part of no message, a missing part, or pieces that do not add
 * up to `floats`; the message is then dropped.
 */
export class Reassembly {
  private cur: { header: Fields; into: Float32Array; filled: number; left: number } | null = null;

  constructor(private readonly maxFloats: number) {}

  feed(
    header: unknown,
    payload: Float32Array,
    sink: (header: Fields, floats: number) => Float32Array,
    piece?: (header: Fields, into: Float32Array, lo: number, hi: number) => void,
  ): { header: unknown; payload: Float32Array; joined: boolean } | null {
    const cur = this.cur;
    if (isFields(header) && header.type === 'part') {
      if (cur === null) throw new PsError('bad-frame', 'a part frame that follows no message sent in parts');
      if (header.id !== cur.header.id || payload.length > cur.into.length - cur.filled) {
        this.cur = null;
        throw new PsError('bad-frame', `a part of message ${describe(header.id)} with ${payload.length} floats, while message ${describe(cur.header.id)} has ${cur.into.length - cur.filled} floats to come`);
      }
      cur.into.set(payload, cur.filled);
      piece?.(cur.header, cur.into, cur.filled, cur.filled + payload.length);
      cur.filled += payload.length;
      if (--cur.left > 0) return null;
      this.cur = null;
      if (cur.filled !== cur.into.length) throw new PsError('bad-frame', `message ${describe(cur.header.id)}: its parts hold ${cur.filled} floats, its header says ${cur.into.length}`);
      return { header: cur.header, payload: cur.into, joined: true };
    }
    if (cur !== null) {
      this.cur = null;
      throw new PsError('bad-frame', `message ${describe(cur.header.id)} ended after ${cur.filled} of ${cur.into.length} floats: a ${describe(isFields(header) ? header.type : header)} frame came before its last part`);
    }
    if (!isFields(header) || header.parts === undefined) return { header, payload, joined: false };
    const parts = int(header, 'parts', 2, this.maxFloats);
    const floats = int(header, 'floats', Math.max(1, payload.length), this.maxFloats);
    const into = sink(header, floats);
    into.set(payload, 0);
    this.cur = { header, into, filled: payload.length, left: parts - 1 };
    piece?.(header, into, 0, payload.length);
    return null;
  }
}

/** Where a PayloadPool's buffers come from: ordinary arrays (the default), or the optimizer's memory. */
export interface PayloadMemory {
  alloc(n: number): Float32Array;
  free(a: Float32Array): void;
}

const HEAP: PayloadMemory = { alloc: (n) => new Float32Array(n), free: () => {} };

/**
 * Memory for received payloads, reused: a server copies a gradient sent in parts into one of these
 * instead of a fresh allocation. A buffer is free again after `release`, or after `holdUntil(a, u)`
 * once `reclaim(applied)` sees applied ≥ u (a server keeps a push until the update that reads it is
 * stepped: its clock, in sync and ssp). Holds at most `keep` free buffers; `memory.free`s the rest.
 *
 * With the optimizer's memory (optimizerMemory), a gradient lands where the optimizer's kernel
 * reads it, so an async server steps it in place instead of copying it through a staging area.
 */
export class PayloadPool {
  private free: Float32Array[] = [];
  private held: Array<{ a: Float32Array; until: number }> = [];
  /** The whole buffer behind each view handed out and not yet back. */
  private readonly lent = new Map<Float32Array, Float32Array>();
  constructor(
    private readonly keep = 8,
    private readonly memory: PayloadMemory = HEAP,
  ) {}

  /** n floats (a view of a buffer of n … 2n floats, reused when one is free). */
  take(n: number, applied: number): Float32Array {
    this.reclaim(applied);
    const i = this.free.findIndex((b) => b.length >= n && b.length <= 2 * n);
    const whole = i >= 0 ? this.free.splice(i, 1)[0]! : this.memory.alloc(n);
    const view = whole.subarray(0, n);
    this.lent.set(view, whole);
    return view;
  }

  release(a: Float32Array): void {
    const whole = this.lent.get(a);
    if (whole === undefined) return; // not from this pool
    this.lent.delete(a);
    if (this.free.length < this.keep) this.free.push(whole);
    else this.memory.free(whole);
  }

  holdUntil(a: Float32Array, applied: number): void {
    this.held.push({ a, until: applied });
    if (this.held.length > 4 * this.keep) {
      // Never reclaimed (a dropped clock): forgotten, not freed, since a store may still read it —
      // the garbage collector has an ordinary array; the optimizer's memory is used only where holds
      // end at the next update (async), so this is not reached there.
      this.lent.delete(this.held.shift()!.a);
    }
  }

  reclaim(applied: number): void {
    if (this.held.length === 0) return;
    const still = [];
    for (const h of this.held) if (applied >= h.until) this.release(h.a); else still.push(h);
    this.held = still;
  }

  /** Frees every buffer of the pool, lent or not (when its owner closes: nothing reads them any more). */
  dispose(): void {
    for (const whole of [...this.free, ...this.lent.values()]) this.memory.free(whole);
    this.free = [];
    this.held = [];
    this.lent.clear();
  }
}

/**
 * Reads a frame: the decoded (unchecked) header and the payload as a Float32Array that views the
 * frame's bytes (copied only when the frame is not 4-byte aligned in memory, which happens only to
 * small frames). Throws PsError('bad-frame') naming what is wrong.
 */
export function decodeFrame(frame: Uint8Array): { header: unknown; payload: Float32Array } {
  if (frame.length < 4) throw new PsError('bad-frame', `a frame is at least 4 bytes, got ${frame.length}`);
  const dv = new DataView(frame.buffer, frame.byteOffset, frame.byteLength);
  const h = dv.getUint32(0, true);
  if (h === 0 || h > MAX_HEADER_BYTES) throw new PsError('bad-frame', `header length ${h} is not in [1, ${MAX_HEADER_BYTES}]`);
  if (4 + h > frame.length) throw new PsError('bad-frame', `header length ${h} runs past the end of a ${frame.length}-byte frame`);
  const off = align4(4 + h);
  const payloadBytes = frame.length > 4 + h ? frame.length - off : 0;
  if (payloadBytes < 0 || payloadBytes % 4 !== 0) {
    throw new PsError('bad-frame', `the payload after a ${h}-byte header is ${frame.length - 4 - h} bytes, not padding plus whole float32 values`);
  }
  let header: unknown;
  try {
    header = unpackr.unpack(frame.subarray(4, 4 + h));
  } catch (e) {
    throw new PsError('bad-frame', `the header is not valid msgpack (${(e as Error).message})`);
  }
  const n = payloadBytes / 4;
  const start = frame.byteOffset + off;
  const payload = start % 4 === 0
    ? new Float32Array(frame.buffer, start, n)
    : new Float32Array(new Uint8Array(frame.subarray(off, off + payloadBytes)).buffer);
  return { header, payload };
}

// ---- checking headers ------------------------------------------------------------------------

type Fields = Record<string, unknown>;

function isFields(h: unknown): h is Fields {
  return typeof h === 'object' && h !== null && !Array.isArray(h) && !ArrayBuffer.isView(h);
}

function int(h: Fields, key: string, min: number, max = Number.MAX_SAFE_INTEGER): number {
  const v = h[key];
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    throw new PsError('bad-request', `${String(h.type)}: ${key} must be an integer in [${min}, ${max}], got ${describe(v)}`);
  }
  return v;
}

function str(h: Fields, key: string, maxLength: number): string {
  const v = h[key];
  if (typeof v !== 'string' || v.length > maxLength) {
    throw new PsError('bad-request', `${String(h.type)}: ${key} must be a string of at most ${maxLength} characters, got ${describe(v)}`);
  }
  return v;
}

function describe(v: unknown): string {
  if (typeof v === 'string') return v.length > 40 ? `a ${v.length}-character string` : JSON.stringify(v);
  if (typeof v === 'number' || typeof v === 'boolean' || v === null || v === undefined) return String(v);
  return Array.isArray(v) ? 'an array' : typeof v;
}

const REQUEST_TYPES = ['pull', 'push', 'pushpull', 'barrier', 'stats', 'shutdown', 'join'];

/** The type of a decoded header, or throws 'bad-frame' when it is not a map with a string `type`. */
export function typeOf(h: unknown): string {
  if (!isFields(h) || typeof h.type !== 'string') throw new PsError('bad-frame', 'the header must be a map with a string field `type`');
  return h.type;
}

/** Checks a hello: only its shape; the server checks the version, token and config. */
export function parseHello(h: unknown): Hello | null {
  if (!isFields(h) || h.type !== 'hello') return null;
  const v = int(h, 'v', 0);
  if (v !== PROTOCOL_VERSION) return { type: 'hello', v, token: '', role: 'observer', rank: -1, workers: 0, size: 0 };
  const token = str(h, 'token', 1024);
  const role = h.role;
  if (role !== 'worker' && role !== 'observer') throw new PsError('bad-request', `hello: role must be 'worker' or 'observer', got ${describe(role)}`);
  const workers = int(h, 'workers', 1, 1 << 20);
  return { type: 'hello', v, token, role, rank: role === 'worker' ? int(h, 'rank', 0, workers - 1) : -1, workers, size: int(h, 'size', 0) };
}

/** Checks a request header field by field; throws PsError('unknown-type' | 'bad-request'). */
export function parseRequest(h: unknown): Request {
  const type = typeOf(h);
  const f = h as Fields;
  if (!REQUEST_TYPES.includes(type)) throw new PsError('unknown-type', `unknown message type ${describe(type)} (protocol ${PROTOCOL_VERSION} requests: ${REQUEST_TYPES.join(', ')})`);
  const id = int(f, 'id', 0, 2 ** 31 - 1);
  switch (type) {
    case 'pull':
      return { type, id, step: int(f, 'step', 0), lo: int(f, 'lo', 0), hi: int(f, 'hi', 0) };
    case 'push':
    case 'pushpull': {
      const batchRows = int(f, 'batchRows', 0);
      return { type: type as Push['type'], id, step: int(f, 'step', 0), lo: int(f, 'lo', 0), rows: int(f, 'rows', 0, batchRows), batchRows };
    }
    case 'barrier':
      return { type, id, name: str(f, 'name', 256) };
    case 'stats':
      return { type, id };
    case 'join':
      return { type, id, step: int(f, 'step', 0), stepsPerEpoch: f.stepsPerEpoch === undefined ? 0 : int(f, 'stepsPerEpoch', 0) };
    default: {
      if (typeof f.exit !== 'boolean') throw new PsError('bad-request', `shutdown: exit must be true or false, got ${describe(f.exit)}`);
      return { type: 'shutdown', id, exit: f.exit };
    }
  }
}

/** The id of a request header, when it has a usable one (for error replies to bad requests). */
export function idOf(h: unknown): number {
  return isFields(h) && typeof h.id === 'number' && Number.isInteger(h.id) && h.id >= 0 && h.id < 2 ** 31 ? h.id : -1;
}

/** Checks a reply header (the client trusts its servers less than nothing: a server may be wrong too). */
export function parseReply(h: unknown): Reply | Welcome {
  const type = typeOf(h);
  const f = h as Fields;
  switch (type) {
    case 'welcome':
      return f as unknown as Welcome; // checked field by field by the client against its own config
    case 'params':
      return { type, id: int(f, 'id', 0), step: int(f, 'step', 0), applied: int(f, 'applied', 0), stop: f.stop === true, lo: int(f, 'lo', 0), stale: int(f, 'stale', 0) };
    case 'ack':
      return { type, id: int(f, 'id', 0), stale: int(f, 'stale', 0) };
    case 'stats':
      if (!isFields(f.stats)) throw new PsError('bad-frame', 'stats reply without stats');
      return { type, id: int(f, 'id', 0), stats: f.stats as unknown as ServerStats };
    case 'error':
      return { type, id: int(f, 'id', -1), code: str(f, 'code', 64) as ErrorCode, message: str(f, 'message', 4096) };
    default:
      throw new PsError('unknown-type', `unknown reply type ${describe(type)}`);
  }
}

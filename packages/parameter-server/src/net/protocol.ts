/**
 * The wire protocol between workers and parameter servers, version 1: every message type, in one
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
 */
import { Packr, Unpackr } from 'msgpackr/index-no-eval';
import { PsError, type ErrorCode } from './errors.js';
import type { Mode } from '../local/shared.js';

export const PROTOCOL_VERSION = 1;

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

export type Request = Pull | Push | Barrier | StatsRequest | Shutdown;

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
 * about 20 ms of page faults before the copy into it (4 ms) even starts. Frames under 64 KiB come
 * from Node's own pool. `give` a frame back only from its send callback.
 */
export class FramePool {
  private readonly free: Buffer[] = [];
  constructor(private readonly keep = 4) {}

  take(bytes: number): Buffer {
    if (bytes < 64 * 1024) return Buffer.allocUnsafe(bytes);
    const i = this.free.findIndex((b) => b.length >= bytes && b.length <= 2 * bytes);
    const whole = i >= 0 ? this.free.splice(i, 1)[0]! : Buffer.allocUnsafeSlow(bytes);
    return whole.subarray(0, bytes);
  }

  give(frame: Buffer): void {
    if (frame.byteLength < 64 * 1024 || this.free.length >= this.keep) return;
    this.free.push(Buffer.from(frame.buffer, frame.byteOffset, frame.buffer.byteLength - frame.byteOffset));
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

const REQUEST_TYPES = ['pull', 'push', 'pushpull', 'barrier', 'stats', 'shutdown'];

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

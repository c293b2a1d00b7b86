/**
 * The frame codec of the wire protocol: how one message — a header and a payload of float32
 * values — becomes WebSocket frames and back. What the headers mean is ./protocol.ts's business;
 * this file only moves bytes.
 *
 * Every message is ONE binary WebSocket frame (or, with a large payload, several: see PARTS):
 *
 *   offset 0     u32 little-endian   bits 0–23: H, the byte length of the header (1 … MAX_HEADER_BYTES);
 *                                    bits 24–31: frame flags, 0 (see KEY SECTIONS)
 *   offset 4     H bytes             the header: a msgpack map (the message's fields)
 *   4 + H        0–3 zero bytes      padding, so that the payload starts at a multiple of 4
 *   aligned      4·n bytes           the payload: n float32 little-endian values (may be empty)
 *
 * The payload is never msgpack-encoded: a receiver views it in place as a Float32Array (no
 * per-element decoding, no copy), and a sender copies the floats once, into the frame it hands the
 * socket. Headers are decoded with msgpackr's build that never compiles code, into plain objects
 * that are then checked field by field (./fields.ts); nothing received is ever evaluated.
 *
 * PARTS (protocol 2). A message whose payload exceeds PART_FLOATS floats is its first frame — the
 * header with `parts` K and `floats` n, and the first piece — followed at once by K − 1 frames
 * `{type: 'part', id}`, each with the next piece. The receiver copies the pieces into memory it
 * reuses (a server: a pooled buffer; a client: the caller's array). Why: ws puts every received
 * message into a fresh Buffer, and glibc maps each allocation over 32 MiB afresh, so a 40 MB
 * message cost ~24 ms of page faults per hop before a byte of it was used; pieces of a few MiB are
 * recycled by malloc and copied into memory that is already mapped.
 *
 * KEY SECTIONS (room for the next protocol version; nothing here sends or reads one yet). Row-keyed
 * tables will send keys beside values — pullRows(table, ids), pushRows(table, ids, grads) — and a
 * float payload cannot carry u64 ids. Such a frame will set flag bit 0 (bit 24 of the first word)
 * and list its sections in the header, in order, as `sections: [[name, type, count], …]` (e.g.
 * `[['ids', 'u64', 3]]`); each section follows the header's padding, starts at a multiple of 8
 * bytes from the frame's start (zero padding before it), and holds `count` little-endian values of
 * its type; the float payload comes last, as now. A receiver finds every section from the header
 * alone and views each in place (copying only when the Buffer is not 8-aligned in memory, as
 * decodeFrame does for floats). A message in parts would carry its sections in its first frame.
 * Protocol 2 never sets a flag — its header length needs 17 bits, so bits 24–31 were always zero —
 * and decodeFrame refuses a frame with any flag set as 'bad-frame', naming the flags; a peer of
 * another version is refused at hello with a `version` error before such a frame is sent.
 */
import { Packr, Unpackr } from 'msgpackr/index-no-eval';
import { PsError } from './errors.js';
import { describe, int, isFields, type Fields } from './fields.js';

/** Floats per frame of a payload sent in parts (1 MiB): small enough for malloc to recycle, large enough to cost nothing per frame. */
export const PART_FLOATS = 1 << 18;

/** Headers are small: a few numbers and short strings (stats replies are the largest). */
export const MAX_HEADER_BYTES = 64 * 1024;

/** The low bits of a frame's first word are the header's length; the high ones its flags (0 in protocol 2). */
const LENGTH_BITS = 24;

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
 * Reads a frame: the decoded (unchecked) header and the payload as a Float32Array that views the
 * frame's bytes (copied only when the frame is not 4-byte aligned in memory, which happens only to
 * small frames). Throws PsError('bad-frame') naming what is wrong.
 */
export function decodeFrame(frame: Uint8Array): { header: unknown; payload: Float32Array } {
  if (frame.length < 4) throw new PsError('bad-frame', `a frame is at least 4 bytes, got ${frame.length}`);
  const dv = new DataView(frame.buffer, frame.byteOffset, frame.byteLength);
  const word = dv.getUint32(0, true);
  const h = word & ((1 << LENGTH_BITS) - 1);
  if (h === 0 || h > MAX_HEADER_BYTES) throw new PsError('bad-frame', `header length ${h} is not in [1, ${MAX_HEADER_BYTES}]`);
  const flags = word >>> LENGTH_BITS;
  if (flags !== 0) throw new PsError('bad-frame', `frame flags 0x${flags.toString(16)} are set; protocol 2 frames have none (typed key sections are a later version's)`);
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

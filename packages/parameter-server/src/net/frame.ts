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
 * KEY SECTIONS (protocol 3). Row-keyed tables send keys beside values — pullRows(table, ids),
 * pushRows(table, ids, grads) — and a float32 payload cannot carry 53-bit ids. Such a frame sets
 * flag bit 0 (KEY_SECTION_FLAG, bit 24 of the first word) and names its section in the header as
 * `sections: [['ids', 'f64', N]]`; after the header's padding comes zero padding to a multiple of
 * 8 bytes from the frame's start, then N little-endian float64 ids, then the float32 payload, as
 * always last:
 *
 *   offset 0       u32              H | KEY_SECTION_FLAG << 24
 *   offset 4       H bytes          the header, with `sections`
 *   align8(4 + H)  8·N bytes        the ids, float64 little-endian
 *   … + 8·N        4·n bytes        the payload (row values, (N, D) row-major)
 *
 * Why float64 and not u64: every id is a JavaScript number (a non-negative integer < 2^53), which a
 * float64 holds exactly; the receiver views the section in place as a Float64Array and hands it to
 * the table as it is (no per-id decoding, no BigInt); and a float64 can carry every bad id a buggy
 * peer could send — negative, fractional, NaN, ≥ 2^53 — so the server refuses it by name instead
 * of reading it as some other valid id (a u64 cannot say −1 or 2.5; a client would have to wrap
 * or truncate it first). The section type is in the header, so 'u64' can be added beside 'f64'.
 * A keyed message never travels in parts (its frame is at most the server's largest, 256 MiB by
 * default: 1M rows of dim 64). The receiver copies the ids only when the frame's bytes are not
 * 8-aligned in memory. Flags other than bit 0 are refused as 'bad-frame', naming them.
 */
import { Packr, Unpackr } from 'msgpackr/index-no-eval';
import { PsError } from './errors.js';
import { describe, int, isFields, type Fields } from './fields.js';

/** Floats per frame of a payload sent in parts (1 MiB): small enough for malloc to recycle, large enough to cost nothing per frame. */
export const PART_FLOATS = 1 << 18;

/** Headers are small: a few numbers and short strings (stats replies are the largest). */
export const MAX_HEADER_BYTES = 64 * 1024;

/** The low bits of a frame's first word are the header's length; the high ones its flags. */
const LENGTH_BITS = 24;
/** Flag bit 0: the frame carries a key section (protocol 3's row messages). */
export const KEY_SECTION_FLAG = 1;

const packr = new Packr({ useRecords: false });
const unpackr = new Unpackr({ useRecords: false, mapsAsObjects: true });

const align4 = (n: number) => (n + 3) & ~3;
const align8 = (n: number) => (n + 7) & ~7;

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
 * One frame of `floats` float32 values that `fill` writes in place (a server writes rows straight
 * into its reply): no staging array. `fill` gets a view of the frame's payload (a scratch copied in
 * after, in the rare case the frame is not 4-aligned in memory).
 */
export function encodeFrameWith(header: object, floats: number, fill: (out: Float32Array) => void, pool?: FramePool): Buffer {
  const h = packr.pack(header);
  const off = align4(4 + h.length);
  const frame = pool !== undefined ? pool.take(off + 4 * floats) : Buffer.allocUnsafe(off + 4 * floats);
  frame.writeUInt32LE(h.length, 0);
  h.copy(frame, 4);
  frame.fill(0, 4 + h.length, off);
  if ((frame.byteOffset + off) % 4 === 0) fill(new Float32Array(frame.buffer, frame.byteOffset + off, floats));
  else {
    const tmp = new Float32Array(floats);
    fill(tmp);
    frame.set(new Uint8Array(tmp.buffer), off);
  }
  return frame;
}

/**
 * One frame with a key section (protocol 3): `header` gets `sections: [['ids', 'f64', N]]`, then
 * come the N ids as float64 and `values` (may be empty) as float32. The ids are written one by one
 * (any ArrayLike<number>, e.g. a worker's Int32Array of unique ids), so nothing is allocated besides
 * the frame. The returned Buffer is the sender's to hand to the socket.
 */
export function encodeKeyedFrame(header: object, ids: ArrayLike<number>, values?: Float32Array, pool?: FramePool): Buffer {
  const n = ids.length;
  const h = packr.pack({ ...header, sections: [['ids', 'f64', n]] });
  const idsAt = align8(4 + h.length);
  const valuesAt = idsAt + 8 * n;
  const floats = values?.length ?? 0;
  const frame = pool !== undefined ? pool.take(valuesAt + 4 * floats) : Buffer.allocUnsafe(valuesAt + 4 * floats);
  frame.writeUInt32LE((h.length | (KEY_SECTION_FLAG << LENGTH_BITS)) >>> 0, 0);
  h.copy(frame, 4);
  frame.fill(0, 4 + h.length, idsAt);
  for (let k = 0; k < n; k++) frame.writeDoubleLE(ids[k]!, idsAt + 8 * k);
  if (values !== undefined && floats > 0) frame.set(new Uint8Array(values.buffer, values.byteOffset, 4 * floats), valuesAt);
  return frame;
}

/**
 * Frames smaller than this come from Node's shared slab (Buffer.allocUnsafe pools requests under
 * half of Buffer.poolSize, 8 KiB); every larger one would be an ArrayBuffer of its own.
 */
const SLAB_BYTES = Buffer.poolSize >>> 1;
const KEEP_FRAMES = 256;

/**
 * Reuses the memory of frames once the socket has sent them. A large one: a fresh 40 MB buffer
 * costs about 20 ms of page faults before the copy into it (4 ms) even starts, and a message sent
 * in parts needs all its frames at once. A small one (a 22 KB reply of the news model, 2 a step):
 * each fresh ArrayBuffer is external memory that only a full GC frees, and V8 counts it towards its
 * global limit — a server allocating one per reply ran a mark-compact every 60–200 ms (80 in an
 * 8-epoch `--cluster local:1,2` run, 1 s of its time). Keeps up to `keepBytes` (default 64 MiB: the
 * frames of a 10M-float message and then some). `give` a frame back only from its send callback.
 */
export class FramePool {
  private readonly free: Buffer[] = [];
  private kept = 0;
  constructor(private readonly keepBytes = 64 * 1024 * 1024) {}

  take(bytes: number): Buffer {
    if (bytes < SLAB_BYTES) return Buffer.allocUnsafe(bytes);
    let i = this.free.length - 1;
    while (i >= 0 && !(this.free[i]!.length >= bytes && this.free[i]!.length <= 2 * bytes)) i--;
    if (i < 0) return Buffer.allocUnsafeSlow(bytes);
    const whole = this.free.splice(i, 1)[0]!;
    this.kept -= whole.length;
    return whole.subarray(0, bytes);
  }

  give(frame: Buffer): void {
    const bytes = frame.buffer.byteLength - frame.byteOffset;
    // At most KEEP_FRAMES of them: take() scans the list, and small frames could fill keepBytes by the thousand.
    if (frame.byteLength < SLAB_BYTES || this.kept + bytes > this.keepBytes || this.free.length >= KEEP_FRAMES) return;
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
export function decodeFrame(frame: Uint8Array): { header: unknown; payload: Float32Array; ids?: Float64Array } {
  if (frame.length < 4) throw new PsError('bad-frame', `a frame is at least 4 bytes, got ${frame.length}`);
  const dv = new DataView(frame.buffer, frame.byteOffset, frame.byteLength);
  const word = dv.getUint32(0, true);
  const h = word & ((1 << LENGTH_BITS) - 1);
  if (h === 0 || h > MAX_HEADER_BYTES) throw new PsError('bad-frame', `header length ${h} is not in [1, ${MAX_HEADER_BYTES}]`);
  const flags = word >>> LENGTH_BITS;
  if ((flags & ~KEY_SECTION_FLAG) !== 0) throw new PsError('bad-frame', `frame flags 0x${flags.toString(16)} are set; protocol 3 knows only 0x${KEY_SECTION_FLAG.toString(16)} (a key section)`);
  if (4 + h > frame.length) throw new PsError('bad-frame', `header length ${h} runs past the end of a ${frame.length}-byte frame`);
  if (flags !== 0) return decodeKeyed(frame, h);
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

/** The header, key section and payload of a frame with flag KEY_SECTION_FLAG (see KEY SECTIONS). */
function decodeKeyed(frame: Uint8Array, h: number): { header: unknown; payload: Float32Array; ids: Float64Array } {
  let header: unknown;
  try {
    header = unpackr.unpack(frame.subarray(4, 4 + h));
  } catch (e) {
    throw new PsError('bad-frame', `the header is not valid msgpack (${(e as Error).message})`);
  }
  const sections = isFields(header) ? header.sections : undefined;
  const s = Array.isArray(sections) && sections.length === 1 ? sections[0] : undefined;
  if (!(Array.isArray(s) && s[0] === 'ids' && s[1] === 'f64' && Number.isInteger(s[2]) && s[2] >= 0)) {
    throw new PsError('bad-frame', `a frame with a key section needs sections: [['ids', 'f64', N]] in its header, got ${describe(sections)}`);
  }
  const n = s[2] as number;
  const idsAt = align8(4 + h);
  const valuesAt = idsAt + 8 * n;
  if (valuesAt > frame.length || (frame.length - valuesAt) % 4 !== 0) {
    throw new PsError('bad-frame', `a key section of ${n} f64 ids at byte ${idsAt} and whole float32 values after it do not fit a ${frame.length}-byte frame`);
  }
  const start = frame.byteOffset + idsAt;
  const ids = start % 8 === 0 ? new Float64Array(frame.buffer, start, n) : new Float64Array(new Uint8Array(frame.subarray(idsAt, valuesAt)).buffer);
  const m = (frame.length - valuesAt) / 4;
  const vstart = frame.byteOffset + valuesAt;
  const payload = vstart % 4 === 0 ? new Float32Array(frame.buffer, vstart, m) : new Float32Array(new Uint8Array(frame.subarray(valuesAt)).buffer);
  return { header, payload, ids };
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

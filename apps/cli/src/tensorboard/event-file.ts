/**
 * TensorBoard event files, written without TensorFlow: a TFRecord file (records framed as
 * uint64 length, masked CRC-32C of the length, data, masked CRC-32C of the data; all little
 * endian) of `Event` protocol buffers. Only what scalars need is encoded:
 *
 *   Event   { double wall_time = 1; int64 step = 2; string file_version = 3; Summary summary = 5; }
 *   Summary { repeated Value value = 1; }
 *   Value   { string tag = 1; float simple_value = 2; }
 *
 * The first event of a file carries file_version "brain.Event:2", as TensorFlow's writer does.
 * The file is named events.out.tfevents.<seconds>.<host>, which TensorBoard looks for.
 * (npm has no maintained writer that installs here: @tensorflow/tfjs-node's summaryFileWriter
 * downloads libtensorflow when it installs.)
 *
 * @example
 * const w = new EventFileWriter('runs/tb/news');
 * w.scalars(1, { 'loss/train': 1.77, 'loss/valid': 1.66 });
 * w.close();
 */
import { closeSync, mkdirSync, openSync, writeSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { maskedCrc32c } from './crc32c.js';

/** Protocol-buffer wire types. */
const VARINT = 0;
const FIXED64 = 1;
const BYTES = 2;
const FIXED32 = 5;

/** A growing byte buffer with the few protocol-buffer encodings an Event needs. */
class ProtoWriter {
  private bytes: number[] = [];

  varint(v: bigint): this {
    let x = BigInt.asUintN(64, v); // negative int64s are ten bytes, two's complement
    while (x >= 0x80n) {
      this.bytes.push(Number(x & 0x7fn) | 0x80);
      x >>= 7n;
    }
    this.bytes.push(Number(x));
    return this;
  }

  key(field: number, wire: number): this {
    return this.varint(BigInt((field << 3) | wire));
  }

  double(field: number, v: number): this {
    const b = new DataView(new ArrayBuffer(8));
    b.setFloat64(0, v, true);
    this.key(field, FIXED64).bytes.push(...new Uint8Array(b.buffer));
    return this;
  }

  float(field: number, v: number): this {
    const b = new DataView(new ArrayBuffer(4));
    b.setFloat32(0, v, true);
    this.key(field, FIXED32).bytes.push(...new Uint8Array(b.buffer));
    return this;
  }

  int64(field: number, v: number): this {
    return this.key(field, VARINT).varint(BigInt(Math.trunc(v)));
  }

  message(field: number, body: Uint8Array): this {
    this.key(field, BYTES).varint(BigInt(body.length)).bytes.push(...body);
    return this;
  }

  string(field: number, s: string): this {
    return this.message(field, new TextEncoder().encode(s));
  }

  finish(): Uint8Array {
    return Uint8Array.from(this.bytes);
  }
}

/** One Event, encoded. */
export function encodeEvent(e: { wallTime: number; step: number; fileVersion?: string; scalars?: Record<string, number> }): Uint8Array {
  const w = new ProtoWriter().double(1, e.wallTime).int64(2, e.step);
  if (e.fileVersion !== undefined) w.string(3, e.fileVersion);
  if (e.scalars !== undefined) {
    const summary = new ProtoWriter();
    for (const [tag, v] of Object.entries(e.scalars)) summary.message(1, new ProtoWriter().string(1, tag).float(2, v).finish());
    w.message(5, summary.finish());
  }
  return w.finish();
}

/** One TFRecord: length, its masked CRC, the data, its masked CRC. */
export function frameRecord(data: Uint8Array): Uint8Array {
  const out = new Uint8Array(8 + 4 + data.length + 4);
  const view = new DataView(out.buffer);
  view.setBigUint64(0, BigInt(data.length), true);
  view.setUint32(8, maskedCrc32c(out.subarray(0, 8)), true);
  out.set(data, 12);
  view.setUint32(12 + data.length, maskedCrc32c(data), true);
  return out;
}

/** Appends events to a new event file in `dir`. Each write goes to the file at once (no buffering). */
export class EventFileWriter {
  readonly path: string;
  private fd: number | undefined;

  constructor(dir: string, now = Date.now()) {
    mkdirSync(dir, { recursive: true });
    this.path = join(dir, `events.out.tfevents.${Math.floor(now / 1000)}.${hostname()}`);
    this.fd = openSync(this.path, 'a');
    this.write(encodeEvent({ wallTime: now / 1000, step: 0, fileVersion: 'brain.Event:2' }));
  }

  /** One event holding `scalars` at `step` (non-finite values are left out; TensorBoard cannot show them). */
  scalars(step: number, scalars: Record<string, number>, wallTime = Date.now() / 1000): void {
    const finite = Object.fromEntries(Object.entries(scalars).filter(([, v]) => Number.isFinite(v)));
    if (Object.keys(finite).length > 0) this.write(encodeEvent({ wallTime, step, scalars: finite }));
  }

  close(): void {
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
  }

  private write(data: Uint8Array): void {
    if (this.fd === undefined) throw new Error(`${this.path}: written after close`);
    writeSync(this.fd, frameRecord(data));
  }
}

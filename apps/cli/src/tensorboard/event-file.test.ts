// TensorBoard event files read back by a reader written here from the formats' specifications
// (TFRecord framing; protocol-buffer wire format; tensorflow/core/util/event.proto and
// summary.proto), sharing no code with the writer — not even its CRC.
import { describe, expect, it } from 'vitest';
import { readdirSync, readFileSync, mkdtempSync, writeFileSync, appendFileSync } from 'node:fs';
import { tmpdir, hostname } from 'node:os';
import { join } from 'node:path';
import { EventFileWriter } from './event-file.js';
import { crc32c } from './crc32c.js';
import { TensorboardExport } from './export.js';

/** CRC-32C bit by bit, from its definition (reflected polynomial 0x82F63B78). */
function crcReference(bytes: Uint8Array): number {
  let c = ~0 >>> 0;
  for (const b of bytes) {
    c ^= b;
    for (let k = 0; k < 8; k++) c = (c >>> 1) ^ (0x82f63b78 & -(c & 1));
    c >>>= 0;
  }
  return ~c >>> 0;
}
const masked = (b: Uint8Array) => {
  const c = crcReference(b);
  return (((c >>> 15) | (c << 17)) + 0xa282ead8) >>> 0;
};

interface Event { wallTime?: number; step: number; fileVersion?: string; values: Array<{ tag: string; simpleValue: number }> }

/** Protocol buffers: every field of a message as [number, wire type, value]. */
function fields(buf: Uint8Array): Array<[number, number, bigint | Uint8Array]> {
  const out: Array<[number, number, bigint | Uint8Array]> = [];
  let i = 0;
  const varint = () => {
    let v = 0n;
    for (let shift = 0n; ; shift += 7n) {
      const b = buf[i++]!;
      v |= BigInt(b & 0x7f) << shift;
      if (b < 0x80) return v;
    }
  };
  while (i < buf.length) {
    const key = Number(varint());
    const [field, wire] = [key >> 3, key & 7];
    if (wire === 0) out.push([field, wire, varint()]);
    else if (wire === 1) (out.push([field, wire, buf.slice(i, i + 8)]), (i += 8));
    else if (wire === 5) (out.push([field, wire, buf.slice(i, i + 4)]), (i += 4));
    else if (wire === 2) {
      const n = Number(varint());
      out.push([field, wire, buf.slice(i, i + n)]);
      i += n;
    } else throw new Error(`wire type ${wire}`);
  }
  return out;
}

/** Reads a TFRecord file of Events, checking every CRC. */
function readEvents(path: string): Event[] {
  const file = new Uint8Array(readFileSync(path));
  const view = new DataView(file.buffer, file.byteOffset);
  const events: Event[] = [];
  for (let p = 0; p < file.length; ) {
    const len = Number(view.getBigUint64(p, true));
    expect(view.getUint32(p + 8, true), 'length CRC').toBe(masked(file.subarray(p, p + 8)));
    const data = file.subarray(p + 12, p + 12 + len);
    expect(view.getUint32(p + 12 + len, true), 'data CRC').toBe(masked(data));
    p += 12 + len + 4;
    const e: Event = { step: 0, values: [] };
    for (const [f, , v] of fields(data)) {
      if (f === 1) e.wallTime = new DataView((v as Uint8Array).buffer, (v as Uint8Array).byteOffset).getFloat64(0, true);
      if (f === 2) e.step = Number(BigInt.asIntN(64, v as bigint));
      if (f === 3) e.fileVersion = new TextDecoder().decode(v as Uint8Array);
      if (f === 5) {
        for (const [sf, , sv] of fields(v as Uint8Array)) {
          if (sf !== 1) continue;
          const value = { tag: '', simpleValue: NaN };
          for (const [vf, , vv] of fields(sv as Uint8Array)) {
            if (vf === 1) value.tag = new TextDecoder().decode(vv as Uint8Array);
            if (vf === 2) value.simpleValue = new DataView((vv as Uint8Array).buffer, (vv as Uint8Array).byteOffset).getFloat32(0, true);
          }
          e.values.push(value);
        }
      }
    }
    events.push(e);
  }
  return events;
}

describe('TensorBoard event files', () => {
  it('crc32c matches the standard check value and the bitwise definition', () => {
    expect(crc32c(new TextEncoder().encode('123456789'))).toBe(0xe3069283);
    const bytes = Uint8Array.from({ length: 1000 }, (_, i) => (i * 31 + 7) & 0xff);
    expect(crc32c(bytes)).toBe(crcReference(bytes));
  });

  it('writes a file_version event, then the scalars at their steps, every record framed and checksummed', () => {
    const dir = mkdtempSync(join(tmpdir(), 'loom-tb-'));
    const w = new EventFileWriter(dir, 1_700_000_000_123);
    w.scalars(1, { 'loss/train': 1.7731, 'loss/valid': 1.656 }, 1_700_000_001.5);
    w.scalars(2, { 'loss/train': 1.639, 'bad': NaN });
    w.scalars(1_000_000_000_000, { x: -3.25 }); // a step beyond 32 bits
    w.close();
    expect(readdirSync(dir)).toEqual([`events.out.tfevents.1700000000.${hostname()}`]);
    const events = readEvents(w.path);
    expect(events[0]).toMatchObject({ fileVersion: 'brain.Event:2', step: 0, wallTime: 1_700_000_000.123, values: [] });
    expect(events[1]!.step).toBe(1);
    expect(events[1]!.wallTime).toBe(1_700_000_001.5);
    expect(events[1]!.values.map((v) => v.tag)).toEqual(['loss/train', 'loss/valid']);
    expect(events[1]!.values[0]!.simpleValue).toBeCloseTo(1.7731, 6);
    expect(events[2]!.values).toEqual([{ tag: 'loss/train', simpleValue: Math.fround(1.639) }]); // NaN left out
    expect(events[3]).toMatchObject({ step: 1_000_000_000_000, values: [{ tag: 'x', simpleValue: -3.25 }] });
  });

  it('loom train --tensorboard: exports a run directory\'s epochs and steps once this process started it', () => {
    const run = mkdtempSync(join(tmpdir(), 'loom-run-'));
    const logs = mkdtempSync(join(tmpdir(), 'loom-tb-'));
    // An older run's lines in the same directory: never exported.
    writeFileSync(join(run, 'events.jsonl'), JSON.stringify({ event: 'start', pid: -1 }) + '\n');
    writeFileSync(join(run, 'metrics.jsonl'), JSON.stringify({ epoch: 1, trainLoss: 9 }) + '\n');
    const tb = new TensorboardExport(run, logs, 4242, 60_000);
    tb.poll();
    // This run starts: startRun truncates metrics.jsonl, then says so in events.jsonl.
    writeFileSync(join(run, 'metrics.jsonl'), '');
    writeFileSync(join(run, 'steps.jsonl'), '');
    appendFileSync(join(run, 'events.jsonl'), JSON.stringify({ event: 'start', pid: 4242 }) + '\n');
    appendFileSync(join(run, 'steps.jsonl'), JSON.stringify({ step: 50, epoch: 0.5, loss: 2.5, time: 1_700_000_000_000 }) + '\n');
    appendFileSync(join(run, 'metrics.jsonl'), JSON.stringify({ epoch: 1, trainLoss: 1.5, validLoss: 1.25, validAccuracy: 0.5, samplesPerSec: 1000, workers: [{ rank: 0, samplesPerSec: 600, stalenessMax: 3, computeFraction: 0.5 }] }) + '\n');
    tb.close();
    const events = readEvents(tb.writer.path);
    const scalars = events.flatMap((e) => e.values.map((v) => [e.step, v.tag, v.simpleValue]));
    expect(scalars).toEqual([
      [1, 'loss/train', 1.5], [1, 'loss/valid', 1.25], [1, 'accuracy/valid', 0.5], [1, 'throughput/samples_per_sec', 1000],
      [1, 'throughput/worker_0', 600], [1, 'staleness/worker_0_max', 3], [1, 'compute/worker_0', 0.5],
      [50, 'loss/train_step', 2.5],
    ]);
  });
});

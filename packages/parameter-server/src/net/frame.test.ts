// The frame codec's flags: protocol 3 knows flag 0x1 (a key section of float64 ids before the
// payload) and refuses a frame with any other flag set, naming the flags.
import { describe, expect, it } from 'vitest';
import { PsError } from './errors.js';
import { FramePool, decodeFrame, encodeFrame, encodeKeyedFrame } from './frame.js';

describe('frame flags', () => {
  it('a frame without a key section has no flags, and one with an unknown flag is refused naming the flags', () => {
    const frame = encodeFrame({ type: 'stats', id: 1 }, new Float32Array([1, 2]));
    expect(frame.readUInt8(3)).toBe(0); // the top byte of the first word
    expect(decodeFrame(frame).payload).toEqual(new Float32Array([1, 2]));
    const flagged = Buffer.from(frame);
    flagged.writeUInt8(2, 3);
    expect(() => decodeFrame(flagged)).toThrow(PsError);
    expect(() => decodeFrame(flagged)).toThrow(/frame flags 0x2 are set; protocol 3 knows only 0x1/);
  });

  it('a key section carries float64 ids (any number, so a bad one reaches the server as sent) before the float32 payload', () => {
    const ids = [0, 2 ** 53 - 1, 2 ** 50, -1, 2.5];
    const frame = encodeKeyedFrame({ type: 'pushrows', id: 3 }, Int32Array.from([7, 8]), new Float32Array([1, 2, 3, 4]));
    expect(frame.readUInt8(3)).toBe(1);
    const d = decodeFrame(frame);
    expect(d.header).toMatchObject({ type: 'pushrows', id: 3, sections: [['ids', 'f64', 2]] });
    expect(d.ids).toEqual(new Float64Array([7, 8]));
    expect(d.payload).toEqual(new Float32Array([1, 2, 3, 4]));
    expect(decodeFrame(encodeKeyedFrame({ type: 'pullrows', id: 4 }, ids)).ids).toEqual(Float64Array.from(ids));
    // A section that does not fit the frame is refused.
    const cut = frame.subarray(0, frame.length - 20);
    expect(() => decodeFrame(cut)).toThrow(/key section of 2 f64 ids/);
  });
});

describe('FramePool', () => {
  it("reuses a sent frame's memory for the next frame of about its size, small (a 22 KB reply) or large, and never one from Node's shared slab", () => {
    const pool = new FramePool();
    for (const floats of [5_560, 100_000]) {
      const payload = Float32Array.from({ length: floats }, (_, i) => i);
      const first = encodeFrame({ type: 'pull', id: 1 }, payload, 0, floats, pool);
      pool.give(first); // as the socket's send callback does
      const second = encodeFrame({ type: 'pull', id: 2 }, payload, 0, floats, pool);
      expect(second.buffer).toBe(first.buffer);
      expect(decodeFrame(second).payload).toEqual(payload);
      expect(decodeFrame(second).header).toMatchObject({ id: 2 });
      const third = encodeFrame({ type: 'pull', id: 3 }, payload, 0, floats, pool); // the second is still out
      expect(third.buffer).not.toBe(second.buffer);
    }
    const tiny = encodeFrame({ type: 'pull', id: 4 }, new Float32Array(8), 0, 8, pool); // on the slab, beside other buffers
    pool.give(tiny);
    const next = encodeFrame({ type: 'pull', id: 5 }, new Float32Array(8), 0, 8, pool);
    expect(next.buffer === tiny.buffer && next.byteOffset === tiny.byteOffset).toBe(false);
  });

  it('keeps at most 256 frames however many come back', () => {
    const pool = new FramePool();
    const out = Array.from({ length: 300 }, () => encodeFrame({ type: 'pull', id: 1 }, new Float32Array(2_000), 0, 2_000, pool));
    for (const f of out) pool.give(f);
    const again = Array.from({ length: 300 }, () => encodeFrame({ type: 'pull', id: 1 }, new Float32Array(2_000), 0, 2_000, pool));
    const reused = again.filter((f) => out.some((o) => o.buffer === f.buffer)).length;
    expect(reused).toBe(256);
  });
});

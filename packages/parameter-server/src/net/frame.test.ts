// The frame codec's reserved flags: protocol 2 never sets them, and refuses a frame that does.
import { describe, expect, it } from 'vitest';
import { PsError } from './errors.js';
import { decodeFrame, encodeFrame } from './frame.js';

describe('frame flags', () => {
  it('a protocol 2 frame has no flags, and one with a flag set is refused naming the flags', () => {
    const frame = encodeFrame({ type: 'stats', id: 1 }, new Float32Array([1, 2]));
    expect(frame.readUInt8(3)).toBe(0); // the top byte of the first word
    expect(decodeFrame(frame).payload).toEqual(new Float32Array([1, 2]));
    const flagged = Buffer.from(frame);
    flagged.writeUInt8(1, 3);
    expect(() => decodeFrame(flagged)).toThrow(PsError);
    expect(() => decodeFrame(flagged)).toThrow(/frame flags 0x1 are set/);
  });
});

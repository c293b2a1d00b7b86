import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';
import { encodeIdx, loadIdxDataset, parseIdx, readIdx, writeIdx } from './idx.js';

const tmp = mkdtempSync(join(tmpdir(), 'loom-idx-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('readIdx', () => {
  it('reads a file assembled byte by byte (ubyte, 2 × 3)', () => {
    const bytes = Uint8Array.from([0, 0, 0x08, 2, 0, 0, 0, 2, 0, 0, 0, 3, 1, 2, 3, 250, 251, 252]);
    const p = join(tmp, 'hand-idx2-ubyte');
    writeFileSync(p, bytes);
    const t = readIdx(p);
    expect(t.dims).toEqual([2, 3]);
    expect(t.data).toBeInstanceOf(Uint8Array);
    expect(Array.from(t.data)).toEqual([1, 2, 3, 250, 251, 252]);
  });

  // Every multi-byte type, as bytes written out by hand in IDX's big-endian order (most significant
  // byte first; IEEE 754 for the floats), so neither the reader nor the writer is its own oracle.
  const byHand: Array<[string, number[], ArrayLike<number>]> = [
    ['sbyte', [0, 0, 0x09, 1, 0, 0, 0, 2, 0xff, 0x05], [-1, 5]],
    ['short', [0, 0, 0x0b, 1, 0, 0, 0, 2, 0xfe, 0xd4, 0x00, 0x07], [-300, 7]], // -300 = 0xfed4
    ['int', [0, 0, 0x0c, 1, 0, 0, 0, 2, 0, 0, 1, 2, 0xff, 0xff, 0xff, 0xfe], [258, -2]],
    ['float', [0, 0, 0x0d, 1, 0, 0, 0, 2, 0x3f, 0xc0, 0, 0, 0xc0, 0x10, 0, 0], [1.5, -2.25]], // 1.5 = 0x3fc00000, -2.25 = 0xc0100000
    ['double', [0, 0, 0x0e, 1, 0, 0, 0, 2, 0x40, 0x09, 0x21, 0xfb, 0x54, 0x44, 0x2d, 0x18, 0xbf, 0xe0, 0, 0, 0, 0, 0, 0], [Math.PI, -0.5]],
  ];

  it('reads big-endian multi-byte types from bytes written by hand (sbyte, short, int, float, double)', () => {
    for (const [type, bytes, values] of byHand) {
      const t = parseIdx(Uint8Array.from(bytes));
      expect(t.dims, type).toEqual([2]);
      expect(Array.from(t.data), type).toEqual(Array.from(values));
    }
  });

  it('reads dimensions as big-endian 32-bit counts (258 = 0x00000102)', () => {
    const bytes = [0, 0, 0x08, 2, 0, 0, 0, 1, 0, 0, 1, 2, ...Array.from({ length: 258 }, (_, i) => i % 256)];
    const t = parseIdx(Uint8Array.from(bytes));
    expect(t.dims).toEqual([1, 258]);
    expect(t.data[257]).toBe(1);
  });

  it('writes exactly those bytes', () => {
    const arrays = { sbyte: Int8Array, short: Int16Array, int: Int32Array, float: Float32Array, double: Float64Array };
    for (const [type, bytes, values] of byHand) {
      const data = arrays[type as keyof typeof arrays].from(values as ArrayLike<number>);
      expect(Array.from(encodeIdx({ dims: [2], data })), type).toEqual(bytes);
    }
  });

  it('reads the same tensor gzipped and plain (gzip detected by magic bytes, not by name)', () => {
    const data = Uint8Array.from({ length: 4 * 5 * 6 }, (_, i) => (i * 37) % 256);
    writeIdx(join(tmp, 'plain'), { dims: [4, 5, 6], data });
    writeIdx(join(tmp, 'zipped'), { dims: [4, 5, 6], data }, { gzip: true });
    const a = readIdx(join(tmp, 'plain'));
    const b = readIdx(join(tmp, 'zipped'));
    expect(a.dims).toEqual([4, 5, 6]);
    expect(b).toEqual(a);
    expect(Array.from(a.data)).toEqual(Array.from(data));
  });

  it('a wrong magic number names the file and the magic found', () => {
    const p = join(tmp, 'wrong-magic');
    writeFileSync(p, Uint8Array.from([0x08, 0x03, 0, 0, 0, 0, 0, 1, 9]));
    expect(() => readIdx(p)).toThrow(`${p}: not an IDX file: expected a magic number 0x0000TTDD`);
    expect(() => readIdx(p)).toThrow('found 0x08030000');
    writeFileSync(p, gzipSync(Uint8Array.from([0, 0, 0x07, 1, 0, 0, 0, 1, 9])));
    expect(() => readIdx(p)).toThrow('found 0x00000701');
  });

  it('a size that does not match the dims, a missing file, bad gzip', () => {
    const p = join(tmp, 'short');
    writeFileSync(p, Uint8Array.from([0, 0, 0x08, 1, 0, 0, 0, 5, 1, 2]));
    expect(() => readIdx(p)).toThrow(`${p}: dims [5] need 13 bytes, found 10`);
    expect(() => readIdx(join(tmp, 'absent'))).toThrow('absent: no such file');
    writeFileSync(p, Uint8Array.from([0x1f, 0x8b, 1, 2, 3]));
    expect(() => readIdx(p)).toThrow('starts like gzip (1f 8b) but does not decompress');
  });
});

describe('loadIdxDataset', () => {
  // A 5-image train split (gzipped) and a 3-image test split (plain), 2 × 2 pixels.
  const dir = join(tmp, 'mnist-layout');
  mkdirSync(dir);
  const img = (n: number) => Uint8Array.from({ length: n * 4 }, (_, i) => (i * 51) % 256);
  writeIdx(join(dir, 'train-images-idx3-ubyte.gz'), { dims: [5, 2, 2], data: img(5) }, { gzip: true });
  writeIdx(join(dir, 'train-labels-idx1-ubyte.gz'), { dims: [5], data: Uint8Array.from([0, 1, 2, 9, 4]) }, { gzip: true });
  writeIdx(join(dir, 't10k-images-idx3-ubyte'), { dims: [3, 2, 2], data: img(3) });
  writeIdx(join(dir, 't10k-labels-idx1-ubyte'), { dims: [3], data: Uint8Array.from([3, 3, 1]) });

  it('scales pixels to [0, 1] as (n, rows·cols) and reads labels as Int32Array', () => {
    const { train, test } = loadIdxDataset(dir);
    expect(train.length).toBe(5);
    expect(train.width).toBe(4);
    expect(train.shape).toEqual([2, 2]);
    expect(train.features).toBeInstanceOf(Float32Array);
    expect(Array.from(train.features.subarray(0, 6))).toEqual([0, 51, 102, 153, 204, 255].map((v) => Math.fround(v / 255)));
    expect(train.labels).toEqual(Int32Array.from([0, 1, 2, 9, 4]));
    expect(train.numClasses).toBe(10);
    expect(test.length).toBe(3);
    expect(test.labels).toEqual(Int32Array.from([3, 3, 1]));
  });

  it('names the file it could not find, and labels that do not match the images', () => {
    const empty = join(tmp, 'empty');
    mkdirSync(empty);
    expect(() => loadIdxDataset(empty)).toThrow(`${empty}: expected an IDX file named train-images-idx3-ubyte or train-images-idx3-ubyte.gz, found none`);
    writeIdx(join(dir, 't10k-labels-idx1-ubyte'), { dims: [2], data: Uint8Array.from([3, 3]) });
    expect(() => loadIdxDataset(dir)).toThrow('expected 3 labels (one per image');
  });
});

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

  it('reads big-endian multi-byte types (int, float, short, double)', () => {
    const int = parseIdx(Uint8Array.from([0, 0, 0x0c, 1, 0, 0, 0, 2, 0, 0, 1, 2, 0xff, 0xff, 0xff, 0xfe]));
    expect(Array.from(int.data)).toEqual([258, -2]);
    const f = parseIdx(Uint8Array.from([0, 0, 0x0d, 1, 0, 0, 0, 1, 0x3f, 0xc0, 0, 0]));
    expect(Array.from(f.data)).toEqual([1.5]);
    for (const data of [Int16Array.from([-300, 7]), Float64Array.from([Math.PI, -0.5]), Int8Array.from([-1, 5])]) {
      expect(Array.from(parseIdx(encodeIdx({ dims: [2], data })).data)).toEqual(Array.from(data));
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

// IDX, the format of MNIST and Fashion-MNIST: a 4-byte magic number [0, 0, type, ndims], ndims
// big-endian uint32 dimension sizes, then the data, big-endian, row-major. Files may be gzipped
// (detected by the gzip magic bytes 1f 8b, not by the file name).

import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import { DataError, fileError, invalidArgument } from './errors.js';

export type IdxData = Uint8Array | Int8Array | Int16Array | Int32Array | Float32Array | Float64Array;

/** An IDX tensor: its dimension sizes and its values, row-major. */
export interface IdxTensor {
  dims: number[];
  data: IdxData;
}

/** type byte → [typed array constructor, bytes per element, name] */
const TYPES = {
  0x08: [Uint8Array, 1, 'ubyte'],
  0x09: [Int8Array, 1, 'sbyte'],
  0x0b: [Int16Array, 2, 'short'],
  0x0c: [Int32Array, 4, 'int'],
  0x0d: [Float32Array, 4, 'float'],
  0x0e: [Float64Array, 8, 'double'],
} as const;
type TypeCode = keyof typeof TYPES;

function hex(bytes: Uint8Array, n: number): string {
  return '0x' + Array.from(bytes.subarray(0, n), (b) => b.toString(16).padStart(2, '0')).join('');
}

/**
 * Reads an IDX file, plain or gzipped.
 *
 * ```ts
 * const { dims, data } = readIdx('/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz');
 * // dims = [10000], data = Uint8Array(10000)
 * ```
 * A file that is not IDX is an error naming the magic number found.
 */
export function readIdx(path: string): IdxTensor {
  let bytes: Uint8Array;
  try {
    bytes = readFileSync(path);
  } catch (e) {
    throw fileError(path, e);
  }
  if (bytes.length >= 2 && bytes[0] === 0x1f && bytes[1] === 0x8b) {
    try {
      bytes = gunzipSync(bytes);
    } catch (e) {
      throw new DataError(path, `starts like gzip (1f 8b) but does not decompress: ${(e as Error).message}`);
    }
  }
  return parseIdx(bytes, path);
}

/** Parses IDX bytes (already decompressed). `source` names them in error messages. */
export function parseIdx(bytes: Uint8Array, source = 'idx'): IdxTensor {
  const code = bytes[2] as TypeCode;
  if (bytes.length < 4 || bytes[0] !== 0 || bytes[1] !== 0 || !(code in TYPES) || bytes[3] === 0) {
    throw new DataError(
      source,
      `not an IDX file: expected a magic number 0x0000TTDD (TT a type in 08 09 0b 0c 0d 0e, DD ≥ 1 dimensions), found ${bytes.length < 4 ? `${bytes.length} bytes` : hex(bytes, 4)}`,
    );
  }
  const ndims = bytes[3]!;
  const [Ctor, size] = TYPES[code];
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerBytes = 4 + 4 * ndims;
  if (bytes.length < headerBytes) throw new DataError(source, `expected ${ndims} dimension sizes (${headerBytes} header bytes), found ${bytes.length} bytes`);
  const dims: number[] = [];
  let count = 1;
  for (let i = 0; i < ndims; i++) {
    const d = view.getUint32(4 + 4 * i, false);
    dims.push(d);
    count *= d;
  }
  const expected = headerBytes + count * size;
  if (bytes.length !== expected) {
    throw new DataError(source, `dims [${dims.join(', ')}] need ${expected} bytes, found ${bytes.length}`);
  }
  const data = new Ctor(count);
  if (size === 1) {
    (data as Uint8Array).set(new (Ctor as typeof Uint8Array)(bytes.buffer, bytes.byteOffset + headerBytes, count));
  } else {
    for (let i = 0, o = headerBytes; i < count; i++, o += size) {
      if (code === 0x0b) data[i] = view.getInt16(o, false);
      else if (code === 0x0c) data[i] = view.getInt32(o, false);
      else if (code === 0x0d) data[i] = view.getFloat32(o, false);
      else data[i] = view.getFloat64(o, false);
    }
  }
  return { dims, data };
}

/** Encodes a tensor as IDX bytes (big-endian, as the format wants). */
export function encodeIdx(tensor: IdxTensor): Uint8Array {
  const { dims, data } = tensor;
  const entry = Object.entries(TYPES).find(([, [C]]) => data instanceof C);
  if (!entry) throw invalidArgument('encodeIdx', 'data', 'Uint8Array, Int8Array, Int16Array, Int32Array, Float32Array or Float64Array', data);
  const code = Number(entry[0]) as TypeCode;
  const size = TYPES[code][1];
  const count = dims.reduce((a, b) => a * b, 1);
  if (dims.length < 1 || dims.length > 255 || count !== data.length) {
    throw invalidArgument('encodeIdx', 'dims', `1 to 255 sizes whose product is data.length = ${data.length}`, `[${dims.join(', ')}]`);
  }
  const header = 4 + 4 * dims.length;
  const out = new Uint8Array(header + count * size);
  const view = new DataView(out.buffer);
  out[2] = code;
  out[3] = dims.length;
  dims.forEach((d, i) => view.setUint32(4 + 4 * i, d, false));
  for (let i = 0, o = header; i < count; i++, o += size) {
    const v = data[i]!;
    if (code === 0x08) out[o] = v;
    else if (code === 0x09) view.setInt8(o, v);
    else if (code === 0x0b) view.setInt16(o, v, false);
    else if (code === 0x0c) view.setInt32(o, v, false);
    else if (code === 0x0d) view.setFloat32(o, v, false);
    else view.setFloat64(o, v, false);
  }
  return out;
}

/** Writes a tensor as an IDX file, gzipped when `gzip` is true. */
export function writeIdx(path: string, tensor: IdxTensor, options: { gzip?: boolean } = {}): void {
  const bytes = encodeIdx(tensor);
  writeFileSync(path, options.gzip ? gzipSync(bytes) : bytes);
}

/** Images and labels as training wants them. */
export interface ImageSet {
  /** Pixels scaled to [0, 1], one image per row. (length, width) */
  features: Float32Array;
  /** Class of each image. (length) */
  labels: Int32Array;
  length: number;
  /** Values per image: rows × cols of the images (784 for MNIST). */
  width: number;
  /** Image shape [rows, cols]. */
  shape: [number, number];
  numClasses: number;
}

/** Finds `<dir>/<name>` or `<dir>/<name>.gz`, also the `train-images.idx3-ubyte` spelling. */
function findIdxFile(dir: string, name: string): string {
  const alt = name.replace(/-idx(\d)-ubyte$/, '.idx$1-ubyte');
  const candidates = [name, name + '.gz', alt, alt + '.gz'].map((n) => join(dir, n));
  const found = candidates.find((p) => existsSync(p));
  if (!found) throw new DataError(dir, `expected an IDX file named ${name} or ${name}.gz, found none`);
  return found;
}

/**
 * Loads one split ('train' or 't10k') of an MNIST-layout directory:
 * `<split>-images-idx3-ubyte[.gz]` and `<split>-labels-idx1-ubyte[.gz]`.
 */
export function loadIdxImages(dir: string, split: 'train' | 't10k'): ImageSet {
  const imagesPath = findIdxFile(dir, `${split}-images-idx3-ubyte`);
  const labelsPath = findIdxFile(dir, `${split}-labels-idx1-ubyte`);
  const images = readIdx(imagesPath);
  const labels = readIdx(labelsPath);
  if (images.dims.length !== 3 || !(images.data instanceof Uint8Array)) {
    throw new DataError(imagesPath, `expected ubyte images of 3 dimensions [n, rows, cols], found ${images.data.constructor.name} [${images.dims.join(', ')}]`);
  }
  if (labels.dims.length !== 1) throw new DataError(labelsPath, `expected labels of 1 dimension [n], found [${labels.dims.join(', ')}]`);
  const [n, rows, cols] = images.dims as [number, number, number];
  if (labels.dims[0] !== n) throw new DataError(labelsPath, `expected ${n} labels (one per image in ${imagesPath}), found ${labels.dims[0]}`);
  const features = new Float32Array(n * rows * cols); // (n, rows·cols)
  const px = images.data;
  for (let i = 0; i < px.length; i++) features[i] = px[i]! / 255;
  const y = Int32Array.from(labels.data as ArrayLike<number>);
  let max = 0;
  for (let i = 0; i < n; i++) {
    if (!(y[i]! >= 0)) throw new DataError(labelsPath, `label ${i}: expected a class ≥ 0, found ${y[i]}`);
    if (y[i]! > max) max = y[i]!;
  }
  return { features, labels: y, length: n, width: rows * cols, shape: [rows, cols], numClasses: max + 1 };
}

/**
 * Loads an MNIST / Fashion-MNIST directory (train-* and t10k-* files, gzipped or plain).
 *
 * ```ts
 * const { train, test } = loadIdxDataset('/usr/share/datasets/fashion-mnist');
 * train.features; // Float32Array (60000, 784) in [0, 1]
 * train.labels;   // Int32Array (60000)
 * ```
 */
export function loadIdxDataset(dir: string): { train: ImageSet; test: ImageSet } {
  return { train: loadIdxImages(dir, 'train'), test: loadIdxImages(dir, 't10k') };
}

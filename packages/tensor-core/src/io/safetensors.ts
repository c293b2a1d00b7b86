/**
 * The safetensors format, as read by PyTorch's `safetensors.torch.load_file`:
 *
 *   8 bytes   N, the header length, unsigned little-endian
 *   N bytes   a JSON object: name → { dtype, shape, data_offsets: [begin, end] }, plus an optional
 *             "__metadata__" of string → string; padded with spaces to a multiple of 8
 *   rest      the tensors' bytes, little-endian, at data_offsets relative to the start of this part
 *
 * Loom writes float32 (F32) and int32 (I32) tensors, and reads those plus F64, F16, BF16 and I64
 * (converted to float32 / int32). Every check on a file names the file and the field at fault.
 */
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { fileError, fmtShape } from '../errors.js';
import { IntTensor, Tensor, numel } from '../autograd/tensor.js';

const ITEM_SIZE: Record<string, number> = { F32: 4, F64: 8, F16: 2, BF16: 2, I32: 4, I64: 8 };

export interface Safetensors {
  tensors: Record<string, Tensor | IntTensor>;
  metadata: Record<string, string>;
}

/** Encodes tensors (in the given key order) and string metadata as a safetensors file. */
export function encodeSafetensors(tensors: Record<string, Tensor | IntTensor>, metadata: Record<string, string> = {}): Uint8Array {
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length > 0) header.__metadata__ = metadata;
  let offset = 0;
  const entries = Object.entries(tensors);
  for (const [name, t] of entries) {
    const bytes = t.data.byteLength;
    header[name] = { dtype: t instanceof IntTensor ? 'I32' : 'F32', shape: [...t.shape], data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - ((8 + Buffer.byteLength(json)) % 8)) % 8);
  const headerBytes = Buffer.from(json, 'utf8');
  const out = new Uint8Array(8 + headerBytes.length + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(headerBytes.length), true);
  out.set(headerBytes, 8);
  let pos = 8 + headerBytes.length;
  for (const [, t] of entries) {
    out.set(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength), pos);
    pos += t.data.byteLength;
  }
  return out;
}

/** Decodes a safetensors file; `source` names it in errors. */
export function decodeSafetensors(bytes: Uint8Array, source = 'safetensors buffer'): Safetensors {
  if (bytes.length < 8) throw fileError(source, `file is ${bytes.length} bytes, too short for the 8-byte header length`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLen = view.getBigUint64(0, true);
  if (headerLen > BigInt(bytes.length - 8)) {
    throw fileError(source, `header length ${headerLen} exceeds the ${bytes.length - 8} bytes after it (truncated or not a safetensors file)`);
  }
  const n = Number(headerLen);
  let header: unknown;
  try {
    header = JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset + 8, n).toString('utf8'));
  } catch (e) {
    throw fileError(source, `header is not valid JSON (${(e as Error).message})`);
  }
  if (header === null || typeof header !== 'object' || Array.isArray(header)) throw fileError(source, 'header is not a JSON object');
  const dataStart = 8 + n;
  const dataLen = bytes.length - dataStart;
  const tensors: Record<string, Tensor | IntTensor> = {};
  let metadata: Record<string, string> = {};
  const spans: Array<[number, number, string]> = [];
  for (const [name, raw] of Object.entries(header as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (raw === null || typeof raw !== 'object' || Object.values(raw).some((v) => typeof v !== 'string')) {
        throw fileError(source, '__metadata__ must map strings to strings');
      }
      metadata = raw as Record<string, string>;
      continue;
    }
    const at = `tensor '${name}'`;
    const info = raw as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (info === null || typeof info !== 'object') throw fileError(source, `${at}: entry is not an object`);
    const { dtype, shape, data_offsets: offsets } = info;
    if (typeof dtype !== 'string' || !(dtype in ITEM_SIZE)) {
      throw fileError(source, `${at}: unsupported dtype ${JSON.stringify(dtype)} (supported: ${Object.keys(ITEM_SIZE).join(', ')})`);
    }
    if (!Array.isArray(shape) || !shape.every((d) => Number.isInteger(d) && d >= 0)) {
      throw fileError(source, `${at}: shape ${JSON.stringify(shape)} is not a list of non-negative integers`);
    }
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every((o) => Number.isInteger(o) && o >= 0) || offsets[0] > offsets[1]) {
      throw fileError(source, `${at}: data_offsets ${JSON.stringify(offsets)} is not [begin, end] with 0 ≤ begin ≤ end`);
    }
    const [begin, end] = offsets as [number, number];
    const need = numel(shape) * ITEM_SIZE[dtype]!;
    if (end - begin !== need) {
      throw fileError(source, `${at}: data_offsets [${begin}, ${end}] hold ${end - begin} bytes but ${dtype} ${fmtShape(shape)} needs ${need}`);
    }
    if (end > dataLen) {
      throw fileError(source, `${at}: data ends at byte ${end} but the data section has only ${dataLen} bytes (truncated file)`);
    }
    spans.push([begin, end, name]);
    tensors[name] = decodeTensor(dtype, shape, bytes.subarray(dataStart + begin, dataStart + end), source, at);
  }
  spans.sort((a, b) => a[0] - b[0]);
  for (let i = 1; i < spans.length; i++) {
    if (spans[i]![0] < spans[i - 1]![1]) throw fileError(source, `tensors '${spans[i - 1]![2]}' and '${spans[i]![2]}' overlap`);
  }
  return { tensors, metadata };
}

function decodeTensor(dtype: string, shape: number[], raw: Uint8Array, source: string, at: string): Tensor | IntTensor {
  // A copy: aligned, and owned by the tensor rather than the file buffer. (Not raw.slice(): on a
  // Node Buffer, slice is a view.)
  const copy = new Uint8Array(raw);
  const count = numel(shape);
  const dv = new DataView(copy.buffer);
  switch (dtype) {
    case 'F32':
      return new Tensor(new Float32Array(copy.buffer, 0, count), shape);
    case 'I32':
      return new IntTensor(new Int32Array(copy.buffer, 0, count), shape);
    case 'F64':
      return new Tensor(Float32Array.from(new Float64Array(copy.buffer, 0, count)), shape);
    case 'F16':
    case 'BF16': {
      const out = new Float32Array(count);
      for (let i = 0; i < count; i++) out[i] = dtype === 'F16' ? halfToFloat(dv.getUint16(2 * i, true)) : bf16ToFloat(dv.getUint16(2 * i, true));
      return new Tensor(out, shape);
    }
    default: {
      // I64: labels and indices saved by PyTorch; they must fit int32.
      const out = new Int32Array(count);
      for (let i = 0; i < count; i++) {
        const v = dv.getBigInt64(8 * i, true);
        if (v > 2147483647n || v < -2147483648n) throw fileError(source, `${at}: I64 value ${v} at element ${i} does not fit int32`);
        out[i] = Number(v);
      }
      return new IntTensor(out, shape);
    }
  }
}

function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * 2 ** -14 * (frac / 1024);
  if (exp === 31) return frac ? NaN : sign * Infinity;
  return sign * 2 ** (exp - 15) * (1 + frac / 1024);
}

function bf16ToFloat(b: number): number {
  const f = new Float32Array(1);
  new Uint32Array(f.buffer)[0] = b << 16;
  return f[0]!;
}

/**
 * Writes tensors to `path` atomically: to a temporary file first, then renamed into place, so a
 * crash never leaves a partial file where a good one was.
 */
export function saveSafetensors(path: string, tensors: Record<string, Tensor | IntTensor>, metadata: Record<string, string> = {}): void {
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, encodeSafetensors(tensors, metadata));
  renameSync(tmp, path);
}

/** Reads a safetensors file. */
export function loadSafetensors(path: string): Safetensors {
  let bytes: Uint8Array;
  try {
    bytes = readFileSync(path);
  } catch (e) {
    throw fileError(path, `cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  return decodeSafetensors(bytes, path);
}

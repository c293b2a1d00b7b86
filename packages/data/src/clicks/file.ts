// A click log on disk, so that other programs (PyTorch's side of a benchmark) train on exactly the
// impressions Loom does. The layout is plain: an 8-byte magic, a little-endian u32 header length,
// a JSON header, then each column as raw little-endian values at the 8-aligned offset the header
// gives, so numpy reads a column with one frombuffer call.
//
//   "LOOMCLK1" | u32 n | n bytes of JSON, space-padded | column … column
//
// Header: { version: 1, rows, historyLength, denseWidth, numUsers, numArticles, validStart, seed,
// scale, alpha, columns: { name: { dtype: 'int32' | 'float32' | 'float64', offset, shape } } }.
// Columns: user, article, category, subcategory (rows), history (rows, historyLength),
// dense (rows, denseWidth), label, time (rows), and the article table: articleCategory,
// articleSubcategory, articlePublishedAt, articlePopularity (numArticles).

import { closeSync, openSync, readFileSync, writeSync } from 'node:fs';
import { DataError, fileError } from '../errors.js';
import type { ClickArticles, ClickChunk, ClickLog } from './generate.js';

const MAGIC = 'LOOMCLK1';
const VERSION = 1;
type Dtype = 'int32' | 'float32' | 'float64';
const BYTES: Record<Dtype, number> = { int32: 4, float32: 4, float64: 8 };
const ARRAY = { int32: Int32Array, float32: Float32Array, float64: Float64Array } as const;

interface ColumnInfo {
  dtype: Dtype;
  offset: number;
  shape: number[];
}

export interface ClickFileHeader {
  version: number;
  rows: number;
  historyLength: number;
  denseWidth: number;
  numUsers: number;
  numArticles: number;
  /** Rows at or after this index (of the file's rows) are the held-out later impressions. */
  validStart: number;
  seed: number;
  scale: number;
  alpha: number;
  columns: Record<string, ColumnInfo>;
}

/** A click log read back whole: its impressions as one chunk, the article table and the header. */
export interface ClickFile {
  header: ClickFileHeader;
  impressions: ClickChunk;
  articles: ClickArticles;
}

const align8 = (n: number) => (n + 7) & ~7;

/** Column names, types and widths (values per row; 0 marks an article-table column). */
function layout(h: number, d: number): [string, Dtype, number][] {
  return [
    ['user', 'int32', 1],
    ['article', 'int32', 1],
    ['category', 'int32', 1],
    ['subcategory', 'int32', 1],
    ['history', 'int32', h],
    ['dense', 'float32', d],
    ['label', 'float32', 1],
    ['time', 'float32', 1],
    ['articleCategory', 'int32', 0],
    ['articleSubcategory', 'int32', 0],
    ['articlePublishedAt', 'float64', 0],
    ['articlePopularity', 'float32', 0],
  ];
}

/**
 * Writes the impressions [start, end) of `log` (default: all) to `path`, streaming a chunk at a
 * time. Rows before the log's validStart are training rows; the header's validStart is relative to `start`.
 */
export function writeClickLog(log: ClickLog, path: string, range: readonly [number, number] = [0, log.numImpressions]): ClickFileHeader {
  const rows = range[1] - range[0];
  const columns: Record<string, ColumnInfo> = {};
  const cols = layout(log.historyLength, log.denseWidth);
  const headerOf = (start: number): ClickFileHeader => ({
    version: VERSION, rows, historyLength: log.historyLength, denseWidth: log.denseWidth, numUsers: log.numUsers, numArticles: log.numArticles,
    validStart: Math.min(rows, Math.max(0, log.validStart - range[0])), seed: log.seed, scale: log.scale, alpha: log.alpha, columns,
  });
  // Lay out the columns after a header whose length is fixed first (offsets are padded to 12 digits).
  for (const [name, dtype, width] of cols) columns[name] = { dtype, offset: 1e11, shape: width === 0 ? [log.numArticles] : width === 1 ? [rows] : [rows, width] };
  const headerBytes = align8(MAGIC.length + 4 + Buffer.byteLength(JSON.stringify(headerOf(0))));
  let at = headerBytes;
  for (const [name, dtype] of cols) {
    const c = columns[name]!;
    c.offset = at;
    at = align8(at + c.shape.reduce((a, b) => a * b, 1) * BYTES[dtype]);
  }
  const json = JSON.stringify(headerOf(0));
  const head = Buffer.alloc(headerBytes, 0x20);
  head.write(MAGIC, 0, 'latin1');
  head.writeUInt32LE(headerBytes - MAGIC.length - 4, MAGIC.length);
  head.write(json, MAGIC.length + 4, 'utf8');
  let fd: number;
  try {
    fd = openSync(path, 'w');
  } catch (e) {
    throw fileError(path, e);
  }
  try {
    writeSync(fd, head, 0, head.length, 0);
    const put = (name: string, a: ArrayBufferView, firstRow: number, width: number) => {
      const c = columns[name]!;
      writeSync(fd, new Uint8Array(a.buffer, a.byteOffset, a.byteLength), 0, a.byteLength, c.offset + firstRow * width * BYTES[c.dtype]);
    };
    for (const chunk of log.chunks(65536, range)) {
      const r = chunk.start - range[0];
      for (const [name, , width] of cols) if (width > 0) put(name, chunk[name as keyof ClickChunk] as ArrayBufferView, r, width);
    }
    const a = log.articles;
    put('articleCategory', a.category, 0, 1);
    put('articleSubcategory', a.subcategory, 0, 1);
    put('articlePublishedAt', a.publishedAt, 0, 1);
    put('articlePopularity', a.popularity, 0, 1);
  } finally {
    closeSync(fd);
  }
  return headerOf(0);
}

/** Reads a file written by writeClickLog; a wrong magic, version, header or size is an error naming the file. */
export function readClickLog(path: string): ClickFile {
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch (e) {
    throw fileError(path, e);
  }
  const bad = (detail: string) => new DataError(path, detail);
  if (bytes.length < MAGIC.length + 4 || bytes.toString('latin1', 0, MAGIC.length) !== MAGIC) throw bad(`not a Loom click log: expected the magic "${MAGIC}" at byte 0`);
  const n = bytes.readUInt32LE(MAGIC.length);
  if (MAGIC.length + 4 + n > bytes.length) throw bad(`header of ${n} bytes runs past the end of the file (${bytes.length} bytes)`);
  let header: ClickFileHeader;
  try {
    header = JSON.parse(bytes.toString('utf8', MAGIC.length + 4, MAGIC.length + 4 + n)) as ClickFileHeader;
  } catch (e) {
    throw bad(`header is not JSON: ${(e as Error).message}`);
  }
  if (header.version !== VERSION) throw bad(`click log version ${String(header.version)}; this reader reads version ${VERSION}`);
  // Copy into an 8-aligned buffer of our own so that every column is a typed-array view.
  const body = new ArrayBuffer(bytes.length);
  new Uint8Array(body).set(bytes);
  const view = (name: string) => {
    const c = header.columns?.[name];
    if (c === undefined || !(c.dtype in ARRAY)) throw bad(`header lacks the column "${name}"`);
    const count = c.shape.reduce((a, b) => a * b, 1);
    if (!(Number.isInteger(c.offset) && c.offset % 8 === 0 && c.offset + count * BYTES[c.dtype] <= bytes.length)) {
      throw bad(`column "${name}" (${count} × ${c.dtype} at byte ${c.offset}) does not fit in the file's ${bytes.length} bytes: truncated?`);
    }
    return new ARRAY[c.dtype](body, c.offset, count);
  };
  const impressions: ClickChunk = {
    start: 0,
    rows: header.rows,
    user: view('user') as Int32Array,
    article: view('article') as Int32Array,
    category: view('category') as Int32Array,
    subcategory: view('subcategory') as Int32Array,
    history: view('history') as Int32Array,
    dense: view('dense') as Float32Array,
    label: view('label') as Float32Array,
    time: view('time') as Float32Array,
  };
  const articles: ClickArticles = {
    category: view('articleCategory') as Int32Array,
    subcategory: view('articleSubcategory') as Int32Array,
    publishedAt: view('articlePublishedAt') as Float64Array,
    popularity: view('articlePopularity') as Float32Array,
  };
  return { header, impressions, articles };
}

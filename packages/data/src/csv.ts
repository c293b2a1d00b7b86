// CSV: a header row, then one record per line (RFC 4180 quoting: "a,b", "say ""hi""", and quoted
// fields may hold line breaks). One record reader serves both entry points: `readCsv` feeds it the
// whole file at once; `readCsvChunks` feeds it a stream 64 KiB at a time and yields Datasets of
// `chunkRows` rows, so a file larger than memory is read in constant memory.
//
// Column kinds: a column is numeric (Float64Array, missing → NaN) when every non-missing value
// parses as a decimal number, else categorical (string[], missing → ''). Declare a kind with
// `types` to skip inference. Streaming infers from the first chunk and then holds to it.

import { createReadStream, readFileSync } from 'node:fs';
import { type Column, type Dataset } from './dataset.js';
import { DataError, fileError, invalidArgument } from './errors.js';

export type ColumnKind = 'numeric' | 'categorical';

export interface CsvOptions {
  /** Field separator, one character. Default ','. */
  delimiter?: string;
  /** Declared column kinds; undeclared columns are inferred. */
  types?: Readonly<Record<string, ColumnKind>>;
  /** Values read as missing. Default: '', 'NA', 'N/A', 'NaN', 'nan', 'null', 'NULL'. */
  missing?: readonly string[];
}

export interface CsvChunkOptions extends CsvOptions {
  /** Rows per yielded Dataset (the last one may be shorter). Default 65536. */
  chunkRows?: number;
}

const DEFAULT_MISSING = ['', 'NA', 'N/A', 'NaN', 'nan', 'null', 'NULL'];
const NUMBER = /^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?$/;

/**
 * Reads a whole CSV file into a Dataset (synchronously). For files that do not fit in memory use
 * `readCsvChunks`.
 *
 * ```ts
 * const ds = readCsv('clicks.csv', { types: { userId: 'categorical' } });
 * ```
 * Errors name the file and line: `clicks.csv:17: expected 5 fields, found 4`.
 */
export function readCsv(path: string, options: CsvOptions = {}): Dataset {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw fileError(path, e);
  }
  return parseCsv(text, { ...options, source: path });
}

/** Parses CSV text (header row first). `source` names the text in error messages. */
export function parseCsv(text: string, options: CsvOptions & { source?: string } = {}): Dataset {
  const source = options.source ?? 'csv';
  const table = new TableBuilder(source, options);
  const reader = new CsvRecordReader(source, delimiterOf(options), (fields, line) => table.add(fields, line));
  reader.push(text);
  reader.end();
  return table.flush();
}

/**
 * Streams a CSV file as Datasets of `chunkRows` rows (the last may be shorter), reading 64 KiB at a
 * time. Column kinds are inferred from the first chunk (or declared with `types`); a later value
 * that breaks a numeric column is an error naming its line.
 *
 * ```ts
 * for await (const chunk of readCsvChunks('huge.csv', { chunkRows: 10_000 })) {
 *   total += chunk.length;
 * }
 * ```
 */
export async function* readCsvChunks(path: string, options: CsvChunkOptions = {}): AsyncGenerator<Dataset, void, undefined> {
  const chunkRows = options.chunkRows ?? 65536;
  if (!(Number.isInteger(chunkRows) && chunkRows > 0)) throw invalidArgument('readCsvChunks', 'chunkRows', 'a positive integer', chunkRows);
  const table = new TableBuilder(path, options);
  const ready: Dataset[] = [];
  const reader = new CsvRecordReader(path, delimiterOf(options), (fields, line) => {
    table.add(fields, line);
    if (table.rows === chunkRows) ready.push(table.flush());
  });
  const stream = createReadStream(path, { encoding: 'utf8', highWaterMark: 1 << 16 });
  try {
    for await (const text of stream) {
      reader.push(text as string);
      while (ready.length > 0) yield ready.shift()!;
    }
  } catch (e) {
    if (e instanceof DataError) throw e;
    throw fileError(path, e);
  } finally {
    stream.destroy();
  }
  reader.end();
  if (!table.sawHeader) throw new DataError(path, 'expected a header row, found an empty file');
  while (ready.length > 0) yield ready.shift()!;
  if (table.rows > 0 || !table.yieldedAny) yield table.flush();
}

function delimiterOf(options: CsvOptions): string {
  const d = options.delimiter ?? ',';
  if (d.length !== 1 || d === '"' || d === '\n' || d === '\r') throw invalidArgument('readCsv', 'delimiter', 'one character other than a quote or line break', d);
  return d;
}

type RecordSink = (fields: string[], line: number) => void;

/**
 * Splits text into records. Text may arrive in pieces cut anywhere; a record is emitted once it is
 * complete. Lines without a quote take a fast path (`split`); the rest are parsed field by field.
 * Empty lines are skipped. `line` is the 1-based line on which the record starts. Exported for
 * tests only (not from the package index).
 */
export class CsvRecordReader {
  private buf = '';
  private pos = 0;
  private line = 1;
  private quoteAt = -1; // index of the first '"' at or after pos, buf.length when none; -1 = unknown

  constructor(
    private readonly source: string,
    private readonly delim: string,
    private readonly sink: RecordSink,
  ) {}

  push(text: string): void {
    if (this.buf.length === 0 && this.line === 1 && text.charCodeAt(0) === 0xfeff) text = text.slice(1); // BOM
    this.buf = this.pos < this.buf.length ? this.buf.slice(this.pos) + text : text;
    this.pos = 0;
    this.quoteAt = -1;
    this.scan(false);
  }

  end(): void {
    this.scan(true);
    this.buf = '';
    this.pos = 0;
  }

  private scan(final: boolean): void {
    const buf = this.buf;
    while (this.pos < buf.length) {
      const pos = this.pos;
      let nl = buf.indexOf('\n', pos);
      if (nl < 0) {
        if (!final) return;
        nl = buf.length;
      }
      if (this.quoteAt < pos) {
        const q = buf.indexOf('"', pos);
        this.quoteAt = q < 0 ? buf.length : q;
      }
      if (this.quoteAt >= nl) {
        let end = nl;
        if (end > pos && buf.charCodeAt(end - 1) === 13) end--;
        if (end > pos) this.sink(buf.slice(pos, end).split(this.delim), this.line);
        this.line++;
        this.pos = nl + 1;
      } else if (!this.parseQuotedRecord(final)) {
        return;
      }
    }
  }

  /** Parses one record containing quotes from `pos`. False when the buffer ends mid-record. */
  private parseQuotedRecord(final: boolean): boolean {
    const { buf, delim } = this;
    const n = buf.length;
    const fields: string[] = [];
    let i = this.pos;
    for (;;) {
      if (buf[i] === '"') {
        let value = '';
        let j = i + 1;
        for (;;) {
          const q = buf.indexOf('"', j);
          if (q < 0) {
            if (!final) return false;
            throw new DataError(`${this.source}:${this.line}`, 'unterminated quoted field: expected a closing quote, found the end of the file');
          }
          value += buf.slice(j, q);
          if (q + 1 >= n && !final) return false; // "" split across pieces?
          if (buf[q + 1] === '"') {
            value += '"';
            j = q + 2;
            continue;
          }
          i = q + 1;
          break;
        }
        fields.push(value);
        if (i >= n) {
          if (!final) return false;
          break;
        }
        const c = buf[i];
        if (c === delim) {
          i++;
          continue;
        }
        if (c === '\n') {
          i++;
          break;
        }
        if (c === '\r' && (buf[i + 1] === '\n' || (i + 1 >= n && final))) {
          if (i + 1 >= n) i++;
          else i += 2;
          break;
        }
        if (c === '\r' && i + 1 >= n) return false;
        const lineOfQuote = this.line + countNewlines(buf, this.pos, i);
        throw new DataError(`${this.source}:${lineOfQuote}`, `expected ${JSON.stringify(delim)} or end of line after a closing quote, found ${JSON.stringify(c)}`);
      } else {
        const d = buf.indexOf(delim, i);
        const nl = buf.indexOf('\n', i);
        if (d >= 0 && (nl < 0 || d < nl)) {
          fields.push(buf.slice(i, d));
          i = d + 1;
          continue;
        }
        if (nl < 0) {
          if (!final) return false;
          fields.push(buf.slice(i));
          i = n;
          break;
        }
        fields.push(buf.slice(i, nl > i && buf.charCodeAt(nl - 1) === 13 ? nl - 1 : nl));
        i = nl + 1;
        break;
      }
    }
    const startLine = this.line;
    this.line += countNewlines(buf, this.pos, i);
    this.pos = i;
    this.sink(fields, startLine);
    return true;
  }
}

function countNewlines(s: string, from: number, to: number): number {
  let k = 0;
  for (let i = s.indexOf('\n', from); i >= 0 && i < to; i = s.indexOf('\n', i + 1)) k++;
  return k;
}

/** Collects records as raw strings per column, then converts them to typed columns on flush. */
class TableBuilder {
  sawHeader = false;
  yieldedAny = false;
  rows = 0;
  private names: string[] = [];
  private raw: string[][] = [];
  private lines: number[] = [];
  private kinds: ColumnKind[] | null = null; // fixed after the first flush
  private readonly missing: Set<string>;

  constructor(
    private readonly source: string,
    private readonly options: CsvOptions,
  ) {
    this.missing = new Set(options.missing ?? DEFAULT_MISSING);
  }

  add(fields: string[], line: number): void {
    if (!this.sawHeader) {
      this.header(fields, line);
      return;
    }
    if (fields.length !== this.names.length) {
      throw new DataError(`${this.source}:${line}`, `expected ${this.names.length} fields, found ${fields.length}`);
    }
    for (let j = 0; j < fields.length; j++) this.raw[j]!.push(fields[j]!);
    this.lines.push(line);
    this.rows++;
  }

  private header(fields: string[], line: number): void {
    this.sawHeader = true;
    const seen = new Set<string>();
    this.names = fields.map((f, j) => {
      const name = f.trim();
      if (name === '') throw new DataError(`${this.source}:${line}`, `header: expected a name for column ${j + 1}, found an empty field`);
      if (seen.has(name)) throw new DataError(`${this.source}:${line}`, `header: expected distinct column names, found ${JSON.stringify(name)} twice`);
      seen.add(name);
      return name;
    });
    for (const declared of Object.keys(this.options.types ?? {})) {
      if (!seen.has(declared)) throw new DataError(`${this.source}:${line}`, `types declares column ${JSON.stringify(declared)}, which the header does not have`);
    }
    this.raw = this.names.map(() => []);
  }

  flush(): Dataset {
    if (!this.sawHeader) throw new DataError(this.source, 'expected a header row, found an empty file');
    const first = this.kinds === null;
    const kinds = (this.kinds ??= this.names.map((name) => this.options.types?.[name] ?? 'numeric'));
    const columns = new Map<string, Column>();
    this.names.forEach((name, j) => {
      const raw = this.raw[j]!;
      if (kinds[j] === 'categorical') {
        columns.set(name, this.toStrings(raw));
        return;
      }
      // Inference and parsing in one pass: an undeclared column of the first chunk that does not
      // parse becomes categorical; a later chunk, or a declared column, must parse.
      const inferring = first && this.options.types?.[name] === undefined;
      const numbers = this.toNumbers(name, raw, inferring);
      if (numbers) columns.set(name, numbers);
      else {
        kinds[j] = 'categorical';
        columns.set(name, this.toStrings(raw));
      }
    });
    const ds: Dataset = { length: this.rows, columns, source: this.source };
    this.raw = this.names.map(() => []);
    this.lines = [];
    this.rows = 0;
    this.yieldedAny = true;
    return ds;
  }

  /** The values as numbers, or null when one does not parse and `inferring` (else an error naming its line). */
  private toNumbers(name: string, values: string[], inferring: boolean): Float64Array | null {
    const out = new Float64Array(values.length);
    for (let r = 0; r < values.length; r++) {
      const t = values[r]!.trim();
      if (this.missing.has(t)) out[r] = NaN;
      else if (NUMBER.test(t)) out[r] = +t;
      else if (inferring) return null;
      else {
        const how = this.options.types?.[name] === 'numeric' ? 'declared numeric' : 'read as numeric from the first chunk';
        throw new DataError(
          `${this.source}:${this.lines[r]}`,
          `column ${JSON.stringify(name)} (${how}): expected a number, found ${JSON.stringify(values[r])}; declare it with types: { ${JSON.stringify(name)}: 'categorical' }`,
        );
      }
    }
    return out;
  }

  private toStrings(values: string[]): string[] {
    for (let r = 0; r < values.length; r++) if (this.missing.has(values[r]!)) values[r] = '';
    return values;
  }
}

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CsvRecordReader, parseCsv, readCsv, readCsvChunks } from './csv.js';
import { toLabels } from './dataset.js';
import { DataError } from './errors.js';

const fixtures = new URL('../fixtures/', import.meta.url).pathname;
const tmp = mkdtempSync(join(tmpdir(), 'loom-csv-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

async function collect(path: string, chunkRows: number) {
  const chunks = [];
  for await (const c of readCsvChunks(path, { chunkRows })) chunks.push(c);
  return chunks;
}

describe('readCsv on the committed reading log', () => {
  const ds = readCsv(join(fixtures, 'reading-log.csv'));

  it('reads every record, including a quoted field spanning two lines', () => {
    expect(ds.length).toBe(10);
    expect([...ds.columns.keys()]).toEqual(['userId', 'articleId', 'category', 'dwellSeconds', 'device', 'title']);
    const title = ds.columns.get('title') as string[];
    expect(title[0]).toBe('Budget vote, explained');
    expect(title[3]).toBe('The "derby" report');
    expect(title[5]).toBe('Chips:\na two-line title');
  });

  it('infers numeric and categorical columns; missing values become NaN and ""', () => {
    const dwell = ds.columns.get('dwellSeconds')!;
    expect(dwell).toBeInstanceOf(Float64Array);
    expect(Array.from(dwell as Float64Array)).toEqual([35, 12, 12, NaN, 48, 60, NaN, 35, 22, 90]);
    expect(ds.columns.get('device')).toEqual(['mobile', 'mobile', 'mobile', 'desktop', '', 'tablet', 'tablet', 'mobile', '', 'desktop']);
    expect(ds.columns.get('category')).toBeInstanceOf(Array);
  });

  it('honours declared kinds', () => {
    const typed = readCsv(join(fixtures, 'reading-log.csv'), { types: { userId: 'categorical' } });
    expect(typed.columns.get('userId')).toEqual(['1', '1', '1', '2', '2', '3', '3', '1', '4', '4']);
  });

  it('names a missing label column and the columns there are', () => {
    expect(() => toLabels(ds, 'label')).toThrow(DataError);
    expect(() => toLabels(ds, 'label')).toThrow(/reading-log\.csv: no column "label"; the columns are "userId", "articleId"/);
    expect(toLabels(ds, 'category').classes).toEqual(['business', 'food', 'politics', 'science', 'sports', 'technology', 'travel']);
  });
});

describe('bad input', () => {
  it('a malformed line: the error names file and line (counting lines inside quotes)', () => {
    const path = join(fixtures, 'bad-row.csv');
    expect(() => readCsv(path)).toThrow(`bad-row.csv:5: expected 3 fields, found 2`);
  });

  it('the same error when streaming', async () => {
    await expect(collect(join(fixtures, 'bad-row.csv'), 2)).rejects.toThrow(`bad-row.csv:5: expected 3 fields, found 2`);
  });

  it('a missing file', async () => {
    const path = join(tmp, 'nope.csv');
    expect(() => readCsv(path)).toThrow(`${path}: no such file`);
    await expect(collect(path, 10)).rejects.toThrow(`${path}: no such file`);
  });

  it('an unterminated quote, text after a closing quote, an empty file, a bad header', () => {
    expect(() => parseCsv('a,b\n1,"x\n2,3\n', { source: 'q.csv' })).toThrow('q.csv:2: unterminated quoted field');
    expect(() => parseCsv('a,b\n1,"x"y\n', { source: 'q.csv' })).toThrow(`q.csv:2: expected "," or end of line after a closing quote, found "y"`);
    expect(() => parseCsv('', { source: 'e.csv' })).toThrow('e.csv: expected a header row, found an empty file');
    expect(() => parseCsv('a,a\n1,2\n', { source: 'h.csv' })).toThrow('h.csv:1: header: expected distinct column names, found "a" twice');
    expect(() => parseCsv('a,b\n1,2\n', { types: { c: 'numeric' } })).toThrow('types declares column "c"');
  });

  it('a declared numeric column with text names the line', () => {
    expect(() => parseCsv('a,b\n1,2\n3,x\n', { source: 'n.csv', types: { b: 'numeric' } })).toThrow(`n.csv:3: column "b" (declared numeric): expected a number, found "x"`);
  });
});

describe('parsing details', () => {
  it('CRLF line ends, a BOM, blank lines, a custom delimiter, a trailing empty field', () => {
    const ds = parseCsv('\uFEFFx;y;z\r\n1;"a;b";\r\n\r\n2;c;3\r\n', { delimiter: ';' });
    expect(ds.length).toBe(2);
    expect(Array.from(ds.columns.get('x') as Float64Array)).toEqual([1, 2]);
    expect(ds.columns.get('y')).toEqual(['a;b', 'c']);
    expect(Array.from(ds.columns.get('z') as Float64Array)).toEqual([NaN, 3]);
  });

  it('numbers: signs, decimals, exponents; hex and words are text', () => {
    const ds = parseCsv('n,m\n-1.5,0x10\n+.25e2,12\n3.,abc\n');
    expect(Array.from(ds.columns.get('n') as Float64Array)).toEqual([-1.5, 25, 3]);
    expect(ds.columns.get('m')).toEqual(['0x10', '12', 'abc']);
  });

  it('gives the same records however the text is cut into pieces', () => {
    const text = 'a,b,c\n1,"x,""y""\nz",3\r\n\n4,5,"6"\n7,,"8\r\n9"';
    const whole: [string[], number][] = [];
    const r0 = new CsvRecordReader('t', ',', (f, l) => whole.push([f, l]));
    r0.push(text);
    r0.end();
    expect(whole).toEqual([
      [['a', 'b', 'c'], 1],
      [['1', 'x,"y"\nz', '3'], 2],
      [['4', '5', '6'], 5],
      [['7', '', '8\r\n9'], 6],
    ]);
    for (let cut = 1; cut < text.length; cut++) {
      for (const size of [1, 2, 3, 7]) {
        const got: [string[], number][] = [];
        const r = new CsvRecordReader('t', ',', (f, l) => got.push([f, l]));
        r.push(text.slice(0, cut));
        for (let i = cut; i < text.length; i += size) r.push(text.slice(i, i + size));
        r.end();
        expect(got).toEqual(whole);
      }
    }
  });
});

describe('readCsvChunks', () => {
  // A file of several 64 KiB stream pieces, with quoted commas and line breaks scattered through it.
  const path = join(tmp, 'big.csv');
  const rows = 20000;
  const lines = ['id,value,label'];
  for (let i = 0; i < rows; i++) lines.push(`${i},${i % 7 === 0 ? '' : (i * 0.5).toString()},${i % 13 === 0 ? `"l,${i}\nnext"` : `l${i % 5}`}`);
  writeFileSync(path, lines.join('\n') + '\n');

  it('yields chunks of chunkRows rows that together equal readCsv', async () => {
    const chunks = await collect(path, 3000);
    expect(chunks.map((c) => c.length)).toEqual([3000, 3000, 3000, 3000, 3000, 3000, 2000]);
    const all = readCsv(path);
    const ids = chunks.flatMap((c) => Array.from(c.columns.get('id') as Float64Array));
    const values = chunks.flatMap((c) => Array.from(c.columns.get('value') as Float64Array));
    const labels = chunks.flatMap((c) => c.columns.get('label') as string[]);
    expect(ids).toEqual(Array.from(all.columns.get('id') as Float64Array));
    expect(values).toEqual(Array.from(all.columns.get('value') as Float64Array));
    expect(labels).toEqual(all.columns.get('label'));
    expect(labels[13]).toBe('l,13\nnext');
  });

  it('holds to the kinds inferred from the first chunk and names the line that breaks them', async () => {
    const p = join(tmp, 'drift.csv');
    writeFileSync(p, 'a,b\n' + Array.from({ length: 10 }, (_, i) => `${i},${i}`).join('\n') + '\n10,ten\n');
    await expect(collect(p, 5)).rejects.toThrow(`drift.csv:12: column "b" (read as numeric from the first chunk): expected a number, found "ten"`);
  });

  it('a header-only file yields one empty chunk', async () => {
    const p = join(tmp, 'header.csv');
    writeFileSync(p, 'a,b\n');
    const chunks = await collect(p, 5);
    expect(chunks.map((c) => c.length)).toEqual([0]);
  });
});

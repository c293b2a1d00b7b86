// Every error @loom/data throws is built here, so that all of them read the same way:
// where (file:line when there is one), what was expected, and what was found.

/** The one error class of @loom/data. `where` is the file (and line) or the function at fault. */
export class DataError extends Error {
  override name = 'DataError';
  constructor(
    readonly where: string,
    readonly detail: string,
  ) {
    super(`${where}: ${detail}`);
  }
}

/** Short, readable rendering of a value for messages: strings quoted and cut at 40 characters. */
export function show(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value.length > 40 ? value.slice(0, 37) + '...' : value);
  if (typeof value === 'number' || typeof value === 'boolean' || value === null || value === undefined) return String(value);
  if (Array.isArray(value)) return `array(${value.length})`;
  if (ArrayBuffer.isView(value)) return `${value.constructor.name}(${(value as Float32Array).length})`;
  return typeof value;
}

/** `fn: invalid name: expected ..., found ...` */
export function invalidArgument(fn: string, name: string, expected: string, found: unknown): DataError {
  return new DataError(fn, `invalid ${name}: expected ${expected}, found ${show(found)}`);
}

/** A file that cannot be opened, with the reason the OS gave (ENOENT becomes "no such file"). */
export function fileError(path: string, cause: unknown): DataError {
  const code = (cause as { code?: string } | null)?.code;
  if (code === 'ENOENT') return new DataError(path, 'no such file');
  if (code === 'EISDIR') return new DataError(path, 'expected a file, found a directory');
  return new DataError(path, `cannot read: ${(cause as Error)?.message ?? String(cause)}`);
}

/** A dataset lacks a column someone asked for; lists the columns it does have. */
export function missingColumn(source: string, name: string, available: Iterable<string>): DataError {
  const names = [...available].map((n) => JSON.stringify(n)).join(', ');
  return new DataError(source, `no column ${JSON.stringify(name)}; the columns are ${names || '(none)'}`);
}

/** A column exists but holds the wrong kind of values. */
export function wrongColumnType(source: string, name: string, expected: string, found: string): DataError {
  return new DataError(source, `column ${JSON.stringify(name)}: expected ${expected}, found ${found}`);
}

/**
 * The one error of embedding tables: a bad id, a push for rows that were never pulled, a gradient
 * of the wrong size, a checkpoint of another table. The message names the table and the position.
 */
export class TableError extends Error {
  override name = 'TableError';
  constructor(
    readonly table: string,
    readonly detail: string,
  ) {
    super(`table '${table}': ${detail}`);
  }
}

export function tableError(table: string, detail: string): TableError {
  return new TableError(table, detail);
}

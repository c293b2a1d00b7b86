/**
 * The tables of one server, by id and by name: the registry the request handler finds a request's
 * table in (the interfaces it holds are ./table.ts).
 */
import { PsError } from './errors.js';
import type { RowStore } from './row-store.js';
import type { DenseTable, Table } from './table.js';

/** The tables of one server, by id and by name. */
export class Tables {
  private readonly byId = new Map<number, { name: string; table: Table }>();

  register(id: number, name: string, table: Table): void {
    if (this.byId.has(id) || this.find(name) !== undefined) throw new Error(`Tables.register: a table with id ${id} or name '${name}' is already registered`);
    this.byId.set(id, { name, table });
  }

  /** Table `id`; throws PsError('not-owner') naming the tables this server has. */
  get(id: number): Table {
    const t = this.byId.get(id);
    if (t === undefined) throw new PsError('not-owner', `this server has no table ${id} (it has ${[...this.byId].map(([i, e]) => `${i} '${e.name}'`).join(', ')})`);
    return t.table;
  }

  /** Table `id`, which must hold a dense key range. */
  dense(id: number): DenseTable {
    const t = this.get(id);
    if (t.kind !== 'dense') throw new PsError('bad-request', `table ${id} is not a dense key range`);
    return t as DenseTable;
  }

  /** The row table named `name`; throws PsError('unknown-table') naming the ones this server hosts. */
  rows(name: string): RowStore {
    const id = this.find(name);
    const t = id === undefined ? undefined : this.byId.get(id)!.table;
    if (t === undefined || t.kind !== 'rows') {
      const hosted = [...this.byId.values()].filter((e) => e.table.kind === 'rows').map((e) => `'${e.name}'`);
      throw new PsError('unknown-table', `no row table ${JSON.stringify(name)} on this server (it hosts ${hosted.length > 0 ? hosted.join(', ') : 'none'})`);
    }
    return t as RowStore;
  }

  /** The row tables, in id order. */
  rowTables(): RowStore[] {
    return [...this.byId.values()].flatMap((e) => (e.table.kind === 'rows' ? [e.table as RowStore] : []));
  }

  /** The id of the table named `name`, if there is one. */
  find(name: string): number | undefined {
    for (const [id, e] of this.byId) if (e.name === name) return id;
    return undefined;
  }

  [Symbol.iterator](): IterableIterator<Table> {
    return [...this.byId.values()].map((e) => e.table)[Symbol.iterator]();
  }
}

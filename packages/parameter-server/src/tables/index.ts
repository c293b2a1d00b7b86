export { RowTable, type RowTableOptions, type RowTableStats } from './row-table.js';
export { IdMap, hashId, checkId } from './id-map.js';
export { shardOfId } from './placement.js';
export { TableError } from './errors.js';

export { RowTable, type RowTableOptions, type RowTableStats } from './row-table.js';
export { IdMap, hashId, checkId } from './id-map.js';
export { shardOfId } from './placement.js';
export { TableError } from './errors.js';
export { rowInit, type RowInit } from './row-init.js';
export { SharedTable, allocateSharedTables, sharedTables, type SharedTablesSpec, type SharedTableSpec, type SharedTablesOptions } from './shared-tables.js';

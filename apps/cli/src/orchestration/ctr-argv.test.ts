// The argv of a CTR run's servers: the tables' admission and eviction travel only when set, and
// parse back with `loom serve`'s own flags; a plain CTR run's argv is as it was.
import { describe, expect, it } from 'vitest';
import { parseFlags } from '../args.js';
import { SERVE_FLAGS, tableLimits } from '../commands/serve.js';
import { serverArgv, type TrainingConfig } from './argv.js';

const ctr = (limits: object): TrainingConfig => ({
  model: 'ctr', seed: 3, optimizer: 'adam', lr: 0.001, mode: 'sync', staleness: 0, dataset: { spec: 'news-clicks', scale: 1 }, batchSize: 512, epochs: 2,
  ctr: { sparseOptimizer: 'sparse-adam', sparseLr: 0.001, rowMode: 'async', ...limits },
});
const placement = { shard: { index: 1, count: 2 }, workers: 2, port: 0, checkpoint: { dir: 'runs/c', every: 10 } };

describe('serverArgv for --task ctr', () => {
  it('passes --admit-after, --evict-after and --table-capacity only when set; `loom serve` reads them back', () => {
    const plain = serverArgv(ctr({}), placement);
    expect(plain.filter((a) => /admit|evict|capacity/.test(a))).toEqual([]);
    const [, ...argv] = serverArgv(ctr({ admitAfter: 3, evictAfter: 40, capacity: 5000 }), placement);
    const at = argv.indexOf('--row-mode') + 2;
    expect(argv.slice(at, at + 6)).toEqual(['--admit-after', '3', '--evict-after', '40', '--table-capacity', '5000']);
    expect([...argv.slice(0, at), ...argv.slice(at + 6)]).toEqual(plain.slice(1));
    const f = parseFlags('serve', argv, SERVE_FLAGS);
    expect(f).toMatchObject({ task: 'ctr', admitAfter: 3, evictAfter: 40, tableCapacity: 5000, checkpoint: 'runs/c', checkpointEvery: 10, rowMode: 'async' });
    expect(tableLimits(f)).toEqual({ admitAfter: 3, evictAfter: 40, capacity: 5000 });
    expect(tableLimits(parseFlags('serve', serverArgv(ctr({ evictAfter: 8 }), placement).slice(1), SERVE_FLAGS))).toEqual({ evictAfter: 8 });
  });
});

// The orchestration module without processes: the children's command lines that `loom train
// --cluster` and `loom launch` both build, and the gathering of the workers' epoch lines. The
// processes themselves are tested whole in test/cluster*.test.ts and test/launch.test.ts.
import { describe, expect, it } from 'vitest';
import { parseFlags } from '../args.js';
import { SERVE_FLAGS } from '../commands/serve.js';
import { TRAIN_FLAGS } from '../commands/train.js';
import { WORKER_FLAGS } from '../commands/worker.js';
import { DENSE_MODE, denseBatchSize } from '../defaults.js';
import { serverArgv, trainingFromFlags, workerArgv, type TrainingConfig } from './argv.js';
import { EpochReports, parseEpochLine, type WorkerEpochLine } from './reports.js';

const TRAIN = ['--dataset', 'csv:data.csv', '--label', 'label', '--model', 'mlp:5,16,3', '--seed', '5', '--optimizer', 'sgd', '--lr', '0.05', '--mode', 'ssp', '--staleness', '3', '--batch-size', '16', '--epochs', '4'];
const URLS = ['ws://127.0.0.1:7071', 'ws://127.0.0.1:7072'];

/** The training `loom launch -- TRAIN` describes. */
const launched = (argv: string[]) => trainingFromFlags(parseFlags('launch -- (train flags)', argv, TRAIN_FLAGS));

/** The training `loom train --cluster` hands to trainCluster, field by field as commands/train.ts reads its flags. */
function clustered(argv: string[]): TrainingConfig {
  const f = parseFlags('train', argv, TRAIN_FLAGS);
  return {
    model: f.model as string, dataset: { spec: f.dataset as string, label: f.label as string | undefined, scale: f.scale as number },
    seed: f.seed as number, mode: (f.mode as TrainingConfig['mode'] | undefined) ?? DENSE_MODE, staleness: (f.staleness as number | undefined) ?? 2,
    optimizer: f.optimizer as string, lr: f.lr as number, batchSize: (f.batchSize as number | undefined) ?? denseBatchSize(f.model as string), epochs: f.epochs as number,
  };
}

describe('serverArgv and workerArgv', () => {
  it('cluster and launch start the same children for the same training flags', () => {
    for (const argv of [TRAIN, ['--mode', 'async'], []]) {
      const [c, l] = [clustered(argv), launched(argv)];
      const placement = { shard: { index: 1, count: 2 }, workers: 3, port: 0 };
      expect(serverArgv(l, placement)).toEqual(serverArgv(c, placement));
      expect(workerArgv(l, URLS, 2, 3)).toEqual(workerArgv(c, URLS, 2, 3));
    }
  });

  it('spell every flag as `loom serve` and `loom worker` define it', () => {
    const t = launched(TRAIN);
    expect(serverArgv(t, { shard: { index: 1, count: 2 }, workers: 3, host: '0.0.0.0', port: 7072 })).toEqual([
      'serve', '--host', '0.0.0.0', '--port', '7072', '--shard', '1/2', '--workers', '3', '--model', 'mlp:5,16,3', '--seed', '5',
      '--optimizer', 'sgd', '--lr', '0.05', '--mode', 'ssp', '--staleness', '3',
    ]);
    // --rank stays inside the line: tools (and test/cluster-faults.test.ts) find a worker by / worker .*--rank R /.
    expect(workerArgv(t, URLS, 2, 3)).toEqual([
      'worker', '--connect', URLS.join(','), '--rank', '2', '--workers', '3', '--dataset', 'csv:data.csv', '--label', 'label', '--scale', '1',
      '--model', 'mlp:5,16,3', '--seed', '5', '--batch-size', '16', '--epochs', '4', '--json',
    ]);
  });

  it('parse back, with the children\'s own flags, to the training they were built from', () => {
    const t = launched(TRAIN);
    const [command, ...serve] = serverArgv(t, { shard: { index: 0, count: 2 }, workers: 3, port: 0, checkpoint: { dir: 'runs/x', every: 50 }, resume: 'runs/x' });
    expect(command).toBe('serve');
    const s = parseFlags('serve', serve, SERVE_FLAGS);
    expect(s).toMatchObject({ port: 0, host: '127.0.0.1', shard: '0/2', workers: 3, model: t.model, seed: t.seed, optimizer: t.optimizer, lr: t.lr, mode: 'ssp', staleness: 3, checkpoint: 'runs/x', checkpointEvery: 50, resume: 'runs/x' });
    const [worker, ...rest] = workerArgv(t, URLS, 1, 3);
    expect(worker).toBe('worker');
    const w = parseFlags('worker', rest, WORKER_FLAGS);
    expect(w).toMatchObject({ connect: URLS.join(','), rank: 1, workers: 3, dataset: 'csv:data.csv', label: 'label', scale: 1, model: t.model, seed: t.seed, batchSize: 16, epochs: 4, json: true });
  });

  it('pass --staleness only in ssp, --label only when given, checkpoints only when asked', () => {
    const sync = launched([]); // the defaults: sync, news, no label
    const server = serverArgv(sync, { shard: { index: 0, count: 1 }, workers: 1, port: 0 });
    expect(server).not.toContain('--staleness');
    expect(server).not.toContain('--host');
    expect(server.filter((a) => /checkpoint|resume/.test(a))).toEqual([]);
    expect(workerArgv(sync, URLS, 0, 1)).not.toContain('--label');
    expect(sync.staleness).toBe(2); // the default ssp would use, as for `loom train`
  });
});

describe('EpochReports', () => {
  const line = (rank: number, epoch: number): WorkerEpochLine => ({
    event: 'epoch', epoch, rank, steps: 10, rows: 100, lossSum: 50, seconds: 1, computeSeconds: 0.5, stalenessMax: 0, stalenessMean: 0, stopped: false,
  });

  it('reads epoch lines and nothing else from a worker\'s output', () => {
    expect(parseEpochLine(JSON.stringify(line(1, 2)))).toEqual(line(1, 2));
    expect(parseEpochLine(JSON.stringify({ event: 'done', rank: 1, epochs: 2, stopped: false }))).toBeUndefined();
    expect(parseEpochLine('worker 1/2: 100 train rows')).toBeUndefined();
    expect(parseEpochLine('null')).toBeUndefined();
  });

  it('an epoch is complete when every rank reported it or was dropped; a repeated report counts once', async () => {
    const reports = new EpochReports(3);
    reports.add(line(0, 1));
    reports.add(line(0, 1));
    reports.add(line(2, 1));
    expect(reports.complete(1)).toBe(false);
    const woken = reports.changed();
    reports.drop(1);
    await woken;
    expect(reports.complete(1)).toBe(true);
    expect(reports.complete(2)).toBe(false);
    expect(reports.dropped).toBe(1);
  });
});

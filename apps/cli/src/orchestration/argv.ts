/**
 * The command lines of a run's children: `loom serve` for each key range and `loom worker` for
 * each rank. `loom train --cluster` and `loom launch` start the same children, so they build their
 * arguments here, from one description of the training. The token never appears here: children
 * read it from LOOM_TOKEN (group.ts).
 */
import type { Mode } from '@loom/parameter-server';
import type { Values } from '../args.js';
import { DENSE_MODE, denseBatchSize } from '../defaults.js';

/** What every child of a run agrees on: the model, how the servers step it, and what the workers train on. */
export interface TrainingConfig {
  /** `reference` or `mlp:A,B,…`, as `--model` names it. */
  model: string;
  seed: number;
  optimizer: string;
  lr: number;
  mode: Mode;
  /** Ssp only (passed only with `mode: 'ssp'`): how many updates a worker may run ahead. */
  staleness: number;
  /** The workers' `--dataset`, `--label` and `--scale`. */
  dataset: { spec: string; label?: string; scale: number };
  /** The global mini-batch, split across workers. */
  batchSize: number;
  epochs: number;
  /**
   * --task ctr: the CTR model (its dense part by key range, its embedding tables as row tables on
   * every server) instead of `model`; the tables' optimizer and their policy, and their admission
   * and eviction (passed only when set). Absent: a dense run,
   * whose command lines are as they always were.
   */
  ctr?: { sparseOptimizer: string; sparseLr: number; rowMode: Mode; admitAfter?: number; evictAfter?: number; capacity?: number };
}

/**
 * The training `loom train` flags describe, once parsed (`loom launch -- …`). `--staleness`
 * defaults to 2, as for `loom train`.
 */
export function trainingFromFlags(t: Values): TrainingConfig {
  return {
    model: t.model as string, seed: t.seed as number, optimizer: t.optimizer as string, lr: t.lr as number,
    mode: (t.mode as Mode | undefined) ?? DENSE_MODE, staleness: (t.staleness as number | undefined) ?? 2,
    dataset: { spec: t.dataset as string, ...(t.label !== undefined ? { label: t.label as string } : {}), scale: t.scale as number },
    batchSize: (t.batchSize as number | undefined) ?? denseBatchSize(t.model as string), epochs: t.epochs as number,
  };
}

export interface ServerPlacement {
  /** This server's key range: `index` of `count`. */
  shard: { index: number; count: number };
  /** Every worker of the run (sync and ssp wait for all of them). */
  workers: number;
  /** 0: any free port (the server prints the one it took). */
  port: number;
  /** The address to listen on; `loom serve`'s default (127.0.0.1) when absent. */
  host?: string;
  /** Save checkpoints in `dir`/checkpoints every `every` updates and at the end. */
  checkpoint?: { dir: string; every: number };
  /** Start from the latest complete checkpoint in `resume`/checkpoints. */
  resume?: string;
}

/**
 * `loom serve` arguments for one key range.
 *
 * @example
 * serverArgv(training, { shard: { index: 0, count: 2 }, workers: 4, port: 0 })
 * // ['serve', '--port', '0', '--shard', '0/2', '--workers', '4', '--model', …]
 */
export function serverArgv(t: TrainingConfig, p: ServerPlacement): string[] {
  return [
    'serve', ...(p.host !== undefined ? ['--host', p.host] : []), '--port', String(p.port), '--shard', `${p.shard.index}/${p.shard.count}`,
    '--workers', String(p.workers), ...modelArgv(t), '--seed', String(t.seed), '--optimizer', t.optimizer, '--lr', String(t.lr),
    ...(t.ctr !== undefined ? ['--sparse-optimizer', t.ctr.sparseOptimizer, '--sparse-lr', String(t.ctr.sparseLr), '--row-mode', t.ctr.rowMode, ...tableLimitArgv(t.ctr)] : []),
    '--mode', t.mode, ...(t.mode === 'ssp' ? ['--staleness', String(t.staleness)] : []),
    ...(p.checkpoint !== undefined ? ['--checkpoint', p.checkpoint.dir, '--checkpoint-every', String(p.checkpoint.every)] : []),
    ...(p.resume !== undefined ? ['--resume', p.resume] : []),
  ];
}

/**
 * `loom worker` arguments for rank `rank` of `workers`, connecting to every server of `urls`.
 * `--json`: the worker prints one line per epoch that the orchestrator reads (reports.ts).
 *
 * @example
 * workerArgv(training, ['ws://127.0.0.1:7071'], 0, 2)
 * // ['worker', '--connect', 'ws://127.0.0.1:7071', '--rank', '0', '--workers', '2', …, '--json']
 */
export function workerArgv(t: TrainingConfig, urls: readonly string[], rank: number, workers: number): string[] {
  return [
    'worker', '--connect', urls.join(','), '--rank', String(rank), '--workers', String(workers), '--dataset', t.dataset.spec,
    ...(t.dataset.label !== undefined ? ['--label', t.dataset.label] : []), '--scale', String(t.dataset.scale), ...modelArgv(t),
    '--seed', String(t.seed), '--batch-size', String(t.batchSize), '--epochs', String(t.epochs), '--json',
  ];
}

/** --admit-after, --evict-after and --table-capacity, each only when set. */
function tableLimitArgv(c: NonNullable<TrainingConfig['ctr']>): string[] {
  return [
    ...(c.admitAfter !== undefined ? ['--admit-after', String(c.admitAfter)] : []),
    ...(c.evictAfter !== undefined ? ['--evict-after', String(c.evictAfter)] : []),
    ...(c.capacity !== undefined ? ['--table-capacity', String(c.capacity)] : []),
  ];
}

/** `--model M` for a dense run; `--task ctr` for a CTR run (its model is the task's). */
function modelArgv(t: TrainingConfig): string[] {
  return t.ctr !== undefined ? ['--task', 'ctr'] : ['--model', t.model];
}

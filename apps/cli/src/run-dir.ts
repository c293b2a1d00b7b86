/**
 * A run directory, as `loom train --out DIR` writes it:
 *   config.json        everything needed to rebuild the model and its preprocessing
 *   model.safetensors  the trained parameters, named as PyTorch names them
 *   metrics.jsonl      one JSON object per epoch
 *   steps.jsonl        one-thread runs: {"step", "epoch" (fractional: epochs done), "loss", "time"}
 *                      lines at a bounded rate (step-log.ts), for curves finer than an epoch
 *   events.jsonl       the run's timeline: {"time", "event", …} — start and resume (with argv),
 *                      and in --cluster runs each process started, joined, dropped, readmitted
 *                      or exited (orchestration/group.ts)
 * Reading one validates it, so `eval` and `recommend` fail with a message naming what is wrong.
 * Readers of metrics.jsonl rely on its lines being epochs: other line types go to the other files.
 */
import { appendFileSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadModel, parameterLayout, saveModel, type Module } from '@loom/tensor-core';
import type { Preprocessing } from './datasets.js';
import { UsageError } from './errors.js';
import { buildModel, resolveModel } from './models.js';

export const RUN_FORMAT = 'loom-run';
export const RUN_VERSION = 1;

export interface RunConfig {
  format: typeof RUN_FORMAT;
  version: number;
  /** The --model spec every process built (a GPT's with its vocabulary); an MLP's layer sizes too. */
  model: { spec: string; sizes?: number[] };
  /** 'lm' for a language model; absent for a classifier. */
  task?: string;
  dataset: string;
  preprocessing: Preprocessing;
  classNames: string[];
  train: { optimizer: string; lr: number; batchSize: number; epochs: number; seed: number; [k: string]: unknown };
  layout: Array<{ name: string; offset: number; shape: readonly number[] }>;
}

/**
 * Creates the run directory and starts an empty metrics.jsonl. A previous run's config.json and
 * model.safetensors are removed first, so that a run that fails part-way leaves a directory that
 * is recognisably unfinished rather than an old model beside new metrics.
 */
export function startRun(dir: string): void {
  mkdirSync(dir, { recursive: true });
  rmSync(join(dir, 'config.json'), { force: true });
  rmSync(join(dir, 'model.safetensors'), { force: true });
  writeFileSync(join(dir, 'metrics.jsonl'), '');
  writeFileSync(join(dir, 'steps.jsonl'), '');
  writeFileSync(join(dir, 'events.jsonl'), '');
  appendEvent(dir, { event: 'start', argv: process.argv.slice(2), pid: process.pid });
}

/**
 * Reopens a run directory to resume it: like startRun, but metrics.jsonl keeps the lines of epochs
 * 1 … `epochs` (those before the checkpoint resumed from; later ones are trained again). Returns
 * the last line kept (the run's result so far), if any.
 */
export function resumeRun(dir: string, epochs: number): { epoch: number } | undefined {
  const kept = readMetrics(dir).filter((m) => m.metrics.epoch <= epochs);
  rmSync(join(dir, 'config.json'), { force: true });
  rmSync(join(dir, 'model.safetensors'), { force: true });
  writeFileAtomic(join(dir, 'metrics.jsonl'), kept.map((m) => m.line + '\n').join(''));
  appendEvent(dir, { event: 'resume', argv: process.argv.slice(2), pid: process.pid, fromEpoch: epochs });
  return kept.at(-1)?.metrics;
}

/** The lines of DIR/metrics.jsonl that are epochs' metrics, parsed and as written (none when it is missing). */
function readMetrics(dir: string): Array<{ metrics: { epoch: number }; line: string }> {
  const path = join(dir, 'metrics.jsonl');
  if (!existsSync(path)) return [];
  return readFileSync(path, 'utf8').split('\n').flatMap((line) => {
    try {
      const m = JSON.parse(line) as { epoch?: unknown };
      return typeof m?.epoch === 'number' ? [{ metrics: m as { epoch: number }, line }] : [];
    } catch {
      return []; // blank, or cut short by a crash
    }
  });
}

/**
 * DIR as a finished run of at least `epochs` epochs: its config.json and model.safetensors were
 * written (only the end of a run writes them) and metrics.jsonl has its epochs 1 … `epochs` or
 * more. Undefined for anything else: a run stopped part-way (by a crash, or SIGINT before its
 * last epoch), or not a run directory at all.
 */
export function finishedRun(dir: string, epochs: number): { epochs: number; last: { epoch: number }; config: Partial<RunConfig> } | undefined {
  if (!existsSync(join(dir, 'config.json')) || !existsSync(join(dir, 'model.safetensors'))) return undefined;
  let config: Partial<RunConfig>;
  try {
    config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as Partial<RunConfig>;
  } catch {
    return undefined;
  }
  const metrics = readMetrics(dir).map((m) => m.metrics);
  const done = new Set(metrics.map((m) => m.epoch));
  for (let e = 1; e <= epochs; e++) if (!done.has(e)) return undefined;
  const last = metrics.reduce((a, m) => (m.epoch >= a.epoch ? m : a));
  return { epochs: last.epoch, last, config };
}

/** Writes a file whole or not at all: a temporary file beside it, then a rename. */
export function writeFileAtomic(path: string, data: string | Uint8Array): void {
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, data);
  renameSync(tmp, path);
}

/** Appends one line to DIR/events.jsonl, stamped with the time (ms since 1970). */
export function appendEvent(dir: string, event: { event: string; [k: string]: unknown }): void {
  appendFileSync(join(dir, 'events.jsonl'), JSON.stringify({ time: Date.now(), ...event }) + '\n');
}

/** Appends one epoch's metrics. */
export function appendMetrics(dir: string, metrics: object): void {
  appendFileSync(join(dir, 'metrics.jsonl'), JSON.stringify(metrics) + '\n');
}

/** Writes config.json and model.safetensors, each atomically (temporary file, then rename). */
export function saveRun(dir: string, config: Omit<RunConfig, 'format' | 'version' | 'layout'>, model: Module<any>): void {
  const full: RunConfig = {
    format: RUN_FORMAT,
    version: RUN_VERSION,
    ...config,
    layout: parameterLayout(model).map(({ name, offset, shape }) => ({ name, offset, shape })),
  };
  saveModel(join(dir, 'model.safetensors'), model, { format: RUN_FORMAT, model: config.model.spec });
  writeFileAtomic(join(dir, 'config.json'), JSON.stringify(full, null, 2) + '\n');
}

/** Reads and validates a run directory, and rebuilds its model with the trained weights. */
export function loadRun(dir: string): { config: RunConfig; model: Module<any> } {
  const where = `--run ${dir}`;
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new UsageError(`${where}: no such directory`);
  const configPath = join(dir, 'config.json');
  if (!existsSync(configPath)) throw new UsageError(`${where}: not a run directory (no config.json; \`loom train --out DIR\` makes one)`);
  let config: RunConfig;
  try {
    config = JSON.parse(readFileSync(configPath, 'utf8')) as RunConfig;
  } catch (e) {
    throw new UsageError(`${configPath}: not valid JSON (${(e as Error).message})`);
  }
  if (config?.format !== RUN_FORMAT) throw new UsageError(`${configPath}: not a Loom run config (format is ${JSON.stringify(config?.format)}, expected "${RUN_FORMAT}")`);
  if (config.version !== RUN_VERSION) throw new UsageError(`${configPath}: version ${config.version} is not supported (expected ${RUN_VERSION})`);
  if (typeof config.model?.spec !== 'string') throw new UsageError(`${configPath}: model.spec must be a --model spec, got ${JSON.stringify(config.model?.spec)}`);
  try {
    resolveModel(config.model.spec);
  } catch (e) {
    throw new UsageError(`${configPath}: ${(e as Error).message}`);
  }
  if (!config.preprocessing || !['news', 'idx', 'csv', 'text'].includes(config.preprocessing.kind)) {
    throw new UsageError(`${configPath}: preprocessing.kind must be news, idx, csv or text, got ${JSON.stringify(config.preprocessing?.kind)}`);
  }
  const weights = join(dir, 'model.safetensors');
  if (!existsSync(weights)) throw new UsageError(`${where}: model.safetensors is missing`);
  const model = buildModel(config.model.spec, 0);
  loadModel(weights, model);
  model.eval();
  return { config, model };
}

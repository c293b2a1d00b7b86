/**
 * `loom recommend` for a CTR run: the user's K most likely clicks among the articles they have not
 * clicked, scored by the trained model as an impression at the end of the window would be (the
 * user's last clicks as the history bag, each article's age and popularity then).
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { generateClickLog, type ClickLog } from '@loom/data';
import { Random, Tensor, loadSafetensors, noGrad } from '@loom/tensor-core';
import { CTR_TABLES, CtrModel, ctrTask, type CtrBatch } from '@loom/worker';
import { UsageError } from './errors.js';

export interface CtrRunConfig {
  task: 'ctr';
  clicks: { seed: number; scale: number; alpha: number };
  model: { dim: number; tables: Record<string, number>; denseWidth: number; historyLength: number };
}

export interface CtrRecommendation {
  user: number;
  /** The user's last clicks, oldest first: the history the model scored with. */
  history: number[];
  articles: Array<{ id: number; category: number; subcategory: number; probability: number }>;
}

/** Whether DIR holds a run of --task ctr (its config.json says so). */
export function isCtrRun(dir: string): boolean {
  try {
    return (JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as { task?: string }).task === 'ctr';
  } catch {
    return false;
  }
}

/** Reads a CTR run's config.json and model.safetensors; a missing or wrong part names the file. */
export function loadCtrRun(dir: string): { config: CtrRunConfig; model: CtrModel; tables: Record<string, Float32Array> } {
  const configPath = join(dir, 'config.json');
  if (!existsSync(configPath)) throw new UsageError(`--run ${dir}: no config.json (not a run directory, or its training did not finish)`);
  const config = JSON.parse(readFileSync(configPath, 'utf8')) as CtrRunConfig;
  if (config.task !== 'ctr') throw new UsageError(`${configPath}: task is ${JSON.stringify(config.task)}, expected "ctr"`);
  const { tensors } = loadSafetensors(join(dir, 'model.safetensors'));
  const model = new CtrModel({ historyLength: config.model.historyLength, denseWidth: config.model.denseWidth }, { rng: new Random(0) });
  const dense = Object.fromEntries(Object.entries(tensors).filter(([name]) => !CTR_TABLES.some((t) => name === `${t}.weight`)));
  model.loadStateDict(dense as Record<string, Tensor>, join(dir, 'model.safetensors'));
  const tables: Record<string, Float32Array> = {};
  for (const name of CTR_TABLES) {
    const t = tensors[`${name}.weight`];
    const rows = config.model.tables[name]!;
    if (!(t instanceof Tensor) || t.shape[0] !== rows || t.shape[1] !== config.model.dim) {
      throw new UsageError(`${join(dir, 'model.safetensors')}: '${name}.weight' should be float32 (${rows}, ${config.model.dim}) as config.json says`);
    }
    tables[name] = t.data;
  }
  return { config, model, tables };
}

/** Ranks every article published by the end of the window that the user never clicked. */
export function recommendCtr(dir: string, user: number, k: number): CtrRecommendation {
  const { config, model, tables } = loadCtrRun(dir);
  const log: ClickLog = generateClickLog(config.clicks);
  if (!(user >= 0 && user < log.numUsers)) throw new UsageError(`--user ${user}: the run's click log has users 0..${log.numUsers - 1}`);
  const H = log.historyLength;
  const W = log.denseWidth;
  const end = log.windowSeconds;
  // The history of the user's next impression: that of their last one, plus its article if clicked.
  let history: number[] | null = null;
  const clicked: number[] = [];
  for (const c of log.chunks()) {
    for (let i = 0; i < c.rows; i++) {
      if (c.user[i] !== user) continue;
      history = Array.from(c.history.subarray(i * H, (i + 1) * H));
      if (c.label[i] === 1) {
        clicked.push(c.article[i]!);
        history = [...history.slice(1), c.article[i]!];
      }
    }
  }
  if (history === null) throw new UsageError(`--user ${user}: this user has no impressions in the run's click log, so no history to recommend from`);
  const seen = new Set([...clicked, ...history]);
  const candidates: number[] = [];
  for (let a = 0; a < log.numArticles; a++) if (log.articles.publishedAt[a]! <= end && !seen.has(a)) candidates.push(a);
  const B = candidates.length;
  const batch: CtrBatch = {
    rows: B, batchRows: B, index: 0,
    user: new Int32Array(B).fill(user),
    article: Int32Array.from(candidates),
    category: Int32Array.from(candidates, (a) => log.articles.category[a]!),
    subcategory: Int32Array.from(candidates, (a) => log.articles.subcategory[a]!),
    history: new Int32Array(B * H),
    dense: new Float32Array(B * W),
    label: new Float32Array(B),
  };
  for (let i = 0; i < B; i++) {
    batch.history.set(history, i * H);
    log.denseFeatures(candidates[i]!, end - 1, batch.dense, i * W);
  }
  const task = ctrTask(model);
  task.tables.prepare(task.keys(batch));
  for (const t of task.tables) {
    const table = tables[t.name]!;
    for (let j = 0; j < t.ids.length; j++) t.rows.set(table.subarray(t.ids[j]! * t.dim, (t.ids[j]! + 1) * t.dim), j * t.dim);
  }
  model.eval();
  const logits = noGrad(() => model.forward({ tables: task.tables, batch })).data;
  const order = Array.from({ length: B }, (_, i) => i).sort((x, y) => logits[y]! - logits[x]! || candidates[x]! - candidates[y]!);
  return {
    user,
    history,
    articles: order.slice(0, k).map((i) => ({
      id: candidates[i]!,
      category: batch.category[i]!,
      subcategory: batch.subcategory[i]!,
      probability: 1 / (1 + Math.exp(-logits[i]!)),
    })),
  };
}

// What the cross-package tests of real processes share: the built CLI, a sandbox (a temporary
// directory as HOME and a fresh cluster token in LOOM_TOKEN), the small dataset they train on, and
// reading a run's parameters back.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { flattenParameters, loadModel, mlp, Random } from '@loom/tensor-core';

/** The built `loom` command (`pnpm test` builds it first). */
export const MAIN = fileURLToPath(new URL('../apps/cli/dist/main.js', import.meta.url));

/** A temporary directory (also HOME, so a generated token lands there) and a fresh cluster token. */
export function sandbox(prefix: string): { dir: string; token: string; env: NodeJS.ProcessEnv } {
  const dir = mkdtempSync(join(tmpdir(), `loom-${prefix}-`));
  const token = randomBytes(24).toString('base64url');
  return { dir, token, env: { ...process.env, LOOM_TOKEN: token, HOME: dir } };
}

/** A CSV of `rows` distinct rows: 5 features after one-hot, 3 classes that depend on minutes and device. */
export function writeCsv(path: string, rows = 3000): void {
  const lines = ['age,minutes,device,label'];
  for (let i = 0; i < rows; i++) {
    const [age, minutes, device] = [18 + ((i * 7919) % 5000) / 100, (i * 13) % 90, ['mobile', 'desktop', 'tablet'][i % 3]!];
    lines.push(`${age},${minutes},${device},${minutes > 45 ? (device === 'mobile' ? 'video' : 'longread') : 'brief'}`);
  }
  writeFileSync(path, lines.join('\n') + '\n');
}

/** The model every cluster test trains on that CSV. */
export const SIZES = [5, 16, 3];

/** `loom train` flags for it: mlp 5→16→3, 64-row batches. */
export const trainFlags = (csv: string, epochs = 2): string[] => [
  '--dataset', `csv:${csv}`, '--label', 'label', '--model', 'mlp:5,16,3', '--epochs', String(epochs), '--seed', '5', '--batch-size', '64', '--lr', '0.01',
];

/** The number of parameters of SIZES. */
export const P = flattenParameters(mlp(SIZES, { init: 'xavier', rng: new Random(5) })).size;

/** The flat parameters of DIR/RUN/model.safetensors. */
export function runParams(dir: string, run: string, sizes: readonly number[] = SIZES): Float32Array {
  const model = mlp(sizes, { init: 'xavier', rng: new Random(0) });
  loadModel(join(dir, run, 'model.safetensors'), model);
  return flattenParameters(model).params;
}

/** max |a − b| / max(0.01, |b|). */
export function maxRelDiff(a: Float32Array, b: Float32Array): number {
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i]! - b[i]!) / Math.max(1e-2, Math.abs(b[i]!)));
  return d;
}

// `loom train --task ctr --cluster local:2,2`: real `loom serve --task ctr` and `loom worker --task
// ctr` processes on 127.0.0.1 (run `pnpm -r run build` first). The servers create rows in their own
// processes, so the saved tables' untrained rows — read from the servers without creating them —
// must be the values this process computes from (seed, table, id) alone; the run trains (AUC above
// chance, loss falls) and records bytes per step near the formula.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { generateClickLog } from '@loom/data';
import { rowInit } from '@loom/parameter-server';
import { loadSafetensors } from '@loom/tensor-core';
import { MAIN, sandbox } from './harness.js';

describe('loom train --task ctr --cluster', () => {
  it('trains on 2 servers and 2 workers; untrained rows are every process\'s deterministic initial rows; bytes per step are recorded', () => {
    const { dir, env } = sandbox('loom-ctr-cluster-');
    const out = join(dir, 'run');
    const stdout = execFileSync(process.execPath, [MAIN, 'train', '--task', 'ctr', '--dataset', 'news-clicks', '--cluster', 'local:2,2', '--epochs', '2', '--seed', '9', '--out', out, '--json'], { env, encoding: 'utf8', timeout: 240_000 });
    const result = JSON.parse(stdout.trim().split('\n').pop()!);
    expect(result.validAuc).toBeGreaterThan(0.52);
    const metrics = readFileSync(join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(metrics).toHaveLength(2);
    expect(metrics[1].trainLoss).toBeLessThan(metrics[0].trainLoss);
    // (rows.test.ts checks bytes against the formula; here: recorded, and rows + dense = all.)
    const b = metrics[1].bytesPerStep;
    expect(b.rows).toBeGreaterThan(0);
    expect(b.all).toBe(b.rows + b.dense);
    const { tensors } = loadSafetensors(join(out, 'model.safetensors'));
    const user = tensors['user.weight']!;
    const log = generateClickLog({ seed: 9, scale: 1 });
    const cols = log.materialize();
    const trained = new Set(cols.user.subarray(0, log.validStart));
    expect(user.shape).toEqual([log.numUsers, 32]);
    const init = rowInit(9, 'user', 32);
    const row = new Float32Array(32);
    let checked = 0;
    for (let id = 0; id < log.numUsers && checked < 50; id++) {
      if (trained.has(id)) continue;
      init(id, row);
      expect(user.data.subarray(id * 32, (id + 1) * 32)).toEqual(row);
      checked++;
    }
    expect(checked).toBe(50);
  }, 300_000);
});

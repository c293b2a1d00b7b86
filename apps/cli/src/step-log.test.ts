import { describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { StepLog } from './step-log.js';

const lines = (dir: string) => readFileSync(join(dir, 'steps.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));

describe('StepLog', () => {
  it('writes at most maxPerEpoch lines an epoch, one at its end, each the mean loss since the line before', () => {
    const dir = mkdtempSync(join(tmpdir(), 'loom-steps-'));
    let t = 0;
    const log = new StepLog(dir, { maxPerEpoch: 4, minIntervalMs: 0, now: () => t });
    for (let epoch = 1; epoch <= 2; epoch++) {
      let lossSum = 0;
      for (let s = 1; s <= 10; s++) {
        t += 1;
        lossSum += 10 * s; // 10 rows of loss s each
        log.step(epoch, 10, { steps: s, lossSum, rows: 10 * s });
      }
    }
    const got = lines(dir);
    // every ⌈10/4⌉ = 3 steps, and the epoch's last: steps 3, 6, 9, 10 of each epoch.
    expect(got.map((l) => l.step)).toEqual([3, 6, 9, 10, 13, 16, 19, 20]);
    expect(got.map((l) => l.epoch)).toEqual([0.3, 0.6, 0.9, 1, 1.3, 1.6, 1.9, 2]);
    expect(got.slice(0, 4).map((l) => l.loss)).toEqual([2, 5, 8, 10]); // means of 1..3, 4..6, 7..9, 10
    expect(got[4].loss).toBe(2); // a new epoch starts its sums again
  });

  it('writes at most one line per minIntervalMs, but always the epoch end', () => {
    const dir = mkdtempSync(join(tmpdir(), 'loom-steps-'));
    const log = new StepLog(dir, { maxPerEpoch: 1000, minIntervalMs: 100, now: () => 5 }); // the clock stands still
    for (let s = 1; s <= 50; s++) log.step(1, 50, { steps: s, lossSum: s, rows: s });
    expect(lines(dir).map((l) => l.step)).toEqual([1, 50]);
    expect(lines(dir)[1].loss).toBe(1);
  });
});

// GlobalBatchSchedule against BatchIterator, the batches single-process training uses.
import { describe, expect, it } from 'vitest';
import { BatchIterator } from '@loom/data';
import { Random } from '@loom/tensor-core';
import { GlobalBatchSchedule, WorkerError } from './index.js';

const WIDTH = 2;
const rng = new Random(8);
const source = { features: Float32Array.from({ length: 50 * WIDTH }, () => rng.normal()), labels: Int32Array.from({ length: 50 }, (_, i) => i), width: WIDTH };
const rows = Int32Array.from({ length: 23 }, (_, i) => 2 * i); // every other row: 23 rows, batches of 5 → 4 full and one of 3

interface Copy {
  x: number[];
  y: number[];
  rows: number;
  batchRows: number;
  index: number;
}

/** Copies each batch as it comes: both the schedule and the iterator refill one object every step. */
function copies<B>(batches: Iterable<B>, copy: (b: B) => Copy): Copy[] {
  const out: Copy[] = [];
  for (const b of batches) out.push(copy(b));
  return out;
}
const epochOf = (s: GlobalBatchSchedule, e: number) => copies(s.epoch(e), (b) => ({ x: [...b.x], y: [...b.y], rows: b.rows, batchRows: b.batchRows, index: b.index }));

describe('GlobalBatchSchedule', () => {
  it('rank 0 of 1 walks the batches of a shuffling BatchIterator with the same seed, epoch after epoch', () => {
    const schedule = new GlobalBatchSchedule(source, rows, 5, 4, 0, 1);
    const iterator = new BatchIterator(source, { batchSize: 5, rows, shuffle: true, seed: 4 });
    expect(schedule.batchesPerEpoch).toBe(5);
    for (let e = 0; e < 3; e++) {
      const expected = copies(iterator.epoch(e), (b) => ({ x: [...b.x.subarray(0, b.size * WIDTH)], y: [...b.y.subarray(0, b.size)], rows: b.size, batchRows: b.size, index: b.index }));
      expect(expected.map((b) => b.rows)).toEqual([5, 5, 5, 5, 3]);
      expect(epochOf(schedule, e)).toEqual(expected);
    }
    expect(epochOf(schedule, 0)).not.toEqual(epochOf(schedule, 1)); // and epochs are shuffled differently
  });

  it("the parts of 3 workers, laid end to end, are each step's global batch", () => {
    const whole = epochOf(new GlobalBatchSchedule(source, rows, 5, 4, 0, 1), 1);
    const parts = [0, 1, 2].map((rank) => epochOf(new GlobalBatchSchedule(source, rows, 5, 4, rank, 3), 1));
    for (const [k, batch] of whole.entries()) {
      expect(parts.flatMap((p) => p[k]!.y)).toEqual(batch.y);
      expect(parts.flatMap((p) => p[k]!.x)).toEqual(batch.x);
      expect(parts.map((p) => p[k]!.rows)).toEqual(k < 4 ? [1, 2, 2] : [1, 1, 1]); // ⌊(r+1)B/3⌋ − ⌊rB/3⌋
      for (const p of parts) expect(p[k]!.batchRows).toBe(batch.rows);
    }
  });

  it('refuses a rank outside [0, worldSize), naming both', () => {
    expect(() => new GlobalBatchSchedule(source, rows, 5, 4, 2, 2)).toThrow(WorkerError);
    expect(() => new GlobalBatchSchedule(source, rows, 5, 4, 2, 2)).toThrow('GlobalBatchSchedule: rank 2 is not in [0, 2)');
  });
});

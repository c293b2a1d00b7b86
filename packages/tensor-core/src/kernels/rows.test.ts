// broadcastRow's doubling copies against the obvious loop, at row counts on and off powers of two.
import { describe, expect, it } from 'vitest';
import { broadcastRow } from './rows.js';

describe('broadcastRow', () => {
  for (const [rows, cols] of [[0, 3], [1, 3], [2, 1], [3, 4], [5, 7], [8, 2], [64, 50], [129, 10]] as const) {
    it(`writes the row into each of ${rows} rows of ${cols}, and nothing past them`, () => {
      const row = Float32Array.from({ length: cols }, (_, c) => c + 0.5);
      const out = new Float32Array(rows * cols + 3).fill(-1);
      broadcastRow(row, out, rows, cols);
      const want = new Float32Array(rows * cols + 3).fill(-1);
      for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) want[r * cols + c] = row[c]!;
      expect([...out]).toEqual([...want]);
    });
  }
});

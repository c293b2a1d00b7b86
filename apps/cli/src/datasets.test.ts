// idx:DIR's standardisation: one mean and std over every pixel of the training rows (not the valid
// or test rows), applied to every split, saved with the run and reapplied from what was saved; a
// run saved before pixels were standardised reloads them as pixels / 255, as it trained.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { writeIdx } from '@loom/data';
import { loadTrainingData, reloadTrainingData, type Part } from './datasets.js';

/** 40 training images of 2×2 pixels, 10 test images; pixel values known, classes alternate. */
function writeImages(dir: string, shift: number): void {
  for (const [split, rows] of [['train', 40], ['t10k', 10]] as const) {
    const images = Uint8Array.from({ length: rows * 4 }, (_, i) => (i * 37 + shift) % 256);
    writeIdx(join(dir, `${split}-images-idx3-ubyte`), { dims: [rows, 2, 2], data: images });
    writeIdx(join(dir, `${split}-labels-idx1-ubyte`), { dims: [rows], data: Uint8Array.from({ length: rows }, (_, i) => i % 2) });
  }
}

/** The pixels of a part's rows, as float64. */
const pixels = (p: Part, width: number) => [...p.rows].flatMap((r) => [...p.features.subarray(r * width, (r + 1) * width)]);
const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
const std = (xs: number[]) => Math.sqrt(mean(xs.map((x) => (x - mean(xs)) ** 2)));

describe('idx:DIR', () => {
  const dir = mkdtempSync(join(tmpdir(), 'loom-idx-'));
  writeImages(dir, 0);

  it('standardises every split with the mean and std of the training rows\' pixels, and saves them', () => {
    const d = loadTrainingData(`idx:${dir}`, { seed: 3 });
    const train = pixels(d.train, 4);
    expect(mean(train)).toBeCloseTo(0, 5);
    expect(std(train)).toBeCloseTo(1, 5);
    const pre = d.preprocessing as Extract<typeof d.preprocessing, { kind: 'idx' }>;
    // Counted here from the raw bytes of the training rows alone (as float32, as the loader scales them).
    const raw = [...d.train.rows].flatMap((r) => [0, 1, 2, 3].map((j) => Math.fround((((r * 4 + j) * 37) % 256) / 255)));
    expect(pre.mean).toBeCloseTo(mean(raw), 10);
    expect(pre.std).toBeCloseTo(std(raw), 10);
    // The test rows, with the training rows' values: (x / 255 − mean) / std.
    expect(d.test.features[5]).toBeCloseTo(((5 * 37) % 256 / 255 - pre.mean!) / pre.std!, 5);
  });

  it('reloads a run with its saved values: the same bits on its own data, and its values on another directory', () => {
    const d = loadTrainingData(`idx:${dir}`, { seed: 3 });
    const again = reloadTrainingData(JSON.parse(JSON.stringify(d.preprocessing)));
    expect(again.train.features).toEqual(d.train.features);
    expect(again.test.features).toEqual(d.test.features);
    const other = mkdtempSync(join(tmpdir(), 'loom-idx-'));
    writeImages(other, 11);
    const pre = d.preprocessing as Extract<typeof d.preprocessing, { kind: 'idx' }>;
    const o = reloadTrainingData(d.preprocessing, `idx:${other}`);
    expect(o.test.features[0]).toBeCloseTo((11 / 255 - pre.mean!) / pre.std!, 5);
  });

  it('a run saved before standardisation (no mean, no std) reloads its pixels / 255', () => {
    const old = reloadTrainingData({ kind: 'idx', dir, scale: '1/255', seed: 3 });
    expect(old.test.features[5]).toBeCloseTo(((5 * 37) % 256) / 255, 6);
    expect(old.preprocessing).toEqual({ kind: 'idx', dir, scale: '1/255', seed: 3 });
  });
});

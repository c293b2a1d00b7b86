import { describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { plotSvg, ticks } from './svg.js';
import { findChromium, svgToPng } from './png.js';
import { readPlotRun } from '../commands/plot.js';

/** The numbers of a path's d="M x,y L x,y …". */
const coords = (d: string) => [...d.matchAll(/[ML](-?[\d.]+),(-?[\d.]+)/g)].map((m) => [Number(m[1]), Number(m[2])] as const);

describe('plotSvg', () => {
  const a = { name: 'news <1 thread>', series: { trainLoss: { x: [1, 2, 3], y: [1.8, 1.6, 1.5] }, validLoss: { x: [1, 2, 3], y: [1.7, 1.62, 1.6] }, validAccuracy: { x: [1, 2, 3], y: [0.41, 0.42, 0.43] }, samplesPerSec: { x: [1, 2, 3], y: [2e5, 3e5, 3.2e5] } } };
  const b = { name: 'ctr', series: { trainLoss: { x: [1, 2], y: [0.5, 0.45] }, validAuc: { x: [1, 2], y: [0.7, 0.74] } } };
  const svg = plotSvg([a, b], { width: 800, title: 'two runs' });

  it('is one well-formed SVG of the width asked, a panel per kind of metric present', () => {
    expect(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg" width="800"')).toBe(true);
    expect(svg.trim().endsWith('</svg>')).toBe(true);
    expect([...svg.matchAll(/<g class="panel" data-title="([^"]+)"/g)].map((m) => m[1])).toEqual(['Loss', 'Valid accuracy', 'Valid AUC', 'Samples/s']);
    expect(svg).not.toContain('Valid perplexity');
    expect(svg).toContain('>two runs</text>');
  });

  it('draws each run\'s series as a path whose points rise and fall with the values, inside the picture', () => {
    const paths = [...svg.matchAll(/<path data-series="(\w+)" d="([^"]+)" fill="none" stroke="(#[0-9a-f]{6})"/g)].map((m) => ({ name: m[1], pts: coords(m[2]!), color: m[3] }));
    expect(paths.map((p) => p.name)).toEqual(['trainLoss', 'validLoss', 'trainLoss', 'validAccuracy', 'validAuc', 'samplesPerSec']);
    expect(paths[0]!.color).not.toBe(paths[2]!.color); // runs differ by colour
    const [w, h] = [800, Number(/height="(\d+)"/.exec(svg)![1])];
    for (const p of paths) for (const [x, y] of p.pts) expect(x >= 0 && x <= w && y >= 0 && y <= h, `${p.name} ${x},${y}`).toBe(true);
    const train = paths[0]!.pts;
    expect(train).toHaveLength(3);
    expect(train[0]![1]).toBeLessThan(train[2]![1]); // the loss falls: lower on the page (larger y)
    expect(train[0]![0]).toBeLessThan(train[1]![0]);
    const acc = paths[3]!.pts;
    expect(acc[0]![1]).toBeGreaterThan(acc[2]![1]); // accuracy rises
  });

  it('labels axes with round numbers, percentages for accuracy, and escapes run names', () => {
    expect(ticks(0, 1)).toEqual([0, 0.2, 0.4, 0.6, 0.8, 1]);
    expect(ticks(1.43, 1.87)).toEqual([1.5, 1.6, 1.7, 1.8]);
    expect(ticks(0, 3e5)).toEqual([0, 100000, 200000, 300000]);
    expect(svg).toMatch(/>42(\.\d)?%<\/text>/);
    expect(svg).toContain('>250k</text>');
    expect(svg).toContain('news &#60;1 thread&#62;');
    expect(svg).not.toContain('<1 thread>');
  });

  it('reads a run directory: epochs and the steps between them', () => {
    const dir = mkdtempSync(join(tmpdir(), 'loom-plot-'));
    writeFileSync(join(dir, 'metrics.jsonl'), '{"epoch":1,"trainLoss":2,"validLoss":1.9}\n{"epoch":2,"trainLoss":1.5,"validLoss":1.6}\n');
    writeFileSync(join(dir, 'steps.jsonl'), '{"step":5,"epoch":0.5,"loss":2.4}\n{"step":10,"epoch":1,"loss":1.8}\n');
    const run = readPlotRun(dir);
    expect(run.series['step:loss']).toEqual({ x: [0.5, 1], y: [2.4, 1.8] });
    const out = plotSvg([run]);
    expect(out).toContain('data-series="step:loss"');
    expect(out).toContain('>train (steps)</text>');
  });

  it('PNG: rendered by chromium at the SVG\'s size, or refused with what to install', () => {
    const dir = mkdtempSync(join(tmpdir(), 'loom-plot-'));
    const saved = process.env.LOOM_CHROMIUM;
    process.env.LOOM_CHROMIUM = '/nonexistent/chromium';
    try {
      expect(() => svgToPng(svg, 800, 600, join(dir, 'x.png'))).toThrow(/needs a headless Chromium.*apt-get install chromium.*FILE\.svg/);
    } finally {
      if (saved === undefined) delete process.env.LOOM_CHROMIUM;
      else process.env.LOOM_CHROMIUM = saved;
    }
    if (findChromium() === undefined) {
      if (process.env.CI === 'true') throw new Error('chromium is missing: apt-get install chromium (.ci/run installs it)');
      return;
    }
    const png = join(dir, 'plot.png');
    const height = Number(/height="(\d+)"/.exec(svg)![1]);
    svgToPng(svg, 800, height, png);
    const bytes = readFileSync(png);
    expect(existsSync(png)).toBe(true);
    expect(bytes.subarray(1, 4).toString()).toBe('PNG');
    expect(bytes.readUInt32BE(16)).toBe(800); // IHDR width
    expect(bytes.readUInt32BE(20)).toBe(height);
  });
});

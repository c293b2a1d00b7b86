/** `loom plot`: a picture of runs' curves, for reports and READMEs (SVG, or PNG through Chromium). */
import { existsSync, writeFileSync } from 'node:fs';
import { basename, extname, resolve } from 'node:path';
import { helpText, parseFlags, type Flags } from '../args.js';
import { downsample } from '../dashboard/downsample.js';
import { RunState } from '../dashboard/run-state.js';
import { UsageError } from '../errors.js';
import { svgToPng } from '../plot/png.js';
import { plotSvg, type PlotRun } from '../plot/svg.js';

export const PLOT_FLAGS: Flags = {
  run: { type: 'string', arg: 'DIR', help: 'a run directory; repeat --run to overlay several' },
  out: { type: 'string', arg: 'FILE.svg|FILE.png', help: 'the picture to write (PNG needs chromium)' },
  title: { type: 'string', arg: 'TEXT', help: 'a title above the curves' },
  width: { type: 'int', arg: 'PX', default: 960, min: 300, help: 'width in pixels' },
};

export const PLOT_HELP = helpText(
  'plot',
  'Draws the curves of one or more runs — loss per step and epoch, accuracy (or AUC, perplexity),\nsamples/s — into an SVG or PNG picture.',
  PLOT_FLAGS,
  '\nExample:\n  loom plot --run runs/news --run runs/news-4w --out docs/news-run.svg\n',
);

/** The --run values (the flag may repeat), and the other arguments. */
function takeRuns(argv: string[]): { runs: string[]; rest: string[] } {
  const runs: string[] = [];
  const rest: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--run') {
      const v = argv[++i];
      if (v === undefined || v.startsWith('--')) throw new UsageError('--run needs a run directory');
      runs.push(v);
    } else if (a.startsWith('--run=')) runs.push(a.slice('--run='.length));
    else rest.push(a);
  }
  return { runs, rest };
}

/** A run directory's series, downsampled for a picture `points` wide. */
export function readPlotRun(dir: string, points = 1000): PlotRun {
  const state = new RunState(dir);
  const series: PlotRun['series'] = {};
  for (const [name, c] of state.series) series[name] = downsample(c.x, c.y, c.n, points);
  return { name: basename(resolve(dir)), series };
}

export async function plotCommand(argv: string[], log: (line: string) => void = console.log): Promise<null> {
  const { runs, rest } = takeRuns(argv);
  const f = parseFlags('plot', rest, PLOT_FLAGS);
  if (f.help) {
    log(PLOT_HELP);
    return null;
  }
  if (runs.length === 0) throw new UsageError('--run DIR is required (repeat it to overlay runs)');
  if (f.out === undefined) throw new UsageError('--out FILE.svg or FILE.png is required');
  const out = f.out as string;
  const kind = extname(out).toLowerCase();
  if (kind !== '.svg' && kind !== '.png') throw new UsageError(`--out must end in .svg or .png, got '${out}'`);
  const read = runs.map((dir) => {
    if (!existsSync(dir)) throw new UsageError(`--run ${dir}: no such directory`);
    if (!existsSync(resolve(dir, 'metrics.jsonl'))) throw new UsageError(`--run ${dir}: not a run directory (no metrics.jsonl; \`loom train --out DIR\` makes one)`);
    const r = readPlotRun(dir, Math.floor((f.width as number) / 2));
    if (Object.keys(r.series).length === 0) throw new UsageError(`--run ${dir}: metrics.jsonl has no epoch yet`);
    return r;
  });
  const svg = plotSvg(read, { width: f.width as number, ...(f.title !== undefined ? { title: f.title as string } : {}) });
  if (kind === '.svg') writeFileSync(out, svg);
  else {
    const [, w, h] = /width="(\d+(?:\.\d+)?)" height="(\d+(?:\.\d+)?)"/.exec(svg)!;
    svgToPng(svg, Number(w), Number(h), out);
  }
  log(`wrote ${out}: ${read.map((r) => r.name).join(', ')}`);
  return null;
}

/**
 * An SVG picture turned into a PNG by a headless Chromium (Debian's `chromium`, or the browser
 * named by LOOM_CHROMIUM): the browser draws the SVG exactly as a page would, so the PNG is the
 * SVG's twin. Without one, PNG is refused with what to install; SVG needs nothing.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const CANDIDATES = ['/usr/bin/chromium', '/usr/bin/chromium-browser', '/usr/bin/google-chrome', '/usr/bin/google-chrome-stable'];

/** The Chromium to use, or undefined when there is none. */
export function findChromium(): string | undefined {
  const env = process.env.LOOM_CHROMIUM;
  if (env !== undefined && env !== '') return existsSync(env) ? env : undefined;
  return CANDIDATES.find((p) => existsSync(p));
}

/** Renders `svg` (width × height pixels) to a PNG at `out`. Throws naming what is missing. */
export function svgToPng(svg: string, width: number, height: number, out: string): void {
  const chromium = findChromium();
  if (chromium === undefined) {
    throw new Error(`a PNG needs a headless Chromium, and none was found (${process.env.LOOM_CHROMIUM ? `LOOM_CHROMIUM=${process.env.LOOM_CHROMIUM} does not exist` : `looked for ${CANDIDATES.join(', ')}`}): install it (apt-get install chromium) or set LOOM_CHROMIUM, or write --out FILE.svg, which needs nothing`);
  }
  const dir = mkdtempSync(join(tmpdir(), 'loom-plot-'));
  try {
    const page = join(dir, 'plot.html');
    writeFileSync(page, `<!doctype html><html><body style="margin:0">${svg}</body></html>`);
    const r = spawnSync(chromium, [
      '--headless', '--no-sandbox', '--disable-gpu', '--hide-scrollbars', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync',
      `--user-data-dir=${join(dir, 'profile')}`, `--window-size=${Math.ceil(width)},${Math.ceil(height)}`, `--screenshot=${out}`, pathToFileURL(page).href,
    ], { encoding: 'utf8', timeout: 60_000 });
    if (r.status !== 0 || !existsSync(out)) throw new Error(`${chromium} could not render the PNG (${r.error?.message ?? `exit ${r.status}`}): ${(r.stderr ?? '').trim().split('\n').slice(-2).join(' ')}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

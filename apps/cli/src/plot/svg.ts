/**
 * Curves as an SVG picture, written by hand: a grid of panels (loss, accuracy or AUC or
 * perplexity, samples/s), each with its axes, ticks at round numbers, every run's lines in its
 * colour (dashed: valid, thin: per step) and a legend. No fonts or scripts are embedded: it renders
 * the same in a browser, GitHub's README view and an image viewer.
 *
 * @example
 * writeFileSync('news.svg', plotSvg([{ name: 'news', series: { trainLoss: { x: [1, 2], y: [1.7, 1.6] } } }]));
 */

export interface PlotRun {
  name: string;
  /** Series by name (run-state.ts's names: trainLoss, validLoss, step:loss, validAccuracy …). */
  series: Record<string, { x: ArrayLike<number>; y: ArrayLike<number | null> }>;
}

interface Panel {
  title: string;
  names: string[];
  /** Shown as percentages. */
  percent?: boolean;
}

/** The panels a picture may have, in order; one is drawn when some run has one of its series. */
export const PANELS: Panel[] = [
  { title: 'Loss', names: ['step:loss', 'trainLoss', 'validLoss'] },
  { title: 'Valid accuracy', names: ['validAccuracy'], percent: true },
  { title: 'Valid AUC', names: ['validAuc'] },
  { title: 'Valid perplexity', names: ['validPerplexity'] },
  { title: 'Samples/s', names: ['samplesPerSec'] },
];

const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e', '#17becf', '#8c564b', '#e377c2'];
const LABEL: Record<string, string> = { 'step:loss': 'train (steps)', trainLoss: 'train', validLoss: 'valid', validAccuracy: 'valid', validAuc: 'valid', validPerplexity: 'valid', samplesPerSec: 'all workers' };
const STYLE: Record<string, string> = { 'step:loss': 'stroke-width="1" stroke-opacity="0.45"', validLoss: 'stroke-width="2" stroke-dasharray="6 4"' };

const esc = (s: string) => s.replace(/[<>&"']/g, (c) => `&#${c.charCodeAt(0)};`);
const num = (v: number) => String(Math.round(v * 100) / 100);

/** Round tick values covering [lo, hi]: steps of 1, 2 or 5 × 10^k, about `count` of them. */
export function ticks(lo: number, hi: number, count = 5): number[] {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw)!;
  const out: number[] = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(Number((Math.round(v / step) * step).toPrecision(12)));
  return out;
}

function label(v: number, percent: boolean): string {
  if (percent) return `${+(v * 100).toFixed(1)}%`;
  const a = Math.abs(v);
  if (a >= 1e6) return `${+(v / 1e6).toFixed(2)}M`;
  if (a >= 1e4) return `${+(v / 1e3).toFixed(1)}k`;
  return String(+v.toPrecision(4));
}

/** The SVG picture of `runs`: panels in `columns` columns, `width` pixels wide. */
export function plotSvg(runs: PlotRun[], o: { width?: number; columns?: number; title?: string } = {}): string {
  const panels = PANELS.filter((p) => runs.some((r) => p.names.some((n) => (r.series[n]?.x.length ?? 0) > 0)));
  const columns = Math.min(o.columns ?? 2, Math.max(1, panels.length));
  const width = o.width ?? 960;
  const pw = width / columns;
  const ph = 300;
  const top = o.title ? 36 : 8;
  const legendH = 22 * Math.ceil(runs.length / 3) + 8;
  const height = top + Math.ceil(panels.length / columns) * ph + legendH;
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="system-ui, -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif" font-size="12">`,
    `<rect width="${width}" height="${height}" fill="#ffffff"/>`,
  ];
  if (o.title) parts.push(`<text x="${width / 2}" y="24" text-anchor="middle" font-size="16" font-weight="600" fill="#1d2330">${esc(o.title)}</text>`);
  panels.forEach((p, i) => parts.push(panelSvg(p, runs, (i % columns) * pw, top + Math.floor(i / columns) * ph, pw, ph)));
  // Legend: a run's colour; the panels say which line is which.
  const ly = top + Math.ceil(panels.length / columns) * ph + 8;
  runs.forEach((r, i) => {
    const x = 60 + (i % 3) * ((width - 60) / 3);
    const y = ly + 22 * Math.floor(i / 3) + 10;
    parts.push(`<line x1="${x}" y1="${y}" x2="${x + 24}" y2="${y}" stroke="${COLORS[i % COLORS.length]}" stroke-width="3"/><text x="${x + 30}" y="${y + 4}" fill="#1d2330">${esc(r.name)}</text>`);
  });
  parts.push('</svg>');
  return parts.join('\n') + '\n';
}

function panelSvg(p: Panel, runs: PlotRun[], x0: number, y0: number, w: number, h: number): string {
  const m = { left: 58, right: 16, top: 30, bottom: 40 };
  const lines = runs.flatMap((r, ri) => p.names.flatMap((name) => {
    const s = r.series[name];
    if (!s || s.x.length === 0) return [];
    const pts: Array<[number, number]> = [];
    for (let i = 0; i < s.x.length; i++) {
      const y = s.y[i];
      if (typeof y === 'number' && Number.isFinite(y)) pts.push([s.x[i]!, y]);
    }
    return pts.length > 0 ? [{ name, color: COLORS[ri % COLORS.length]!, pts }] : [];
  }));
  const xs = lines.flatMap((l) => l.pts.map((q) => q[0]));
  const ys = lines.flatMap((l) => l.pts.map((q) => q[1]));
  let [xlo, xhi] = [Math.min(0, ...xs), Math.max(...xs)];
  let [ylo, yhi] = [Math.min(...ys), Math.max(...ys)];
  if (xhi === xlo) xhi = xlo + 1;
  const pad = (yhi - ylo) * 0.06 || Math.abs(yhi) * 0.05 || 1;
  [ylo, yhi] = [ylo - pad, yhi + pad];
  if (p.names.includes('samplesPerSec') && ylo < 0) ylo = 0;
  const X = (v: number) => x0 + m.left + ((v - xlo) / (xhi - xlo)) * (w - m.left - m.right);
  const Y = (v: number) => y0 + m.top + (1 - (v - ylo) / (yhi - ylo)) * (h - m.top - m.bottom);
  const out: string[] = [`<g class="panel" data-title="${esc(p.title)}">`, `<text x="${x0 + m.left}" y="${y0 + 18}" font-size="13" font-weight="600" fill="#1d2330">${esc(p.title)}</text>`];
  for (const t of ticks(ylo, yhi, 6)) out.push(`<line x1="${num(X(xlo))}" y1="${num(Y(t))}" x2="${num(X(xhi))}" y2="${num(Y(t))}" stroke="#e4e7ec"/><text x="${num(X(xlo) - 6)}" y="${num(Y(t) + 4)}" text-anchor="end" fill="#556">${esc(label(t, p.percent === true))}</text>`);
  for (const t of ticks(xlo, xhi, 6)) out.push(`<line x1="${num(X(t))}" y1="${num(Y(ylo))}" x2="${num(X(t))}" y2="${num(Y(ylo) + 4)}" stroke="#889"/><text x="${num(X(t))}" y="${num(Y(ylo) + 17)}" text-anchor="middle" fill="#556">${esc(label(t, false))}</text>`);
  out.push(`<line x1="${num(X(xlo))}" y1="${num(Y(ylo))}" x2="${num(X(xhi))}" y2="${num(Y(ylo))}" stroke="#889"/>`);
  out.push(`<text x="${num((X(xlo) + X(xhi)) / 2)}" y="${y0 + h - 6}" text-anchor="middle" fill="#556">epoch</text>`);
  for (const l of lines) {
    const d = l.pts.map(([a, b], i) => `${i === 0 ? 'M' : 'L'}${num(X(a))},${num(Y(b))}`).join('');
    out.push(`<path data-series="${esc(l.name)}" d="${d}" fill="none" stroke="${l.color}" ${STYLE[l.name] ?? 'stroke-width="2"'}/>`);
    if (l.pts.length < 40 && l.name !== 'step:loss') for (const [a, b] of l.pts) out.push(`<circle cx="${num(X(a))}" cy="${num(Y(b))}" r="2.5" fill="${l.color}"/>`);
  }
  // Which line is which, when a panel has several kinds.
  const kinds = [...new Set(lines.map((l) => l.name))];
  if (kinds.length > 1) kinds.forEach((k, i) => {
    const lx = x0 + w - m.right - 110;
    const ly = y0 + m.top + 6 + i * 16;
    out.push(`<line x1="${lx}" y1="${ly}" x2="${lx + 22}" y2="${ly}" stroke="#556" ${STYLE[k] ?? 'stroke-width="2"'}/><text x="${lx + 28}" y="${ly + 4}" fill="#556">${esc(LABEL[k] ?? k)}</text>`);
  });
  out.push('</g>');
  return out.join('\n');
}

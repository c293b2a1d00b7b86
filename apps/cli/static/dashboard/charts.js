// The charts: which series each shows, and drawing them with uPlot (served from its package).
import uPlot from '/vendor/uPlot.esm.js';

/** Each chart: a title and which series names it shows (run-state.ts names them). */
export const CHARTS = [
  { id: 'loss', title: 'Loss (train per step, train and valid per epoch)', match: (n) => n === 'trainLoss' || n === 'validLoss' || n === 'step:loss' },
  { id: 'accuracy', title: 'Valid accuracy', match: (n) => n === 'validAccuracy' },
  { id: 'auc', title: 'Valid AUC', match: (n) => n === 'validAuc' },
  { id: 'logloss', title: 'Valid log loss', match: (n) => n === 'validLogLoss' },
  { id: 'perplexity', title: 'Valid perplexity', match: (n) => n === 'validPerplexity' },
  { id: 'throughput', title: 'Samples/s (all, and per worker)', match: (n) => n === 'samplesPerSec' || /^workers\.\d+\.samplesPerSec$/.test(n) },
  { id: 'staleness', title: 'Staleness per worker (updates behind: max, mean)', match: (n) => /^workers\.\d+\.staleness(Max|Mean)$/.test(n) },
  { id: 'compute', title: 'Compute fraction per worker', match: (n) => /^workers\.\d+\.computeFraction$/.test(n) },
  { id: 'bytes', title: 'Bytes per step', match: (n) => /^bytesPerStep\.(all|dense|rows)$/.test(n) },
];

const PALETTE = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e', '#17becf', '#8c564b', '#e377c2', '#7f7f7f', '#bcbd22'];
export const runColor = (i) => PALETTE[i % PALETTE.length];

const LABELS = { trainLoss: 'train loss', validLoss: 'valid loss', 'step:loss': 'train loss (steps)', validAccuracy: 'valid accuracy', validAuc: 'valid AUC', validLogLoss: 'valid log loss', validPerplexity: 'perplexity', samplesPerSec: 'samples/s' };
function label(name) {
  const w = /^workers\.(\d+)\.(\w+)$/.exec(name);
  if (w) return `worker ${w[1]} ${w[2].replace('stalenessMax', 'max').replace('stalenessMean', 'mean').replace('samplesPerSec', 'samples/s').replace('computeFraction', 'compute')}`;
  return LABELS[name] ?? name;
}

/** 1.2k, 3.4M: axis labels that fit. */
function compact(v) {
  if (v === null) return '';
  const a = Math.abs(v);
  if (a >= 1e9) return `${+(v / 1e9).toFixed(1)}G`;
  if (a >= 1e6) return `${+(v / 1e6).toFixed(1)}M`;
  if (a >= 1e4) return `${+(v / 1e3).toFixed(1)}k`;
  return String(+v.toPrecision(4));
}

/** Dashes tell a run's series apart; colours tell runs apart. */
function dash(name) {
  if (name === 'validLoss' || name.endsWith('stalenessMean')) return [6, 4];
  if (name === 'step:loss') return undefined;
  if (/^workers\./.test(name)) return [2, 3];
  return undefined;
}

/**
 * Draws or updates every chart that has data in `runs` (id → {curves, color}). Charts keep their
 * uPlot instance while their series stay the same, so an update is a setData.
 */
export class ChartGrid {
  constructor(container, onZoom) {
    this.container = container;
    this.onZoom = onZoom;
    this.charts = new Map(); // id → { el, plot, key }
    this.zoom = null;
  }

  render(runs) {
    const width = Math.max(300, Math.floor((this.container.clientWidth || 900) / Math.max(1, Math.floor((this.container.clientWidth || 900) / 480))) - 30);
    const seen = new Set();
    for (const chart of CHARTS) {
      const tables = [];
      const series = [];
      for (const [id, run] of runs) {
        for (const [name, curve] of Object.entries(run.curves)) {
          if (!chart.match(name) || curve.x.length === 0) continue;
          tables.push([curve.x, curve.y]);
          series.push({ label: `${id} · ${label(name)}`, stroke: run.color, width: name === 'step:loss' ? 1 : 2, dash: dash(name), points: { show: curve.x.length < 60 && name !== 'step:loss' }, spanGaps: true });
        }
      }
      if (series.length === 0) continue;
      seen.add(chart.id);
      const data = tables.length === 1 ? tables[0] : uPlot.join(tables);
      const key = series.map((s) => s.label).join('|');
      let c = this.charts.get(chart.id);
      if (c && c.key !== key) {
        c.plot.destroy();
        c.el.remove();
        this.charts.delete(chart.id);
        c = undefined;
      }
      if (!c) {
        const el = document.createElement('div');
        el.className = 'chart';
        el.dataset.chart = chart.id;
        const h = document.createElement('h3');
        h.textContent = chart.title;
        el.append(h);
        this.container.append(el);
        const opts = {
          width, height: 240,
          scales: { x: { time: false } },
          axes: [{ label: 'epoch' }, { size: 60, values: (u, splits) => splits.map(compact) }],
          cursor: { sync: { key: 'loom' }, drag: { x: true, y: false } },
          legend: { live: true },
          series: [{ label: 'epoch' }, ...series],
          hooks: { setSelect: [(u) => { if (u.select.width > 0) this.onZoom(u.posToVal(u.select.left, 'x'), u.posToVal(u.select.left + u.select.width, 'x')); }] },
        };
        const plot = new uPlot(opts, data, el);
        plot.root.addEventListener('dblclick', () => this.onZoom(null, null));
        c = { el, plot, key, points: 0 };
        this.charts.set(chart.id, c);
      } else {
        c.plot.setData(data, this.zoom === null);
      }
      if (this.zoom) c.plot.setScale('x', { min: this.zoom[0], max: this.zoom[1] });
      c.points = tables.reduce((s, t) => s + t[0].length, 0);
      c.maxX = Math.max(...tables.map((t) => t[0][t[0].length - 1]));
    }
    for (const [id, c] of this.charts) {
      if (seen.has(id)) continue;
      c.plot.destroy();
      c.el.remove();
      this.charts.delete(id);
    }
  }
}

// The dashboard page: the list of runs, the charts of those ticked, the details of the one in
// focus, kept live by the server's event stream (apps/cli/src/dashboard/server.ts).
import { ChartGrid, runColor } from './charts.js';
import { membership } from './membership.js';

const $ = (id) => document.getElementById(id);
/** An element with text or children; never innerHTML, so a run's data cannot become markup. */
function el(tag, props = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) if (v !== undefined) k === 'class' ? (e.className = v) : k.startsWith('data-') ? e.setAttribute(k, v) : (e[k] = v);
  for (const c of children) if (c !== null && c !== undefined) e.append(c instanceof Node ? c : String(c));
  return e;
}

const state = {
  root: '',
  runs: [], // RunSummary[]
  selected: [], // ids, in the order ticked
  focus: null,
  data: new Map(), // id → { curves, info }
  zoom: null,
  source: null,
};
const points = () => Math.min(4000, Math.max(200, Math.floor(window.innerWidth)));
const charts = new ChartGrid($('charts'), (from, to) => setZoom(from, to));

// What tests and curious people can read: when the page first drew data, and how its updates go.
const stats = { firstPaintMs: null, renders: 0, lastUpdateMs: null, lastRenderMs: null, lastRenderAt: 0 };
window.loomDashboard = {
  stats,
  state,
  /** Points drawn in chart `id`, and the largest x (epoch) among them. */
  chart: (id) => { const c = charts.charts.get(id); return c ? { points: c.points, maxX: c.maxX } : null; },
  /** The rows of the workers table: rank → text of its state badge. */
  workers: () => Object.fromEntries([...document.querySelectorAll('[data-worker]')].map((r) => [r.dataset.worker, r.querySelector('.badge')?.textContent ?? ''])),
};

async function api(path) {
  const r = await fetch(path, { cache: 'no-store' });
  if (!r.ok) throw new Error(`${path}: ${r.status} ${(await r.json().catch(() => ({}))).error ?? ''}`);
  return r.json();
}

async function start() {
  const { root, runs, select } = await api('/api/runs');
  state.root = root;
  state.runs = runs;
  $('root').textContent = root;
  const first = select && runs.some((r) => r.id === select) ? select : [...runs].sort((a, b) => b.modified - a.modified)[0]?.id;
  const fromHash = decodeURIComponent(location.hash.slice(1)).split(',').filter((id) => runs.some((r) => r.id === id));
  state.selected = fromHash.length > 0 ? fromHash : first ? [first] : [];
  state.focus = state.selected[0] ?? null;
  renderRunList();
  await loadAll();
  connect();
}

/** Fetches every selected run's series (downsampled to the window's width) and details. */
async function loadAll() {
  await Promise.all(state.selected.map((id) => load(id)));
  render();
}

async function load(id) {
  const range = state.zoom ? `&from=${state.zoom[0]}&to=${state.zoom[1]}` : '';
  const [series, info] = await Promise.all([api(`/api/series?id=${encodeURIComponent(id)}&points=${points()}${range}`), api(`/api/run?id=${encodeURIComponent(id)}`)]);
  state.data.set(id, { curves: series.curves, info });
}

let infoTimer = null;
const reloads = new Set();
function connect() {
  state.source?.close();
  const ids = state.selected.map(encodeURIComponent).join(',');
  const source = new EventSource(`/api/stream?ids=${ids}&points=${points()}`);
  state.source = source;
  source.onopen = () => setConnection('live', 'live');
  source.onerror = () => setConnection('gone', 'server gone: showing the last data received; reload to reconnect');
  source.addEventListener('runs', (ev) => {
    state.runs = JSON.parse(ev.data).runs;
    renderRunList();
  });
  source.addEventListener('change', (ev) => {
    const t0 = performance.now();
    const c = JSON.parse(ev.data);
    const run = state.data.get(c.id);
    if (!run) return;
    if (c.reset || state.zoom) reloads.add(c.id);
    else if (c.append) {
      for (const [name, s] of Object.entries(c.append)) {
        const curve = (run.curves[name] ??= { x: [], y: [] });
        curve.x.push(...s.x);
        curve.y.push(...s.y);
        // Far more points than pixels: ask the server for the run downsampled again.
        if (curve.x.length > 4 * points()) reloads.add(c.id);
      }
    }
    if (c.info) {
      clearTimeout(infoTimer);
      infoTimer = setTimeout(refreshInfo, 100);
    }
    if (reloads.size > 0) {
      const ids = [...reloads];
      reloads.clear();
      Promise.all(ids.map(load)).then(renderSoon);
    } else renderSoon();
    stats.lastUpdateMs = performance.now() - t0;
  });
}

async function refreshInfo() {
  await Promise.all(state.selected.map(async (id) => {
    const run = state.data.get(id);
    if (run) run.info = await api(`/api/run?id=${encodeURIComponent(id)}`);
  }));
  renderRunList();
  renderDetails();
  renderWarnings();
}

function setConnection(kind, text) {
  const c = $('connection');
  c.className = `badge ${kind}`;
  c.textContent = text;
}

async function setZoom(from, to) {
  state.zoom = from === null ? null : [from, to];
  charts.zoom = state.zoom;
  await loadAll();
}

// Changes of several runs arrive together: one drawing per frame for all of them.
let frame = null;
function renderSoon() {
  frame ??= requestAnimationFrame(() => {
    frame = null;
    const t0 = performance.now();
    render();
    stats.lastRenderMs = performance.now() - t0;
  });
}

function render() {
  const runs = new Map(state.selected.filter((id) => state.data.has(id)).map((id) => [id, { ...state.data.get(id), color: colorOf(id) }]));
  charts.render(runs);
  renderDetails();
  renderWarnings();
  stats.renders++;
  stats.lastRenderAt = performance.now();
  if (stats.firstPaintMs === null && charts.charts.size > 0) {
    stats.firstPaintMs = performance.now();
    performance.mark('loom-first-paint');
  }
  if (state.runs.length === 0) $('charts').replaceChildren(el('p', { class: 'empty' }, `No runs in ${state.root} yet: \`loom train --out ${state.root}/NAME\` makes one, and it appears here.`));
}

const colorOf = (id) => runColor(Math.max(0, state.runs.findIndex((r) => r.id === id)));

function renderRunList() {
  const list = $('runs');
  list.replaceChildren(...state.runs.map((r) => {
    const status = state.data.get(r.id)?.info?.status;
    const box = el('input', { type: 'checkbox', checked: state.selected.includes(r.id), title: 'overlay this run' });
    box.addEventListener('change', () => toggle(r.id, box.checked));
    const name = el('button', { title: `${r.id}${r.task ? ` (${r.task})` : ''}` }, r.id);
    name.addEventListener('click', () => focus(r.id));
    return el('li', { class: r.id === state.focus ? 'focus' : '', 'data-run': r.id },
      el('span', { class: 'swatch', style: `background:${colorOf(r.id)}` }), box, name, status ? el('span', { class: `badge ${status}` }, status) : null);
  }));
}

async function toggle(id, on) {
  state.selected = on ? [...state.selected, id] : state.selected.filter((s) => s !== id);
  if (on) state.focus = id;
  else if (state.focus === id) state.focus = state.selected[0] ?? null;
  history.replaceState(null, '', `#${state.selected.map(encodeURIComponent).join(',')}`);
  renderRunList();
  if (on) await load(id);
  render();
  connect();
}

function focus(id) {
  if (!state.selected.includes(id)) return toggle(id, true);
  state.focus = id;
  renderRunList();
  renderDetails();
}

function renderWarnings() {
  const items = state.selected.flatMap((id) => {
    const info = state.data.get(id)?.info;
    if (!info || info.skipped === 0) return [];
    const last = info.malformed.at(-1);
    return [el('div', { class: 'warning' }, `${id}: ${info.skipped} line${info.skipped === 1 ? '' : 's'} skipped, not JSON — last: ${last.file} line ${last.line} (${last.error}): `, el('code', {}, last.text))];
  });
  $('warnings').replaceChildren(...items);
}

const fmt = (v, digits = 0) => (typeof v === 'number' && Number.isFinite(v) ? v.toLocaleString(undefined, { maximumFractionDigits: digits, minimumFractionDigits: digits }) : '—');
const ago = (t) => (typeof t === 'number' ? new Date(t).toLocaleTimeString() : '');

function renderDetails() {
  const id = state.focus;
  const info = id ? state.data.get(id)?.info : null;
  if (!info) return $('details').replaceChildren();
  const latest = info.latest ?? {};
  const { workers, servers } = membership(info.events);
  const perWorker = new Map((latest.workers ?? []).map((w) => [w.rank, w]));
  const ranks = [...new Set([...workers.keys(), ...perWorker.keys()])].sort((a, b) => a - b);
  const panels = [];

  const summary = [
    ['status', el('span', { class: `badge ${info.status}` }, info.status)],
    ['epochs', info.epochs],
    ['last epoch', latest.epoch !== undefined ? `train loss ${fmt(latest.trainLoss, 4)}${latest.validLoss !== undefined ? `, valid loss ${fmt(latest.validLoss, 4)}` : ''}${latest.validAccuracy !== undefined ? `, accuracy ${fmt(100 * latest.validAccuracy, 2)}%` : ''}${latest.validAuc !== undefined ? `, AUC ${fmt(latest.validAuc, 4)}` : ''}${latest.validPerplexity !== undefined ? `, perplexity ${fmt(latest.validPerplexity, 2)}` : ''}` : '—'],
    ['samples/s', fmt(latest.samplesPerSec)],
    ['bytes per step', latest.bytesPerStep ? `${fmt(latest.bytesPerStep.all)} (dense ${fmt(latest.bytesPerStep.dense)}, rows ${fmt(latest.bytesPerStep.rows)})` : null],
    ['directory', info.dir],
  ].filter(([, v]) => v !== null);
  panels.push(el('div', { class: 'panel', 'data-panel': 'summary' }, el('h3', {}, `Run ${id}`), el('table', {}, ...summary.map(([k, v]) => el('tr', {}, el('th', {}, k), el('td', {}, v))))));

  if (ranks.length > 0) {
    const rows = ranks.map((rank) => {
      const w = perWorker.get(rank) ?? {};
      const m = workers.get(rank);
      const st = m ? m.state : 'thread';
      return el('tr', { 'data-worker': String(rank) }, el('td', {}, `worker ${rank}`), el('td', {}, el('span', { class: `badge ${st}` }, st), m?.note ? ` ${m.note}` : ''),
        el('td', { class: 'num' }, fmt(w.samplesPerSec)), el('td', { class: 'num' }, w.computeFraction !== undefined ? `${fmt(100 * w.computeFraction, 0)}%` : '—'),
        el('td', { class: 'num' }, fmt(w.stalenessMax)), el('td', { class: 'num' }, fmt(w.stalenessMean, 2)));
    });
    panels.push(el('div', { class: 'panel', 'data-panel': 'workers' }, el('h3', {}, `Workers (epoch ${latest.epoch ?? '—'})`),
      el('table', {}, el('tr', {}, ...['', 'state', 'samples/s', 'compute', 'stale max', 'stale mean'].map((h) => el('th', {}, h))), ...rows)));
  }
  if (servers.size > 0) {
    const rows = [...servers].map(([shard, m]) => el('tr', { 'data-server': shard }, el('td', {}, `server ${shard}`), el('td', {}, el('span', { class: `badge ${m.state}` }, m.state), m.note ? ` ${m.note}` : ''), el('td', {}, m.address ?? ''), el('td', {}, m.pid ? `pid ${m.pid}` : '')));
    panels.push(el('div', { class: 'panel', 'data-panel': 'servers' }, el('h3', {}, 'Parameter servers'), el('table', {}, ...rows)));
  }
  if (info.checkpoints.length > 0) {
    const rows = info.checkpoints.slice(-8).reverse().map((c) => el('tr', {}, el('td', {}, `step ${c.step}`), el('td', {}, c.complete ? `complete (${c.shards} shard${c.shards === 1 ? '' : 's'})` : 'being written')));
    panels.push(el('div', { class: 'panel', 'data-panel': 'checkpoints' }, el('h3', {}, `Checkpoints (${info.checkpoints.length})`), el('table', {}, ...rows)));
  }
  const timeline = info.events.filter((e) => e.event !== 'started').slice(-12).reverse();
  if (timeline.length > 0) {
    const describe = (e) => [e.event, e.role === 'worker' ? `worker ${e.rank}` : e.role === 'server' ? `server ${e.shard}` : '', e.signal ?? '', e.why ?? '', e.argv ? `loom ${e.argv.join(' ')}` : ''].filter(Boolean).join(' ');
    panels.push(el('div', { class: 'panel', 'data-panel': 'events' }, el('h3', {}, 'Events'), el('table', {}, ...timeline.map((e) => el('tr', {}, el('td', {}, ago(e.time)), el('td', {}, describe(e)))))));
  }
  const start = [...info.events].reverse().find((e) => e.event === 'start' || e.event === 'resume');
  panels.push(el('div', { class: 'panel', 'data-panel': 'config' }, el('h3', {}, 'Config'),
    info.config ? el('pre', {}, JSON.stringify(info.config.train ? { model: info.config.model?.spec, task: info.config.task, dataset: info.config.dataset, train: info.config.train } : info.config, null, 2))
      : el('p', { class: 'empty' }, start ? `config.json is written when the run ends. Started as: loom ${start.argv.join(' ')}` : 'no config.json yet')));
  $('details').replaceChildren(...panels);
}

addEventListener('resize', () => {
  clearTimeout(window.__resize);
  window.__resize = setTimeout(() => { for (const c of charts.charts.values()) c.plot.setSize({ width: c.el.clientWidth - 20, height: 240 }); }, 150);
});

start().catch((e) => {
  setConnection('gone', 'error');
  $('warnings').replaceChildren(el('div', { class: 'warning' }, `Could not load the dashboard: ${e.message}`));
});

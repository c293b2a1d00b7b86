/**
 * The dashboard's HTTP server (node:http): one static page (apps/cli/static/dashboard: plain HTML
 * and JavaScript modules, no build step), uPlot from its package's dist/, and a small JSON API over
 * the runs of a directory (run-index.ts), with live changes as server-sent events.
 *
 *   GET  /                         the page
 *   GET  /static/FILE              the page's scripts and styles
 *   GET  /vendor/uPlot.esm.js      uPlot, from node_modules (never fetched from the internet)
 *   GET  /api/runs                 { root, runs: RunSummary[], select }
 *   GET  /api/run?id=ID            RunState.info(): latest epoch, events, config, checkpoints, skipped lines
 *   GET  /api/series?id=ID&points=P[&from=X&to=X]
 *                                  every series of the run, each downsampled to P buckets (downsample.ts)
 *   GET  /api/stream?ids=A,B&points=P
 *                                  text/event-stream: `runs` when the list changes; `change` {id,
 *                                  append | reset, info} for a followed run, at most every 100 ms
 *   POST /login                    token=… (form): sets the token cookie (auth.ts)
 *
 * The runs never learn that anyone watches: everything is read from their files.
 */
import { createReadStream, existsSync, statSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import { dirname, extname, join, normalize, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { tokensEqual } from '@loom/parameter-server';
import { LOGIN_PAGE, allowed, tokenCookie } from './auth.js';
import { RunIndex } from './run-index.js';
import type { RunChange } from './run-state.js';

/** The page: apps/cli/static/dashboard, the same relative path from src/dashboard and dist/dashboard. */
export const PAGE_DIR = fileURLToPath(new URL('../../static/dashboard/', import.meta.url));
const UPLOT_DIR = dirname(createRequire(import.meta.url).resolve('uplot'));

const TYPES: Record<string, string> = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.css': 'text/css; charset=utf-8', '.svg': 'image/svg+xml' };
/** The page loads nothing from anywhere else. */
const CSP = "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'";
/** Points a chart asks for at most (its width in pixels is less). */
const MAX_POINTS = 4000;
/** Changes go to a page at most this often (they are gathered in between). */
const FLUSH_MS = 100;

export interface DashboardOptions {
  /** The directory whose runs are shown. */
  runs: string;
  host: string;
  /** 0: any free port. */
  port: number;
  /** Required from every request when set (a non-loopback host). */
  token?: string;
  /** A run to show first (its id under `runs`). */
  select?: string;
  pollMs?: number;
}

export interface Dashboard {
  url: string;
  port: number;
  index: RunIndex;
  close(): Promise<void>;
}

/** Starts the server; rejects with a message naming the port when it is in use. */
export async function startDashboard(o: DashboardOptions): Promise<Dashboard> {
  const index = new RunIndex(o.runs, o.pollMs !== undefined ? { pollMs: o.pollMs } : {});
  const streams = new Set<ServerResponse>();
  const server = createServer((req, res) => {
    handle(req, res, o, index, streams).catch((e: unknown) => {
      if (!res.headersSent) json(res, 500, { error: (e as Error).message });
      else res.destroy();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (e: NodeJS.ErrnoException) => {
      index.close();
      if (e.code === 'EADDRINUSE') reject(new Error(`port ${o.port} on ${o.host} is already in use (another loom dashboard, or TensorBoard?): pass --port with another, or --port 0 for any free one`));
      else if (e.code === 'EACCES') reject(new Error(`port ${o.port} on ${o.host} needs privileges this user does not have: pass --port above 1023`));
      else if (e.code === 'EADDRNOTAVAIL') reject(new Error(`--host ${o.host} is not an address of this machine`));
      else reject(e);
    });
    server.listen(o.port, o.host, () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  const host = o.host.includes(':') ? `[${o.host}]` : o.host;
  return {
    url: `http://${host}:${port}/`,
    port,
    index,
    close: () => closeServer(server, streams, index),
  };
}

function closeServer(server: Server, streams: Set<ServerResponse>, index: RunIndex): Promise<void> {
  index.close();
  for (const s of streams) s.end();
  return new Promise((r) => {
    server.close(() => r());
    server.closeAllConnections();
  });
}

async function handle(req: IncomingMessage, res: ServerResponse, o: DashboardOptions, index: RunIndex, streams: Set<ServerResponse>): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://dashboard');
  res.setHeader('X-Content-Type-Options', 'nosniff');
  res.setHeader('Content-Security-Policy', CSP);
  res.setHeader('Referrer-Policy', 'no-referrer');
  if (url.pathname === '/login' && req.method === 'POST') return login(req, res, o.token);
  if (url.pathname === '/favicon.ico') return void res.writeHead(204).end();
  if (!allowed(req, o.token)) {
    if (url.pathname === '/') return send(res, 401, 'text/html; charset=utf-8', LOGIN_PAGE);
    return json(res, 401, { error: 'this dashboard needs the cluster token: Authorization: Bearer TOKEN, or log in at /' });
  }
  if (req.method !== 'GET' && req.method !== 'HEAD') return json(res, 405, { error: `${req.method} is not served here` });
  if (url.pathname === '/' || url.pathname === '/index.html') return file(res, join(PAGE_DIR, 'index.html'));
  if (url.pathname.startsWith('/static/')) return file(res, inside(PAGE_DIR, url.pathname.slice('/static/'.length)));
  if (url.pathname === '/vendor/uPlot.esm.js') return file(res, join(UPLOT_DIR, 'uPlot.esm.js'));
  if (url.pathname === '/vendor/uPlot.min.css') return file(res, join(UPLOT_DIR, 'uPlot.min.css'));
  if (url.pathname === '/api/runs') {
    index.scan(); // a page that was just opened sees a run started a moment ago
    return json(res, 200, { root: index.root, runs: index.runs(), select: o.select ?? null });
  }
  if (url.pathname === '/api/run' || url.pathname === '/api/series') {
    const id = url.searchParams.get('id') ?? '';
    const run = index.get(id);
    if (!run) return json(res, 404, { error: `no run '${id}' under ${index.root}` });
    if (url.pathname === '/api/run') return json(res, 200, run.info());
    const num = (k: string) => (url.searchParams.has(k) ? Number(url.searchParams.get(k)) : undefined);
    const points = Math.min(MAX_POINTS, Math.max(10, Math.floor(num('points') ?? 1000)));
    return json(res, 200, { id, curves: run.curves(points, num('from'), num('to')) });
  }
  if (url.pathname === '/api/stream') return stream(req, res, url, index, streams);
  return json(res, 404, { error: `nothing at ${url.pathname}` });
}

/** The live stream of one page: changes of the runs it follows, batched. */
function stream(req: IncomingMessage, res: ServerResponse, url: URL, index: RunIndex, streams: Set<ServerResponse>): void {
  const points = Math.min(MAX_POINTS, Math.max(10, Number(url.searchParams.get('points') ?? 1000)));
  const ids = (url.searchParams.get('ids') ?? '').split(',').filter((s) => s !== '');
  res.writeHead(200, { 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-store', Connection: 'keep-alive' });
  res.write(': loom dashboard\n\n');
  streams.add(res);
  const pending = new Map<string, RunChange>();
  let timer: NodeJS.Timeout | undefined;
  const flush = () => {
    timer = undefined;
    for (const [id, c] of pending) {
      // Too many new points for the page to append: it reloads the run, downsampled.
      const tooMany = c.append && Object.values(c.append).some((s) => s.x.length > points);
      const out = tooMany || c.reset ? { id, reset: true, info: true } : { id, ...c };
      res.write(`event: change\ndata: ${JSON.stringify(out)}\n\n`);
    }
    pending.clear();
  };
  const offs = ids.flatMap((id) => {
    const run = index.get(id);
    if (!run) return [];
    return [run.subscribe((c) => {
      const p = pending.get(id) ?? {};
      if (c.reset) p.reset = true;
      if (c.info) p.info = true;
      if (c.append && !p.reset) {
        p.append ??= {};
        for (const [name, s] of Object.entries(c.append)) {
          const q: { x: number[]; y: Array<number | null> } = (p.append[name] ??= { x: [], y: [] });
          for (let i = 0; i < s.x.length; i++) (q.x.push(s.x[i]!), q.y.push(s.y[i]!));
        }
      }
      pending.set(id, p);
      timer ??= setTimeout(flush, FLUSH_MS);
    })];
  });
  const offList = index.onList(() => res.write(`event: runs\ndata: ${JSON.stringify({ runs: index.runs() })}\n\n`));
  const keepAlive = setInterval(() => res.write(': still here\n\n'), 15_000);
  const end = () => {
    clearInterval(keepAlive);
    clearTimeout(timer);
    for (const off of offs) off();
    offList();
    streams.delete(res);
  };
  req.on('close', end);
  res.on('close', end);
}

async function login(req: IncomingMessage, res: ServerResponse, token: string | undefined): Promise<void> {
  let body = '';
  for await (const chunk of req) {
    body += chunk;
    if (body.length > 4096) return json(res, 413, { error: 'too large' });
  }
  const given = new URLSearchParams(body).get('token') ?? '';
  if (token === undefined || tokensEqual(given.trim(), token)) {
    res.writeHead(303, { Location: '/', ...(token !== undefined ? { 'Set-Cookie': tokenCookie(token) } : {}) });
    res.end();
    return;
  }
  send(res, 401, 'text/html; charset=utf-8', LOGIN_PAGE.replace('<form', '<p style="color:#b00">That is not the cluster token.</p><form'));
}

/** `rel` inside `root`, or a path that does not exist when it would leave it. */
function inside(root: string, rel: string): string {
  const p = normalize(join(root, decodeURIComponent(rel)));
  return p.startsWith(root.endsWith(sep) ? root : root + sep) ? p : join(root, '\0');
}

function file(res: ServerResponse, path: string): void {
  if (path.includes('\0') || !existsSync(path) || !statSync(path).isFile()) return json(res, 404, { error: 'no such file' });
  res.writeHead(200, { 'Content-Type': TYPES[extname(path)] ?? 'application/octet-stream', 'Cache-Control': 'no-cache' });
  createReadStream(path).pipe(res);
}

function json(res: ServerResponse, status: number, body: unknown): void {
  send(res, status, 'application/json; charset=utf-8', JSON.stringify(body));
}

function send(res: ServerResponse, status: number, type: string, body: string): void {
  res.writeHead(status, { 'Content-Type': type, 'Cache-Control': 'no-store' });
  res.end(body);
}

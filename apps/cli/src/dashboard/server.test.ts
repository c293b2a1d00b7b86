// The dashboard's HTTP server over a real socket on 127.0.0.1: the API, the live stream, the token
// rules, and bad input (a port in use, a line that is not JSON). The page itself: test/dashboard.test.ts.
import { afterAll, describe, expect, it } from 'vitest';
import { appendFileSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startDashboard, type Dashboard } from './server.js';
import { isLoopback } from './auth.js';

const root = mkdtempSync(join(tmpdir(), 'loom-dash-'));
mkdirSync(join(root, 'a'));
writeFileSync(join(root, 'a', 'metrics.jsonl'), '{"epoch":1,"trainLoss":2,"validLoss":1.9,"workers":[{"rank":0,"samplesPerSec":10},{"rank":1,"samplesPerSec":12}]}\n');
mkdirSync(join(root, 'group', 'b'), { recursive: true });
writeFileSync(join(root, 'group', 'b', 'metrics.jsonl'), '');
const open: Dashboard[] = [];
afterAll(async () => {
  for (const d of open) await d.close();
});
const start = async (o: { token?: string; port?: number } = {}) => {
  const d = await startDashboard({ runs: root, host: '127.0.0.1', port: o.port ?? 0, pollMs: 100, ...(o.token ? { token: o.token } : {}) });
  open.push(d);
  return d;
};

describe('loom dashboard server', () => {
  it('lists the runs two levels down and serves a run\'s series by name, workers by rank', async () => {
    const d = await start();
    const runs = await (await fetch(`${d.url}api/runs`)).json();
    expect(runs.runs.map((r: { id: string }) => r.id)).toEqual(['a', 'group/b']);
    const s = await (await fetch(`${d.url}api/series?id=a&points=100`)).json();
    expect(s.curves.trainLoss).toEqual({ x: [1], y: [2] });
    expect(s.curves['workers.1.samplesPerSec']).toEqual({ x: [1], y: [12] });
    expect((await fetch(`${d.url}api/run?id=nope`)).status).toBe(404);
    const page = await fetch(d.url);
    expect(page.headers.get('content-security-policy')).toContain("default-src 'self'");
    expect(await page.text()).toContain('/static/app.js');
    expect(await (await fetch(`${d.url}static/charts.js`)).text()).toContain("from '/vendor/uPlot.esm.js'");
    const uplot = await fetch(`${d.url}vendor/uPlot.esm.js`);
    expect(uplot.status).toBe(200);
    expect(await uplot.text()).toContain('export { uPlot as default }');
    expect((await fetch(`${d.url}static/..%2F..%2Fpackage.json`)).status).toBe(404);
  });

  it('streams new epochs as they are appended, holds a half-written line, and reports a malformed one', async () => {
    const d = await start();
    const ac = new AbortController();
    const res = await fetch(`${d.url}api/stream?ids=a&points=100`, { signal: ac.signal });
    const reader = res.body!.getReader();
    let text = '';
    const until = async (re: RegExp) => {
      const deadline = Date.now() + 5000;
      while (!re.test(text) && Date.now() < deadline) text += new TextDecoder().decode((await reader.read()).value);
      return re.test(text);
    };
    await until(/loom dashboard/);
    appendFileSync(join(root, 'a', 'metrics.jsonl'), '{"epoch":2,"trainLoss":1.5,"valid');
    appendFileSync(join(root, 'a', 'metrics.jsonl'), 'Loss":1.4}\nnot json at all\n');
    expect(await until(/"trainLoss":\{"x":\[2\],"y":\[1.5\]\}/)).toBe(true);
    ac.abort();
    const info = await (await fetch(`${d.url}api/run?id=a`)).json();
    expect(info.epochs).toBe(2);
    expect(info.skipped).toBe(1);
    expect(info.malformed[0]).toMatchObject({ file: 'metrics.jsonl', line: 3, text: 'not json at all' });
  });

  it('with a token: refuses requests without it, takes it as a bearer header or from the login form\'s cookie', async () => {
    const d = await start({ token: 's3cret-token' });
    expect((await fetch(`${d.url}api/runs`)).status).toBe(401);
    const page = await fetch(d.url);
    expect(page.status).toBe(401);
    expect(await page.text()).toContain('cluster token');
    expect((await fetch(`${d.url}api/runs`, { headers: { authorization: 'Bearer wrong' } })).status).toBe(401);
    expect((await fetch(`${d.url}api/runs`, { headers: { authorization: 'Bearer s3cret-token' } })).status).toBe(200);
    const bad = await fetch(`${d.url}login`, { method: 'POST', body: 'token=nope', headers: { 'content-type': 'application/x-www-form-urlencoded' }, redirect: 'manual' });
    expect(bad.status).toBe(401);
    const login = await fetch(`${d.url}login`, { method: 'POST', body: 'token=s3cret-token', headers: { 'content-type': 'application/x-www-form-urlencoded' }, redirect: 'manual' });
    expect(login.status).toBe(303);
    const cookie = login.headers.get('set-cookie')!;
    expect(cookie).toMatch(/HttpOnly/);
    expect(cookie).toMatch(/SameSite=Strict/);
    expect((await fetch(`${d.url}api/runs`, { headers: { cookie: cookie.split(';')[0]! } })).status).toBe(200);
  });

  it('a port in use is refused with a message naming it', async () => {
    const d = await start();
    await expect(start({ port: d.port })).rejects.toThrow(`port ${d.port} on 127.0.0.1 is already in use`);
  });

  it('loopback addresses need no token; others do', () => {
    for (const h of ['127.0.0.1', '127.1.2.3', 'localhost', '::1', '[::1]']) expect(isLoopback(h), h).toBe(true);
    for (const h of ['0.0.0.0', '192.168.1.4', '::', 'example.org']) expect(isLoopback(h), h).toBe(false);
  });
});

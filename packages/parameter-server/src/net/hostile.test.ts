// Peers without the token, over real sockets on 127.0.0.1: before authenticating, a peer gets one
// refusal and its socket is destroyed at once, a flood of them writes a few log lines, a silent
// socket is closed at the deadline, the limits answer 503, and a large first frame is refused
// without being buffered — while an authenticated worker on the same server trains throughout.
import { connect, type Socket } from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { Random, flattenParameters, mlp } from '@loom/tensor-core';
import { PsClient } from './client.js';
import { decodeFrame, encodeFrame } from './frame.js';
import { PROTOCOL_VERSION } from './protocol.js';
import { ParameterServer, type ServerOptions } from './server.js';

const base = { sizes: [100, 50, 10], seed: 3, optimizer: 'sgd', lr: 0.01 };
const P = flattenParameters(mlp(base.sizes, { init: 'xavier', rng: new Random(base.seed) })).size;
const TOKEN = 'test-token-0123456789';
const servers: ParameterServer[] = [];
afterAll(async () => {
  await Promise.all(servers.map((s) => s.close()));
});

async function serve(extra: Partial<ServerOptions> = {}): Promise<{ s: ParameterServer; log: string[] }> {
  const log: string[] = [];
  const s = await ParameterServer.start({ ...base, mode: 'sync', workers: 1, token: TOKEN, log: (l) => void log.push(l), ...extra });
  servers.push(s);
  return { s, log };
}

/**
 * An authenticated worker stepping in a loop (pushpull, 1 worker: each step is applied at once)
 * until stopped: how many steps it made and the longest wait for one.
 */
async function trainer(s: ParameterServer) {
  const c = await PsClient.connect([s.url], { token: TOKEN, rank: 0, workers: 1, size: P });
  const params = new Float32Array(P);
  const grad = new Float32Array(P).fill(1e-3);
  let step = 0, stopped = false, longestMs = 0, failure: unknown = null;
  await c.pull(0, params);
  const loop = (async () => {
    try {
      while (!stopped) {
        const t = performance.now();
        const r = await c.pushPull(step, grad, params, { rows: 1, batchRows: 1 });
        if (r.applied !== step + 1) throw new Error(`step ${step} answered with ${r.applied} applied`);
        step++;
        longestMs = Math.max(longestMs, performance.now() - t);
        await new Promise((r) => setImmediate(r));
      }
    } catch (e) {
      failure = e;
    }
  })();
  return {
    get steps() {
      return step;
    },
    async stop() {
      stopped = true;
      await loop;
      if (failure) throw failure;
      expect((await c.stats())[0]!.applied).toBe(step); // the server still answers, and applied every step
      await c.close();
      return { steps: step, longestMs };
    },
  };
}

/** Waits until the worker has made `n` more steps (it trains while the server is attacked). */
async function moreSteps(t: { steps: number }, n: number): Promise<void> {
  const target = t.steps + n;
  while (t.steps < target) await new Promise((r) => setTimeout(r, 5));
}

/** A client frame (masked with a zero key, as PsClient sends), declaring `declared` bytes of payload. */
function clientFrame(payload: Buffer, declared = payload.length, opcode = 2): Buffer {
  const len = declared < 126 ? [declared] : declared < 65536 ? [126, declared >> 8, declared & 255] : [127, 0, 0, 0, 0, (declared >>> 24) & 255, (declared >> 16) & 255, (declared >> 8) & 255, declared & 255];
  return Buffer.concat([Buffer.from([0x80 | opcode, 0x80 | len[0]!, ...len.slice(1), 0, 0, 0, 0]), payload]);
}

interface ServerFrame {
  opcode: number;
  payload: Buffer;
}

/**
 * A WebSocket peer by hand over a raw TCP socket: the upgrade, then frames as the test writes
 * them. It never answers anything — not a close frame, not a ping. `frames` are the server's,
 * `gone` resolves with the time (performance.now) the server ended or closed the socket.
 */
async function rawPeer(url: string, { upgrade = true } = {}): Promise<{ socket: Socket; frames: ServerFrame[]; gone: Promise<number>; status: string }> {
  const { hostname, port } = new URL(url);
  const socket = connect(Number(port), hostname);
  const gone = new Promise<number>((r) => {
    socket.once('end', () => r(performance.now()));
    socket.once('close', () => r(performance.now()));
  });
  socket.on('error', () => {});
  await new Promise((r) => socket.once('connect', r));
  const frames: ServerFrame[] = [];
  if (!upgrade) return { socket, frames, gone, status: '' };
  socket.write(`GET / HTTP/1.1\r\nHost: ${hostname}:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n`);
  let buf = Buffer.alloc(0);
  let status = '';
  await new Promise<void>((resolve) => {
    socket.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      if (status === '') {
        const end = buf.indexOf('\r\n\r\n');
        if (end < 0) return;
        status = buf.subarray(0, buf.indexOf('\r\n')).toString();
        buf = buf.subarray(end + 4);
        resolve();
      }
      // Server frames are not masked.
      for (;;) {
        if (buf.length < 2) break;
        let len = buf[1]! & 0x7f, at = 2;
        if (len === 126) (len = buf.length >= 4 ? buf.readUInt16BE(2) : -1), (at = 4);
        else if (len === 127) (len = buf.length >= 10 ? Number(buf.readBigUInt64BE(2)) : -1), (at = 10);
        if (len < 0 || buf.length < at + len) break;
        frames.push({ opcode: buf[0]! & 0x0f, payload: buf.subarray(at, at + len) });
        buf = buf.subarray(at + len);
      }
    });
    void gone.then(() => resolve());
  });
  return { socket, frames, gone, status };
}

const closeOf = (f: ServerFrame | undefined) => (f && f.opcode === 8 ? { code: f.payload.readUInt16BE(0), reason: f.payload.subarray(2).toString() } : f);

/** Random bytes from a fixed seed (xorshift32). */
function randomBytes(n: number, seed: number): Buffer {
  let x = seed;
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    b[i] = x & 255;
  }
  return b;
}

describe('before authentication, the server gives nothing away and holds nothing', () => {
  it('a peer that upgrades and sends 1,000 random frames gets one close frame, and its socket is destroyed at once', async () => {
    const { s, log } = await serve();
    const worker = await trainer(s);
    const peer = await rawPeer(s.url);
    expect(peer.status).toBe('HTTP/1.1 101 Switching Protocols');
    const frames = Array.from({ length: 1000 }, (_, i) => clientFrame(randomBytes(1 + (i * 37) % 200, i + 1)));
    const t0 = performance.now();
    peer.socket.write(Buffer.concat(frames));
    const destroyedAfter = (await peer.gone) - t0;
    // (A peer that does not answer the close frame kept its socket for ws's 30 s close timeout.)
    expect(destroyedAfter).toBeLessThan(500);
    expect(peer.frames.map(closeOf)).toEqual([{ code: 1008, reason: 'authentication required' }]); // one refusal, nothing answered
    const port = peer.socket.localPort;
    expect(log.filter((l) => l.includes(`:${port}`))).toEqual([expect.stringMatching(/^refused 127\.0\.0\.1:\d+: not a hello \(first frame unreadable: .*\)$/)]);
    expect(s.stats().refused).toEqual({ 'not a hello': 1 });
    await moreSteps(worker, 5);
    expect((await worker.stop()).steps).toBeGreaterThan(5);
    console.log(`1,000 random frames: one close frame, socket destroyed ${destroyedAfter.toFixed(1)} ms after they were sent`);
  });

  it('1,000 connections with a wrong token write 2 log lines: the first in full, then one counting them all', async () => {
    const { s, log } = await serve({ refusalWindowMs: 60_000 });
    const worker = await trainer(s);
    const before = worker.steps;
    const t0 = performance.now();
    const codes: number[] = [];
    const one = () =>
      new Promise<void>((resolve, reject) => {
        const ws = new WebSocket(s.url);
        ws.on('open', () => ws.send(encodeFrame({ type: 'hello', v: PROTOCOL_VERSION, token: 'a-wrong-token', role: 'worker', rank: 0, workers: 1, size: P })));
        ws.on('error', reject);
        ws.on('close', (code) => {
          codes.push(code);
          resolve();
        });
      });
    // 16 at a time (below the 64 unauthenticated sockets allowed).
    await Promise.all(Array.from({ length: 16 }, async (_, k) => {
      for (let i = k; i < 1000; i += 16) await one();
    }));
    const seconds = (performance.now() - t0) / 1000;
    expect(codes.filter((c) => c === 1008)).toHaveLength(1000);
    expect(worker.steps - before, 'the worker trained during the 1,000 refusals').toBeGreaterThan(10);
    const { longestMs } = await worker.stop();
    expect(s.stats().refused).toEqual({ 'bad token': 1000 });
    expect(s.stats().errors.auth).toBe(1000);
    await s.close(); // writes the summary of the open window
    const refusals = log.filter((l) => l.startsWith('refused'));
    expect(refusals).toEqual([
      expect.stringMatching(/^refused 127\.0\.0\.1:\d+: bad token \(hello with a wrong token\)$/),
      expect.stringMatching(/^refused 1,000 connections from 127\.0\.0\.1 in \d+ s \(bad token 1,000\)$/),
    ]);
    expect(log.length).toBeLessThanOrEqual(4); // and the worker's own connect and disconnect
    console.log(`1,000 wrong-token connections in ${seconds.toFixed(1)} s: ${log.length} log lines (${refusals.length} about refusals); longest worker step meanwhile ${longestMs.toFixed(0)} ms`);
  });

  it('a TCP connection that never upgrades, and an upgraded one that never says hello, are destroyed at the deadline', async () => {
    const { s, log } = await serve({ helloTimeoutMs: 300 });
    const worker = await trainer(s); // authenticated within the deadline: it is not cut off
    const silent = await rawPeer(s.url, { upgrade: false });
    const t0 = performance.now();
    const mute = await rawPeer(s.url);
    expect((await silent.gone) - t0).toBeGreaterThan(200);
    expect((await silent.gone) - t0).toBeLessThan(1500);
    expect((await mute.gone) - t0).toBeLessThan(1500); // though it does not answer the close frame
    expect(mute.frames.map(closeOf)).toEqual([{ code: 1008, reason: 'authentication required' }]);
    expect(s.stats().refused).toEqual({ 'no upgrade': 1, 'no hello': 1 });
    expect(log).toContainEqual(expect.stringMatching(/^refused 127\.0\.0\.1:\d+: no upgrade \(nothing within 300 ms\)$/));
    await moreSteps(worker, 5); // past the deadline
    await worker.stop();
  });

  it('past maxUnauthenticated or maxConnections, an upgrade is answered 503 before any handshake, and counted', async () => {
    const { s } = await serve({ maxConnections: 3, maxUnauthenticated: 1 });
    const worker = await trainer(s); // 1 socket, authenticated
    const status = (url: string) =>
      new Promise<number>((resolve, reject) => {
        const ws = new WebSocket(url);
        ws.on('unexpected-response', (_req, res) => {
          resolve(res.statusCode!);
          res.resume();
        });
        ws.on('open', () => (resolve(101), ws.terminate()));
        ws.on('error', reject);
      });
    const silent = await rawPeer(s.url, { upgrade: false }); // 2 sockets, 1 not authenticated
    expect(await status(s.url)).toBe(503); // would be 2 not authenticated
    silent.socket.destroy();
    await silent.gone;
    const observer = await PsClient.connect([s.url], { token: TOKEN, role: 'observer', workers: 1, size: P }); // 2, both authenticated
    const silent2 = await rawPeer(s.url, { upgrade: false }); // 3, 1 not authenticated
    expect(await status(s.url)).toBe(503); // would be 4 sockets
    expect(s.stats().refused).toEqual({ 'unauthenticated limit': 1, 'connection limit': 1 });
    silent2.socket.destroy();
    await silent2.gone;
    expect(await status(s.url)).toBe(101); // room again
    await observer.close();
    // Past maxConnections + maxUnauthenticated sockets (4), a TCP connection is closed at accept, unanswered.
    await new Promise((r) => setTimeout(r, 50)); // (the sockets above are gone)
    const held = await Promise.all([1, 2, 3].map(() => rawPeer(s.url, { upgrade: false }))); // with the worker's: 4
    const dropped = await rawPeer(s.url, { upgrade: false });
    const t0 = performance.now();
    expect((await dropped.gone) - t0).toBeLessThan(500);
    expect(s.stats().refused).toEqual({ 'unauthenticated limit': 1, 'connection limit': 2 });
    for (const h of held) h.socket.destroy();
    await moreSteps(worker, 5);
    await worker.stop();
  });

  it('a first frame larger than 64 KiB is refused after 64 KiB of it, not buffered until it is whole', async () => {
    const { s, log } = await serve(); // frames up to 256 MiB once authenticated; 5 s to say hello
    const worker = await trainer(s);
    const peer = await rawPeer(s.url);
    // A frame announcing 64 MiB (ws would take it whole), of which 256 KiB are sent; the rest never comes.
    const t0 = performance.now();
    peer.socket.write(clientFrame(Buffer.alloc(256 * 1024, 7), 64 * 1024 * 1024));
    const after = (await peer.gone) - t0;
    expect(after).toBeLessThan(1000); // well before the 5 s deadline: the server did not wait for the rest
    expect(peer.frames.map(closeOf)).toEqual([{ code: 1008, reason: 'authentication required' }]);
    expect(s.stats().refused).toEqual({ 'too large': 1 });
    expect(log).toContainEqual(expect.stringMatching(/^refused 127\.0\.0\.1:\d+: too large \(sent \d+ bytes without a hello; a hello is at most 65536\)$/));
    // Once authenticated, a peer may send large frames, and a bad one is answered with an error; it stays connected.
    const ws = new WebSocket(s.url);
    const replies: any[] = [];
    const next = () => new Promise<any>((r) => ws.once('message', (d) => r(decodeFrame(d as Buffer).header)));
    await new Promise((r) => ws.once('open', r));
    ws.send(encodeFrame({ type: 'hello', v: PROTOCOL_VERSION, token: TOKEN, role: 'observer', rank: -1, workers: 1, size: P }));
    replies.push(await next());
    ws.send(encodeFrame({ type: 'push', id: 1, step: 0, lo: 0, rows: 1, batchRows: 1 }, new Float32Array(1 << 20))); // 4 MiB, read whole, refused by the handler
    replies.push(await next());
    ws.send(encodeFrame({ type: 'stats', id: 2 }));
    replies.push(await next());
    expect(replies).toMatchObject([{ type: 'welcome' }, { type: 'error', id: 1, code: 'not-worker' }, { type: 'stats', id: 2 }]);
    ws.close();
    await moreSteps(worker, 3);
    await worker.stop();
  });
});

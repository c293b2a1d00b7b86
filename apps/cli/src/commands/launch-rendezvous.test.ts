// loom launch's rendezvous endpoint under peers without the token, over real sockets: the same
// rules as a parameter server's port (@loom/parameter-server's Gate): refusals answered and hung
// up at once, logged a few lines per flood, a silent socket cut at the deadline, 503 at the
// limits — and a node with the token still joins.
import { connect, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import { listenRendezvous } from './launch.js';

const TOKEN = 'rendezvous-token-0123456789';
const closers: Array<() => Promise<void>> = [];
afterAll(async () => {
  await Promise.all(closers.map((c) => c()));
});

async function endpoint(limits: Parameters<typeof listenRendezvous>[3] = {}) {
  const log: string[] = [];
  const plan = {
    token: TOKEN, say: (l: string) => void log.push(l), fingerprint: 'fp', bindHost: '127.0.0.1',
    rendezvous: { nodes: 2, nodeRank: 0, masterHost: '127.0.0.1', masterPort: 0, source: { nodes: 'test', nodeRank: 'test', masterHost: 'test', masterPort: 'test' } },
  };
  const e = await listenRendezvous(plan, Promise.resolve(['ws://127.0.0.1:1']), { report: () => {}, failed: () => {} }, limits);
  const close = async () => {
    e.gate.close();
    e.server.closeAllConnections();
    await new Promise((r) => e.server.close(r));
  };
  closers.push(close);
  return { e, log, port: (e.server.address() as AddressInfo).port, close };
}

const post = (port: number, token: string, body: object = { nodeRank: 1, fingerprint: 'fp' }) =>
  fetch(`http://127.0.0.1:${port}/loom/v1/join`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', connection: 'close' }, body: JSON.stringify(body) });

/** A raw TCP peer; `gone` resolves with the time the server ended or closed the socket. */
async function rawPeer(port: number): Promise<{ socket: Socket; gone: Promise<number>; data: () => string }> {
  const socket = connect(port, '127.0.0.1');
  let text = '';
  socket.on('data', (d) => void (text += d.toString()));
  socket.on('error', () => {});
  const gone = new Promise<number>((r) => {
    socket.once('end', () => r(performance.now()));
    socket.once('close', () => r(performance.now()));
  });
  await new Promise((r) => socket.once('connect', r));
  return { socket, gone, data: () => text };
}

describe("loom launch's rendezvous before authentication", () => {
  it('answers 200 wrong tokens with 401 and hangs up on each, in 2 log lines; a node with the token joins', async () => {
    const { e, log, port, close } = await endpoint({ refusalWindowMs: 60_000 });
    for (let i = 0; i < 200; i++) expect((await post(port, 'wrong')).status).toBe(401);
    // A peer that sends a request without the token and then nothing: answered, and its socket is gone at once.
    const peer = await rawPeer(port);
    const t0 = performance.now();
    peer.socket.write('POST /loom/v1/join HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n');
    expect((await peer.gone) - t0).toBeLessThan(500);
    expect(peer.data()).toMatch(/^HTTP\/1\.1 401 /);
    const ok = await post(port, TOKEN);
    expect(ok.status).toBe(200);
    expect(await ok.json()).toEqual({ servers: ['ws://127.0.0.1:1'] });
    expect(e.joined).toEqual(new Set([1]));
    await close();
    expect(log.filter((l) => l.startsWith('refused'))).toEqual([
      expect.stringMatching(/^refused 127\.0\.0\.1:\d+: bad token \(POST \/loom\/v1\/join\)$/),
      expect.stringMatching(/^refused 201 connections from 127\.0\.0\.1 in \d+ s \(bad token 200, no token 1\)$/),
    ]);
  });

  it('closes a socket that sends no request by the deadline, and answers 503 past the unauthenticated limit', async () => {
    const { log, port } = await endpoint({ deadlineMs: 300, maxUnauthenticated: 1 });
    const silent = await rawPeer(port);
    const t0 = performance.now();
    expect((await post(port, TOKEN)).status).toBe(503); // the silent socket holds the one unauthenticated place
    expect((await silent.gone) - t0).toBeGreaterThan(200);
    expect((await silent.gone) - t0).toBeLessThan(1500);
    expect(silent.data()).toBe(''); // nothing given away
    expect((await post(port, TOKEN)).status).toBe(200); // room again
    expect(log).toContainEqual(expect.stringMatching(/^refused 127\.0\.0\.1:\d+: unauthenticated limit \(POST \/loom\/v1\/join\)$/));
  });
});

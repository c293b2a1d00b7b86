// Membership: dropping a worker from the sync barrier, readmitting it, heartbeats, and a worker's
// reconnect loop giving up — in one process, over real sockets on 127.0.0.1.
import { describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { createServer, connect, type Server } from 'node:net';
import WebSocket from 'ws';
import { ShardStore, type StoreOptions } from './store.js';
import { ParameterServer } from './server.js';
import { PsClient } from './client.js';
import { backoffMs, joinRun } from './membership.js';
import { PROTOCOL_VERSION } from './protocol.js';
import { decodeFrame, encodeFrame } from './frame.js';

const SIZES = [3, 4, 2];
const base: StoreOptions = { sizes: SIZES, seed: 1, optimizer: 'sgd', lr: 0.1, mode: 'sync', staleness: 0, workers: 2, shard: 0, shards: 1, nonFinite: 'reject' };
const grad = (n: number, v: number) => Float32Array.from({ length: n }, (_, i) => v * (i + 1));

describe('ShardStore membership', () => {
  it('a dropped worker is no longer waited for; the others\' rows are renormalised; it can join again from a later step', () => {
    const two = new ShardStore(base);
    const one = new ShardStore({ ...base, workers: 1 });
    const n = two.hi - two.lo;
    expect(two.push(0, 0, 32, 64, grad(n, 1)).appliedNow).toBe(0);
    expect(two.drop(1)).toBe(1); // clock 0 had all its members' pushes once 1 was gone
    one.push(0, 0, 64, 64, grad(n, 1)); // one worker, the whole batch: weight 1, as 32/32 after renormalising
    expect(two.params).toEqual(one.params);
    expect(two.members()).toEqual([0]);
    expect(() => two.push(1, 1, 32, 64, grad(n, 2))).toThrow(/worker 1 is not a member of the run \(it was dropped\): join first/);
    expect(() => two.join(1, 0)).toThrow(/join at step 0: 1 updates are already applied/);
    two.join(1, 2); // counted from clock 2: clock 1 goes on without it
    expect(two.push(0, 1, 32, 64, grad(n, 2)).appliedNow).toBe(1);
    expect(two.push(0, 2, 32, 64, grad(n, 3)).appliedNow).toBe(0); // clock 2 waits for worker 1 again
    expect(two.push(1, 2, 32, 64, grad(n, 3)).appliedNow).toBe(1);
    expect(two.applied).toBe(3);
  });

  it('a drop keeps the push the dropped worker made: it is the gradient of its rows of that step', () => {
    const s = new ShardStore({ ...base, workers: 3 });
    const n = s.hi - s.lo;
    s.push(2, 0, 20, 64, grad(n, 100)); // worker 2 pushes, then dies
    s.push(0, 0, 22, 64, grad(n, 1));
    expect(s.drop(2)).toBe(0); // still waiting for worker 1
    expect(s.push(1, 0, 22, 64, grad(n, 1)).appliedNow).toBe(1);
    const ref = new ShardStore({ ...base, workers: 1 });
    // (22·g + 22·g + 20·100g)/64: every row of the step is in the update, worker 2's too
    ref.push(0, 0, 64, 64, Float32Array.from(grad(n, 1), (g) => (44 * g + 2000 * g) / 64));
    expect(Array.from(s.params).map((v, i) => Math.abs(v - ref.params[i]!) < 1e-6)).not.toContain(false);
  });

  it('a worker that rejoins at the step it had pushed pushes it again: its old push is dropped, not counted twice', () => {
    const s = new ShardStore({ ...base, workers: 2 });
    const n = s.hi - s.lo;
    s.push(1, 0, 32, 64, grad(n, 100)); // worker 1 pushes, dies, and comes back before clock 0 is applied
    s.drop(1);
    s.join(1, 0);
    expect(s.push(1, 0, 32, 64, grad(n, 2)).appliedNow).toBe(0); // taken again, not "already pushed"
    expect(s.push(0, 0, 32, 64, grad(n, 2)).appliedNow).toBe(1);
    const ref = new ShardStore({ ...base, workers: 1 });
    ref.push(0, 0, 64, 64, grad(n, 2));
    expect(s.params).toEqual(ref.params);
  });
});

describe('ShardStore membership, ssp', () => {
  it('a drop keeps the dropped worker\'s pushes of clocks not yet applied, and the clocks go on without it', () => {
    const s = new ShardStore({ ...base, mode: 'ssp', staleness: 1 });
    const ref = new ShardStore({ ...base, mode: 'ssp', staleness: 1, workers: 1 });
    const n = s.hi - s.lo;
    const mean = (a: Float32Array, b: Float32Array) => Float32Array.from(a, (g, i) => 0.5 * g + 0.5 * b[i]!);
    s.push(1, 0, 32, 64, grad(n, 5));
    s.push(1, 1, 32, 64, grad(n, 6)); // worker 1 ran one clock ahead, then died
    s.push(0, 0, 32, 64, grad(n, 1)); // clock 0 complete: applied with both
    ref.push(0, 0, 64, 64, mean(grad(n, 5), grad(n, 1)));
    expect(s.drop(1)).toBe(0); // clock 1 keeps worker 1's push and waits for worker 0's
    expect(s.push(0, 1, 32, 64, grad(n, 2)).appliedNow).toBe(1);
    ref.push(0, 1, 64, 64, mean(grad(n, 6), grad(n, 2)));
    expect(s.push(0, 2, 32, 64, grad(n, 3)).appliedNow).toBe(1); // clock 2 waits for worker 0 alone, weight 1
    ref.push(0, 2, 64, 64, grad(n, 3));
    expect(s.applied).toBe(3);
    expect(Array.from(s.params).map((v, i) => Math.abs(v - ref.params[i]!) < 1e-6)).not.toContain(false);
  });
});

describe('heartbeats and readmission', () => {
  it('a worker that goes silent is dropped, the other goes on, and the silent one is readmitted when it reconnects', async () => {
    const token = randomBytes(16).toString('hex');
    const log: string[] = [];
    const server = await ParameterServer.start({ sizes: SIZES, seed: 1, optimizer: 'sgd', lr: 0.1, mode: 'sync', workers: 2, token, heartbeatTimeoutMs: 300, log: (l) => log.push(l) });
    const size = server.store.size;
    try {
      // Worker 1: a raw connection that says hello and then nothing at all (no pings).
      const silent = new WebSocket(server.url);
      await new Promise((r) => silent.once('open', r));
      silent.send(encodeFrame({ type: 'hello', v: PROTOCOL_VERSION, token, role: 'worker', rank: 1, workers: 2, size }));
      const closed = new Promise<number>((r) => silent.once('close', (code) => r(code)));
      // Worker 0 heartbeats every 50 ms while its push of step 0 waits for worker 1.
      const w0 = await PsClient.connect([server.url], { token, rank: 0, workers: 2, size, heartbeatMs: 50 });
      await w0.join(0);
      const params = new Float32Array(size);
      const r = await w0.pushPull(0, grad(size, 1), params, { rows: 32, batchRows: 64 }); // answered once worker 1 is dropped
      expect(r.applied).toBe(1);
      expect(await closed).toBe(1006);
      let [st] = await w0.stats();
      expect(st).toMatchObject({ dropped: 1, readmitted: 0, members: [0] });
      expect(log.join('\n')).toMatch(/worker 1 \(127\.0\.0\.1:\d+\) sent nothing for 300 ms/);
      expect(log.join('\n')).toMatch(/worker 1 dropped at step 0: sent nothing for 300 ms; training goes on with 1 of 2 workers/);
      // Worker 0 heartbeats, so it outlives the timeout while idle.
      await new Promise((r) => setTimeout(r, 500));
      // Worker 1 comes back: it joins at the step the servers are at, and both are waited for again.
      const { client: w1, step } = await joinRun([server.url], { token, rank: 1, workers: 2, size, reconnecting: true, retryForMs: 2000 });
      expect(step).toBe(1);
      [st] = await w0.stats();
      expect(st).toMatchObject({ dropped: 1, readmitted: 1, members: [0, 1], connections: 2 });
      expect(log.join('\n')).toContain('worker 1 readmitted from step 1 (2 of 2 workers)');
      const [a, b] = await Promise.all([w0.pushPull(1, grad(size, 1), params, { rows: 32, batchRows: 64 }), w1.pushPull(1, grad(size, 1), new Float32Array(size), { rows: 32, batchRows: 64 })]);
      expect([a.applied, b.applied]).toEqual([2, 2]);
      await Promise.all([w0.close(), w1.close()]);
    } finally {
      await server.close();
    }
  });

  it('a worker that dies before the start barrier is dropped, and the barrier lets the others through', async () => {
    const token = randomBytes(16).toString('hex');
    const server = await ParameterServer.start({ sizes: SIZES, seed: 1, optimizer: 'sgd', lr: 0.1, mode: 'sync', workers: 2, token });
    try {
      const size = server.store.size;
      const doomed = new WebSocket(server.url);
      await new Promise((r) => doomed.once('open', r));
      doomed.send(encodeFrame({ type: 'hello', v: PROTOCOL_VERSION, token, role: 'worker', rank: 1, workers: 2, size }));
      const { client } = await joinRun([server.url], { token, rank: 0, workers: 2, size });
      const start = client.barrier('start');
      await new Promise((r) => setTimeout(r, 100));
      doomed.terminate(); // kill -9: no close frame
      await start;
      expect((await client.stats())[0]).toMatchObject({ dropped: 1, members: [0] });
      await client.close();
    } finally {
      await server.close();
    }
  });

  it('two workers claiming the same rank: the second is refused with rank-taken', async () => {
    const token = randomBytes(16).toString('hex');
    const server = await ParameterServer.start({ sizes: SIZES, seed: 1, optimizer: 'sgd', lr: 0.1, mode: 'sync', workers: 2, token });
    try {
      const size = server.store.size;
      const first = await joinRun([server.url], { token, rank: 0, workers: 2, size });
      await expect(joinRun([server.url], { token, rank: 0, workers: 2, size, retryForMs: 5000 })).rejects.toThrow(/worker rank 0 is already connected/);
      await first.client.close();
    } finally {
      await server.close();
    }
  });
});

/**
 * A TCP proxy to `port` that passes each chunk a client sends on only once `before()` resolves (in
 * order): a way to make the run move on while a request is on its way.
 */
async function proxy(port: number, before: () => Promise<void>): Promise<Server & { url: string }> {
  const p = createServer((client) => {
    const upstream = connect(port, '127.0.0.1');
    let chain = Promise.resolve();
    client.on('data', (d) => (chain = chain.then(before).then(() => void upstream.write(d))));
    upstream.pipe(client);
    for (const s of [client, upstream]) s.on('error', () => (client.destroy(), upstream.destroy()));
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  });
  await new Promise<void>((r) => p.listen(0, '127.0.0.1', r));
  return Object.assign(p, { url: `ws://127.0.0.1:${(p.address() as { port: number }).port}` });
}

/** Hello as worker `rank` on each of `urls`, then gone without a close frame (kill -9): the servers drop it. */
async function dies(urls: string[], token: string, rank: number, workers: number, size: number): Promise<void> {
  const sockets = await Promise.all(urls.map(async (u) => {
    const ws = new WebSocket(u);
    await new Promise((r) => ws.once('open', r));
    ws.send(encodeFrame({ type: 'hello', v: PROTOCOL_VERSION, token, role: 'worker', rank, workers, size }));
    await new Promise((r) => ws.once('message', r));
    return ws;
  }));
  for (const ws of sockets) ws.terminate();
}

describe('rejoining a run that goes on', () => {
  it('a worker whose hellos reach the two shards 300 ms apart, while the other trains, joins — the servers do not "disagree"', async () => {
    const token = randomBytes(16).toString('hex');
    const opts = { sizes: SIZES, seed: 1, optimizer: 'sgd', lr: 0.01, mode: 'sync' as const, workers: 2, token, shards: 2 };
    const servers = await Promise.all([0, 1].map((shard) => ParameterServer.start({ ...opts, shard })));
    const urls = servers.map((s) => s.url);
    const size = servers[0]!.store.size;
    const t0 = performance.now();
    const late = await proxy(Number(new URL(urls[1]!).port), () => new Promise((r) => setTimeout(r, Math.max(0, t0 + 300 - performance.now()))));
    let stopped = false;
    let loop: Promise<void> = Promise.resolve();
    try {
      // Worker 1 says hello and dies; worker 0 then trains alone, step after step.
      await dies(urls, token, 1, 2, size);
      const w0 = await joinRun(urls, { token, rank: 0, workers: 2, size });
      const params = new Float32Array(size);
      let steps = 0;
      loop = (async () => {
        // (A millisecond a step stands for its compute: without it, on a loaded machine, this loop
        // outruns any join's round trip by more than the 64 updates a server lets a join be ahead.)
        for (let step = 0; !stopped; step++, steps++) {
          await w0.client.pushPull(step, new Float32Array(size).fill(1e-3), params, { rows: 1, batchRows: 2 });
          await new Promise((r) => setTimeout(r, 1));
        }
      })();
      loop.catch(() => {}); // (awaited below; the servers closing under it when the test fails is not the news)
      while (steps < 20) await new Promise((r) => setTimeout(r, 5));
      // Restarted, it connects to shard 0 directly and to shard 1 through the proxy, which holds its
      // bytes until 300 ms after it was made: the two welcomes are read dozens of updates apart,
      // though the shards never are more than 1 apart.
      const back = await joinRun([urls[0]!, late.url], { token, rank: 1, workers: 2, size, retryForMs: 5000 });
      const [a0, a1] = back.client.applied;
      expect(Math.abs(a1! - a0!)).toBeGreaterThan(1); // what the welcomes said
      expect(back.step).toBeGreaterThanOrEqual(Math.max(a0!, a1!));
      stopped = true;
      await back.client.close(); // leaves on purpose: worker 0's step goes on without it
      await loop;
      await w0.client.close();
    } finally {
      stopped = true;
      late.close();
      await Promise.all(servers.map((s) => s.close()));
    }
  });

  it('a worker that rejoins a run moving 30 updates while each of its requests travels catches up with it, and joins', async () => {
    const token = randomBytes(16).toString('hex');
    const server = await ParameterServer.start({ sizes: SIZES, seed: 1, optimizer: 'sgd', lr: 0.01, mode: 'sync', workers: 2, token });
    const size = server.store.size;
    await dies([server.url], token, 1, 2, size);
    const w0 = await joinRun([server.url], { token, rank: 0, workers: 2, size });
    const params = new Float32Array(size);
    let step = 0;
    /** Worker 0 trains `n` steps alone. */
    const train = async (n: number) => {
      for (const end = step + n; step < end; step++) await w0.client.pushPull(step, new Float32Array(size).fill(1e-3), params, { rows: 1, batchRows: 2 });
    };
    // Every request of the rejoining worker (hello, join, stats) reaches the server 30 updates after it was sent.
    let moving = true;
    const slow = await proxy(server.port, () => (moving ? train(30) : Promise.resolve()));
    try {
      // (It used to ask again 1, 2, 3 … 21 updates ahead of the servers, and gave up with "join at
      // step N: M updates are already applied"; now 1, 2, 4 … 63.)
      const back = await joinRun([slow.url], { token, rank: 1, workers: 2, size, reconnecting: true, retryForMs: 5000, heartbeatMs: 0 });
      moving = false;
      // Joined at a step not yet applied, at most 63 ahead, and counted as readmitted.
      expect(back.step).toBeGreaterThanOrEqual(step);
      expect(back.step).toBeLessThanOrEqual(step + 63);
      expect((await w0.client.stats())[0]).toMatchObject({ dropped: 1, readmitted: 1 });
      await back.client.close();
      await w0.client.close();
    } finally {
      moving = false;
      slow.close();
      await server.close();
    }
  });

  it('servers that really are apart (one trained on alone, as if restarted from another checkpoint) are still refused, naming each step', async () => {
    const token = randomBytes(16).toString('hex');
    const servers = await Promise.all([0, 1].map((shard) => ParameterServer.start({ sizes: SIZES, seed: 1, optimizer: 'sgd', lr: 0.01, mode: 'sync', workers: 1, token, shard, shards: 2 })));
    const urls = servers.map((s) => s.url);
    const size = servers[0]!.store.size;
    try {
      // Shard 1 alone takes 5 steps from a worker that then leaves (1000: no drop); shard 0 stays at 0.
      const ws = new WebSocket(urls[1]!);
      await new Promise((r) => ws.once('open', r));
      const replies: Array<Record<string, number>> = [];
      ws.on('message', (d) => replies.push(decodeFrame(d as Buffer).header as Record<string, number>));
      ws.send(encodeFrame({ type: 'hello', v: PROTOCOL_VERSION, token, role: 'worker', rank: 0, workers: 1, size }));
      while (replies.length < 1) await new Promise((r) => setTimeout(r, 5));
      const { lo, hi } = replies[0]!;
      for (let step = 0; step < 5; step++) ws.send(encodeFrame({ type: 'push', id: step + 1, step, lo, rows: 1, batchRows: 1 }, new Float32Array(hi! - lo!)));
      while (replies.length < 6) await new Promise((r) => setTimeout(r, 5));
      ws.close(1000);
      await new Promise((r) => ws.once('close', r));
      await expect(joinRun(urls, { token, rank: 0, workers: 1, size, retryForMs: 2000 })).rejects.toThrow(
        `the servers disagree on the step: ${urls[0]} has applied 0 updates, ${urls[1]} has applied 5 updates; restart every server with --resume from the same checkpoint`,
      );
    } finally {
      await Promise.all(servers.map((s) => s.close()));
    }
  });
});

describe('reconnecting', () => {
  it('backs off exponentially with jitter, at most 5 s', () => {
    expect([0, 1, 2, 3].map((n) => backoffMs(n, () => 0.5))).toEqual([100, 200, 400, 800]);
    expect(backoffMs(10, () => 0)).toBe(2500);
    expect(backoffMs(50, () => 0.999)).toBeLessThan(7500);
  });

  it('gives up after the configured time with an error naming the server and the last error', async () => {
    const server = await ParameterServer.start({ sizes: SIZES, seed: 1, optimizer: 'sgd', lr: 0.1, mode: 'sync', workers: 1, token: 't' });
    const url = server.url;
    await server.close(); // nothing listens there now
    // It gives up, naming the server and the last error; how long that took is not asserted (wall
    // time on a shared machine is noise, and timing belongs in bench/).
    await expect(joinRun([url], { token: 't', rank: 0, workers: 1, size: 1, retryForMs: 600 })).rejects.toThrow(
      new RegExp(`^lost parameter server ${url.replace(/[/.]/g, '\\$&')}: gave up after [01] s \\(last error: cannot connect to ${url.replace(/[/.]/g, '\\$&')}: connect ECONNREFUSED`),
    );
  });
});

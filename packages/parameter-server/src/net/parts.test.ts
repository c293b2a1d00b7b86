// Payloads in parts (protocol v2): frames split and joined, refused when they do not add up, and a
// real server and clients on 127.0.0.1 training with gradients and parameters larger than one part.
import { afterEach, describe, expect, it } from 'vitest';
import { namedOptimizer, optimizerMemory } from '@loom/optimizer';
import { PsError } from './errors.js';
import WebSocket from 'ws';
import { PART_FLOATS, Reassembly, decodeFrame, encodeFrame, encodeFrames } from './frame.js';
import { PayloadPool } from './payload-pool.js';
import { PROTOCOL_VERSION } from './protocol.js';
import { ParameterServer } from './server.js';
import { PsClient } from './client.js';
import { ShardStore, type StoreOptions } from './store.js';

const feedAll = (r: Reassembly, frames: Buffer[], into?: Float32Array) => {
  let whole = null;
  for (const f of frames) {
    const { header, payload } = decodeFrame(f);
    whole = r.feed(header, payload, (_h, n) => into ?? new Float32Array(n));
  }
  return whole;
};


/** Joins the parts of the first reply among the frames a raw socket has received (`got` grows as they arrive). */
async function readReply(got: Buffer[], P: number): Promise<{ header: unknown; payload: Float32Array }> {
  const joined = new Reassembly(P);
  for (let i = 0; ; i++) {
    while (got.length <= i) await new Promise((r) => setTimeout(r, 5));
    const f = decodeFrame(got[i]!);
    const whole = joined.feed(f.header, f.payload, (_h, n) => new Float32Array(n));
    if (whole !== null) return whole;
  }
}

describe('parts', () => {
  it('a payload over partFloats travels as parts and is joined into the sink, in order', () => {
    const a = Float32Array.from({ length: 10 }, (_, i) => i);
    const frames = encodeFrames({ type: 'push', id: 7 }, a, 1, 10, undefined, 4);
    expect(frames.map((f) => (decodeFrame(f).header as { type: string }).type)).toEqual(['push', 'part', 'part']);
    const into = new Float32Array(9);
    const whole = feedAll(new Reassembly(100), frames, into)!;
    expect(whole.joined).toBe(true);
    expect(whole.payload).toBe(into);
    expect([...into]).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(whole.header).toMatchObject({ type: 'push', id: 7, parts: 3, floats: 9 });
    // Small payloads stay one frame, viewed in place.
    expect(feedAll(new Reassembly(100), encodeFrames({ type: 'push', id: 1 }, a, 0, 4, undefined, 4))!.joined).toBe(false);
  });

  it('refuses a part of no message, a message cut short, and parts that overflow', () => {
    const a = new Float32Array(10);
    const [first, second, third] = encodeFrames({ type: 'push', id: 7 }, a, 0, 10, undefined, 4);
    const bad = (frames: Buffer[]) => expect(() => feedAll(new Reassembly(100), frames)).toThrow(PsError);
    bad([second!]);
    bad([first!, second!, encodeFrames({ type: 'stats', id: 8 }, undefined, 0, 0)[0]!]);
    bad([first!, second!, encodeFrames({ type: 'part', id: 7 }, new Float32Array(5), 0, 5)[0]!]);
    bad([first!, encodeFrames({ type: 'part', id: 9 }, new Float32Array(4), 0, 4)[0]!]);
    expect(() => feedAll(new Reassembly(8), [first!, second!, third!])).toThrow(/floats must be an integer in \[4, 8\]/);
  });

  it('calls `piece` as each piece lands, with its range in the joined payload', () => {
    const a = Float32Array.from({ length: 10 }, (_, i) => i);
    const seen: Array<[number, number, number[]]> = [];
    const r = new Reassembly(100);
    for (const f of encodeFrames({ type: 'push', id: 7 }, a, 0, 10, undefined, 4)) {
      const { header, payload } = decodeFrame(f);
      r.feed(header, payload, (_h, n) => new Float32Array(n), (_h, into, lo, hi) => seen.push([lo, hi, [...into.subarray(lo, hi)]]));
    }
    expect(seen).toEqual([[0, 4, [0, 1, 2, 3]], [4, 8, [4, 5, 6, 7]], [8, 10, [8, 9]]]);
  });

  it('a pool reuses a held buffer only after its step is applied', () => {
    const pool = new PayloadPool();
    const a = pool.take(100, 0);
    pool.holdUntil(a, 3);
    expect(pool.take(100, 2).buffer).not.toBe(a.buffer);
    expect(pool.take(100, 3).buffer).toBe(a.buffer);
  });

  it('a pool in the optimizer\'s memory hands out its arrays, reuses them, and frees what it does not keep', () => {
    if (!optimizerMemory.available) return; // no shared WebAssembly memory: async servers use ordinary arrays
    const before = optimizerMemory.bytesInUse;
    const pool = new PayloadPool(1, optimizerMemory);
    const a = pool.take(1000, 0);
    const b = pool.take(1000, 0);
    expect(optimizerMemory.contains(a) && optimizerMemory.contains(b)).toBe(true);
    expect(a.byteOffset).not.toBe(b.byteOffset);
    pool.release(a);
    pool.release(b); // over `keep`: freed
    expect(optimizerMemory.bytesInUse - before).toBe(4000);
    expect(pool.take(900, 0).byteOffset).toBe(a.byteOffset); // the kept one, reused
    pool.release(new Float32Array(900)); // not the pool's: ignored
    pool.dispose();
    expect(optimizerMemory.bytesInUse).toBe(before);
  });
});

describe('a server and clients over parts', () => {
  const open: Array<{ close(): Promise<void> }> = [];
  afterEach(async () => {
    for (const x of open.splice(0).reverse()) await x.close();
  });

  it('sync with 2 workers: every step is the weighted sum of both gradients, parts and all', async () => {
    const sizes = [600, 500]; // 300,500 parameters: 2 parts each way
    const token = 'parts-token';
    const server = await ParameterServer.start({ sizes, seed: 3, optimizer: 'sgd', lr: 0.5, mode: 'sync', workers: 2, token, port: 0 });
    open.push(server);
    const P = server.store.size;
    expect(P).toBeGreaterThan(PART_FLOATS);
    const clients = await Promise.all([0, 1].map((rank) => PsClient.connect([server.url], { token, rank, workers: 2, size: P })));
    open.push(...clients);
    const params = [new Float32Array(P), new Float32Array(P)];
    await Promise.all(clients.map((c, i) => c.pull(0, params[i]!)));
    let expected = params[0]!.slice();
    for (let step = 0; step < 3; step++) {
      const g = [0, 1].map((r) => Float32Array.from({ length: P }, (_, j) => ((j % 97) - 48) * 1e-3 * (r + 1 + step)));
      await Promise.all(clients.map((c, r) => c.pushPull(step, g[r]!, params[r]!, { rows: r + 1, batchRows: 3 })));
      const nlr = Math.fround(-0.5);
      expected = expected.map((p, j) => Math.fround(Math.fround(0 + (1 / 3) * g[0]![j]! + (2 / 3) * g[1]![j]!) * nlr + p));
      expect(params[0]).toEqual(expected);
      expect(params[1]).toEqual(expected);
    }
  });
});

describe('an update stepped part by part as its replies are sent', () => {
  const sgd: StoreOptions = { sizes: [40, 30], seed: 5, optimizer: 'sgd', lr: 0.1, mode: 'async', staleness: 0, workers: 2, shard: 0, shards: 1, nonFinite: 'reject' };
  const g = (n: number, k: number) => Float32Array.from({ length: n }, (_, j) => Math.sin(j + 7 * k));

  it('gives the bits of the whole step, whatever the slices, and calls onApply once it is whole (async, sync, adam)', () => {
    for (const o of [sgd, { ...sgd, optimizer: 'adam' }, { ...sgd, mode: 'sync' as const }]) {
      const whole = new ShardStore(o);
      const parts = new ShardStore(o);
      const n = whole.hi - whole.lo;
      const applied: number[] = [];
      parts.onApply = (t) => applied.push(t);
      for (let k = 0; k < 3; k++) {
        for (const rank of [0, 1]) {
          whole.push(rank, k, 1, 2, g(n, 2 * k + rank));
          const { appliedNow } = parts.push(rank, k, 1, 2, g(n, 2 * k + rank), { defer: true });
          if (appliedNow === 0) continue;
          expect(applied).not.toContain(parts.applied); // counted, but not stepped yet
          for (const upTo of [7, 7, 300, n + 5]) parts.paramsThrough(upTo); // slices [0, 7), [7, 300), [300, n)
          expect(applied.at(-1)).toBe(parts.applied);
        }
      }
      expect(parts.params).toEqual(whole.params);
      expect(parts.optimizerState).toEqual(whole.optimizerState);
    }
  });

  it('settles an update left half-stepped before anyone reads the parameters or steps again', () => {
    const whole = new ShardStore(sgd);
    const parts = new ShardStore(sgd);
    const n = whole.hi - whole.lo;
    for (let k = 0; k < 3; k++) {
      whole.push(0, k, 1, 1, g(n, k));
      parts.push(0, k, 1, 1, g(n, k), { defer: true });
      parts.paramsThrough(100);
    }
    expect(parts.params).toEqual(whole.params);
  });
});

/** Bitwise equality of large arrays (toEqual walks 300k elements one by one, for seconds). */
const same = (a: Float32Array, b: Float32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));

describe('pipelined replies over parts', () => {
  const open: Array<{ close(): Promise<void> }> = [];
  afterEach(async () => {
    for (const x of open.splice(0).reverse()) await x.close();
  });
  const token = 'pipe-token';
  const sizes = [600, 500]; // 300,500 parameters: 2 parts each way

  it('a NaN in the last part refuses the whole push (reject) or skips all of it (skip): no earlier part is stepped', async () => {
    for (const nonFinite of ['reject', 'skip'] as const) {
      const server = await ParameterServer.start({ sizes, seed: 3, optimizer: 'sgd', lr: 0.5, mode: 'async', workers: 1, token, port: 0, nonFinite });
      open.push(server);
      const P = server.store.size;
      const client = await PsClient.connect([server.url], { token, rank: 0, workers: 1, size: P });
      open.push(client);
      const before = new Float32Array(P);
      await client.pull(0, before);
      const grad = new Float32Array(P).fill(1);
      grad[P - 1] = NaN; // in the last part
      const after = new Float32Array(P);
      if (nonFinite === 'reject') await expect(client.pushPull(0, grad, after, { rows: 1, batchRows: 1 })).rejects.toMatchObject({ code: 'non-finite' });
      else await client.pushPull(0, grad, after, { rows: 1, batchRows: 1 });
      expect(same(server.store.params, before)).toBe(true);
      expect(server.stats()).toMatchObject({ applied: nonFinite === 'reject' ? 0 : 1, skippedNonFinite: nonFinite === 'reject' ? 0 : 1 });
      grad[P - 1] = 1; // and a good push after it is applied whole
      await client.pushPull(1, grad, after, { rows: 1, batchRows: 1 });
      expect(same(after, before.map((p) => Math.fround(p - 0.5)))).toBe(true);
    }
  });

  it('async, 2 workers pushing at once: every reply is the parameters after exactly `applied` updates, never a mix', async () => {
    const server = await ParameterServer.start({ sizes, seed: 3, optimizer: 'sgd', lr: 0.25, mode: 'async', workers: 2, token, port: 0 });
    open.push(server);
    const P = server.store.size;
    const clients = await Promise.all([0, 1].map((rank) => PsClient.connect([server.url], { token, rank, workers: 2, size: P })));
    open.push(...clients);
    const initial = new Float32Array(P);
    await clients[0]!.pull(0, initial);
    // Every push is the same gradient, so the parameters after k updates are known whoever pushed.
    const grad = Float32Array.from({ length: P }, (_, j) => ((j % 13) - 6) * 0.01);
    const { algorithm, options } = namedOptimizer('sgd', { lr: 0.25 });
    const after = [initial.slice()];
    for (let k = 1; k <= 12; k++) {
      const p = after[k - 1]!.slice();
      algorithm.step(p, grad, {}, options, k);
      after.push(p);
    }
    const runs = clients.map(async (c) => {
      const into = new Float32Array(P);
      for (let step = 0; step < 6; step++) {
        // A stats request right behind each pushpull: its reply must not land inside the parameters' parts.
        const [r] = await Promise.all([c.pushPull(step, grad, into, { rows: 1, batchRows: 1 }), c.stats()]);
        expect(same(into, after[r.applied]!)).toBe(true);
      }
    });
    await Promise.all(runs);
    expect(same(server.store.params, after[12]!)).toBe(true);
  });

  it('a reply still waiting for a slow reader is copied whole before the next update changes the parameters', async () => {
    const big = [2000, 1500]; // 3,001,500 parameters: a 12 MB reply, more than the socket buffers hold
    const server = await ParameterServer.start({ sizes: big, seed: 3, optimizer: 'sgd', lr: 0.25, mode: 'async', workers: 2, token, port: 0 });
    open.push(server);
    const P = server.store.size;
    const initial = server.store.params.slice();
    // Worker 1 asks for the parameters and stops reading its socket.
    const ws = new WebSocket(server.url, { perMessageDeflate: false, maxPayload: 1 << 30 });
    const got: Buffer[] = [];
    ws.on('message', (d) => got.push(d as Buffer));
    await new Promise((r) => ws.once('open', r));
    ws.send(encodeFrame({ type: 'hello', v: PROTOCOL_VERSION, token, role: 'worker', rank: 1, workers: 2, size: P }));
    await new Promise((r) => ws.once('message', r));
    got.length = 0; // the welcome
    ws.send(encodeFrame({ type: 'pull', id: 1, step: 0, lo: 0, hi: P }));
    ws.send(encodeFrame({ type: 'stats', id: 2 })); // answered after the last part, not among them
    ws.pause();
    // Worker 0 steps twice meanwhile.
    const client = await PsClient.connect([server.url], { token, rank: 0, workers: 2, size: P });
    open.push(client);
    const into = new Float32Array(P);
    for (let step = 0; step < 2; step++) await client.pushPull(step, new Float32Array(P).fill(1), into, { rows: 1, batchRows: 1 });
    ws.resume();
    const whole = await readReply(got, P);
    const header = whole.header as { parts: number };
    expect(header).toMatchObject({ type: 'params', applied: 0 });
    expect(same(whole.payload, initial)).toBe(true);
    while (got.length <= header.parts) await new Promise((r) => setTimeout(r, 5));
    expect(decodeFrame(got[header.parts]!).header).toMatchObject({ type: 'stats', id: 2 });
    ws.close();
  });

  it('a gradient is not reused for the next push while its update is still being stepped for a slow reader', async () => {
    const big = [2000, 1500];
    const server = await ParameterServer.start({ sizes: big, seed: 3, optimizer: 'sgd', lr: 0.25, mode: 'async', workers: 2, token, port: 0 });
    open.push(server);
    const P = server.store.size;
    const g0 = new Float32Array(P).fill(1);
    const expected = server.store.params.map((p) => Math.fround(p - 0.25));
    // Worker 0 pushes in parts and stops reading before its reply comes.
    const ws = new WebSocket(server.url, { perMessageDeflate: false, maxPayload: 1 << 30 });
    const got: Buffer[] = [];
    ws.on('message', (d) => got.push(d as Buffer));
    await new Promise((r) => ws.once('open', r));
    ws.send(encodeFrame({ type: 'hello', v: PROTOCOL_VERSION, token, role: 'worker', rank: 0, workers: 2, size: P }));
    await new Promise((r) => ws.once('message', r));
    got.length = 0;
    ws.pause();
    for (const f of encodeFrames({ type: 'pushpull', id: 1, step: 0, lo: 0, rows: 1, batchRows: 1 }, g0, 0, P)) ws.send(f);
    while (server.store.applied < 1) await new Promise((r) => setTimeout(r, 5));
    // Worker 1's push lands in pooled memory meanwhile, and is applied after it.
    const client = await PsClient.connect([server.url], { token, rank: 1, workers: 2, size: P });
    open.push(client);
    await client.push(0, new Float32Array(P).fill(-3), { rows: 1, batchRows: 1 });
    ws.resume();
    const whole = await readReply(got, P);
    expect(whole.header).toMatchObject({ type: 'params', applied: 1 });
    expect(same(whole.payload, expected)).toBe(true);
    ws.close();
  });
});

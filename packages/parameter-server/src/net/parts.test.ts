// Payloads in parts (protocol v2): frames split and joined, refused when they do not add up, and a
// real server and clients on 127.0.0.1 training with gradients and parameters larger than one part.
import { afterEach, describe, expect, it } from 'vitest';
import { PsError } from './errors.js';
import { PART_FLOATS, PayloadPool, Reassembly, decodeFrame, encodeFrames } from './protocol.js';
import { ParameterServer } from './server.js';
import { PsClient } from './client.js';

const feedAll = (r: Reassembly, frames: Buffer[], into?: Float32Array) => {
  let whole = null;
  for (const f of frames) {
    const { header, payload } = decodeFrame(f);
    whole = r.feed(header, payload, (_h, n) => into ?? new Float32Array(n));
  }
  return whole;
};

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

  it('a pool reuses a held buffer only after its step is applied', () => {
    const pool = new PayloadPool();
    const a = pool.take(100, 0);
    pool.holdUntil(a, 3);
    expect(pool.take(100, 2).buffer).not.toBe(a.buffer);
    expect(pool.take(100, 3).buffer).toBe(a.buffer);
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

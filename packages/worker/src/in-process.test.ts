// One-thread training's transport: push steps the optimizer, pull stops and yields to the event loop.
import { describe, expect, it } from 'vitest';
import { IntTensor, Random, Tensor, crossEntropy, flattenParameters, mlp } from '@loom/tensor-core';
import { GlobalBatchSchedule, inProcessTransport, runEpoch } from './index.js';

const info = { epoch: 0, step: 0, rows: 1, batchRows: 1 };
const none = new Float32Array(0);
const counting = () => ({ steps: 0, step() { this.steps++; } });
const busyWait = (ms: number) => {
  const until = performance.now() + ms;
  while (performance.now() < until);
};

describe('inProcessTransport', () => {
  it('push steps the optimizer once; pull answers at once and changes nothing', () => {
    const optimizer = counting();
    const transport = inProcessTransport(optimizer, { yieldEveryMs: Infinity });
    const params = Float32Array.of(1, 2);
    expect(transport.pull(params, info)).toBe(true);
    expect(params).toEqual(Float32Array.of(1, 2));
    expect(optimizer.steps).toBe(0);
    transport.push(none, info);
    expect(optimizer.steps).toBe(1);
  });

  it('pull answers false once shouldStop does', () => {
    let stop = false;
    const transport = inProcessTransport(counting(), { shouldStop: () => stop, yieldEveryMs: Infinity });
    expect(transport.pull(none, info)).toBe(true);
    stop = true;
    expect(transport.pull(none, info)).toBe(false);
  });

  it('after yieldEveryMs, a pull lets pending callbacks run before it answers, then not again at once', async () => {
    // A wide window: the last pull must land inside it on a loaded CI host too (1 ms did not).
    const transport = inProcessTransport(counting(), { yieldEveryMs: 250 });
    busyWait(260);
    let ran = false;
    setImmediate(() => (ran = true));
    const pulled = transport.pull(none, info);
    expect(pulled).toBeInstanceOf(Promise);
    expect(ran).toBe(false);
    expect(await pulled).toBe(true);
    expect(ran).toBe(true);
    expect(transport.pull(none, info)).toBe(true); // the clock restarted at the pause
  });

  it('a stop asked for during the pause (a signal handler, say) stops before the step', async () => {
    let stop = false;
    const transport = inProcessTransport(counting(), { shouldStop: () => stop, yieldEveryMs: 1 });
    busyWait(2);
    setImmediate(() => (stop = true));
    expect(await transport.pull(none, info)).toBe(false);
  });

  it('under runEpoch: plain SGD on one thread, the same parameters as a loop written out here', async () => {
    const rng = new Random(6);
    const source = { features: Float32Array.from({ length: 40 * 3 }, () => rng.normal()), labels: Int32Array.from({ length: 40 }, (_, i) => i % 2), width: 3 };
    const rows = Int32Array.from({ length: 40 }, (_, i) => i);
    const build = () => mlp([3, 4, 2], { rng: new Random(1) });
    const sgd = (model: ReturnType<typeof build>) => ({
      step() {
        for (const p of model.parameters()) for (let i = 0; i < p.data.length; i++) p.data[i] -= 0.1 * p.grad!.data[i]!;
      },
    });

    const model = build();
    const flat = flattenParameters(model);
    const schedule = new GlobalBatchSchedule(source, rows, 8, 2, 0, 1);
    const transport = inProcessTransport(sgd(model));
    for (let e = 0; e < 2; e++) await runEpoch({ model, flat, transport, schedule, epoch: e, firstStep: e * 5 });

    const oracle = build();
    const oracleFlat = flattenParameters(oracle);
    const opt = sgd(oracle);
    for (let e = 0; e < 2; e++) {
      for (const b of new GlobalBatchSchedule(source, rows, 8, 2, 0, 1).epoch(e)) {
        oracleFlat.grads.fill(0);
        crossEntropy(oracle.forward(new Tensor(b.x, [b.rows, 3])), new IntTensor(b.y)).backward();
        opt.step();
      }
    }
    expect(flat.params).toEqual(oracleFlat.params);
    expect(flat.params).not.toEqual(flattenParameters(build()).params); // it did train
  });
});

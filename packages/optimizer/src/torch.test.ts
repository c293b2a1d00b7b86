/**
 * Trajectories against PyTorch 1.13 (fixtures/torch_optim.json, made by fixtures/make_fixtures.py):
 * every optimizer under several hyperparameter combinations, 60 steps of recorded gradients.
 *
 * Error measure: for each value x with PyTorch value t, |x − t| / max(|t|, FLOOR) with FLOOR = 1e-3
 * (parameters are O(1); the floor only matters for values that pass near zero, where a relative
 * error says nothing). The bound is 1e-5; the measured maximum is printed.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  Adagrad, Adam, AdamW, RMSprop, SGD, Optimizer, setKernelBackend, type ParamLike,
} from '@loom/optimizer';

interface Config {
  name: string;
  optimizer: 'SGD' | 'RMSprop' | 'Adam' | 'AdamW' | 'Adagrad';
  options: Record<string, unknown>;
  groups: { params: number[]; options: Record<string, unknown> }[] | null;
  snapshots: number[][];
  finalState: Record<string, number[] | number>[];
}
interface Fixture {
  torch: string;
  steps: number;
  snapshots: number[];
  shapes: number[][];
  init: number[];
  grads: number[][];
  configs: Config[];
}

const fixture = JSON.parse(readFileSync(new URL('../fixtures/torch_optim.json', import.meta.url), 'utf8')) as Fixture;
const FLOOR = 1e-3;
const BOUND = 1e-5;
const classes = { SGD, RMSprop, Adam, AdamW, Adagrad };
const sizes = fixture.shapes.map((s) => s.reduce((a, b) => a * b, 1));
const total = sizes.reduce((a, b) => a + b, 0);

/** Max relative error (with the floor) of `got` against `want`. */
function maxRelError(got: ArrayLike<number>, want: ArrayLike<number>): number {
  expect(got.length).toBe(want.length);
  let worst = 0;
  for (let i = 0; i < want.length; i++) {
    const t = Math.fround(want[i]!); // the fixture holds float32 values as shortest decimals
    const e = Math.abs(got[i]! - t) / Math.max(Math.abs(t), FLOOR);
    if (!(e <= worst)) worst = e; // NaN counts as the worst
  }
  return worst;
}

/** The two parameters, either as views of one flat buffer (Loom's flat parameters) or as separate arrays. */
function makeParams(flat: boolean): ParamLike[] {
  const data = Float32Array.from(fixture.init);
  const grads = new Float32Array(total);
  let o = 0;
  return sizes.map((n) => {
    const p = flat
      ? { data: data.subarray(o, o + n), grad: { data: grads.subarray(o, o + n) } }
      : { data: data.slice(o, o + n), grad: { data: new Float32Array(n) } };
    o += n;
    return p;
  });
}

function build(c: Config, params: ParamLike[]): Optimizer<object> {
  const Cls = classes[c.optimizer] as unknown as new (p: unknown, o: unknown) => Optimizer<object>;
  const spec = c.groups ? c.groups.map((g) => ({ params: g.params.map((i) => params[i]!), ...g.options })) : params;
  return new Cls(spec, c.options);
}

function setGrads(params: ParamLike[], step: number): void {
  const g = fixture.grads[step]!;
  let o = 0;
  for (const p of params) {
    p.grad!.data.set(g.slice(o, o + p.data.length));
    o += p.data.length;
  }
}

const flatValues = (params: ParamLike[]) => Float32Array.from(params.flatMap((p) => Array.from(p.data)));

/** Runs a configuration; returns the snapshots and the optimizer. */
function run(c: Config, flat: boolean) {
  const params = makeParams(flat);
  const opt = build(c, params);
  const snapshots: Float32Array[] = [];
  for (let t = 0; t < fixture.steps; t++) {
    setGrads(params, t);
    opt.step();
    if (fixture.snapshots.includes(t + 1)) snapshots.push(flatValues(params));
  }
  return { params, opt, snapshots };
}

describe(`PyTorch ${fixture.torch} trajectories (${fixture.steps} steps)`, () => {
  it('covers every optimizer and the options the issue names', () => {
    const names = fixture.configs.map((c) => c.name).join(' ');
    for (const o of ['SGD', 'RMSprop', 'Adam', 'AdamW', 'Adagrad']) expect(fixture.configs.some((c) => c.optimizer === o)).toBe(true);
    for (const w of ['weight-decay', 'momentum', 'nesterov', 'centered', 'amsgrad', 'maximize', 'groups']) expect(names).toContain(w);
    expect(fixture.steps).toBeGreaterThanOrEqual(50);
  });

  for (const c of fixture.configs) {
    it(`${c.name}: ${c.optimizer}(${JSON.stringify(c.options)}${c.groups ? ', groups' : ''}) within ${BOUND}`, () => {
      const flat = run(c, true);
      const separate = run(c, false);
      let worst = 0;
      flat.snapshots.forEach((s, i) => {
        worst = Math.max(worst, maxRelError(s, c.snapshots[i]!));
        // One call over the flat buffer and one call per parameter give the same bits.
        expect(separate.snapshots[i]).toEqual(s);
      });
      // Final state: the same arrays under the same (camelCase) names, and the same step counts.
      flat.params.forEach((p, i) => {
        const want = c.finalState[i]!;
        const got = flat.opt.getState(p)!;
        for (const [key, value] of Object.entries(want)) {
          if (key === 'step') expect(got.step).toBe(value);
          else worst = Math.max(worst, maxRelError(got.arrays[key]!, value as number[]));
        }
        expect(Object.keys(got.arrays).sort()).toEqual(Object.keys(want).filter((k) => k !== 'step').sort());
      });
      console.log(`${c.name.padEnd(48)} max rel error ${worst.toExponential(2)}`);
      expect(worst).toBeLessThanOrEqual(BOUND);
    });
  }

  it('gives the same bits with the plain JavaScript loops as with the WebAssembly kernels', () => {
    for (const c of fixture.configs) {
      setKernelBackend('wasm');
      const a = run(c, true);
      setKernelBackend('js');
      const b = run(c, true);
      setKernelBackend('auto');
      a.snapshots.forEach((s, i) => expect(b.snapshots[i]).toEqual(s));
    }
  });
});

/**
 * The sparse optimizers against PyTorch 1.13 (fixtures/torch_sparse_optim.json, made by
 * fixtures/make_sparse_fixtures.py): a 12 × 5 table, 40 steps of uncoalesced gradients with
 * repeated ids, rows 9 and 10 first touched at step 20 and row 11 never.
 *
 * Each trajectory runs as PyTorch runs it — coalesce (SparseAdam, Adagrad) or not (SGD), then the
 * step with the table's step count — and must give PyTorch's bits at every snapshot and in the final
 * state. Rows not in a step's gradient must keep their weights and state bit for bit.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  SparseRowOptimizer, coalesce, coalesceReference, resolveOptions, rowwiseAdagrad, sparseAdagrad, sparseAdam, sparseSgd,
  type SparseAlgorithm,
} from '@loom/optimizer';

interface Config {
  name: string;
  optimizer: 'SparseAdam' | 'Adagrad' | 'SGD';
  options: Record<string, unknown>;
  snapshots: number[][];
  finalState: Record<string, number[] | number>;
}
interface Fixture {
  torch: string;
  rows: number;
  dim: number;
  steps: number;
  snapshots: number[];
  lateRows: number[];
  neverRow: number;
  init: number[];
  ids: number[][];
  values: number[][];
  configs: Config[];
  rowwise: { name: string; options: Record<string, unknown>; snapshots: number[][]; finalState: { sum: number[] } }[];
  coalesce: { ids: number[]; values: number[]; rows: number[]; sums: number[] }[];
}

const fx = JSON.parse(readFileSync(new URL('../fixtures/torch_sparse_optim.json', import.meta.url), 'utf8')) as Fixture;
const { rows: V, dim: D } = fx;
const algorithms: Record<string, SparseAlgorithm<any>> = { SparseAdam: sparseAdam, Adagrad: sparseAdagrad, SGD: sparseSgd };

/** Indices i where got[i] and the fixture's float32 differ in any bit (NaN never equals). */
function mismatches(got: Float32Array, want: number[]): number[] {
  expect(got.length).toBe(want.length);
  const w = Float32Array.from(want), out: number[] = [];
  const gb = new Uint32Array(got.buffer, got.byteOffset, got.length), wb = new Uint32Array(w.buffer);
  for (let i = 0; i < w.length; i++) if (gb[i] !== wb[i]) out.push(i);
  return out;
}

/** Runs a trajectory, checking after every step that rows outside the step kept every bit. */
function run(algorithm: SparseAlgorithm<any>, options: Record<string, unknown>, onSnapshot: (t: number, opt: SparseRowOptimizer<any>) => void): SparseRowOptimizer<any> {
  const opt = new SparseRowOptimizer(algorithm, Float32Array.from(fx.init), D, options);
  for (let t = 1; t <= fx.steps; t++) {
    const ids = Int32Array.from(fx.ids[t - 1]!);
    const before = { table: opt.table.slice(), state: Object.fromEntries(Object.entries(opt.state).map(([k, a]) => [k, a.slice()])) };
    opt.step(ids, Float32Array.from(fx.values[t - 1]!));
    expect(opt.stepCount).toBe(t);
    const touched = new Set(ids);
    for (let r = 0; r < V; r++) {
      if (touched.has(r)) continue;
      expect(opt.table.subarray(r * D, (r + 1) * D)).toEqual(before.table.subarray(r * D, (r + 1) * D));
      for (const [k, a] of Object.entries(opt.state)) {
        const n = algorithm.stateSize(k, D);
        expect(a.subarray(r * n, (r + 1) * n)).toEqual(before.state[k]!.subarray(r * n, (r + 1) * n));
      }
    }
    if (fx.snapshots.includes(t)) onSnapshot(t, opt);
  }
  return opt;
}

describe(`sparse optimizers against PyTorch ${fx.torch}`, () => {
  it('the tape has repeated ids, late rows and a row never touched', () => {
    expect(fx.ids.every((b) => new Set(b).size < b.length)).toBe(true);
    expect(fx.ids.some((b) => b.filter((x) => x === b[0]).length >= 4)).toBe(true);
    const first = (r: number) => fx.ids.findIndex((b) => b.includes(r)) + 1;
    for (const r of fx.lateRows) expect(first(r)).toBe(20);
    expect(first(fx.neverRow)).toBe(0);
    expect(Math.max(...fx.ids.map((b) => b.length))).toBeLessThanOrEqual(16);
  });

  for (const c of fx.configs) {
    it(`${c.name}: bit-identical table at every snapshot and state after ${fx.steps} steps`, () => {
      const algorithm = algorithms[c.optimizer]!;
      const opt = run(algorithm, c.options, (t, o) => {
        const k = fx.snapshots.indexOf(t);
        expect(mismatches(o.table, c.snapshots[k]!), `step ${t}`).toEqual([]);
      });
      for (const [key, want] of Object.entries(c.finalState)) {
        if (key === 'step') expect(opt.stepCount).toBe(want);
        else expect(mismatches(opt.state[key]!, want as number[]), key).toEqual([]);
      }
      expect(opt.table.subarray(fx.neverRow * D, (fx.neverRow + 1) * D)).toEqual(Float32Array.from(fx.init.slice(fx.neverRow * D, (fx.neverRow + 1) * D)));
    });
  }

  for (const c of fx.rowwise) {
    it(`${c.name}: bit-identical to the numpy float32 computation in make_sparse_fixtures.py`, () => {
      const opt = run(rowwiseAdagrad, c.options, (t, o) => {
        expect(mismatches(o.table, c.snapshots[fx.snapshots.indexOf(t)]!), `step ${t}`).toEqual([]);
      });
      expect(mismatches(opt.state.sum!, c.finalState.sum)).toEqual([]);
    });
  }

  it("coalesce gives PyTorch's bits up to 16 ids (std::sort is stable there), and beyond stays within rounding of the sum", () => {
    for (const c of fx.coalesce) {
      const values = Float32Array.from(c.values), ids = Int32Array.from(c.ids);
      const got = coalesce(ids, values, 3), ref = coalesceReference(ids, values, 3);
      expect(Array.from(got.rows)).toEqual(c.rows);
      expect(got.values).toEqual(ref.values);
      const bad = mismatches(got.values, c.sums);
      if (c.ids.length <= 16) expect(bad, `${c.ids.length} ids`).toEqual([]);
      // Beyond 16 the order of summation differs: each sum within a few ulps of Σ|v| (the bound of a reordering).
      for (let k = 0; k < c.rows.length * 3; k++) {
        const absSum = c.ids.reduce((s, id, j) => (id === c.rows[Math.floor(k / 3)] ? s + Math.abs(c.values[j * 3 + (k % 3)]!) : s), 0);
        expect(Math.abs(got.values[k]! - Math.fround(c.sums[k]!))).toBeLessThanOrEqual(absSum * c.ids.length * 2 ** -24);
      }
      console.log(`coalesce of ${c.ids.length} ids: ${bad.length} of ${got.values.length} sums differ from PyTorch's in some bit`);
    }
  });

  it('resolves the fixture options without complaint', () => {
    for (const c of fx.configs) expect(() => resolveOptions(algorithms[c.optimizer]!, c.options)).not.toThrow();
  });
});

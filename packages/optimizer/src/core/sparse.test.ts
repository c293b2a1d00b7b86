/**
 * The sparse core: the fused steps give the same bits as their plain oracles, read and write only
 * the rows given (so a store holding a table's rows in any order steps them identically), coalesce
 * matches its plain version, and every bad argument fails before anything changes, naming it.
 */
import { describe, expect, it } from 'vitest';
import {
  OptimizerError, SparseRowOptimizer, SparseWorkspace, allocateSparseState, coalesce, coalesceReference, gatherRows,
  namedSparseOptimizer, resolveOptions, rowLayout, rowwiseAdagrad, scatterRows, sparseAdagrad, sparseAdam, sparseSgd,
  sparseStep, type SparseAlgorithm,
} from '@loom/optimizer';

/** A deterministic generator (mulberry32). */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}
/** Values of many magnitudes, both signs, some zeros. */
function values(n: number, rand: () => number): Float32Array {
  return Float32Array.from({ length: n }, () => (rand() < 0.05 ? 0 : (rand() - 0.5) * 10 ** Math.floor(rand() * 6 - 3)));
}
/** k distinct rows of [0, V) in random order. */
function distinctRows(k: number, V: number, rand: () => number): Int32Array {
  const all = Array.from({ length: V }, (_, i) => i);
  for (let i = V - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [all[i], all[j]] = [all[j]!, all[i]!];
  }
  return Int32Array.from(all.slice(0, k));
}
const bits = (a: Float32Array) => Array.from(new Uint32Array(a.buffer.slice(a.byteOffset, a.byteOffset + a.byteLength)));

const cases: [SparseAlgorithm<any>, Record<string, unknown>[]][] = [
  [sparseAdam, [{}, { lr: 0.05, betas: [0.8, 0.95], eps: 1e-6 }, { lr: 0.01, betas: [0, 0.5], maximize: true }]],
  [sparseAdagrad, [{}, { lr: 0.1, lrDecay: 0.05, initialAccumulatorValue: 0.1, eps: 1e-6 }, { maximize: true }]],
  [rowwiseAdagrad, [{}, { lr: 0.1, initialAccumulatorValue: 0.2, eps: 1e-6 }, { maximize: true }]],
  [sparseSgd, [{ lr: 0.1 }, { lr: 0.3, maximize: true }]],
];

describe('coalesce', () => {
  it('sorts ids and sums duplicates in order of occurrence, the same bits as the plain version', () => {
    const rand = rng(1);
    const ws = new SparseWorkspace();
    for (const [n, V, dim] of [[0, 5, 3], [1, 5, 3], [16, 4, 2], [17, 4, 2], [200, 9, 5], [1000, 600, 3], [3000, 20, 1]] as const) {
      const ids = Int32Array.from({ length: n }, () => Math.floor(rand() * V));
      const vals = values(n * dim, rand);
      const got = coalesce(ids, vals, dim, ws), ref = coalesceReference(ids, vals, dim);
      expect(Array.from(got.rows)).toEqual(Array.from(ref.rows));
      expect(bits(got.values)).toEqual(bits(ref.values));
      expect(Array.from(got.rows)).toEqual([...new Set(ids)].sort((a, b) => a - b));
    }
  });

  it('adds in occurrence order: ((a + b) + c), not another order', () => {
    // 1 + 2⁻²⁴ rounds to 1 each time, so (1 + 2⁻²⁴) + 2⁻²⁴ = 1, while 1 + (2⁻²⁴ + 2⁻²⁴) = 1 + 2⁻²³.
    const { values: v } = coalesce(Int32Array.of(0, 0, 0), Float32Array.of(1, 2 ** -24, 2 ** -24), 1);
    expect(v[0]).toBe(1);
    const { values: w } = coalesce(Int32Array.of(0, 0, 0), Float32Array.of(2 ** -24, 2 ** -24, 1), 1);
    expect(w[0]).toBe(1 + 2 ** -23);
  });

  it('returns views into its workspace: no allocation once it is large enough', () => {
    const ws = new SparseWorkspace();
    const a = coalesce(Int32Array.of(3, 1, 3), new Float32Array(6).fill(1), 2, ws);
    const b = coalesce(Int32Array.of(2, 2), new Float32Array(4).fill(1), 2, ws);
    expect(a.rows.buffer).toBe(b.rows.buffer);
    expect(a.values.buffer).toBe(b.values.buffer);
  });

  it('rejects negative, non-integer and oversized ids, and values of the wrong length, naming them', () => {
    expect(() => coalesce([1, -2], new Float32Array(4), 2)).toThrow('coalesce: id -2 at position 1 is out of range');
    expect(() => coalesce([1, 2.5], new Float32Array(4), 2)).toThrow('coalesce: id 2.5 at position 1 is not an integer');
    expect(() => coalesce([2 ** 31], new Float32Array(2), 2)).toThrow('out of range [0, 2³¹)');
    expect(() => coalesce([1, 2], new Float32Array(5), 2)).toThrow('coalesce: values has length 5, expected ids (2) × dim (2) = 4');
    expect(() => coalesce([1], new Float32Array(2), 0)).toThrow('coalesce: dim must be an integer ≥ 1, got 0');
  });
});

describe('sparse steps', () => {
  for (const [alg, optionSets] of cases) {
    for (const given of optionSets) {
      it(`${alg.name} ${JSON.stringify(given)}: the fused step gives the oracle's bits, and rows not given keep theirs`, () => {
        const rand = rng(7);
        const V = 40, D = 7, options = resolveOptions(alg, given);
        const tableA = values(V * D, rand), stateA = allocateSparseState(alg, options, V, D);
        const tableB = tableA.slice(), stateB = allocateSparseState(alg, options, V, D);
        for (let t = 1; t <= 12; t++) {
          const rows = alg.uniqueRows ? distinctRows(1 + Math.floor(rand() * 15), V, rand)
            : Int32Array.from({ length: 1 + Math.floor(rand() * 15) }, () => Math.floor(rand() * 10)); // SGD: repeats
          const grads = values(rows.length * D, rand);
          const before = tableA.slice(), beforeState = Object.fromEntries(Object.entries(stateA).map(([k, a]) => [k, a.slice()]));
          alg.step(tableA, stateA, rows, grads, D, options, t);
          alg.reference(tableB, stateB, rows, grads, D, options, t);
          expect(bits(tableA)).toEqual(bits(tableB));
          for (const k of Object.keys(stateA)) expect(bits(stateA[k]!)).toEqual(bits(stateB[k]!));
          const touched = new Set(rows);
          for (let r = 0; r < V; r++) {
            if (touched.has(r)) continue;
            expect(bits(tableA.subarray(r * D, (r + 1) * D))).toEqual(bits(before.subarray(r * D, (r + 1) * D)));
            for (const [k, a] of Object.entries(stateA)) {
              const n = alg.stateSize(k, D);
              expect(bits(a.subarray(r * n, (r + 1) * n))).toEqual(bits(beforeState[k]!.subarray(r * n, (r + 1) * n)));
            }
          }
        }
      });
    }

    it(`${alg.name}: a store holding the rows in another order steps each row to the same bits`, () => {
      const rand = rng(11);
      const V = 30, D = 4, options = resolveOptions(alg, alg === sparseSgd ? { lr: 0.1 } : {});
      const perm = distinctRows(V, V, rand); // table row r lives at store slot perm[r]
      const table = values(V * D, rand), store = new Float32Array(V * D);
      for (let r = 0; r < V; r++) store.set(table.subarray(r * D, (r + 1) * D), perm[r]! * D);
      const state = allocateSparseState(alg, options, V, D), storeState = allocateSparseState(alg, options, V, D);
      for (let t = 1; t <= 6; t++) {
        const rows = distinctRows(8, V, rand), grads = values(8 * D, rand);
        sparseStep(alg, table, state, rows, grads, D, options, t);
        sparseStep(alg, store, storeState, rows.map((r) => perm[r]!), grads, D, options, t);
      }
      const layout = rowLayout(alg, options, D);
      const all = Int32Array.from({ length: V }, (_, r) => r);
      const a = new Float32Array(V * layout.size), b = new Float32Array(V * layout.size);
      gatherRows(layout, table, state, all, a);
      gatherRows(layout, store, storeState, all.map((r) => perm[r]!), b);
      expect(bits(a)).toEqual(bits(b));
    });
  }

  it('SparseAdam: the bias correction uses the table step, so a row first touched at step 20 differs from a fresh start', () => {
    const D = 2, opts = resolveOptions(sparseAdam, { lr: 0.1 });
    const stepAt = (t: number) => {
      const table = new Float32Array(2 * D), state = allocateSparseState(sparseAdam, opts, 2, D);
      sparseAdam.step(table, state, [1], Float32Array.of(0.5, -0.25), D, opts, t);
      return table;
    };
    // At t = 1 the corrected step is exactly lr·sign(g) (up to ε); at t = 20 it is not.
    expect(stepAt(1)[2]).toBeCloseTo(-0.1, 6);
    expect(Math.abs(stepAt(20)[2]! + 0.1)).toBeGreaterThan(1e-3);
  });

  it('sparse SGD applies each occurrence in turn, as PyTorch; coalescing first rounds once', () => {
    const opts = resolveOptions(sparseSgd, { lr: 1 });
    const table = Float32Array.of(1, 1);
    sparseSgd.step(table, {}, [1, 1], Float32Array.of(3e-8, 3e-8), 1, opts, 1);
    expect(table[1]).toBe(1 - 2 ** -23); // two steps of one ulp each (PyTorch 1.13: 0.9999998807907104)
    const c = coalesce([1, 1], Float32Array.of(3e-8, 3e-8), 1);
    const coalesced = Float32Array.of(1, 1);
    sparseSgd.step(coalesced, {}, c.rows, c.values, 1, opts, 1);
    expect(coalesced[1]).toBe(1 - 2 ** -24);
  });

  it('row-wise Adagrad: one accumulator per row, the mean of g² over the row', () => {
    const D = 4, opts = resolveOptions(rowwiseAdagrad, { lr: 0.1 });
    const table = new Float32Array(3 * D), state = allocateSparseState(rowwiseAdagrad, opts, 3, D);
    expect(state.sum!.length).toBe(3);
    rowwiseAdagrad.step(table, state, [2], Float32Array.of(1, -1, 3, -3), D, opts, 1);
    expect(Array.from(state.sum!)).toEqual([0, 0, 5]); // (1 + 1 + 9 + 9) / 4
    const m = Math.fround(Math.fround(0.1) / Math.fround(Math.fround(Math.sqrt(5)) + Math.fround(1e-8)));
    expect(Array.from(table.subarray(8))).toEqual([-m, m, -Math.fround(3 * m), Math.fround(3 * m)]);
    expect(Array.from(table.subarray(0, 8))).toEqual(new Array(8).fill(0));
  });
});

describe('per-row state layout', () => {
  it('is weight then state, in stateKeys order, and gather/scatter round-trip a row with its state', () => {
    expect(rowLayout(sparseAdam, sparseAdam.defaults, 3)).toEqual({
      dim: 3, size: 9,
      fields: [{ name: 'weight', offset: 0, length: 3 }, { name: 'expAvg', offset: 3, length: 3 }, { name: 'expAvgSq', offset: 6, length: 3 }],
    });
    expect(rowLayout(rowwiseAdagrad, rowwiseAdagrad.defaults, 3).size).toBe(4);
    expect(rowLayout(sparseSgd, { ...sparseSgd.defaults, lr: 1 }, 3).size).toBe(3);
    const opts = resolveOptions(sparseAdagrad, { initialAccumulatorValue: 0.5 });
    const V = 5, D = 2, table = Float32Array.from({ length: V * D }, (_, i) => i);
    const state = allocateSparseState(sparseAdagrad, opts, V, D);
    expect(Array.from(state.sum!)).toEqual(new Array(V * D).fill(0.5));
    state.sum!.set([7, 8], 3 * D);
    const layout = rowLayout(sparseAdagrad, opts, D), rec = new Float32Array(2 * layout.size);
    gatherRows(layout, table, state, [3, 0], rec);
    expect(Array.from(rec)).toEqual([6, 7, 7, 8, 0, 1, 0.5, 0.5]);
    const table2 = new Float32Array(V * D), state2 = allocateSparseState(sparseAdagrad, opts, V, D);
    scatterRows(layout, table2, state2, [3, 0], rec);
    expect(Array.from(table2.subarray(6, 8))).toEqual([6, 7]);
    expect(Array.from(state2.sum!.subarray(6, 8))).toEqual([7, 8]);
    expect(() => gatherRows(layout, table, state, [3], new Float32Array(3))).toThrow('gatherRows: out has length 3, expected rows (1) × row size (4) = 4');
  });
});

describe('validation', () => {
  const D = 2, V = 4;
  const setup = (alg: SparseAlgorithm<any>, given: object) => {
    const options = resolveOptions(alg, given);
    return { options, table: new Float32Array(V * D).fill(1), state: allocateSparseState(alg, options, V, D) };
  };

  it('hyperparameters, in PyTorch words', () => {
    expect(() => resolveOptions(sparseAdam, { lr: -0.1 })).toThrow('Invalid learning rate: -0.1 (must be > 0)');
    expect(() => resolveOptions(sparseAdam, { lr: 0 })).toThrow('Invalid learning rate: 0'); // PyTorch's SparseAdam rejects 0 too
    expect(() => resolveOptions(sparseAdam, { betas: [1, 0.9] })).toThrow('Invalid beta parameter at index 0: 1');
    expect(() => resolveOptions(sparseAdam, { betas: [0.9, -0.1] })).toThrow('Invalid beta parameter at index 1: -0.1');
    expect(() => resolveOptions(sparseAdam, { eps: 0 })).toThrow('Invalid epsilon value: 0 (must be > 0)');
    expect(() => resolveOptions(sparseAdam, { weightDecay: 0.1 })).toThrow("Unknown option 'weightDecay' for SparseAdam (expected one of: lr, betas, eps, maximize)");
    expect(() => resolveOptions(sparseAdagrad, { lr: -1 })).toThrow('Invalid learning rate: -1');
    expect(() => resolveOptions(sparseAdagrad, { weightDecay: 0.01 })).toThrow('Invalid weightDecay value: 0.01 (weight decay is not compatible with sparse gradients, as in PyTorch)');
    expect(() => resolveOptions(sparseAdagrad, { eps: -1e-10 })).toThrow('Invalid epsilon value: -1e-10 (must be > 0)');
    expect(() => resolveOptions(rowwiseAdagrad, { lr: -1 })).toThrow('Invalid learning rate: -1');
    expect(() => resolveOptions(rowwiseAdagrad, { eps: 0 })).toThrow('Invalid epsilon value: 0 (must be > 0)');
    expect(() => resolveOptions(sparseSgd, {})).toThrow("Missing option 'lr' for SGD");
    expect(() => resolveOptions(sparseSgd, { lr: -0.1 })).toThrow('Invalid learning rate: -0.1');
    expect(() => resolveOptions(sparseSgd, { lr: 0.1, momentum: 0.9 })).toThrow('Invalid momentum value: 0.9 (sparse SGD supports momentum 0 only');
    expect(() => resolveOptions(sparseSgd, { lr: 0.1, weightDecay: 1e-4 })).toThrow('Invalid weightDecay value: 0.0001 (weight decay is not compatible with sparse gradients');
    expect(() => resolveOptions(sparseSgd, { lr: 0.1, nesterov: true })).toThrow('Nesterov momentum requires a momentum and zero dampening');
    expect(() => namedSparseOptimizer('adam')).toThrow("Unknown sparse optimizer 'adam' (expected one of: sparse-adam, adagrad, rowwise-adagrad, sgd)");
    expect(namedSparseOptimizer('rowwise-adagrad', { lr: 0.5 }).options).toEqual({ ...rowwiseAdagrad.defaults, lr: 0.5 });
  });

  it('rows, grads, state and step: each error names the value, and nothing changes', () => {
    for (const [alg, given] of [[sparseAdam, {}], [sparseAdagrad, {}], [rowwiseAdagrad, {}], [sparseSgd, { lr: 0.1 }]] as const) {
      const { options, table, state } = setup(alg, given);
      const step = (rows: ArrayLike<number>, grads: Float32Array, s: object = state, t = 1) => () => alg.step(table, s as never, rows, grads, D, options, t);
      const g2 = new Float32Array(2 * D).fill(1);
      const name = `${alg === sparseSgd ? 'sparseSgd' : alg === sparseAdam ? 'sparseAdam' : alg === sparseAdagrad ? 'sparseAdagrad' : 'rowwiseAdagrad'}Step`;
      expect(step([0, 4], g2)).toThrow(`${name}: row index 4 at position 1 is out of range [0, 4)`);
      expect(step([-1, 0], g2)).toThrow(`${name}: row index -1 at position 0 is out of range [0, 4)`);
      expect(step([0, 1.5], g2)).toThrow(`${name}: row index 1.5 at position 1 is not an integer`);
      expect(step([0, 1], new Float32Array(3))).toThrow(`${name}: grads has length 3, expected rows (2) × dim (2) = 4`);
      expect(step([0, 1], g2, state, 0)).toThrow(`${name}: step must be an integer ≥ 1`);
      if (alg.uniqueRows) {
        expect(step([3, 1, 3], new Float32Array(3 * D))).toThrow(`${name}: row index 3 appears more than once: rows must be unique (coalesce the gradient first)`);
        const key = alg.stateKeys(options)[0]!;
        expect(step([0], new Float32Array(D), { ...state, [key]: new Float32Array(1) })).toThrow(`${name}: state.${key} has length 1, expected`);
      }
      expect(() => alg.step(table, state, [0], new Float32Array(D), 3, options, 1)).toThrow(`${name}: table has length 8, not a multiple of dim 3`);
      expect(Array.from(table)).toEqual(new Array(V * D).fill(1));
    }
  });

  it('SparseRowOptimizer counts a step only when it happened', () => {
    const opt = new SparseRowOptimizer(sparseAdam, new Float32Array(4 * 2), 2, { lr: 0.1 });
    expect(() => opt.step([1, 9], new Float32Array(4))).toThrow(OptimizerError);
    expect(opt.stepCount).toBe(0);
    opt.step([1, 3, 1], new Float32Array(6).fill(1));
    expect(opt.stepCount).toBe(1);
    expect(opt.layout.size).toBe(6);
    expect(() => new SparseRowOptimizer(sparseAdam, new Float32Array(5), 2)).toThrow('SparseAdam: table has length 5, not a multiple of dim 2');
  });
});

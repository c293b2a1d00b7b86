// Cutting a step's work among the live ranks (plan.ts), and the schedules that follow plans.
import { describe, expect, it } from 'vitest';
import { CtrSchedule, GlobalBatchSchedule, fullPlan, shareOf, type Segment, type StepPlan } from './index.js';

describe('shareOf', () => {
  it('with every rank live and nothing carried, rank r of W takes rows ⌊r·B/W⌋ … ⌊(r+1)·B/W⌋: the fixed split', () => {
    for (const [B, W] of [[64, 3], [5, 3], [2, 3], [7, 1]] as const) {
      for (let r = 0; r < W; r++) {
        const lo = Math.floor((r * B) / W), hi = Math.floor(((r + 1) * B) / W);
        expect(shareOf(9, B, fullPlan(W), r)).toEqual(lo < hi ? [{ step: 9, lo, hi }] : []);
      }
    }
  });

  it('the live ranks\' shares, laid end to end, are the step\'s batch and then the carried rows, each row once', () => {
    const plan: StepPlan = { live: [0, 2, 5], carry: [{ step: 3, lo: 10, hi: 16 }, { step: 4, lo: 0, hi: 5 }] };
    const shares = [0, 1, 2].map((p) => shareOf(7, 16, plan, p));
    const rows = (ss: Segment[]) => ss.flatMap((s) => Array.from({ length: s.hi - s.lo }, (_, i) => `${s.step}:${s.lo + i}`));
    const work = rows([{ step: 7, lo: 0, hi: 16 }, ...plan.carry]);
    expect(shares.flatMap(rows)).toEqual(work);
    expect(shares.map((s) => rows(s).length)).toEqual([9, 9, 9]); // 27 rows, ⌊(p+1)·27/3⌋ − ⌊p·27/3⌋
    expect(shares[1]).toEqual([{ step: 7, lo: 9, hi: 16 }, { step: 3, lo: 10, hi: 12 }]);
    expect(shareOf(7, 16, plan, -1)).toEqual([]); // not live: nothing
  });
});

describe('schedules under a plan', () => {
  const n = 23;
  const source = { features: Float32Array.from({ length: 2 * n }, (_, i) => i), labels: Int32Array.from({ length: n }, (_, i) => i), width: 2 };
  const rows = Int32Array.from({ length: n }, (_, i) => i);

  it('GlobalBatchSchedule: the full plan cuts what the fixed split does; a plan of 2 live ranks with carried rows cuts them in', () => {
    const s = new GlobalBatchSchedule(source, rows, 5, 3, 1, 3);
    const copy = (b: { y: Int32Array; x: Float32Array; rows: number; batchRows: number }) => ({ y: [...b.y], x: [...b.x], rows: b.rows, batchRows: b.batchRows });
    const fixed: Array<ReturnType<typeof copy>> = [];
    for (const b of s.epoch(2)) fixed.push(copy(b)); // one object, refilled: copied as it comes
    for (let i = 0; i < s.batchesPerEpoch; i++) expect(copy(s.share(2, i, fullPlan(3)))).toEqual(fixed[i]);
    // Batch 1 of epoch 2 (step 11) with ranks 0 and 1 live and 3 rows of step 9 (epoch 1, batch 4) carried.
    const whole = new GlobalBatchSchedule(source, rows, 5, 3, 0, 1);
    const b11 = [...whole.share(2, 1, undefined).y];
    const b9 = [...whole.share(1, 4, undefined).y];
    const b = s.share(2, 1, { live: [0, 1], carry: [{ step: 9, lo: 0, hi: 3 }] });
    expect([b.rows, b.batchRows]).toEqual([4, 8]);
    expect([...b.y]).toEqual([...b11.slice(4), ...b9.slice(0, 3)]);
    expect([...b.x]).toEqual([...b.y].flatMap((r) => [2 * r, 2 * r + 1]));
  });

  it('CtrSchedule: a share within one run of impressions is a view of the columns; one across runs is copied', () => {
    const cols = {
      rows: n, user: Int32Array.from({ length: n }, (_, i) => i), article: new Int32Array(n), category: new Int32Array(n), subcategory: new Int32Array(n),
      history: new Int32Array(n), dense: new Float32Array(n), label: new Float32Array(n),
    };
    const s = new CtrSchedule(cols, { historyLength: 1, denseWidth: 1 }, [0, n], 5, 1, 2);
    const one = s.share(0, 2, { live: [0, 1], carry: [] });
    expect([...one.user]).toEqual([12, 13, 14]);
    expect(one.user.buffer).toBe(cols.user.buffer);
    const two = s.share(0, 2, { live: [1], carry: [{ step: 0, lo: 3, hi: 5 }] });
    expect([...two.user]).toEqual([10, 11, 12, 13, 14, 3, 4]);
    expect(two.user.buffer).not.toBe(cols.user.buffer);
    expect([two.rows, two.batchRows]).toEqual([7, 7]);
  });
});

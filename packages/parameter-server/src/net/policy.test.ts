// The network policies on their own, with an opaque gradient type (strings here), as a row-keyed
// table would use them: when updates happen, in which order, with which weights.
import { describe, expect, it } from 'vitest';
import { PsError } from './errors.js';
import { netPolicy, type UpdateTarget } from './policy.js';

function recorder() {
  const log: string[] = [];
  const target: UpdateTarget<string> = {
    begin: () => log.push('begin'),
    sum: (t, grads, weights) => log.push(`sum ${t}: ${grads.map((g, i) => `${weights[i]}·${g}`).join(' + ')}`),
    own: (t, grad) => log.push(`own ${t}: ${grad}`),
  };
  return { log, target };
}

describe('net policies', () => {
  it('sync: update t + 1 is every member\'s push of step t, in rank order, weighted by rows', () => {
    const { log, target } = recorder();
    const p = netPolicy({ mode: 'sync', staleness: 0, workers: 2 }, target);
    expect(p.push(1, 0, 'b', 48, 64, true)).toEqual({ appliedNow: 0, stale: 0, readUntil: 1 });
    expect(() => p.push(1, 1, 'b1', 48, 64, true)).toThrow(PsError); // one step ahead: not in sync
    expect(p.push(0, 0, 'a', 16, 64, true).appliedNow).toBe(1);
    expect(log).toEqual(['begin', 'sum 1: 0.25·a + 0.75·b']);
    expect(p.applied).toBe(1);
    expect(p.needFor(5)).toBe(5);
  });

  it('ssp: a worker runs up to S clocks ahead; clocks apply in order; a dropped worker\'s pushes are kept, then its weight is renormalised away', () => {
    const { log, target } = recorder();
    const p = netPolicy({ mode: 'ssp', staleness: 1, workers: 2 }, target);
    p.push(1, 0, 'b0', 32, 64, true);
    p.push(1, 1, 'b1', 32, 64, true);
    expect(() => p.push(1, 2, 'b2', 32, 64, true)).toThrow(/more than 1 ahead/);
    expect(p.needFor(3)).toBe(2);
    p.push(0, 0, 'a0', 32, 64, true);
    expect(p.drop(1)).toBe(0); // clock 1 keeps b1 and waits for worker 0
    expect(p.members()).toEqual([0]);
    p.push(0, 1, 'a1', 32, 64, true);
    p.push(0, 2, 'a2', 32, 64, true); // clock 2: worker 0 alone, half the rows of the batch, weight 1
    expect(log.filter((l) => l !== 'begin')).toEqual(['sum 1: 0.5·a0 + 0.5·b0', 'sum 2: 0.5·a1 + 0.5·b1', 'sum 3: 1·a2']);
    expect(() => p.join(1, 2)).toThrow(/already applied/);
    expect(p.join(1, 3)).toBe(0);
    expect(p.isMember(1)).toBe(true);
  });

  it('a skipped (non-finite) push weighs zero in sync and is counted but not stepped in async', () => {
    const sync = recorder();
    const s = netPolicy({ mode: 'sync', staleness: 0, workers: 1 }, sync.target);
    s.push(0, 0, 'nan', 64, 64, false);
    expect(sync.log).toEqual(['begin', 'sum 1: ']);
    const async = recorder();
    const a = netPolicy({ mode: 'async', staleness: 0, workers: 2 }, async.target);
    expect(a.push(0, 0, 'g', 1, 1, true)).toEqual({ appliedNow: 1, stale: 0, readUntil: 1 });
    a.notePull(1);
    expect(a.push(0, 0, 'nan', 1, 1, false)).toEqual({ appliedNow: 1, stale: 1, readUntil: 2 });
    expect(a.push(1, 0, 'h', 1, 1, true).stale).toBe(1); // worker 0's second update came after worker 1's pull
    expect(async.log.filter((l) => l !== 'begin')).toEqual(['own 1: g', 'own 2: null', 'own 3: h']);
    expect(a.needFor(9)).toBe(0);
  });

  it('restores a checkpoint\'s count only before any push', () => {
    const p = netPolicy({ mode: 'sync', staleness: 0, workers: 1 }, recorder().target);
    p.restore(7);
    expect(p.applied).toBe(7);
    expect(() => p.restore(8)).toThrow(/already taken pushes/);
  });
});

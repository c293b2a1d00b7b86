import { describe, expect, it } from 'vitest';
import { Random } from '@loom/tensor-core';
import { reduceSlots, reduceSlotsReference } from './policies.js';

describe('reduceSlots equals its plain-loop oracle bit for bit', () => {
  const rng = new Random(4);
  for (const n of [1, 2, 3, 5]) {
    for (const [first, lo, hi] of [[0, 0, 37], [n, 16, 33]] as const) {
      it(`${n} slot(s), ring offset ${first}, slice [${lo}, ${hi})`, () => {
        const slots = Array.from({ length: 2 * n }, () => Float32Array.from({ length: 40 }, () => rng.normal()));
        const weights = Float64Array.from({ length: 2 * n }, () => rng.next());
        if (n === 1) weights[first] = 1; // the identity shortcut
        const copy = slots.map((s) => s.slice());
        reduceSlotsReference(copy, weights, first, n, lo, hi);
        reduceSlots(slots, weights, first, n, lo, hi, new Float64Array(hi - lo));
        expect(slots[first]).toEqual(copy[first]);
        expect(slots[first]!.subarray(0, lo)).toEqual(copy[first]!.subarray(0, lo)); // outside the slice: untouched
      });
    }
  }
  it('a single slot with weight < 1 (a short last batch) is scaled', () => {
    const s = [Float32Array.of(2, 4)];
    reduceSlots(s, Float64Array.of(0.5), 0, 1, 0, 2, new Float64Array(0));
    expect(Array.from(s[0]!)).toEqual([1, 2]);
  });
});

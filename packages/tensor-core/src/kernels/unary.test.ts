// relu's bit-mask kernels against the obviously-correct comparisons, on the values where bits and
// comparisons could disagree: both zeros, NaN, infinities, denormals and the extremes of float32.
import { describe, expect, it } from 'vitest';
import { relu, reluBackward, reluBackwardInto, reluReference } from './unary.js';

const SPECIAL = [0, -0, 1, -1, NaN, Infinity, -Infinity, 1e-45, -1e-45, 3.4e38, -3.4e38, 1.5, -2.5, 1e-38, -1e-38];

/** The special values, then seeded values in [-1, 1), as float32. */
function values(n: number): Float32Array {
  const out = new Float32Array(n);
  out.set(SPECIAL);
  let s = 12345;
  for (let i = SPECIAL.length; i < n; i++) {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    out[i] = s / 2 ** 32 - 0.5;
  }
  return out;
}

describe('relu kernels', () => {
  const n = 101;
  const x = values(n);

  it('relu equals the reference: max(x, 0), NaN stays NaN (as torch.relu)', () => {
    const got = new Float32Array(n);
    const want = new Float32Array(n);
    relu(x, got, n);
    reluReference(x, want, n);
    // −0 may come out as −0 or +0: compare values, with NaN equal to NaN.
    expect([...got].map((v) => v + 0)).toEqual([...want].map((v) => v + 0));
    expect([got[0], got[1], got[4], got[5], got[6], got[8]]).toEqual([0, 0, NaN, Infinity, 0, 0]);
  });

  it('reluBackwardInto writes what reluBackward adds to zeros: dy where x > 0, 0 at x = ±0', () => {
    const finite = x.map((v) => (Number.isNaN(v) ? 1 : v)); // NaN: torch passes dy on, the comparison does not
    const dy = values(n).map((v, i) => (Number.isFinite(v) ? v : i) + 0.25);
    const into = new Float32Array(n).fill(7); // overwritten, not added to
    const added = new Float32Array(n);
    reluBackwardInto(finite, dy, into, n);
    reluBackward(finite, dy, added, n);
    expect([...into]).toEqual([...added]);
    expect([into[0], into[1], into[2]]).toEqual([0, 0, dy[2]]);
  });

  it('leaves elements past n alone', () => {
    const out = new Float32Array(8).fill(-3);
    relu(Float32Array.of(1, -1, 2, -2, 5, 5, 5, 5), out, 4);
    expect([...out]).toEqual([1, 0, 2, 0, -3, -3, -3, -3]);
  });
});

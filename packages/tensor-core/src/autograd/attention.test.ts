// Causal self-attention's core: the op against central finite differences of a float64 reference
// (odd shapes, T = 1, one head, a batch of one), and the native fused kernel on every code path
// against the composed ops it replaces, forward and gradient, on heads of widths off the vector
// sizes; bad shapes get a clear error.
import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { Random } from '../random.js';
import { Tensor } from './tensor.js';
import { causalAttention, composedAttention } from './attention.js';
import { gradCheck } from './gradcheck.testutil.js';
import { loadNativeBackend, nativeIsas, nativePath } from '../kernels/native-backend.js';

const rng = new Random(41);
const rand = (shape: number[], scale = 1) => Tensor.uniform(shape, rng, -scale, scale);

/** The definition in float64: per batch and head, softmax over j ≤ i of q_i·k_j/√D, times v. */
function reference(b: number, t: number, h: number, d: number) {
  return ([qkv]: Float64Array[]): Float64Array => {
    const c = h * d;
    const out = new Float64Array(b * t * c);
    const at = (bi: number, ti: number, part: number, hi: number, di: number) => qkv![(bi * t + ti) * 3 * c + part * c + hi * d + di]!;
    for (let bi = 0; bi < b; bi++) {
      for (let hi = 0; hi < h; hi++) {
        for (let i = 0; i < t; i++) {
          const s: number[] = [];
          for (let j = 0; j <= i; j++) {
            let dot = 0;
            for (let di = 0; di < d; di++) dot += at(bi, i, 0, hi, di) * at(bi, j, 1, hi, di);
            s.push(dot / Math.sqrt(d));
          }
          const m = Math.max(...s);
          const e = s.map((v) => Math.exp(v - m));
          const z = e.reduce((p, v) => p + v, 0);
          for (let di = 0; di < d; di++) {
            let y = 0;
            for (let j = 0; j <= i; j++) y += (e[j]! / z) * at(bi, j, 2, hi, di);
            out[(bi * t + i) * c + hi * d + di] = y;
          }
        }
      }
    }
    return out;
  };
}

const SHAPES: [number, number, number, number][] = [
  [1, 1, 1, 1],
  [2, 5, 2, 3],
  [1, 7, 3, 4],
  [3, 4, 1, 5],
];

describe('causalAttention', () => {
  for (const [b, t, h, d] of SHAPES) {
    it(`the op and the composition against finite differences: B ${b}, T ${t}, H ${h}, D ${d}`, () => {
      for (const op of [causalAttention, composedAttention]) {
        const qkv = rand([b, t, 3 * h * d], 1.5);
        const { forwardError, gradError } = gradCheck(([x]) => op(x!, h), reference(b, t, h, d), [qkv]);
        expect(forwardError).toBeLessThan(1e-5);
        expect(gradError).toBeLessThan(2e-4);
      }
    });
  }

  it('names what is wrong with its input', () => {
    expect(() => causalAttention(Tensor.zeros([2, 9]), 1)).toThrow('causalAttention: qkv must be a (B, T, 3C) float Tensor, got [2, 9]');
    expect(() => causalAttention(Tensor.zeros([2, 3, 12]), 3)).toThrow('does not hold q, k and v of 3 equal heads (3C = 12 is not a multiple of 3·3)');
    expect(() => causalAttention(Tensor.zeros([2, 3, 12]), 0)).toThrow('heads must be a positive integer, got 0');
  });
});

describe.skipIf(!existsSync(nativePath))('the native fused core against the composed ops', () => {
  for (const isa of nativeIsas()) {
    it(`native-${isa}: out, and dqkv accumulated, within 2e-6 of the composition's (T up to 33, D 1–17)`, () => {
      const native = loadNativeBackend({ isa })!;
      for (const [b, t, h, d] of [...SHAPES, [2, 33, 4, 16], [1, 17, 2, 17]] as const) {
        const c = h * d;
        const qkv = rand([b, t, 3 * c], 2);
        qkv.requiresGrad = true;
        const y = composedAttention(qkv, h);
        const dy = rand([b, t, c]);
        y.backward(dy);
        const want = y.data, wantGrad = qkv.grad!.data;

        const out = new Float32Array(b * t * c).fill(NaN);
        const probs = new Float32Array(b * h * t * t).fill(NaN);
        native.causalAttention(qkv.data, out, probs, b, t, h, d);
        const start = rand([b, t, 3 * c]).data; // the kernel adds to what is there
        const dqkv = start.slice();
        native.causalAttentionBackward(qkv.data, probs, dy.data, dqkv, b, t, h, d);
        for (let i = 0; i < want.length; i++) expect(Math.abs(out[i]! - want[i]!)).toBeLessThanOrEqual(2e-6 * (1 + Math.abs(want[i]!)));
        for (let i = 0; i < dqkv.length; i++) {
          expect(Math.abs(dqkv[i]! - start[i]! - wantGrad[i]!)).toBeLessThanOrEqual(2e-6 * (1 + Math.abs(wantGrad[i]!)) * Math.sqrt(t));
        }
        // The future is never attended: every weight above the diagonal is 0, every row sums to 1.
        for (let r = 0; r < b * h * t; r++) {
          const i = r % t;
          let sum = 0;
          for (let j = 0; j < t; j++) {
            if (j > i) expect(probs[r * t + j]).toBe(0);
            sum += probs[r * t + j]!;
          }
          expect(Math.abs(sum - 1)).toBeLessThan(1e-6);
        }
      }
    });
  }

  it('refuses short arrays, touching nothing', () => {
    const native = loadNativeBackend()!;
    const out = new Float32Array(2 * 3 * 4).fill(5);
    expect(() => native.causalAttention(new Float32Array(2 * 3 * 12 - 1), out, new Float32Array(2 * 2 * 9), 2, 3, 2, 2)).toThrow(
      'causalAttention (native): qkv: expected at least 72 elements for these sizes, got 71',
    );
    expect(() => native.causalAttentionBackward(new Float32Array(72), new Float32Array(35), new Float32Array(24), new Float32Array(72), 2, 3, 2, 2)).toThrow(
      'causalAttentionBackward (native): probs: expected at least 36 elements',
    );
    expect(out.every((v) => v === 5)).toBe(true);
  });
});

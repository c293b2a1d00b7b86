/**
 * Gradient clipping against torch.nn.utils.clip_grad_norm_ / clip_grad_value_ (fixtures/torch_optim.json).
 * PyTorch reduces the norm in float32, Loom in float64: the norm agrees to 1e-6 relative, the
 * clipped gradients to 1e-6 relative (floor 1e-6).
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  clipCoefficient, clipGradNorm, clipGradValue, clipValueSlice, gradNormPartial, scaleSlice, totalNorm,
  type ParamLike,
} from '@loom/optimizer';

interface ClipFixture {
  kind: 'norm' | 'value';
  normType?: number | 'inf';
  maxNorm?: number;
  clipValue?: number;
  totalNorm?: number;
  grads: number[];
}
const fixture = JSON.parse(readFileSync(new URL('../fixtures/torch_optim.json', import.meta.url), 'utf8')) as {
  shapes: number[][];
  grads: number[][];
  clipping: ClipFixture[];
};
const sizes = fixture.shapes.map((s) => s.reduce((a, b) => a * b, 1));

function params(): ParamLike[] {
  const g = fixture.grads[0]!;
  let o = 0;
  return sizes.map((n) => {
    const p = { data: new Float32Array(n), grad: { data: Float32Array.from(g.slice(o, o + n)) } };
    o += n;
    return p;
  });
}
const rel = (a: number, b: number) => Math.abs(a - b) / Math.max(Math.abs(b), 1e-6);

describe('clipping against PyTorch', () => {
  for (const c of fixture.clipping) {
    const label = c.kind === 'norm' ? `clipGradNorm(maxNorm ${c.maxNorm}, normType ${c.normType})` : `clipGradValue(${c.clipValue})`;
    it(label, () => {
      const ps = params();
      if (c.kind === 'norm') {
        const normType = c.normType === 'inf' ? Infinity : c.normType!;
        const norm = clipGradNorm(ps, c.maxNorm!, normType);
        expect(rel(norm, c.totalNorm!)).toBeLessThanOrEqual(1e-6);
      } else {
        clipGradValue(ps, c.clipValue!);
      }
      const got = ps.flatMap((p) => Array.from(p.grad!.data));
      got.forEach((x, i) => expect(rel(x, c.grads[i]!), `element ${i}`).toBeLessThanOrEqual(1e-6));
    });
  }
});

describe('clipping over slices', () => {
  it('partial norms over slices combine to the whole norm, and scaling slices equals scaling the whole', () => {
    const g = Float32Array.from(fixture.grads[1]!);
    for (const p of [1, 2, 3, Infinity]) {
      const whole = totalNorm([gradNormPartial(g, p)], p);
      const sliced = totalNorm([gradNormPartial(g, p, 0, 10), gradNormPartial(g, p, 10, 33), gradNormPartial(g, p, 33)], p);
      expect(rel(sliced, whole)).toBeLessThanOrEqual(1e-12);
    }
    const coef = clipCoefficient(totalNorm([gradNormPartial(g)]), 0.5);
    expect(coef).toBeLessThan(1);
    const a = g.slice(), b = g.slice();
    scaleSlice(a, coef);
    scaleSlice(b, coef, 20);
    scaleSlice(b, coef, 0, 20);
    expect(b).toEqual(a);
    clipValueSlice(a, 0.1, 0, 5);
    expect(Math.max(...a.subarray(0, 5).map(Math.abs))).toBeLessThanOrEqual(0.1);
    expect(a.subarray(5)).toEqual(b.subarray(5));
  });

  it('leaves small gradients alone and returns the norm', () => {
    const p = { data: new Float32Array(2), grad: { data: Float32Array.of(3, 4) } };
    expect(clipGradNorm([p], 10)).toBe(5);
    expect(p.grad.data).toEqual(Float32Array.of(3, 4));
    expect(clipGradNorm(p, 1)).toBe(5);
    expect(p.grad.data[0]).toBeCloseTo(0.6, 6);
  });

  it('rejects bad arguments by name', () => {
    const p = { data: new Float32Array(2), grad: { data: Float32Array.of(3, NaN) } };
    expect(() => clipGradNorm([p], 1, 0)).toThrow('Invalid norm type: 0');
    expect(() => clipGradNorm([p], -1)).toThrow('Invalid max norm: -1');
    expect(() => clipGradNorm([p], 1, 2, true)).toThrow('clipGradNorm: the total norm of order 2 of the gradients is NaN');
    expect(() => clipGradValue([p], -0.5)).toThrow('Invalid clip value: -0.5');
    expect(() => scaleSlice(new Float32Array(3), 1, 2, 5)).toThrow('scaleSlice: slice [2, 5) is not within [0, 3]');
  });
});

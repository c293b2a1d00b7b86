/**
 * 2-D max and average pooling over planes: a (N, C, H, W) tensor is N·C independent (H, W) planes,
 * each pooled to (OH, OW) by a kh × kw window moved by (sh, sw) over the plane padded by (ph, pw).
 * These loops are the kernels and their own oracle: each output reads its window once.
 */

export interface Pool2dShape {
  /** N·C */
  readonly planes: number;
  readonly h: number;
  readonly w: number;
  readonly kh: number;
  readonly kw: number;
  readonly sh: number;
  readonly sw: number;
  readonly ph: number;
  readonly pw: number;
  readonly oh: number;
  readonly ow: number;
}

/**
 * out (planes, OH, OW) = the maximum of each window, padding never chosen (it is −∞, as PyTorch);
 * argmax (planes, OH, OW) = its position iy·W + ix in the plane. Ties and NaN as PyTorch: the
 * first maximum in row-major window order wins, and a NaN is taken as the maximum.
 */
export function maxPool2d(x: Float32Array, out: Float32Array, argmax: Int32Array, s: Pool2dShape): void {
  const { planes, h, w, kh, kw, sh, sw, ph, pw, oh, ow } = s;
  let o = 0;
  for (let pl = 0; pl < planes; pl++) {
    const base = pl * h * w;
    for (let oy = 0; oy < oh; oy++) {
      const y0 = Math.max(oy * sh - ph, 0);
      const y1 = Math.min(oy * sh - ph + kh, h);
      for (let ox = 0; ox < ow; ox++, o++) {
        const x0 = Math.max(ox * sw - pw, 0);
        const x1 = Math.min(ox * sw - pw + kw, w);
        let best = -Infinity;
        let at = y0 * w + x0;
        window: for (let iy = y0; iy < y1; iy++) {
          for (let ix = x0; ix < x1; ix++) {
            const v = x[base + iy * w + ix]!;
            if (v > best || Number.isNaN(v)) {
              best = v;
              at = iy * w + ix;
              if (Number.isNaN(v)) break window; // the first NaN is the maximum
            }
          }
        }
        out[o] = best;
        argmax[o] = at;
      }
    }
  }
}

/** dx (planes, H, W) += dy (planes, OH, OW) routed to each window's argmax. */
export function maxPool2dBackward(dy: Float32Array, argmax: Int32Array, dx: Float32Array, s: Pool2dShape): void {
  const hw = s.h * s.w;
  const p = s.oh * s.ow;
  for (let pl = 0; pl < s.planes; pl++) {
    const base = pl * hw;
    for (let q = pl * p, end = q + p; q < end; q++) dx[base + argmax[q]!]! += dy[q]!;
  }
}

/**
 * out (planes, OH, OW) = the mean of each window, padding counted as zeros in the divisor
 * kh·kw (PyTorch's default count_include_pad = True).
 */
export function avgPool2d(x: Float32Array, out: Float32Array, s: Pool2dShape): void {
  const { planes, h, w, kh, kw, sh, sw, ph, pw, oh, ow } = s;
  const scale = 1 / (kh * kw);
  let o = 0;
  for (let pl = 0; pl < planes; pl++) {
    const base = pl * h * w;
    for (let oy = 0; oy < oh; oy++) {
      const y0 = Math.max(oy * sh - ph, 0);
      const y1 = Math.min(oy * sh - ph + kh, h);
      for (let ox = 0; ox < ow; ox++, o++) {
        const x0 = Math.max(ox * sw - pw, 0);
        const x1 = Math.min(ox * sw - pw + kw, w);
        let sum = 0;
        for (let iy = y0; iy < y1; iy++) for (let ix = x0; ix < x1; ix++) sum += x[base + iy * w + ix]!;
        out[o] = sum * scale;
      }
    }
  }
}

/** dx (planes, H, W) += dy (planes, OH, OW) / (kh·kw) spread over each window. */
export function avgPool2dBackward(dy: Float32Array, dx: Float32Array, s: Pool2dShape): void {
  const { planes, h, w, kh, kw, sh, sw, ph, pw, oh, ow } = s;
  const scale = 1 / (kh * kw);
  let o = 0;
  for (let pl = 0; pl < planes; pl++) {
    const base = pl * h * w;
    for (let oy = 0; oy < oh; oy++) {
      const y0 = Math.max(oy * sh - ph, 0);
      const y1 = Math.min(oy * sh - ph + kh, h);
      for (let ox = 0; ox < ow; ox++, o++) {
        const x0 = Math.max(ox * sw - pw, 0);
        const x1 = Math.min(ox * sw - pw + kw, w);
        const g = dy[o]! * scale;
        for (let iy = y0; iy < y1; iy++) for (let ix = x0; ix < x1; ix++) dx[base + iy * w + ix]! += g;
      }
    }
  }
}

/**
 * 2-D convolution over NCHW as im2col on the backend's matmul, and the naive loops it is tested
 * against.
 *
 * Dimension letters: N images, C input channels, H × W input size, O output channels, kh × kw
 * kernel, (sh, sw) stride, (ph, pw) zero padding, OH × OW output size, P = OH·OW output positions,
 * K = C·kh·kw the contracted dimension.
 *
 * Forward, for the whole batch at once (one product, so small images still make a large GEMM):
 *
 *   cols (K, N·P)    = im2col(x)            every receptive field as a column
 *   tmp  (O, N·P)    = bias[o] + W (O, K) · cols   (the bias filled in, the product added)
 *   out  (N, O, P)   = tmp with N and O swapped
 *
 * Backward:
 *
 *   dyT   (O, N·P)   = dy with N and O swapped
 *   dW    (O, K)    += dyT · colsᵀ           transB: read in place
 *   dcols (K, N·P)   = Wᵀ · dyT              transA: read in place
 *   dx              += col2im(dcols)        each column added back where it was read from
 *   db    (O)       += Σ over N, P of dy
 *
 * Every function writes into arrays the caller owns and allocates nothing. conv2d and its backward
 * use the backend's im2col, col2im, swap01 and addRowSums where it has them (the native addon's are
 * C loops) and these otherwise, which stay their oracles.
 */
import type { KernelBackend } from './backend.js';

/** The dimensions of one convolution (or pooling: then O = C and only the plane is used). */
export interface Conv2dShape {
  readonly n: number;
  readonly c: number;
  readonly h: number;
  readonly w: number;
  readonly o: number;
  readonly kh: number;
  readonly kw: number;
  readonly sh: number;
  readonly sw: number;
  readonly ph: number;
  readonly pw: number;
  readonly oh: number;
  readonly ow: number;
}

/** The output length along one axis: ⌊(size + 2·padding − kernel) / stride⌋ + 1, as PyTorch. */
export function outSize(size: number, kernel: number, stride: number, padding: number): number {
  return Math.floor((size + 2 * padding - kernel) / stride) + 1;
}

/**
 * The output columns ox whose input column ox·sw − pw + j lies inside [0, w): [first, end).
 * Computed once per kernel column so the loops below copy runs without a bounds test per element.
 */
function validRange(w: number, ow: number, sw: number, pw: number, j: number): [number, number] {
  const first = Math.min(ow, Math.max(0, Math.ceil((pw - j) / sw)));
  const end = Math.max(first, Math.min(ow, Math.floor((w - 1 + pw - j) / sw) + 1));
  return [first, end];
}

/**
 * cols (C·kh·kw, N·OH·OW) = every receptive field of x (N, C, H, W) as a column; zero where the
 * field reaches into the padding. Row (c, i, j) holds x[n, c, oy·sh − ph + i, ox·sw − pw + j] at
 * column n·P + oy·OW + ox.
 */
export function im2col(x: Float32Array, cols: Float32Array, s: Conv2dShape): void {
  const { n, c, h, w, kh, kw, sh, sw, ph, pw, oh, ow } = s;
  const p = oh * ow;
  const np = n * p;
  for (let ci = 0; ci < c; ci++) {
    for (let i = 0; i < kh; i++) {
      for (let j = 0; j < kw; j++) {
        const row = ((ci * kh + i) * kw + j) * np;
        const [first, end] = validRange(w, ow, sw, pw, j);
        const shift = j - pw; // ix = ox·sw + shift
        for (let img = 0; img < n; img++) {
          const plane = (img * c + ci) * h * w;
          let col = row + img * p;
          for (let oy = 0; oy < oh; oy++, col += ow) {
            const iy = oy * sh - ph + i;
            if (iy < 0 || iy >= h) {
              cols.fill(0, col, col + ow);
              continue;
            }
            const src = plane + iy * w + shift;
            for (let ox = 0; ox < first; ox++) cols[col + ox] = 0;
            if (sw === 1) for (let ox = first; ox < end; ox++) cols[col + ox] = x[src + ox]!;
            else for (let ox = first; ox < end; ox++) cols[col + ox] = x[src + ox * sw]!;
            for (let ox = end; ox < ow; ox++) cols[col + ox] = 0;
          }
        }
      }
    }
  }
}

/** dx (N, C, H, W) += each column of dcols (C·kh·kw, N·OH·OW) added back where im2col read it. */
export function col2im(dcols: Float32Array, dx: Float32Array, s: Conv2dShape): void {
  const { n, c, h, w, kh, kw, sh, sw, ph, pw, oh, ow } = s;
  const p = oh * ow;
  const np = n * p;
  for (let ci = 0; ci < c; ci++) {
    for (let i = 0; i < kh; i++) {
      for (let j = 0; j < kw; j++) {
        const row = ((ci * kh + i) * kw + j) * np;
        const [first, end] = validRange(w, ow, sw, pw, j);
        const shift = j - pw;
        for (let img = 0; img < n; img++) {
          const plane = (img * c + ci) * h * w;
          let col = row + img * p;
          for (let oy = 0; oy < oh; oy++, col += ow) {
            const iy = oy * sh - ph + i;
            if (iy < 0 || iy >= h) continue;
            const dst = plane + iy * w + shift;
            if (sw === 1) for (let ox = first; ox < end; ox++) dx[dst + ox]! += dcols[col + ox]!;
            else for (let ox = first; ox < end; ox++) dx[dst + ox * sw]! += dcols[col + ox]!;
          }
        }
      }
    }
  }
}

/**
 * out (B, A, inner) (=|+=) x (A, B, inner): swaps the two outer axes of a 3-D array, the layout
 * change between the GEMM's (O, N·P) and NCHW's (N, O, P).
 */
export function swap01(x: Float32Array, out: Float32Array, a: number, b: number, inner: number, accumulate: boolean): void {
  for (let i = 0; i < a; i++) {
    for (let j = 0; j < b; j++) {
      const src = (i * b + j) * inner;
      const dst = (j * a + i) * inner;
      if (accumulate) for (let k = 0; k < inner; k++) out[dst + k]! += x[src + k]!;
      else for (let k = 0; k < inner; k++) out[dst + k] = x[src + k]!;
    }
  }
}

/**
 * out (N, O, OH, OW) = conv2d(x (N, C, H, W), weight (O, C, kh, kw)) + bias (O), through im2col
 * and one product on `mm`. Scratch: cols (C·kh·kw, N·P), which backward reads again, and
 * tmp (O, N·P).
 */
export function conv2d(
  mm: KernelBackend,
  x: Float32Array, // (N, C, H, W)
  weight: Float32Array, // (O, C, kh, kw)
  bias: Float32Array | null, // (O)
  out: Float32Array, // (N, O, OH, OW)
  cols: Float32Array, // (C·kh·kw, N·P)
  tmp: Float32Array, // (O, N·P)
  s: Conv2dShape,
): void {
  const p = s.oh * s.ow;
  const k = s.c * s.kh * s.kw;
  const np = s.n * p;
  if (mm.im2col) mm.im2col(x, cols, s);
  else im2col(x, cols, s);
  // The bias is where the product starts: each row of tmp filled with it, the product added on.
  if (bias !== null) for (let o = 0; o < s.o; o++) tmp.fill(bias[o]!, o * np, (o + 1) * np);
  mm.matmul(weight, cols, tmp, s.o, k, np, false, false, bias !== null);
  if (mm.swap01) mm.swap01(tmp, out, s.o, s.n, p, false);
  else swap01(tmp, out, s.o, s.n, p, false);
}

/** out (R) += the sum of each row of x (R, C), in float64: a convolution's bias gradient. */
export function addRowSums(x: Float32Array, out: Float32Array, rows: number, cols: number): void {
  for (let r = 0; r < rows; r++) {
    let sum = 0;
    for (let i = r * cols, end = i + cols; i < end; i++) sum += x[i]!;
    out[r]! += sum;
  }
}

/**
 * The gradients of conv2d, each accumulated (+=) into its array when that array is given:
 * dx (N, C, H, W), dweight (O, C, kh, kw), dbias (O). `cols` is what conv2d left there. Scratch:
 * dyT (O, N·P) and, when dx is wanted, dcols (C·kh·kw, N·P).
 */
export function conv2dBackward(
  mm: KernelBackend,
  weight: Float32Array, // (O, C, kh, kw)
  cols: Float32Array, // (C·kh·kw, N·P), from conv2d
  dy: Float32Array, // (N, O, OH, OW)
  dyT: Float32Array, // (O, N·P) scratch
  dcols: Float32Array | null, // (C·kh·kw, N·P) scratch, needed with dx
  dx: Float32Array | null,
  dweight: Float32Array | null,
  dbias: Float32Array | null,
  s: Conv2dShape,
): void {
  const p = s.oh * s.ow;
  const np = s.n * p;
  const k = s.c * s.kh * s.kw;
  if (mm.swap01) mm.swap01(dy, dyT, s.n, s.o, p, false);
  else swap01(dy, dyT, s.n, s.o, p, false);
  if (dweight !== null) mm.matmul(dyT, cols, dweight, s.o, np, k, false, true, true); // dW += dyT·colsᵀ
  if (dbias !== null) {
    if (mm.addRowSums) mm.addRowSums(dyT, dbias, s.o, np);
    else addRowSums(dyT, dbias, s.o, np);
  }
  if (dx !== null && dcols !== null) {
    mm.matmul(weight, dyT, dcols, k, s.o, np, true, false, false); // dcols = Wᵀ·dyT
    if (mm.col2im) mm.col2im(dcols, dx, s);
    else col2im(dcols, dx, s);
  }
}

/**
 * The obviously-correct convolution, seven loops and a float64 sum: the oracle for conv2d, never
 * used for training.
 */
export function conv2dReference(
  x: Float32Array, // (N, C, H, W)
  weight: Float32Array, // (O, C, kh, kw)
  bias: Float32Array | null, // (O)
  out: Float32Array, // (N, O, OH, OW)
  s: Conv2dShape,
): void {
  const { n, c, h, w, o, kh, kw, sh, sw, ph, pw, oh, ow } = s;
  for (let img = 0; img < n; img++) {
    for (let oc = 0; oc < o; oc++) {
      for (let oy = 0; oy < oh; oy++) {
        for (let ox = 0; ox < ow; ox++) {
          let sum = bias === null ? 0 : bias[oc]!;
          for (let ci = 0; ci < c; ci++) {
            for (let i = 0; i < kh; i++) {
              for (let j = 0; j < kw; j++) {
                const iy = oy * sh - ph + i;
                const ix = ox * sw - pw + j;
                if (iy < 0 || iy >= h || ix < 0 || ix >= w) continue;
                sum += x[((img * c + ci) * h + iy) * w + ix]! * weight[((oc * c + ci) * kh + i) * kw + j]!;
              }
            }
          }
          out[((img * o + oc) * oh + oy) * ow + ox] = sum;
        }
      }
    }
  }
}

/**
 * Unary elementwise kernels and the derivative kernels their gradient rules need. Each derivative is
 * written in terms of the forward output where that is cheaper (sigmoid, tanh, exp), so backward
 * needs no second pass over the input.
 */

/** out = max(x, 0) */
export function relu(x: Float32Array, out: Float32Array, n: number): void {
  for (let i = 0; i < n; i++) {
    const v = x[i]!;
    out[i] = v > 0 ? v : 0;
  }
}

/** dx += dy where x > 0 (the subgradient at 0 is 0, as in PyTorch). */
export function reluBackward(x: Float32Array, dy: Float32Array, dx: Float32Array, n: number): void {
  for (let i = 0; i < n; i++) if (x[i]! > 0) dx[i]! += dy[i]!;
}

/** out = 1 / (1 + e^-x), computed without overflow for large |x|. */
export function sigmoid(x: Float32Array, out: Float32Array, n: number): void {
  for (let i = 0; i < n; i++) {
    const v = x[i]!;
    if (v >= 0) out[i] = 1 / (1 + Math.exp(-v));
    else {
      const e = Math.exp(v);
      out[i] = e / (1 + e);
    }
  }
}

/** dx += dy · y (1 − y), with y = sigmoid(x). */
export function sigmoidBackward(y: Float32Array, dy: Float32Array, dx: Float32Array, n: number): void {
  for (let i = 0; i < n; i++) dx[i]! += dy[i]! * y[i]! * (1 - y[i]!);
}

/** out = tanh(x) */
export function tanh(x: Float32Array, out: Float32Array, n: number): void {
  for (let i = 0; i < n; i++) out[i] = Math.tanh(x[i]!);
}

/** dx += dy · (1 − y²), with y = tanh(x). */
export function tanhBackward(y: Float32Array, dy: Float32Array, dx: Float32Array, n: number): void {
  for (let i = 0; i < n; i++) dx[i]! += dy[i]! * (1 - y[i]! * y[i]!);
}

/** out = e^x */
export function exp(x: Float32Array, out: Float32Array, n: number): void {
  for (let i = 0; i < n; i++) out[i] = Math.exp(x[i]!);
}

/** out = ln x */
export function log(x: Float32Array, out: Float32Array, n: number): void {
  for (let i = 0; i < n; i++) out[i] = Math.log(x[i]!);
}

/** out = −x */
export function neg(x: Float32Array, out: Float32Array, n: number): void {
  for (let i = 0; i < n; i++) out[i] = -x[i]!;
}

/** dx += dy · m, elementwise (the gradient of exp, with m = e^x; of mul; of dropout with m = mask). */
export function mulAccumulate(dy: Float32Array, m: Float32Array, dx: Float32Array, n: number): void {
  for (let i = 0; i < n; i++) dx[i]! += dy[i]! * m[i]!;
}

/** dx += dy / x (the gradient of log). */
export function divAccumulate(dy: Float32Array, x: Float32Array, dx: Float32Array, n: number): void {
  for (let i = 0; i < n; i++) dx[i]! += dy[i]! / x[i]!;
}

/**
 * Row-wise softmax and log-softmax over (N, C), numerically stable: each row is shifted by its
 * maximum before exponentiating, so no exp overflows and log-softmax never takes log(0).
 */

/**
 * out[base, base + cols) = softmax of x over the same range; returns the row's log Σ exp(x), the
 * shift that turns x into log-probabilities. Shared by softmax and the fused cross-entropy.
 */
function softmaxRow(x: Float32Array, out: Float32Array, base: number, cols: number): number {
  let max = -Infinity;
  for (let c = 0; c < cols; c++) if (x[base + c]! > max) max = x[base + c]!;
  let sum = 0;
  for (let c = 0; c < cols; c++) {
    const e = Math.exp(x[base + c]! - max);
    out[base + c] = e;
    sum += e;
  }
  const inv = 1 / sum;
  for (let c = 0; c < cols; c++) out[base + c]! *= inv;
  return max + Math.log(sum);
}

/** out(N, C) = softmax of each row of x(N, C). */
export function softmax(x: Float32Array, out: Float32Array, rows: number, cols: number): void {
  for (let r = 0; r < rows; r++) softmaxRow(x, out, r * cols, cols);
}

/** out(N, C) = log-softmax of each row: x − max − log Σ exp(x − max). */
export function logSoftmax(x: Float32Array, out: Float32Array, rows: number, cols: number): void {
  for (let r = 0; r < rows; r++) {
    const base = r * cols;
    let max = -Infinity;
    for (let c = 0; c < cols; c++) if (x[base + c]! > max) max = x[base + c]!;
    let sum = 0;
    for (let c = 0; c < cols; c++) sum += Math.exp(x[base + c]! - max);
    const shift = max + Math.log(sum);
    for (let c = 0; c < cols; c++) out[base + c] = x[base + c]! - shift;
  }
}

/**
 * probs(N, C) = softmax of each row of x(N, C), and the return value Σ_r −log softmax(x_r)[label_r]:
 * cross-entropy's forward pass with one exp per element. The log-probability of the label is taken
 * as x[label] − max − log Σ exp(x − max), never as log(probs[label]), which underflows to −∞.
 */
export function softmaxCrossEntropy(x: Float32Array, labels: Int32Array, probs: Float32Array, rows: number, cols: number): number {
  let total = 0;
  for (let r = 0; r < rows; r++) {
    const base = r * cols;
    total += softmaxRow(x, probs, base, cols) - x[base + labels[r]!]!;
  }
  return total;
}

/** dx(N, C) += (probs − onehot(labels)) · g: the gradient of softmaxCrossEntropy, g = dLoss · scale. */
export function softmaxCrossEntropyBackward(probs: Float32Array, labels: Int32Array, dx: Float32Array, rows: number, cols: number, g: number): void {
  for (let i = 0; i < rows * cols; i++) dx[i]! += probs[i]! * g;
  for (let r = 0; r < rows; r++) dx[r * cols + labels[r]!]! -= g;
}

/** dx += y ⊙ (dy − Σ_c dy·y), with y = softmax(x): the gradient of softmax. */
export function softmaxBackward(y: Float32Array, dy: Float32Array, dx: Float32Array, rows: number, cols: number): void {
  for (let r = 0; r < rows; r++) {
    const base = r * cols;
    let dot = 0;
    for (let c = 0; c < cols; c++) dot += dy[base + c]! * y[base + c]!;
    for (let c = 0; c < cols; c++) dx[base + c]! += y[base + c]! * (dy[base + c]! - dot);
  }
}

/** dx += dy − e^y · Σ_c dy, with y = logSoftmax(x): the gradient of log-softmax. */
export function logSoftmaxBackward(y: Float32Array, dy: Float32Array, dx: Float32Array, rows: number, cols: number): void {
  for (let r = 0; r < rows; r++) {
    const base = r * cols;
    let sum = 0;
    for (let c = 0; c < cols; c++) sum += dy[base + c]!;
    for (let c = 0; c < cols; c++) dx[base + c]! += dy[base + c]! - Math.exp(y[base + c]!) * sum;
  }
}

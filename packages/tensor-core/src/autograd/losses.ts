/**
 * Loss functions, each fused into one op with its own gradient rule (mean reduction by default, as
 * in PyTorch). Fusing cross-entropy with log-softmax is what makes it stable: it never forms
 * softmax probabilities and then takes their log.
 */
import { fmtShape, opError } from '../errors.js';
import { rowKernels } from '../kernels/select.js';
import { IntTensor, Tensor, gradBuffer, record } from './tensor.js';
import { recycle, scratch } from './buffers.js';

export type Reduction = 'mean' | 'sum';

function checkReduction(op: string, r: string): void {
  if (r !== 'mean' && r !== 'sum') throw opError(op, `reduction must be 'mean' or 'sum', got '${r}'`);
}

/**
 * Cross-entropy between logits (N, C) and integer class labels (N), as PyTorch's
 * `F.cross_entropy`: mean over the batch of −log softmax(logits)[label].
 *
 * @example
 * const loss = crossEntropy(model.forward(x), IntTensor.from([3, 0, 7]));
 */
export function crossEntropy(logits: Tensor, labels: IntTensor, reduction: Reduction = 'mean'): Tensor {
  checkReduction('crossEntropy', reduction);
  if (!(logits instanceof Tensor)) throw opError('crossEntropy', 'logits must be a float Tensor');
  if (!(labels instanceof IntTensor)) {
    const found: unknown = labels;
    const what = found instanceof Tensor ? `a float Tensor of shape ${fmtShape(found.shape)}` : typeof found;
    throw opError('crossEntropy', `labels must be an IntTensor of class indices, got ${what}`);
  }
  if (logits.ndim !== 2) throw opError('crossEntropy', `logits must be 2-D (N, C), got shape ${fmtShape(logits.shape)}`);
  const [n, c] = logits.shape as [number, number];
  if (labels.size !== n || labels.shape.length !== 1) {
    throw opError('crossEntropy', `labels have shape ${fmtShape(labels.shape)} but logits have ${n} rows`);
  }
  const y = labels.data;
  for (let i = 0; i < n; i++) {
    if (y[i]! < 0 || y[i]! >= c) throw opError('crossEntropy', `label ${y[i]} at position ${i} is out of range for ${c} classes`);
  }
  const probs = scratch(n * c); // (N, C) softmax, kept for backward
  const total = rowKernels.softmaxCrossEntropy(logits.data, y, probs, n, c);
  const scale = reduction === 'mean' ? 1 / n : 1;
  const out = new Tensor(Float32Array.of(total * scale), []);
  return record(out, 'crossEntropy', [logits], () => {
    // d/dlogits = (softmax − onehot(label)) · scale · dLoss
    rowKernels.softmaxCrossEntropyBackward(probs, y, gradBuffer(logits), n, c, out.grad!.data[0]! * scale);
    recycle(probs); // this rule runs once
  });
}

function sameShape(op: string, a: Tensor, b: Tensor): void {
  if (!(b instanceof Tensor)) throw opError(op, 'targets must be a float Tensor');
  if (a.size !== b.size || a.shape.length !== b.shape.length || a.shape.some((d, i) => d !== b.shape[i])) {
    throw opError(op, `input has shape ${fmtShape(a.shape)} but target has shape ${fmtShape(b.shape)}`);
  }
}

/** Mean squared error: mean((input − target)²). The target gets no gradient. */
export function mseLoss(input: Tensor, target: Tensor, reduction: Reduction = 'mean'): Tensor {
  checkReduction('mseLoss', reduction);
  sameShape('mseLoss', input, target);
  const n = input.size;
  let total = 0;
  for (let i = 0; i < n; i++) {
    const d = input.data[i]! - target.data[i]!;
    total += d * d;
  }
  const scale = reduction === 'mean' ? 1 / n : 1;
  const out = new Tensor(Float32Array.of(total * scale), []);
  return record(out, 'mseLoss', [input], () => {
    const g = 2 * out.grad!.data[0]! * scale;
    const dx = gradBuffer(input);
    for (let i = 0; i < n; i++) dx[i]! += g * (input.data[i]! - target.data[i]!);
  });
}

/**
 * Binary cross-entropy on logits, as PyTorch's `F.binary_cross_entropy_with_logits`:
 * mean(max(x, 0) − x·t + log(1 + e^−|x|)), stable for any x. Targets are probabilities in [0, 1].
 */
export function bceWithLogits(logits: Tensor, target: Tensor, reduction: Reduction = 'mean'): Tensor {
  checkReduction('bceWithLogits', reduction);
  sameShape('bceWithLogits', logits, target);
  const n = logits.size;
  let total = 0;
  for (let i = 0; i < n; i++) {
    const x = logits.data[i]!;
    const t = target.data[i]!;
    total += Math.max(x, 0) - x * t + Math.log1p(Math.exp(-Math.abs(x)));
  }
  const scale = reduction === 'mean' ? 1 / n : 1;
  const out = new Tensor(Float32Array.of(total * scale), []);
  return record(out, 'bceWithLogits', [logits], () => {
    const g = out.grad!.data[0]! * scale;
    const dx = gradBuffer(logits);
    for (let i = 0; i < n; i++) {
      const x = logits.data[i]!;
      const s = x >= 0 ? 1 / (1 + Math.exp(-x)) : Math.exp(x) / (1 + Math.exp(x));
      dx[i]! += g * (s - target.data[i]!);
    }
  });
}

// The fused softmax + cross-entropy kernel against the separate softmax and log-softmax kernels,
// including logits large enough that exp overflows and a label whose probability underflows.
import { describe, expect, it } from 'vitest';
import { logSoftmax, softmax, softmaxCrossEntropy } from './softmax.js';

describe('softmaxCrossEntropy', () => {
  it('returns Σ −logSoftmax[label] and writes softmax, stably', () => {
    const rows = 3, cols = 4;
    const x = Float32Array.of(0.5, -1, 2, 0, 1000, 0, -1000, 999, -200, 0, 1, 300); // (3, 4)
    const labels = Int32Array.of(2, 2, 0); // softmax(row 1)[2] and softmax(row 2)[0] underflow to 0
    const probs = new Float32Array(rows * cols);
    const total = softmaxCrossEntropy(x, labels, probs, rows, cols);

    const wantProbs = new Float32Array(rows * cols);
    const lsm = new Float32Array(rows * cols);
    softmax(x, wantProbs, rows, cols);
    logSoftmax(x, lsm, rows, cols);
    let want = 0;
    for (let r = 0; r < rows; r++) want -= lsm[r * cols + labels[r]!]!;

    expect(Number.isFinite(total)).toBe(true);
    expect(total).toBeCloseTo(want, 3); // ≈ 2000.3 + 500: float32 lsm against float64 here
    for (let i = 0; i < probs.length; i++) expect(probs[i]).toBeCloseTo(wantProbs[i]!, 6);
  });
});

import { describe, expect, it } from 'vitest';
import { namedOptimizer, OPTIMIZER_NAMES } from './presets.js';

describe('namedOptimizer', () => {
  it('resolves momentum to SGD with momentum 0.9 and keeps PyTorch defaults', () => {
    const { algorithm, options } = namedOptimizer('momentum', { lr: 0.01 });
    expect(algorithm.name).toBe('SGD');
    expect(options).toMatchObject({ lr: 0.01, momentum: 0.9, dampening: 0, nesterov: false });
    expect(namedOptimizer('adam').options).toMatchObject({ lr: 1e-3, betas: [0.9, 0.999], eps: 1e-8 });
  });
  it('names every preset and rejects unknown names and invalid values', () => {
    for (const name of OPTIMIZER_NAMES) expect(() => namedOptimizer(name, { lr: 0.1 })).not.toThrow();
    expect(() => namedOptimizer('lbfgs')).toThrow("Unknown optimizer 'lbfgs' (expected one of: sgd, momentum, rmsprop, adam, adamw, adagrad)");
    expect(() => namedOptimizer('adam', { lr: -1 })).toThrow('Invalid learning rate: -1');
  });
});

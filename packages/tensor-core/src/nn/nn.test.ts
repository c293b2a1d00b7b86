import { describe, expect, it } from 'vitest';
import { Random } from '../random.js';
import { IntTensor, Tensor } from '../autograd/tensor.js';
import { crossEntropy } from '../autograd/losses.js';
import { scratch } from '../autograd/buffers.js';
import { Dropout, Embedding, Linear, ReLU, Sequential } from './layers.js';
import { Module } from './module.js';
import { mlp } from './mlp.js';
import * as init from './init.js';
import { flattenParameters, parameterLayout } from './flat.js';

function stats(data: Float32Array) {
  let mean = 0;
  for (const v of data) mean += v;
  mean /= data.length;
  let variance = 0;
  for (const v of data) variance += (v - mean) ** 2;
  return { mean, std: Math.sqrt(variance / data.length), min: Math.min(...data), max: Math.max(...data) };
}

describe('Module', () => {
  class Tower extends Module {
    encoder = new Linear(8, 4, { rng: new Random(1) });
    act = new ReLU();
    head = new Sequential(new Linear(4, 3, { rng: new Random(2) }), new ReLU(), new Linear(3, 2, { rng: new Random(3) }));
    forward(x: Tensor) {
      return this.head.forward(this.act.forward(this.encoder.forward(x)));
    }
  }

  it('names nested parameters as PyTorch does, in definition order', () => {
    expect(new Tower().namedParameters().map(([n]) => n)).toEqual([
      'encoder.weight', 'encoder.bias', 'head.0.weight', 'head.0.bias', 'head.2.weight', 'head.2.bias',
    ]);
  });

  it('switches train/eval mode recursively', () => {
    const m = new Sequential(new Linear(2, 2), new Dropout(0.5));
    m.eval();
    expect(m.layers[1]!.training).toBe(false);
    m.train();
    expect(m.layers[1]!.training).toBe(true);
  });

  it('loadStateDict names missing, unexpected and mis-shaped entries', () => {
    const m = mlp([4, 3, 2]);
    const state = m.stateDict();
    expect(() => m.loadStateDict({ ...state, 'extra.weight': Tensor.zeros([1]) }, 'run/model.safetensors')).toThrow(
      'run/model.safetensors: does not match the model (unexpected keys: extra.weight)',
    );
    const { ['2.bias']: _, ...missing } = state;
    expect(() => m.loadStateDict(missing)).toThrow(/missing keys: 2.bias/);
    expect(() => m.loadStateDict({ ...state, '0.weight': Tensor.zeros([4, 3]) })).toThrow(
      "state dict: '0.weight' has shape [4, 3], the model's parameter has shape [3, 4]",
    );
  });
});

describe('initialisation follows PyTorch formulas', () => {
  const rng = new Random(5);
  it('xavier uniform: bound √(6/(fan_in+fan_out))', () => {
    const s = stats(init.xavierUniform(Tensor.zeros([300, 200]), { rng }).data);
    const bound = Math.sqrt(6 / 500);
    expect(s.max).toBeLessThanOrEqual(bound);
    expect(s.min).toBeGreaterThanOrEqual(-bound);
    expect(s.std).toBeCloseTo(bound / Math.sqrt(3), 3);
  });
  it('xavier normal: std √(2/(fan_in+fan_out)) with gain', () => {
    const s = stats(init.xavierNormal(Tensor.zeros([300, 200]), { gain: 2, rng }).data);
    expect(s.std).toBeCloseTo(2 * Math.sqrt(2 / 500), 3);
  });
  it('kaiming normal (relu, fan_in): std √2/√fan_in', () => {
    const s = stats(init.kaimingNormal(Tensor.zeros([400, 250]), { nonlinearity: 'relu', rng }).data);
    expect(s.std).toBeCloseTo(Math.SQRT2 / Math.sqrt(250), 3);
  });
  it('kaiming uniform (fan_out): bound gain·√(3/fan_out)', () => {
    const s = stats(init.kaimingUniform(Tensor.zeros([400, 250]), { mode: 'fan_out', nonlinearity: 'relu', rng }).data);
    expect(s.max).toBeLessThanOrEqual(Math.SQRT2 * Math.sqrt(3 / 400));
    expect(s.max).toBeGreaterThan(0.95 * Math.SQRT2 * Math.sqrt(3 / 400));
  });
  it("Linear's default is U(−1/√in, 1/√in) for weight and bias", () => {
    const layer = new Linear(400, 300, { rng });
    const bound = 1 / 20;
    for (const t of [layer.weight, layer.bias!]) {
      const s = stats(t.data);
      expect(s.max).toBeLessThanOrEqual(bound);
      expect(s.min).toBeGreaterThanOrEqual(-bound);
    }
    expect(stats(layer.weight.data).std).toBeCloseTo(bound / Math.sqrt(3), 3);
  });
  it('constant, zeros, gain table', () => {
    expect(init.constant(Tensor.zeros([3]), 0.5).toArray()).toEqual([0.5, 0.5, 0.5]);
    expect(init.calculateGain('tanh')).toBeCloseTo(5 / 3);
    expect(init.calculateGain('leaky_relu', 0.2)).toBeCloseTo(Math.sqrt(2 / 1.04));
    expect(() => init.xavierUniform(Tensor.zeros([5]))).toThrow(/fewer than 2 dimensions, got \[5\]/);
  });
  it('the same seed gives the same weights', () => {
    const a = mlp([10, 5, 2], { init: 'xavier', rng: new Random(42) });
    const b = mlp([10, 5, 2], { init: 'xavier', rng: new Random(42) });
    const c = mlp([10, 5, 2], { init: 'xavier', rng: new Random(43) });
    expect(flattenParameters(a).params).toEqual(flattenParameters(b).params);
    expect(flattenParameters(a).params).not.toEqual(flattenParameters(c).params);
    init.manualSeed(7);
    const d = new Linear(3, 3);
    init.manualSeed(7);
    expect(new Linear(3, 3).weight.data).toEqual(d.weight.data);
  });
});

describe('flat parameters', () => {
  it('lays out parameters densely in definition order, from the model alone', () => {
    const layout = parameterLayout(mlp([100, 50, 10]));
    expect(layout.map(({ name, offset, size }) => [name, offset, size])).toEqual([
      ['0.weight', 0, 5000], ['0.bias', 5000, 50], ['2.weight', 5050, 500], ['2.bias', 5550, 10],
    ]);
  });

  it('makes every parameter and gradient a view, and training writes through them', () => {
    const model = mlp([6, 4, 3], { rng: new Random(1) });
    const before = model.parameters().map((p) => p.toArray());
    const flat = flattenParameters(model);
    model.parameters().forEach((p, i) => {
      expect(p.data.buffer).toBe(flat.params.buffer);
      expect(p.toArray()).toEqual(before[i]);
    });
    const x = Tensor.uniform([5, 6], new Random(2), -1, 1);
    crossEntropy(model.forward(x), IntTensor.from([0, 1, 2, 0, 1])).backward();
    expect(flat.grads.some((g) => g !== 0)).toBe(true);
    const [w] = model.parameters();
    expect(w!.grad!.data.buffer).toBe(flat.grads.buffer);
    flat.params[0] = 123;
    expect(w!.data[0]).toBe(123);
  });

  it('adopts a caller-supplied SharedArrayBuffer without copying into it', () => {
    const a = mlp([6, 4, 3], { rng: new Random(1) });
    const shared = new Float32Array(new SharedArrayBuffer(4 * flattenParameters(a).size));
    shared.set(flattenParameters(a).params);
    const b = mlp([6, 4, 3], { rng: new Random(99) }); // different init, same layout
    flattenParameters(b, { params: shared });
    expect(b.parameters().map((p) => p.toArray())).toEqual(a.parameters().map((p) => p.toArray()));
    expect(b.parameters()[0]!.data.buffer).toBe(shared.buffer);
    expect(() => flattenParameters(b, { params: new Float32Array(3) })).toThrow(/params must be a Float32Array of 43 elements .* got 3 elements/);
  });
});

describe('layers', () => {
  it('Embedding looks rows up and rejects out-of-range indices', () => {
    const e = new Embedding(5, 3, { rng: new Random(1) });
    const y = e.forward(IntTensor.from([4, 0, 4], [3]));
    expect(y.shape).toEqual([3, 3]);
    expect(Array.from(y.data.subarray(0, 3))).toEqual(Array.from(e.weight.data.subarray(12, 15)));
    expect(() => e.forward(IntTensor.from([5]))).toThrow(/index 5 at position 0 is out of range for 5 rows/);
  });
  it('Dropout is the identity in eval mode and with p = 0, and seeded in train mode', () => {
    const x = Tensor.full([100], 1);
    const d = new Dropout(0.5, { seed: 1 });
    expect(d.eval().forward(x)).toBe(x);
    expect(new Dropout(0).forward(x)).toBe(x);
    d.train();
    const a = d.forward(x).toArray();
    expect(new Dropout(0.5, { seed: 1 }).forward(x).toArray()).toEqual(a);
    expect(() => new Dropout(1)).toThrow(/Dropout: probability must be in \[0, 1\), got 1/);
  });
  for (const p of [0.2, 0.5]) {
    it(`Dropout(${p}) in train mode zeroes elements at rate ${p}, scales the rest by 1/(1 − p), and backpropagates through the same mask`, () => {
      const n = 20_000;
      const x = new Tensor(Float32Array.from({ length: n }, (_, i) => 1 + (i % 7)), [n], true);
      const y = new Dropout(p, { seed: 5 }).forward(x);
      const scale = 1 / (1 - p);
      let dropped = 0;
      for (let i = 0; i < n; i++) {
        if (y.data[i] === 0) dropped++;
        else if (Math.abs(y.data[i]! / x.data[i]! - scale) > 1e-6) throw new Error(`element ${i}: ${x.data[i]} became ${y.data[i]}, expected it times ${scale}`);
      }
      // The number dropped is Binomial(n, p): within 4 standard deviations of n·p (a correct mask
      // falls outside for about one seed in 16 000; this seed is fixed).
      expect(Math.abs(dropped - n * p)).toBeLessThan(4 * Math.sqrt(n * p * (1 - p)));
      // d(Σ wᵢ·yᵢ)/dxᵢ = wᵢ · maskᵢ: 0 where the element was dropped, wᵢ/(1 − p) where it was kept.
      const w = Tensor.from(Float32Array.from({ length: n }, (_, i) => 0.5 + (i % 3)), [n]);
      y.mul(w).sum().backward();
      for (let i = 0; i < n; i++) {
        const want = y.data[i] === 0 ? 0 : w.data[i]! * scale;
        if (Math.abs(x.grad!.data[i]! - want) > 1e-6 * want) throw new Error(`gradient ${i}: ${x.grad!.data[i]}, expected ${want} (output ${y.data[i]})`);
      }
    });
  }
  it("mlp init 'none' leaves every parameter zero, with the same layout", () => {
    const m = mlp([5, 4, 3], { init: 'none' });
    expect(m.parameters().every((p) => p.data.every((v) => v === 0))).toBe(true);
    expect(parameterLayout(m)).toEqual(parameterLayout(mlp([5, 4, 3])));
    expect(() => mlp([5, 3], { init: 'he' as never })).toThrow(/init must be 'xavier', 'default' or 'none', got 'he'/);
  });
  it('Sequential runs Linear → ReLU as one op with the same bits, and leaves overridden layers alone', () => {
    const x = Tensor.uniform([7, 5], new Random(4), -1, 1);
    const y = IntTensor.from([0, 1, 2, 0, 1, 2, 0]);
    const layers = () => {
      const rng = new Random(5);
      return [new Linear(5, 4, { rng }), new ReLU(), new Linear(4, 4, { rng }), new ReLU(), new Linear(4, 3, { rng })];
    };
    const fused = new Sequential(...layers());
    const plain = layers();
    const loss = crossEntropy(fused.forward(x), y);
    expect(loss._parents[0]!._parents[0]!._op).toBe('linearRelu');
    loss.backward();
    let h = x;
    for (const l of plain) h = l.forward(h);
    crossEntropy(h, y).backward();
    fused.parameters().forEach((p, i) => {
      expect([...p.grad!.data]).toEqual([...plain.flatMap((l) => l.parameters())[i]!.grad!.data]);
    });
    class LeakyReLU extends ReLU {
      override forward(t: Tensor): Tensor {
        return t.mul(0.5);
      }
    }
    const custom = new Sequential(new Linear(5, 4, { rng: new Random(6) }), new LeakyReLU());
    expect(custom.forward(x)._op).toBe('mul');
  });
  it("Sequential gives a Linear → ReLU's output back for reuse after backward only when a Linear is all that reads it", () => {
    const x = Tensor.uniform([7, 5], new Random(4), -1, 1);
    const y = IntTensor.from([0, 1, 2, 0, 1, 2, 0]);
    const rng = new Random(8);
    const model = new Sequential(new Linear(5, 11, { rng }), new ReLU(), new Linear(11, 3, { rng })); // hidden (7, 11): a length no other test uses
    const logits = model.forward(x);
    const hidden = logits._parents[0]!;
    expect(hidden._transient).toBe(true);
    crossEntropy(logits, y).backward();
    expect(scratch(7 * 11)).toBe(hidden.data); // reused by the next array of its length…
    // …but not the output of the last pair, or one a layer of the user's reads.
    class Keep extends Linear {
      seen: Tensor | null = null;
      override forward(t: Tensor): Tensor {
        this.seen = t;
        return super.forward(t);
      }
    }
    const last = new Sequential(new Linear(5, 4, { rng }), new ReLU());
    expect(last.forward(x)._transient).toBe(false);
    const keep = new Keep(4, 3, { rng });
    new Sequential(new Linear(5, 4, { rng }), new ReLU(), keep).forward(x);
    expect(keep.seen!._transient).toBe(false);
  });
  it('constructors reject bad sizes', () => {
    expect(() => new Linear(0, 3)).toThrow('Linear: inFeatures must be a positive integer, got 0');
    expect(() => mlp([5])).toThrow(/mlp: needs at least an input and an output size/);
  });
});

/**
 * The class API: flat-parameter detection, zeroGrad, parameter groups, state dicts (round trip in
 * the middle of a run, validation on load) and the errors for bad input.
 */
import { describe, expect, it } from 'vitest';
import {
  Adagrad, Adam, AdamW, Optimizer, RMSprop, SGD, adam, adamStep, resolveOptions,
  type Algorithm, type AdamOptions, type ParamLike, type StateDict,
} from '@loom/optimizer';

/** Parameters of the given sizes as views of one flat buffer, with grads as views of another (Loom's flat parameters). */
function flatParams(sizes: number[], seed = 1): ParamLike[] {
  const total = sizes.reduce((a, b) => a + b, 0);
  const data = new Float32Array(total), grads = new Float32Array(total);
  for (let i = 0; i < total; i++) data[i] = Math.sin(seed * 7 + i);
  let o = 0;
  return sizes.map((n) => {
    const p = { data: data.subarray(o, o + n), grad: { data: grads.subarray(o, o + n) } };
    o += n;
    return p;
  });
}

/** Separate arrays with the same values as flatParams. */
function separateParams(sizes: number[], seed = 1): ParamLike[] {
  return flatParams(sizes, seed).map((p) => ({ data: p.data.slice(), grad: { data: p.grad!.data.slice() } }));
}

/** Sets deterministic gradients for step t. */
function setGrads(params: ParamLike[], t: number): void {
  let k = 0;
  for (const p of params) for (let i = 0; i < p.data.length; i++, k++) p.grad!.data[i] = Math.cos(t * 1.3 + k * 0.7) * (1 + (k % 3));
}

/** An Adam whose step function records each call's length. */
function spyAdam(params: ParamLike[], options: Partial<AdamOptions> = {}) {
  const calls: number[] = [];
  const alg: Algorithm<AdamOptions> = { ...adam, step: (p, g, s, o, step, start, end) => (calls.push(p.length), adam.step(p, g, s, o, step, start, end)) };
  return { opt: new Optimizer(alg, params, options), calls };
}

describe('flat parameters', () => {
  it('steps contiguous parameters in one call, separate ones in one call each, with the same bits', () => {
    const sizes = [5, 300, 1, 40];
    const flat = flatParams(sizes), separate = separateParams(sizes);
    const a = spyAdam(flat, { lr: 0.01, amsgrad: true }), b = spyAdam(separate, { lr: 0.01, amsgrad: true });
    for (let t = 0; t < 5; t++) {
      setGrads(flat, t);
      setGrads(separate, t);
      a.opt.step();
      b.opt.step();
    }
    expect(a.calls).toEqual([346, 346, 346, 346, 346]);
    expect(b.calls).toEqual(Array.from({ length: 5 }, () => sizes).flat());
    flat.forEach((p, i) => expect(p.data).toEqual(separate[i]!.data));
  });

  it('splits the run where a parameter has no gradient, and where step counts differ', () => {
    const params = flatParams([10, 20, 30]);
    const { opt, calls } = spyAdam(params);
    setGrads(params, 0);
    const g = params[1]!.grad;
    params[1]!.grad = null;
    opt.step();
    expect(calls).toEqual([10, 30]);
    expect(opt.getState(params[1]!)).toBeUndefined();
    params[1]!.grad = g;
    opt.step(); // parameter 1 is on its step 1, the others on step 2
    expect(calls.slice(2)).toEqual([10, 20, 30]);
    expect(params.map((p) => opt.getState(p)!.step)).toEqual([2, 1, 2]);
  });

  it('matches the functional core called directly', () => {
    const params = flatParams([7, 9]);
    const data = params.map((p) => p.data.slice()), whole = new Float32Array(16);
    setGrads(params, 3);
    const grads = new Float32Array(16);
    grads.set(params[0]!.grad!.data, 0);
    grads.set(params[1]!.grad!.data, 7);
    whole.set(data[0]!, 0);
    whole.set(data[1]!, 7);
    const o = resolveOptions(adam, { lr: 0.1 });
    adamStep(whole, grads, { expAvg: new Float32Array(16), expAvgSq: new Float32Array(16) }, o, 1);
    new Adam(params, { lr: 0.1 }).step();
    expect(Float32Array.from([...params[0]!.data, ...params[1]!.data])).toEqual(whole);
  });
});

describe('step, zeroGrad and groups', () => {
  it('zeroGrad zeroes gradients, or sets them to null so step skips the parameter', () => {
    const params = flatParams([3, 4]);
    const opt = new SGD(params, { lr: 0.1 });
    setGrads(params, 1);
    opt.zeroGrad();
    expect(params.every((p) => p.grad!.data.every((x) => x === 0))).toBe(true);
    opt.zeroGrad(true);
    expect(params.every((p) => p.grad === null)).toBe(true);
    const before = params.map((p) => p.data.slice());
    opt.step();
    params.forEach((p, i) => expect(p.data).toEqual(before[i]));
  });

  it('returns the closure’s loss', () => {
    const params = flatParams([2]);
    setGrads(params, 0);
    expect(new SGD(params, { lr: 0.1 }).step(() => 42)).toBe(42);
  });

  it('gives each group its own hyperparameters, defaulting to the optimizer’s', () => {
    const [a, b] = flatParams([3, 3]);
    const opt = new SGD([{ params: [a!] }, { params: [b!], lr: 1, momentum: 0.5 }], { lr: 0.1 });
    expect(opt.paramGroups.map((g) => [g.lr, g.momentum])).toEqual([[0.1, 0], [1, 0.5]]);
    a!.grad!.data.fill(1);
    b!.grad!.data.fill(1);
    const a0 = a!.data[0]!, b0 = b!.data[0]!;
    opt.step();
    expect(a!.data[0]).toBe(Math.fround(a0 - Math.fround(0.1)));
    expect(b!.data[0]).toBe(Math.fround(b0 - 1));
  });

  it('uses a learning rate changed between steps (as a scheduler does)', () => {
    const params = flatParams([4]);
    const opt = new SGD(params, { lr: 0.1 });
    params[0]!.grad!.data.fill(1);
    const before = params[0]!.data[0]!;
    opt.paramGroups[0]!.lr = 0.5;
    opt.step();
    expect(params[0]!.data[0]).toBe(Math.fround(before - 0.5));
  });

  it('SGD starts a momentum buffer from the gradient when momentum is turned on mid-run, as PyTorch does', () => {
    const params = flatParams([4]);
    const opt = new SGD(params, { lr: 0.1 });
    setGrads(params, 0);
    opt.step();
    opt.step();
    opt.paramGroups[0]!.momentum = 0.9;
    const before = params[0]!.data.slice();
    opt.step(); // buffer = gradient, so this step is a plain one
    params[0]!.data.forEach((x, i) => expect(x).toBe(Math.fround(before[i]! + Math.fround(params[0]!.grad!.data[i]! * Math.fround(-0.1)))));
    expect(opt.getState(params[0]!)!.arrays.momentumBuffer).toEqual(params[0]!.grad!.data);
  });
});

/** Float32Arrays as number[], as after JSON.stringify / JSON.parse. */
const viaJson = <O>(sd: StateDict<O>): StateDict<O> =>
  JSON.parse(JSON.stringify(sd, (_, v) => (v instanceof Float32Array ? Array.from(v) : v)));

describe('stateDict / loadStateDict', () => {
  const makers: [string, (p: ParamLike[]) => Optimizer<object>][] = [
    ['SGD nesterov', (p) => new SGD(p, { lr: 0.05, momentum: 0.9, nesterov: true, weightDecay: 0.01 }) as never],
    ['RMSprop centered momentum', (p) => new RMSprop(p, { lr: 0.01, centered: true, momentum: 0.5 }) as never],
    ['Adam amsgrad', (p) => new Adam(p, { lr: 0.01, amsgrad: true, weightDecay: 0.1 }) as never],
    ['AdamW two groups', (p) => new AdamW([{ params: [p[0]!] }, { params: [p[1]!], lr: 0.003 }], { lr: 0.01 }) as never],
    ['Adagrad', (p) => new Adagrad(p, { lr: 0.1, lrDecay: 0.01, initialAccumulatorValue: 0.1 }) as never],
  ];
  for (const [name, make] of makers) {
    it(`${name}: stopping, saving, loading and continuing gives the same trajectory`, () => {
      const sizes = [6, 9];
      const straight = flatParams(sizes);
      const optA = make(straight);
      for (let t = 0; t < 40; t++) {
        setGrads(straight, t);
        optA.step();
      }
      const first = flatParams(sizes);
      const optB = make(first);
      for (let t = 0; t < 20; t++) {
        setGrads(first, t);
        optB.step();
      }
      const saved = viaJson(optB.stateDict());
      // A new process: fresh parameter objects holding the saved values, a fresh optimizer.
      const resumed = separateParams(sizes);
      resumed.forEach((p, i) => p.data.set(first[i]!.data));
      const optC = make(resumed);
      optC.loadStateDict(saved);
      for (let t = 20; t < 40; t++) {
        setGrads(resumed, t);
        optC.step();
      }
      resumed.forEach((p, i) => expect(p.data).toEqual(straight[i]!.data));
      expect(optC.stateDict()).toEqual(optA.stateDict());
    });
  }

  it('refers to parameters by position and copies arrays', () => {
    const params = flatParams([2, 3]);
    const opt = new Adam(params, { lr: 0.1 });
    setGrads(params, 0);
    opt.step();
    const sd = opt.stateDict();
    expect(sd.paramGroups).toEqual([{ lr: 0.1, betas: [0.9, 0.999], eps: 1e-8, weightDecay: 0, amsgrad: false, maximize: false, params: [0, 1] }]);
    expect(Object.keys(sd.state)).toEqual(['0', '1']);
    expect(sd.state[1]!.step).toBe(1);
    const copy = (sd.state[0]!.expAvg as Float32Array).slice();
    opt.step();
    expect(sd.state[0]!.expAvg).toEqual(copy);
  });

  describe('validation: a clear error, and nothing changed', () => {
    const setup = () => {
      const params = flatParams([4, 5]);
      const opt = new Adam(params, { lr: 0.1 });
      setGrads(params, 0);
      opt.step();
      return { params, opt, sd: viaJson(opt.stateDict()) };
    };
    const cases: [string, (sd: StateDict<AdamOptions>) => unknown, string][] = [
      ['not a state dict', () => 42, 'expected { state, paramGroups }'],
      ['another number of groups', (sd) => ({ ...sd, paramGroups: [...sd.paramGroups, sd.paramGroups[0]] }), 'the state dict has 2 parameter groups, the optimizer has 1'],
      ['another number of parameters', (sd) => ({ ...sd, paramGroups: [{ ...sd.paramGroups[0]!, params: [0, 1, 2] }] }), 'parameter group 0 has 3 parameters in the state dict, 2 in the optimizer'],
      ['a parameter of another length (another model)', (sd) => ({ ...sd, state: { ...sd.state, 1: { ...sd.state[1]!, expAvg: [1, 2, 3] } } }), "state 'expAvg' of parameter 1 has length 3, the parameter has length 5"],
      ['an unknown state key', (sd) => ({ ...sd, state: { ...sd.state, 0: { ...sd.state[0]!, exp_avg: [0, 0, 0, 0] } } }), "unknown state key 'exp_avg' for parameter 0 of Adam (expected: step, expAvg, expAvgSq)"],
      ['a missing state key', (sd) => ({ ...sd, state: { 0: { step: 1, expAvg: [0, 0, 0, 0] } } }), "state of parameter 0 has no 'expAvgSq'"],
      ['state for a parameter that does not exist', (sd) => ({ ...sd, state: { ...sd.state, 7: sd.state[0] } }), 'state for parameter 7, but the optimizer has parameters 0 to 1'],
      ['an invalid step count', (sd) => ({ ...sd, state: { ...sd.state, 0: { ...sd.state[0]!, step: -1 } } }), 'state of parameter 0 has an invalid step count -1'],
      ['an invalid hyperparameter', (sd) => ({ ...sd, paramGroups: [{ ...sd.paramGroups[0]!, betas: [0.9, 1] }] }), 'parameter group 0: Invalid beta parameter at index 1: 1'],
      ['another optimizer’s hyperparameters', (sd) => ({ ...sd, paramGroups: [{ ...sd.paramGroups[0]!, momentum: 0.9 }] }), "parameter group 0: Unknown option 'momentum' for Adam"],
    ];
    for (const [what, mutate, message] of cases) {
      it(`rejects ${what}`, () => {
        const { params, opt, sd } = setup();
        const before = JSON.stringify(viaJson(opt.stateDict()));
        expect(() => opt.loadStateDict(mutate(sd) as never)).toThrow(message);
        expect(JSON.stringify(viaJson(opt.stateDict()))).toBe(before);
        expect(params.length).toBe(2);
      });
    }

    it('rejects an SGD state dict in an Adam, naming the option', () => {
      const params = flatParams([4, 5]);
      const sgdDict = new SGD(params, { lr: 0.1, momentum: 0.9 }).stateDict();
      expect(() => new Adam(params).loadStateDict(sgdDict as never)).toThrow("loadStateDict: parameter group 0: Unknown option 'momentum' for Adam");
    });
  });
});

describe('bad input: a clear error naming the value', () => {
  const p = () => flatParams([4]);
  const cases: [string, () => unknown, string][] = [
    ['a negative learning rate', () => new Adam(p(), { lr: -0.1 }), 'Invalid learning rate: -0.1'],
    ['a NaN learning rate', () => new SGD(p(), { lr: NaN }), 'Invalid learning rate: NaN'],
    ['beta1 outside [0, 1)', () => new Adam(p(), { betas: [1.5, 0.999] }), 'Invalid beta parameter at index 0: 1.5'],
    ['beta2 = 1', () => new AdamW(p(), { betas: [0.9, 1] }), 'Invalid beta parameter at index 1: 1'],
    ['betas that are not a pair', () => new Adam(p(), { betas: [0.9] as never }), 'Invalid betas: [0.9] (expected two numbers [beta1, beta2])'],
    ['eps = 0', () => new Adam(p(), { eps: 0 }), 'Invalid epsilon value: 0 (must be > 0)'],
    ['eps < 0', () => new RMSprop(p(), { eps: -1e-8 }), 'Invalid epsilon value: -1e-8 (must be > 0)'],
    ['Adagrad eps = 0', () => new Adagrad(p(), { eps: 0 }), 'Invalid epsilon value: 0 (must be > 0)'],
    ['nesterov without momentum', () => new SGD(p(), { lr: 0.1, nesterov: true }), 'Nesterov momentum requires a momentum and zero dampening (got momentum 0, dampening 0)'],
    ['nesterov with dampening', () => new SGD(p(), { lr: 0.1, nesterov: true, momentum: 0.9, dampening: 0.1 }), 'Nesterov momentum requires a momentum and zero dampening (got momentum 0.9, dampening 0.1)'],
    ['negative momentum', () => new SGD(p(), { lr: 0.1, momentum: -1 }), 'Invalid momentum value: -1'],
    ['negative weight decay', () => new Adam(p(), { weightDecay: -0.01 }), 'Invalid weightDecay value: -0.01'],
    ['a non-boolean flag', () => new Adam(p(), { amsgrad: 'yes' as never }), "Invalid amsgrad value: 'yes' (must be true or false)"],
    ['an unknown option', () => new Adam(p(), { lrr: 0.1 } as never), "Unknown option 'lrr' for Adam (expected one of: lr, betas, eps, weightDecay, amsgrad, maximize)"],
    ['an unknown option in a group', () => new Adagrad([{ params: p(), lr_decay: 0.1 } as never]), "Unknown option 'lr_decay' for Adagrad (expected one of: lr, lrDecay, weightDecay, initialAccumulatorValue, eps, maximize)"],
    ['SGD without a learning rate', () => new SGD(p()), "Missing option 'lr' for SGD"],
    ['an empty parameter list', () => new Adam([]), 'Adam: optimizer got an empty parameter list'],
    ['a parameter in two groups', () => { const q = p(); return new Adam([{ params: q }, { params: q }]); }, 'Adam: parameter 0 of group 1 appears more than once'],
    ['a parameter that is not one', () => new Adam([{ data: [1, 2] } as never]), 'Adam: parameter 0 of group 0 must be an object with data: Float32Array'],
    ['parameter and gradient of different lengths', () => new Adam([{ data: new Float32Array(4), grad: { data: new Float32Array(3) } }]), 'Adam: gradient of parameter 0 of group 0 has length 3, the parameter has length 4'],
  ];
  for (const [what, make, message] of cases) it(`rejects ${what}`, () => expect(make).toThrow(message));

  it('checks lengths again at step (gradients arrive after construction)', () => {
    const q = { data: new Float32Array(4), grad: null as { data: Float32Array } | null };
    const opt = new Adam([q]);
    q.grad = { data: new Float32Array(5) };
    expect(() => opt.step()).toThrow('Adam: gradient of parameter 0 of group 0 has length 5, the parameter has length 4');
  });

  it('checks hyperparameters changed after construction at the next step', () => {
    const q = p();
    const opt = new Adam(q);
    opt.paramGroups[0]!.lr = -1;
    expect(() => opt.step()).toThrow('Invalid learning rate: -1');
  });
});

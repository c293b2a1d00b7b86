/**
 * Learning-rate schedules against PyTorch 1.13 (fixtures/torch_optim.json): the learning rate of
 * two groups after construction and after each of 30 steps. PyTorch mostly updates lr recursively,
 * Loom uses closed forms, so values agree to float64 rounding: relative error ≤ 1e-12.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  CosineAnnealingLR, ExponentialLR, LinearLR, MultiStepLR, SGD, SequentialLR, StepLR,
  cosineAnnealingLr, linearWarmup, type LRScheduler, type ParamLike,
} from '@loom/optimizer';

interface SchedulerFixture {
  kind: string;
  options: Record<string, unknown>;
  lrs: number[][];
}
const fixture = JSON.parse(readFileSync(new URL('../fixtures/torch_optim.json', import.meta.url), 'utf8')) as { schedulers: SchedulerFixture[] };

const param = (): ParamLike => ({ data: new Float32Array(1), grad: { data: new Float32Array(1) } });
const optimizer = () => new SGD([{ params: [param()], lr: 0.1 }, { params: [param()], lr: 0.02 }], { lr: 0.1 });

function make(f: SchedulerFixture, opt: SGD): LRScheduler {
  const o = f.options as never;
  switch (f.kind) {
    case 'StepLR': return new StepLR(opt, o);
    case 'MultiStepLR': return new MultiStepLR(opt, o);
    case 'ExponentialLR': return new ExponentialLR(opt, o);
    case 'CosineAnnealingLR': return new CosineAnnealingLR(opt, o);
    case 'LinearLR': return new LinearLR(opt, o);
    case 'SequentialLR': {
      const { warmup, cosine, milestones } = f.options as { warmup: object; cosine: object; milestones: number[] };
      return new SequentialLR(opt, [new LinearLR(opt, warmup), new CosineAnnealingLR(opt, cosine as never)], milestones);
    }
  }
  throw new Error(f.kind);
}

describe('schedulers against PyTorch', () => {
  for (const f of fixture.schedulers) {
    it(`${f.kind}(${JSON.stringify(f.options)}): 30 steps, two groups`, () => {
      const opt = optimizer();
      const sched = make(f, opt);
      const got = [sched.getLastLr()];
      for (let t = 0; t < 30; t++) {
        opt.step();
        sched.step();
        got.push(sched.getLastLr());
        expect(opt.paramGroups.map((g) => g.lr)).toEqual(sched.getLastLr());
      }
      got.forEach((lrs, t) => lrs.forEach((lr, g) => {
        const want = f.lrs[t]![g]!;
        expect(Math.abs(lr - want) / want, `epoch ${t}, group ${g}: ${lr} vs ${want}`).toBeLessThanOrEqual(1e-12);
      }));
    });
  }
});

describe('scheduler behaviour', () => {
  it('linearWarmup then cosine is the SequentialLR PyTorch users write', () => {
    const a = optimizer(), b = optimizer();
    const s1 = linearWarmup(a, { warmupSteps: 5, startFactor: 0.1, then: new CosineAnnealingLR(a, { tMax: 20, etaMin: 1e-4 }) });
    const s2 = new SequentialLR(b, [new LinearLR(b, { startFactor: 0.1, totalIters: 5 }), new CosineAnnealingLR(b, { tMax: 20, etaMin: 1e-4 })], [5]);
    for (let t = 0; t < 30; t++) {
      expect(s1.getLastLr()).toEqual(s2.getLastLr());
      s1.step();
      s2.step();
    }
    expect(s1.getLastLr()[0]).toBeCloseTo(cosineAnnealingLr(0.1, 25, 20, 1e-4), 15);
  });

  it('resumes from a state dict at the same learning rate', () => {
    const a = optimizer();
    const s = new CosineAnnealingLR(a, { tMax: 10 });
    for (let t = 0; t < 4; t++) s.step();
    const saved = JSON.parse(JSON.stringify({ opt: a.stateDict(), sched: s.stateDict() }));
    const b = optimizer();
    b.loadStateDict(saved.opt);
    const r = new CosineAnnealingLR(b, { tMax: 10, lastEpoch: saved.sched.lastEpoch - 1 });
    r.loadStateDict(saved.sched);
    expect(r.getLastLr()).toEqual(s.getLastLr());
    s.step();
    r.step();
    expect(r.getLastLr()).toEqual(s.getLastLr());
  });

  it('rejects bad options by name', () => {
    const opt = optimizer();
    expect(() => new StepLR(opt, { stepSize: 0 })).toThrow('Invalid stepSize: 0 (a positive integer)');
    expect(() => new StepLR(opt, { stepSize: 3, gama: 0.1 } as never)).toThrow("Unknown option 'gama' for StepLR (expected one of: stepSize, gamma, lastEpoch)");
    expect(() => new LinearLR(opt, { startFactor: 1.5 })).toThrow('Invalid startFactor: 1.5 (expected between 0 and 1)');
    expect(() => new CosineAnnealingLR(optimizer(), { tMax: 10, lastEpoch: 3 })).toThrow('parameter group 0 has no initialLr to resume from');
    expect(() => new SequentialLR(opt, [new StepLR(opt, { stepSize: 2 })], [3])).toThrow('SequentialLR: expected 0 milestones for 1 schedulers');
    expect(() => new SequentialLR(opt, [new StepLR(optimizer(), { stepSize: 2 })], [])).toThrow('scheduler at index 0 belongs to a different optimizer');
  });
});

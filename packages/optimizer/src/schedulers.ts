/**
 * Learning-rate schedules, as torch.optim.lr_scheduler's StepLR, MultiStepLR, ExponentialLR,
 * CosineAnnealingLR, LinearLR and SequentialLR.
 *
 * Each schedule is a closed form: a pure function of the base learning rate and the epoch (the
 * number of scheduler steps so far). PyTorch's classes mostly update `lr` recursively from its
 * previous value; the closed form gives the same values up to float64 rounding (tested against
 * PyTorch to 1e-12), and lets a worker or a parameter server compute the rate for any step without
 * replaying the ones before it.
 *
 * Usage matches PyTorch: construct after the optimizer (this sets each group's lr for epoch 0),
 * call `optimizer.step()` then `scheduler.step()` once per epoch (or per iteration).
 */
import { OptimizerError, invalidValue } from './errors.js';

// ---- Closed forms ---------------------------------------------------------------------------------

/** baseLr · γ^⌊epoch / stepSize⌋ */
export const stepLr = (baseLr: number, epoch: number, stepSize: number, gamma = 0.1): number =>
  baseLr * gamma ** Math.floor(epoch / stepSize);

/** baseLr · γ^(number of milestones ≤ epoch) */
export const multiStepLr = (baseLr: number, epoch: number, milestones: readonly number[], gamma = 0.1): number =>
  baseLr * gamma ** milestones.filter((m) => m <= epoch).length;

/** baseLr · γ^epoch */
export const exponentialLr = (baseLr: number, epoch: number, gamma: number): number => baseLr * gamma ** epoch;

/** η_min + (baseLr − η_min) · (1 + cos(π · epoch / T_max)) / 2 */
export const cosineAnnealingLr = (baseLr: number, epoch: number, tMax: number, etaMin = 0): number =>
  etaMin + ((baseLr - etaMin) * (1 + Math.cos((Math.PI * epoch) / tMax))) / 2;

/** baseLr · (start + (end − start) · min(epoch, totalIters) / totalIters) */
export const linearLr = (baseLr: number, epoch: number, startFactor = 1 / 3, endFactor = 1, totalIters = 5): number =>
  baseLr * (startFactor + ((endFactor - startFactor) * Math.min(totalIters, epoch)) / totalIters);

// ---- Scheduler classes ----------------------------------------------------------------------------

/** What a scheduler needs from an optimizer: parameter groups with a mutable `lr`. */
export interface SchedulableOptimizer {
  paramGroups: Array<{ lr: number; initialLr?: number }>;
}

export interface SchedulerStateDict {
  lastEpoch: number;
  baseLrs: number[];
}

/**
 * The base of every scheduler: `lrAt(epoch, baseLr)` is the schedule; `step()` advances the epoch
 * and writes each group's lr. Base learning rates are each group's `initialLr`, which the first
 * scheduler on an optimizer sets from its lr (as PyTorch's `initial_lr`).
 */
export abstract class LRScheduler {
  readonly optimizer: SchedulableOptimizer;
  baseLrs: number[];
  lastEpoch: number;
  private lastLr: number[] = [];

  constructor(optimizer: SchedulableOptimizer, lastEpoch = -1) {
    if (optimizer === null || typeof optimizer !== 'object' || !Array.isArray(optimizer.paramGroups)) {
      throw new OptimizerError(`${this.constructor.name}: expected an optimizer with paramGroups`);
    }
    if (!Number.isInteger(lastEpoch) || lastEpoch < -1) throw invalidValue('lastEpoch', lastEpoch, 'an integer ≥ -1');
    this.optimizer = optimizer;
    optimizer.paramGroups.forEach((g, i) => {
      if (lastEpoch === -1) g.initialLr ??= g.lr;
      else if (g.initialLr === undefined) {
        throw new OptimizerError(`${this.constructor.name}: parameter group ${i} has no initialLr to resume from (lastEpoch ${lastEpoch}); resume by loading the optimizer's state dict first`);
      }
    });
    this.baseLrs = optimizer.paramGroups.map((g) => g.initialLr!);
    this.lastEpoch = lastEpoch;
  }

  /** The learning rate at `epoch` for a group whose base rate is `baseLr`. */
  abstract lrAt(epoch: number, baseLr: number): number;

  /** Advances one epoch and sets every group's lr. */
  step(): void {
    this.lastEpoch++;
    this.lastLr = this.baseLrs.map((b) => this.lrAt(this.lastEpoch, b));
    this.optimizer.paramGroups.forEach((g, i) => (g.lr = this.lastLr[i]!));
  }

  /** The learning rates the last `step()` (or the constructor) set, one per group. */
  getLastLr(): number[] {
    return [...this.lastLr];
  }

  stateDict(): SchedulerStateDict {
    return { lastEpoch: this.lastEpoch, baseLrs: [...this.baseLrs] };
  }

  /** Restores the epoch and base rates (does not change the optimizer's lr: load the optimizer's state dict for that). */
  loadStateDict(s: SchedulerStateDict): void {
    if (s === null || typeof s !== 'object' || !Number.isInteger(s.lastEpoch) || !Array.isArray(s.baseLrs)) {
      throw new OptimizerError(`${this.constructor.name}.loadStateDict: expected { lastEpoch, baseLrs }, got ${JSON.stringify(s)}`);
    }
    if (s.baseLrs.length !== this.optimizer.paramGroups.length) {
      throw new OptimizerError(`${this.constructor.name}.loadStateDict: ${s.baseLrs.length} base learning rates for ${this.optimizer.paramGroups.length} parameter groups`);
    }
    this.lastEpoch = s.lastEpoch;
    this.baseLrs = [...s.baseLrs];
    this.lastLr = this.baseLrs.map((b) => this.lrAt(this.lastEpoch, b));
  }

  /** Subclasses call this at the end of their constructor: PyTorch's initial step to epoch lastEpoch + 1. */
  protected initialStep(): void {
    this.step();
  }
}

function positiveInteger(what: string, v: unknown): number {
  if (!Number.isInteger(v) || (v as number) <= 0) throw invalidValue(what, v, 'a positive integer');
  return v as number;
}
function positive(what: string, v: unknown): number {
  if (typeof v !== 'number' || !(v > 0) || v === Infinity) throw invalidValue(what, v, 'must be > 0');
  return v;
}
function checkKeys(name: string, options: object, known: readonly string[]): void {
  for (const k of Object.keys(options)) {
    if (!known.includes(k)) throw new OptimizerError(`Unknown option '${k}' for ${name} (expected one of: ${known.join(', ')})`);
  }
}

/** Multiplies the lr by γ every `stepSize` epochs. */
export class StepLR extends LRScheduler {
  readonly stepSize: number;
  readonly gamma: number;
  constructor(optimizer: SchedulableOptimizer, options: { stepSize: number; gamma?: number; lastEpoch?: number }) {
    super(optimizer, options?.lastEpoch);
    checkKeys('StepLR', options, ['stepSize', 'gamma', 'lastEpoch']);
    this.stepSize = positiveInteger('stepSize', options.stepSize);
    this.gamma = positive('gamma', options.gamma ?? 0.1);
    this.initialStep();
  }
  lrAt(epoch: number, baseLr: number): number {
    return stepLr(baseLr, epoch, this.stepSize, this.gamma);
  }
}

/** Multiplies the lr by γ at each milestone epoch. */
export class MultiStepLR extends LRScheduler {
  readonly milestones: readonly number[];
  readonly gamma: number;
  constructor(optimizer: SchedulableOptimizer, options: { milestones: readonly number[]; gamma?: number; lastEpoch?: number }) {
    super(optimizer, options?.lastEpoch);
    checkKeys('MultiStepLR', options, ['milestones', 'gamma', 'lastEpoch']);
    if (!Array.isArray(options.milestones) || !options.milestones.every((m) => Number.isInteger(m) && m >= 0)) {
      throw invalidValue('milestones', options.milestones, 'an array of non-negative integers');
    }
    this.milestones = [...options.milestones].sort((a, b) => a - b);
    this.gamma = positive('gamma', options.gamma ?? 0.1);
    this.initialStep();
  }
  lrAt(epoch: number, baseLr: number): number {
    return multiStepLr(baseLr, epoch, this.milestones, this.gamma);
  }
}

/** Multiplies the lr by γ every epoch. */
export class ExponentialLR extends LRScheduler {
  readonly gamma: number;
  constructor(optimizer: SchedulableOptimizer, options: { gamma: number; lastEpoch?: number }) {
    super(optimizer, options?.lastEpoch);
    checkKeys('ExponentialLR', options, ['gamma', 'lastEpoch']);
    this.gamma = positive('gamma', options.gamma);
    this.initialStep();
  }
  lrAt(epoch: number, baseLr: number): number {
    return exponentialLr(baseLr, epoch, this.gamma);
  }
}

/** Anneals the lr from its base to η_min along half a cosine over T_max epochs (and back up after, periodically, as PyTorch). */
export class CosineAnnealingLR extends LRScheduler {
  readonly tMax: number;
  readonly etaMin: number;
  constructor(optimizer: SchedulableOptimizer, options: { tMax: number; etaMin?: number; lastEpoch?: number }) {
    super(optimizer, options?.lastEpoch);
    checkKeys('CosineAnnealingLR', options, ['tMax', 'etaMin', 'lastEpoch']);
    this.tMax = positiveInteger('tMax', options.tMax);
    const etaMin = options.etaMin ?? 0;
    if (typeof etaMin !== 'number' || !(etaMin >= 0)) throw invalidValue('etaMin', etaMin, 'must be ≥ 0');
    this.etaMin = etaMin;
    this.initialStep();
  }
  lrAt(epoch: number, baseLr: number): number {
    return cosineAnnealingLr(baseLr, epoch, this.tMax, this.etaMin);
  }
}

/** Scales the lr linearly from startFactor to endFactor over totalIters epochs, then holds it: a linear warm-up. */
export class LinearLR extends LRScheduler {
  readonly startFactor: number;
  readonly endFactor: number;
  readonly totalIters: number;
  constructor(optimizer: SchedulableOptimizer, options: { startFactor?: number; endFactor?: number; totalIters?: number; lastEpoch?: number } = {}) {
    super(optimizer, options?.lastEpoch);
    checkKeys('LinearLR', options, ['startFactor', 'endFactor', 'totalIters', 'lastEpoch']);
    const factor = (what: string, v: unknown) => {
      if (typeof v !== 'number' || !(v >= 0 && v <= 1)) throw invalidValue(what, v, 'expected between 0 and 1');
      return v;
    };
    this.startFactor = factor('startFactor', options.startFactor ?? 1 / 3);
    this.endFactor = factor('endFactor', options.endFactor ?? 1);
    this.totalIters = positiveInteger('totalIters', options.totalIters ?? 5);
    this.initialStep();
  }
  lrAt(epoch: number, baseLr: number): number {
    return linearLr(baseLr, epoch, this.startFactor, this.endFactor, this.totalIters);
  }
}

/**
 * Runs `schedulers[0]` until `milestones[0]`, then `schedulers[1]` from its epoch 0, and so on.
 * The schedulers are used as closed forms: their own step() is not called.
 */
export class SequentialLR extends LRScheduler {
  readonly schedulers: readonly LRScheduler[];
  readonly milestones: readonly number[];
  constructor(optimizer: SchedulableOptimizer, schedulers: readonly LRScheduler[], milestones: readonly number[], lastEpoch = -1) {
    super(optimizer, lastEpoch);
    if (!Array.isArray(schedulers) || schedulers.length === 0) throw invalidValue('schedulers', schedulers, 'a non-empty array of schedulers');
    schedulers.forEach((s, i) => {
      if (!(s instanceof LRScheduler)) throw invalidValue(`scheduler at index ${i}`, s, 'expected a scheduler');
      if (s.optimizer !== optimizer) throw new OptimizerError(`SequentialLR: scheduler at index ${i} belongs to a different optimizer`);
    });
    if (!Array.isArray(milestones) || milestones.length !== schedulers.length - 1) {
      throw new OptimizerError(`SequentialLR: expected ${schedulers.length - 1} milestones for ${schedulers.length} schedulers, got ${JSON.stringify(milestones)}`);
    }
    milestones.forEach((m, i) => {
      if (!Number.isInteger(m) || m <= 0 || (i > 0 && m <= milestones[i - 1]!)) throw invalidValue('milestones', milestones, 'increasing positive integers');
    });
    this.schedulers = [...schedulers];
    this.milestones = [...milestones];
    this.initialStep();
  }
  lrAt(epoch: number, baseLr: number): number {
    let i = 0;
    while (i < this.milestones.length && this.milestones[i]! <= epoch) i++;
    return this.schedulers[i]!.lrAt(i === 0 ? epoch : epoch - this.milestones[i - 1]!, baseLr);
  }
}

/**
 * A linear warm-up over `warmupSteps` from `startFactor` × lr, then `then` (if given) from its epoch 0.
 *
 * @example
 * const sched = linearWarmup(opt, { warmupSteps: 100, then: new CosineAnnealingLR(opt, { tMax: 900 }) });
 */
export function linearWarmup(
  optimizer: SchedulableOptimizer,
  options: { warmupSteps: number; startFactor?: number; then?: LRScheduler },
): LRScheduler {
  checkKeys('linearWarmup', options, ['warmupSteps', 'startFactor', 'then']);
  const warmupSteps = positiveInteger('warmupSteps', options.warmupSteps);
  const warmup = new LinearLR(optimizer, { startFactor: options.startFactor ?? 1 / warmupSteps, endFactor: 1, totalIters: warmupSteps });
  return options.then ? new SequentialLR(optimizer, [warmup, options.then], [warmupSteps]) : warmup;
}

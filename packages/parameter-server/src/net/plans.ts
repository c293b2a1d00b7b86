/**
 * Who trains which rows of each step of a sync or ssp table, and what was trained: @loom/worker's
 * StepPlans (plan.ts) as a clock policy (./policy.ts) fixes them, carries the rows a dead worker
 * never pushed, and counts the rows of each epoch that updates were made of.
 *
 * The plan of step t is fixed when the pulls for step t may first be answered — when update
 * t − S is applied (sync: S = 0, update t) — so every worker computing step t is told the same
 * plan, with its parameters: the ranks that are members at t, and every row orphaned since the
 * last plan. A row is orphaned when clock c is applied without the push of a rank its plan named
 * live (the worker died, or was dropped as silent, before pushing): that rank's share of step c's
 * work goes to the next plan fixed, step c + 1 + S. A worker readmitted at step J is live from the
 * first plan fixed after its join; until then it computes and pushes nothing.
 *
 * The ledger: each applied clock adds its pushed shares to the epoch each row belongs to (a carried
 * row to the epoch of the step it came from), and the step's own batch to that epoch's expected
 * rows. An epoch is `open` while some of its rows may still be trained: its steps are not all
 * applied, or rows of it are carried into a plan not yet applied.
 */
import { rowsOf, shareOf, type Segment, type StepPlan } from '@loom/worker';

/** A plan that differs from the one before it: other live ranks, or carried rows. */
export interface PlanChange {
  step: number;
  live: number[];
  /** Rows of earlier steps it carries. */
  carried: number;
}

/** What the updates of one epoch were made of. */
export interface TrainedEpoch {
  /** From 0. */
  epoch: number;
  /** Rows of the epoch's batches in an applied update (each counted once, in the epoch it belongs to). */
  rows: number;
  /** Rows in the epoch's batches whose steps are applied: its training set, once every step is. */
  expected: number;
  /** Rows by the rank that trained them, indexed by rank. */
  ranks: number[];
  /** Plans of the epoch's steps that differ from the plan before. */
  changes: PlanChange[];
  /** Some of its rows may still be trained: a step of it is not applied, or rows of it are carried. */
  open: boolean;
}

/** Epochs the ledger keeps (the most recent). */
const KEEP_EPOCHS = 16;
/**
 * Plans of applied steps kept, for pulls that arrive after their step was applied: a worker that
 * joined at the step being gathered, which the others then completed without it (it was not live).
 */
const KEEP_APPLIED = 64;

export class PlanBook {
  /** Plans fixed and not yet applied, by step. */
  private readonly plans = new Map<number, StepPlan>();
  /** Plans of the last KEEP_APPLIED steps applied. */
  private readonly done = new Map<number, StepPlan>();
  /** Rows orphaned since the last plan was fixed. */
  private carry: Segment[] = [];
  private previous: readonly number[] | null = null;
  private readonly epochs = new Map<number, TrainedEpoch>();
  /** Steps per epoch (0: not known yet, and nothing is counted). */
  stepsPerEpoch = 0;

  constructor(private readonly workers: number) {}

  /** Forgets every plan and carried row (a restart from a checkpoint: they were not saved). */
  reset(): void {
    this.plans.clear();
    this.done.clear();
    this.carry = [];
    this.previous = null;
  }

  /** Fixes the plan of `step`: ranks `live` (ascending), carrying every row orphaned since the last plan. */
  fix(step: number, live: number[]): StepPlan {
    const plan: StepPlan = { live, carry: this.carry };
    this.carry = [];
    this.plans.set(step, plan);
    const prev = this.previous;
    if (plan.carry.length > 0 || (prev !== null && (prev.length !== live.length || prev.some((r, i) => live[i] !== r)))) {
      this.epoch(step)?.changes.push({ step, live: [...live], carried: rowsOf(plan.carry) });
    }
    this.previous = live;
    return plan;
  }

  /** The plan of `step`, if it is fixed (and was applied at most KEEP_APPLIED steps ago). */
  get(step: number): StepPlan | undefined {
    return this.plans.get(step) ?? this.done.get(step);
  }

  /**
   * Clock `step` is applied. `rows[r]`: the rows rank r pushed (undefined: no push); `batchRows`:
   * the step's work as its pushes gave it; `live`: the ranks its pushes named (undefined: pushes
   * of workers that split batches themselves — their rows all count for the step's epoch).
   * Counts what was trained and carries the shares of live ranks that did not push.
   */
  applied(step: number, live: readonly number[] | undefined, rows: ArrayLike<number | undefined>, batchRows: number): void {
    const plan = this.plans.get(step);
    if (plan !== undefined) {
      this.plans.delete(step);
      this.done.set(step, plan);
      this.done.delete(step - KEEP_APPLIED);
    }
    const here = this.epoch(step);
    if (live === undefined || plan === undefined) {
      if (here === undefined) return;
      here.expected += batchRows;
      for (let r = 0; r < this.workers; r++) {
        const n = rows[r];
        if (n === undefined) continue;
        here.rows += n;
        here.ranks[r]! += n;
      }
      return;
    }
    const fresh = Math.max(0, batchRows - rowsOf(plan.carry));
    if (here !== undefined) here.expected += fresh;
    const cut: StepPlan = { live, carry: plan.carry };
    live.forEach((r, p) => {
      const share = shareOf(step, fresh, cut, p);
      if (rows[r] === undefined) {
        for (const s of share) {
          // Shares of neighbouring dead ranks are one run of rows: one segment.
          const last = this.carry.at(-1);
          if (last !== undefined && last.step === s.step && last.hi === s.lo) this.carry[this.carry.length - 1] = { step: s.step, lo: last.lo, hi: s.hi };
          else this.carry.push(s);
        }
        return;
      }
      for (const s of share) {
        const e = this.epoch(s.step);
        if (e === undefined) continue;
        e.rows += s.hi - s.lo;
        e.ranks[r]! += s.hi - s.lo;
      }
    });
  }

  /**
   * Async: worker `rank` pushed `rows` rows of step `step`, whose batch has `batchRows`; `first`:
   * the step's first push, which adds its batch to the epoch's expected rows.
   */
  pushed(step: number, rank: number, rows: number, batchRows: number, first: boolean): void {
    const e = this.epoch(step);
    if (e === undefined) return;
    e.rows += rows;
    e.ranks[rank]! += rows;
    if (first) e.expected += batchRows;
  }

  /** Async: forgets the plans of steps before `step` (epochs no worker is in any more). */
  forgetBefore(step: number): void {
    for (const t of this.plans.keys()) if (t < step) this.plans.delete(t);
  }

  /** The ledger, oldest epoch first, with `applied` updates applied (for `open`). */
  trained(applied: number): TrainedEpoch[] {
    const P = this.stepsPerEpoch;
    const waiting = [...this.carry, ...[...this.plans.values()].flatMap((p) => p.carry)];
    return [...this.epochs.values()].sort((a, b) => a.epoch - b.epoch).map((e) => ({
      ...e, ranks: [...e.ranks], changes: e.changes.map((c) => ({ ...c, live: [...c.live] })),
      open: applied < (e.epoch + 1) * P || waiting.some((s) => Math.floor(s.step / P) === e.epoch),
    }));
  }

  /** The ledger's line of the epoch step `step` belongs to (none while steps per epoch are not known). */
  private epoch(step: number): TrainedEpoch | undefined {
    const P = this.stepsPerEpoch;
    if (P <= 0) return undefined;
    const n = Math.floor(step / P);
    let e = this.epochs.get(n);
    if (e === undefined) {
      e = { epoch: n, rows: 0, expected: 0, ranks: new Array<number>(this.workers).fill(0), changes: [], open: true };
      this.epochs.set(n, e);
      for (const k of this.epochs.keys()) if (k <= n - KEEP_EPOCHS) this.epochs.delete(k);
    }
    return e;
  }
}

/**
 * When a parameter server applies an update: the sync, ssp and async clocks and the membership of
 * workers, as policy objects that hold no parameters and no sockets (the network's counterpart of
 * ../local/policies.ts, whose meanings they share). A store owns one policy, hands it every push with
 * its gradient as an opaque value G, and steps what the policy hands back through its UpdateTarget;
 * so the dense key range (./store.ts) and, next, row-keyed tables (G = the rows' ids and gradients)
 * share one clock logic.
 *
 * sync   every member pushes its gradient of step t (the mean over its `rows` of a global batch of
 *        `batchRows`); when all have, update t + 1 is their sum weighted by rows/batchRows IN RANK
 *        ORDER (the target reduces), and the pulls for step t + 1 may be answered.
 * ssp    the same update per clock, applied in clock order once every member pushed it; a worker's
 *        pull for step t is answered once updates 0 … t−S−1 are applied. S = 0 is sync.
 * async  each push is an update on arrival, the worker's own gradient as is, with the update
 *        counter as the optimizer's step count; pulls answer at once.
 *
 * Membership (sync and ssp). Worker r is a member from clock memberFrom[r] on. At the start every
 * rank is a member from 0 (so a run without failures is exactly the computation above). `drop(r)` —
 * the worker disconnected or stopped answering — ends its membership (the pushes it made are kept:
 * they are gradients of their steps' rows); `join(r, t)` makes it a member again from clock
 * t ≥ applied (its earlier pushes to clocks from t are dropped: it computes those steps again).
 *
 * Re-sharding (./plans.ts). The plan of step t — the ranks that are members at t, and the rows
 * orphaned so far — is fixed when update t − S is applied, and sent with the parameters for step t.
 * Workers that follow plans cut step t's work by it and push with its live ranks (`live`); clock t
 * then waits for the live ranks that are still members, and a live rank missing when it is applied
 * has its share carried into the next plan. Pushes without `live` (workers that split every batch
 * themselves) make clock t wait for every member, as before plans. A clock whose pushes do not
 * cover its work (Σ rows < batchRows: a share went missing) is reduced with the weights of the
 * pushes it has, renormalised to sum to 1: w_r = (rows_r/batchRows) / Σ_received (rows/batchRows),
 * the mean gradient of the rows computed; one that does covers it with weights rows/batchRows.
 */
import type { StepPlan } from '@loom/worker';
import type { Mode } from '../mode.js';
import { PsError } from './errors.js';
import { PlanBook, type TrainedEpoch } from './plans.js';

export interface PolicyOptions {
  mode: Mode;
  /** ssp only: how many updates a worker may run ahead of the applied ones. */
  staleness: number;
  workers: number;
}

/** What a store does when its policy decides that an update happens. */
export interface UpdateTarget<G> {
  /** Update `applied` + 1 is about to change the parameters: finish everything that reads the current ones. */
  begin(): void;
  /** Update t (the optimizer's step count; sync, ssp) is Σ weights[i] · grads[i], in this (rank) order; none: every push weighed zero. */
  sum(t: number, grads: G[], weights: number[]): void;
  /** Update t (async) is one worker's gradient as it is, or null: counted, not stepped (a skipped non-finite gradient). */
  own(t: number, grad: G | null): void;
}

/** What a push did. */
export interface PushOutcome {
  /** Updates this push completed (0 or more). */
  appliedNow: number;
  /** async: updates others applied since this worker's last pull; else 0. */
  stale: number;
  /** The gradient is read until this many updates are stepped; its memory may be reused after. */
  readUntil: number;
}

/** The clock and membership of one store. */
export interface NetPolicy<G> {
  readonly mode: Mode;
  /** Updates applied so far (counted when the policy decides them, before the target has stepped them all). */
  readonly applied: number;
  /** The worker ranks clock `applied` (the next update) waits for. */
  members(): number[];
  /** Whether worker `rank` is a member (counted by some clock from now on). */
  isMember(rank: number): boolean;
  /** Stops waiting for `rank` (its pushes so far are kept); returns the updates this applied. */
  drop(rank: number): number;
  /** Makes `rank` a member from clock `step` on; returns the updates this applied. Throws PsError('bad-step'). */
  join(rank: number, step: number): number;
  /** The update count a worker's pull for `step` waits for. */
  needFor(step: number): number;
  /** Worker `rank` read the parameters now (async staleness). */
  notePull(rank: number): void;
  /**
   * Worker `rank`'s gradient of `step`, the mean over `rows` of a global batch of `batchRows`;
   * `finite` false: it holds NaN or ±Inf and weighs zero; `live`: the live ranks of the plan the
   * worker cut the step by (sync, ssp). The policy keeps `grad` until its clock is applied. Throws
   * PsError('bad-step' | 'bad-request').
   */
  push(rank: number, step: number, grad: G, rows: number, batchRows: number, finite: boolean, live?: readonly number[]): PushOutcome;
  /** Continues from a checkpoint of `applied` updates; only before any push. */
  restore(applied: number): void;
  /**
   * The plan of `step` (./plans.ts). Sync and ssp: once it is fixed, until 64 steps after it is
   * applied. Async: its epoch's, fixed by the first pull of a step of it.
   */
  plan(step: number): StepPlan | undefined;
  /** What each recent epoch's updates were made of (./plans.ts). */
  trained(): TrainedEpoch[];
  /** Steps per epoch, for the ledger of `trained` (0: not known). */
  stepsPerEpoch: number;
}

/** The policy for `o.mode`, stepping through `target`. */
export function netPolicy<G>(o: PolicyOptions, target: UpdateTarget<G>): NetPolicy<G> {
  return o.mode === 'async' ? new AsyncPolicy(o, target) : new ClockPolicy(o, target, o.mode === 'ssp' ? o.staleness : 0);
}

/** The gradients of one clock, as they arrive (kept, not copied). */
interface Clock<G> {
  grads: (G | undefined)[];
  weights: Float64Array;
  /** Rows of each rank's push (undefined: none). */
  rows: (number | undefined)[];
  count: number;
  /** The step's whole work, as the first push gave it. */
  batchRows: number;
  /** The live ranks its pushes named (all the same), or undefined: pushes without a plan. */
  live?: readonly number[];
}

abstract class Membership<G> {
  applied = 0;
  /** The first clock that waits for worker r's push; Infinity while r is not a member. */
  protected readonly memberFrom: number[];

  constructor(
    protected readonly o: PolicyOptions,
    protected readonly target: UpdateTarget<G>,
  ) {
    this.memberFrom = new Array<number>(o.workers).fill(0);
  }

  get mode(): Mode {
    return this.o.mode;
  }

  members(): number[] {
    return this.memberFrom.flatMap((from, r) => (from <= this.applied ? [r] : []));
  }

  isMember(rank: number): boolean {
    return this.memberFrom[rank] !== Infinity;
  }

  /** Counts update `applied` + 1, after the target has finished with the current parameters. */
  protected next(): number {
    this.target.begin();
    return ++this.applied;
  }

  /** The ranks that are members at clock t, ascending. */
  protected membersAt(t: number): number[] {
    return this.memberFrom.flatMap((from, r) => (from <= t ? [r] : []));
  }
}

/** sync and ssp: update t + 1 is clock t's pushes reduced, applied in clock order; ssp lets a worker run `window` clocks ahead. */
class ClockPolicy<G> extends Membership<G> implements NetPolicy<G> {
  private readonly pending = new Map<number, Clock<G>>();
  private readonly book: PlanBook;

  constructor(
    o: PolicyOptions,
    target: UpdateTarget<G>,
    private readonly window: number,
  ) {
    super(o, target);
    this.book = new PlanBook(o.workers);
    for (let t = 0; t <= window; t++) this.book.fix(t, this.membersAt(t));
  }

  get stepsPerEpoch(): number {
    return this.book.stepsPerEpoch;
  }

  set stepsPerEpoch(n: number) {
    this.book.stepsPerEpoch = n;
  }

  plan(step: number): StepPlan | undefined {
    return this.book.get(step);
  }

  trained(): TrainedEpoch[] {
    return this.book.trained(this.applied);
  }

  drop(rank: number): number {
    if (this.memberFrom[rank] === Infinity) return 0;
    this.memberFrom[rank] = Infinity;
    return this.applyReady();
  }

  join(rank: number, step: number): number {
    if (step < this.applied) throw new PsError('bad-step', `join at step ${step}: ${this.applied} updates are already applied (join at ${this.applied} or later)`);
    if (step > this.applied + 64) throw new PsError('bad-step', `join at step ${step}: more than 64 ahead of the ${this.applied} updates applied`);
    this.memberFrom[rank] = step;
    for (const [t, c] of this.pending) if (t >= step) this.discard(c, rank);
    return this.applyReady();
  }

  needFor(step: number): number {
    return step - this.window;
  }

  notePull(): void {}

  push(rank: number, step: number, grad: G, rows: number, batchRows: number, finite: boolean, live?: readonly number[]): PushOutcome {
    if (step < this.applied) throw new PsError('bad-step', `step ${step} from worker ${rank} is already applied (${this.applied} updates applied)`);
    if (step > this.applied + this.window) {
      throw new PsError('bad-step', `step ${step} from worker ${rank} is more than ${this.window} ahead of the ${this.applied} updates applied`);
    }
    let clock = this.pending.get(step);
    if (clock === undefined) {
      const W = this.o.workers;
      clock = { grads: new Array(W), weights: new Float64Array(W), rows: new Array(W), count: 0, batchRows };
      this.pending.set(step, clock);
    }
    if (clock.grads[rank] !== undefined) throw new PsError('bad-step', `worker ${rank} already pushed step ${step}`);
    if (this.memberFrom[rank]! > step) {
      const from = this.memberFrom[rank]!;
      throw new PsError('bad-step', from === Infinity ? `worker ${rank} is not a member of the run (it was dropped): join first` : `worker ${rank} joins at step ${from}, not ${step}`);
    }
    if (clock.count > 0 && !sameRanks(clock.live, live)) {
      throw new PsError('bad-request', `step ${step}: worker ${rank} cut it for live ranks ${ranksText(live)}, an earlier push for ${ranksText(clock.live)}`);
    }
    if (live !== undefined && !live.includes(rank)) throw new PsError('bad-step', `worker ${rank} is not among the live ranks ${ranksText(live)} of step ${step}: it trains from a later step`);
    if (clock.count === 0) {
      clock.batchRows = batchRows;
      if (live !== undefined) clock.live = live;
    }
    clock.grads[rank] = grad;
    clock.rows[rank] = rows;
    clock.weights[rank] = finite && batchRows > 0 ? rows / batchRows : 0;
    clock.count++;
    return { appliedNow: this.applyReady(), stale: 0, readUntil: step + 1 };
  }

  restore(applied: number): void {
    if (this.applied !== 0 || this.pending.size > 0) throw new Error('restore: the store has already taken pushes');
    this.applied = applied;
    this.book.reset();
    for (let t = applied; t <= applied + this.window; t++) this.book.fix(t, this.membersAt(t));
  }

  /** Forgets `rank`'s push to clock `c`, if any. */
  private discard(c: Clock<G>, rank: number): void {
    if (c.grads[rank] === undefined) return;
    c.grads[rank] = undefined;
    c.rows[rank] = undefined;
    c.weights[rank] = 0;
    c.count--;
    if (c.count === 0) delete c.live;
  }

  /** Applies every clock, in order from the next one, whose member workers have all pushed. */
  private applyReady(): number {
    const workers = this.o.workers;
    let appliedNow = 0;
    for (let c = this.pending.get(this.applied); c !== undefined && this.complete(this.applied, c); c = this.pending.get(this.applied)) {
      const step = this.applied;
      this.pending.delete(step);
      let got = 0;
      for (let r = 0; r < workers; r++) got += c.rows[r] ?? 0;
      if (got !== c.batchRows) {
        // A share of the step's work is missing: renormalise the weights of the pushes received.
        let sum = 0;
        for (let r = 0; r < workers; r++) sum += c.weights[r]!;
        if (sum > 0) for (let r = 0; r < workers; r++) c.weights[r] = c.weights[r]! / sum;
      }
      // Ranks with weight 0 (no rows, or a skipped non-finite gradient) are left out: for finite
      // gradients adding 0·g changes no bit, and a skipped gradient's NaN must not reach the sum.
      const ranks = c.grads.flatMap((grad, r) => (c.weights[r] !== 0 ? [r] : []));
      const t = this.next();
      this.target.sum(t, ranks.map((r) => c.grads[r]!), ranks.map((r) => c.weights[r]!));
      this.book.applied(step, c.live, c.rows, c.batchRows);
      this.book.fix(t + this.window, this.membersAt(t + this.window));
      appliedNow++;
    }
    return appliedNow;
  }

  /** Clock t is complete when it has a push from every member at t its pushes name live (all members, without plans), and at least one push. */
  private complete(t: number, c: Clock<G>): boolean {
    if (c.count === 0) return false;
    if (c.live !== undefined) {
      for (const r of c.live) if (this.memberFrom[r]! <= t && c.grads[r] === undefined) return false;
      return true;
    }
    for (let r = 0; r < this.o.workers; r++) if (this.memberFrom[r]! <= t && c.grads[r] === undefined) return false;
    return true;
  }
}

function sameRanks(a: readonly number[] | undefined, b: readonly number[] | undefined): boolean {
  if (a === undefined || b === undefined) return a === b;
  return a.length === b.length && a.every((r, i) => b[i] === r);
}

function ranksText(live: readonly number[] | undefined): string {
  return live === undefined ? '(none: a fixed split)' : `[${live.join(', ')}]`;
}

/**
 * async: every push is an update of its own on arrival; membership is only bookkeeping. Plans are
 * per epoch (re-sharding at epoch boundaries): the first pull of a step of epoch e fixes the plan of
 * all its steps — the members then, nothing carried — so a worker that dies leaves the rest of its
 * share of that epoch untrained, and from the next epoch the others take it; a worker readmitted
 * mid-epoch trains from the next one. An epoch older than the newest planned that is no longer kept
 * has nobody live: a worker that rejoins behind the others skips to where they are.
 */
class AsyncPolicy<G> extends Membership<G> implements NetPolicy<G> {
  /** The update counter at each worker's last pull, for its staleness. */
  private readonly pulledAt: number[];
  private readonly book: PlanBook;
  /** The newest epoch planned (−1: none). */
  private newest = -1;
  /** Per epoch kept, the steps some worker pushed (for the batches the ledger expects). */
  private readonly seen = new Map<number, Set<number>>();

  constructor(o: PolicyOptions, target: UpdateTarget<G>) {
    super(o, target);
    this.pulledAt = new Array<number>(o.workers).fill(0);
    this.book = new PlanBook(o.workers);
  }

  get stepsPerEpoch(): number {
    return this.book.stepsPerEpoch;
  }

  set stepsPerEpoch(n: number) {
    this.book.stepsPerEpoch = n;
  }

  drop(rank: number): number {
    this.memberFrom[rank] = Infinity;
    return 0;
  }

  join(rank: number): number {
    this.memberFrom[rank] = 0;
    return 0;
  }

  needFor(): number {
    return 0;
  }

  notePull(rank: number): void {
    this.pulledAt[rank] = this.applied;
  }

  push(rank: number, step: number, grad: G, rows: number, batchRows: number, finite: boolean): PushOutcome {
    const stale = this.applied - this.pulledAt[rank]!;
    const t = this.next();
    this.target.own(t, finite ? grad : null);
    const P = this.book.stepsPerEpoch;
    if (P > 0) {
      const e = Math.floor(step / P);
      let steps = this.seen.get(e);
      if (steps === undefined) {
        this.seen.set(e, (steps = new Set()));
        this.seen.delete(e - 4);
      }
      const first = !steps.has(step);
      steps.add(step);
      this.book.pushed(step, rank, finite ? rows : 0, batchRows, first);
    }
    return { appliedNow: 1, stale, readUntil: t };
  }

  restore(applied: number): void {
    if (this.applied !== 0) throw new Error('restore: the store has already taken pushes');
    this.applied = applied;
    this.pulledAt.fill(applied);
  }

  plan(step: number): StepPlan | undefined {
    const P = this.book.stepsPerEpoch;
    if (P <= 0) return undefined;
    const e = Math.floor(step / P);
    const fixed = this.book.get(e * P);
    if (fixed !== undefined) return fixed;
    if (e < this.newest) return { live: [], carry: [] };
    this.newest = e;
    this.book.forgetBefore((e - 2) * P);
    return this.book.fix(e * P, this.memberFrom.flatMap((from, r) => (from !== Infinity ? [r] : [])));
  }

  trained(): TrainedEpoch[] {
    // (`open` by the update count means nothing here: the newest epoch is the one still trained.)
    return this.book.trained(Infinity).map((t) => ({ ...t, open: t.epoch >= this.newest }));
  }
}

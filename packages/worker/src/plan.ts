/**
 * Who trains which rows of a step while workers come and go. Sync and ssp parameter servers fix a
 * StepPlan for every step — the live ranks, and the rows of earlier steps that nobody trained
 * because their worker died before pushing them — and tell every worker the plan of the step it is
 * about to compute. The step's work is its own global batch followed by those carried rows; the
 * live worker at position p of L takes the p-th of L contiguous slices of it. So the live workers
 * together train each row of an epoch exactly once, whatever the membership, and with every rank
 * live and nothing carried a worker takes rows [⌊r·B/W⌋, ⌊(r+1)·B/W⌋) of the batch: the split
 * of a run without failures, bit for bit.
 *
 *   B  rows in a step's own global batch (`fresh`)     R  B + the carried rows: the step's work
 *   L  live ranks                                      p  a rank's position among them
 */

/** Rows [lo, hi) of the global batch of step `step` (the step's index since the run began). */
export interface Segment {
  readonly step: number;
  readonly lo: number;
  readonly hi: number;
}

/** Who trains a step, and what it trains besides its own batch. */
export interface StepPlan {
  /** The ranks that train the step, ascending. A rank not in it computes nothing and pushes nothing. */
  readonly live: readonly number[];
  /** Rows of earlier steps nobody trained, trained after this step's own batch, in this order. */
  readonly carry: readonly Segment[];
}

/** The plan of a run without failures: every one of `workers` ranks, nothing carried. */
export function fullPlan(workers: number): StepPlan {
  return { live: Array.from({ length: workers }, (_, r) => r), carry: [] };
}

/** Rows in a list of segments. */
export function rowsOf(segments: readonly Segment[]): number {
  let n = 0;
  for (const s of segments) n += s.hi - s.lo;
  return n;
}

/**
 * The rows the live worker at `position` (its index in plan.live; −1: not live, nothing) trains at
 * step `step`, whose own batch has `fresh` rows: slice ⌊p·R/L⌋ … ⌊(p+1)·R/L⌋ of the step's work
 * [batch rows 0 … fresh, then plan.carry], as segments in that order. Empty segments are left out.
 *
 * @example
 * shareOf(7, 64, { live: [0, 2], carry: [{ step: 6, lo: 32, hi: 64 }] }, 1)
 * // [{ step: 7, lo: 48, hi: 64 }, { step: 6, lo: 32, hi: 64 }]: the second half of 64 + 32 rows
 */
export function shareOf(step: number, fresh: number, plan: StepPlan, position: number): Segment[] {
  const L = plan.live.length;
  if (position < 0 || position >= L) return [];
  const R = fresh + rowsOf(plan.carry);
  const a = Math.floor((position * R) / L);
  const b = Math.floor(((position + 1) * R) / L);
  const out: Segment[] = [];
  let at = 0; // where the current segment starts in the work
  for (const s of [{ step, lo: 0, hi: fresh }, ...plan.carry]) {
    const n = s.hi - s.lo;
    const lo = Math.max(a, at), hi = Math.min(b, at + n);
    if (lo < hi) out.push({ step: s.step, lo: s.lo + lo - at, hi: s.lo + hi - at });
    at += n;
  }
  return out;
}

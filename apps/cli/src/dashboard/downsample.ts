/**
 * Downsampling a curve for a chart `points` pixels wide: the index range is cut into `points`
 * buckets and each keeps its lowest and highest point, in their order (min/max decimation, as
 * oscilloscopes and uPlot's own examples do). A spike in a million points stays visible; the
 * result has at most 2·points + 2 points whatever the input's length, so 10 runs of 100k points
 * cost the browser no more than 10 of 2k.
 *
 * Non-finite values (NaN: a loss that blew up) are kept as gaps: a bucket holding only those
 * gives one null.
 */

export interface Curve {
  x: number[];
  y: Array<number | null>;
}

/**
 * The points of (xs[i], ys[i]), i < n, whose x lies in [from, to] (xs ascending), downsampled to
 * `points` buckets. Fewer than 2·points of them are returned as they are.
 */
export function downsample(xs: ArrayLike<number>, ys: ArrayLike<number>, n: number, points: number, from = -Infinity, to = Infinity): Curve {
  let lo = lowerBound(xs, n, from);
  let hi = upperBound(xs, n, to);
  // One point either side of the range, so that a zoomed line reaches the chart's edges.
  if (lo > 0) lo--;
  if (hi < n) hi++;
  const out: Curve = { x: [], y: [] };
  const push = (i: number) => {
    out.x.push(xs[i]!);
    out.y.push(Number.isFinite(ys[i]!) ? ys[i]! : null);
  };
  const count = hi - lo;
  if (count <= 2 * points) {
    for (let i = lo; i < hi; i++) push(i);
    return out;
  }
  const size = count / points;
  for (let b = 0; b < points; b++) {
    const start = lo + Math.floor(b * size);
    const end = b === points - 1 ? hi : lo + Math.floor((b + 1) * size);
    let min = -1;
    let max = -1;
    for (let i = start; i < end; i++) {
      const y = ys[i]!;
      if (!Number.isFinite(y)) continue;
      if (min < 0 || y < ys[min]!) min = i;
      if (max < 0 || y > ys[max]!) max = i;
    }
    if (min < 0) {
      push(start); // only gaps here: keep one
      continue;
    }
    // The bucket's first and last points keep the line's ends where they are.
    const keep = new Set([b === 0 ? start : -1, min, max, b === points - 1 ? end - 1 : -1]);
    keep.delete(-1);
    for (const i of [...keep].sort((a, c) => a - c)) push(i);
  }
  return out;
}

/** The first index whose x is ≥ v (n if none). */
function lowerBound(xs: ArrayLike<number>, n: number, v: number): number {
  let lo = 0;
  let hi = n;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (xs[mid]! < v) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** The first index whose x is > v (n if none). */
function upperBound(xs: ArrayLike<number>, n: number, v: number): number {
  let lo = 0;
  let hi = n;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (xs[mid]! <= v) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

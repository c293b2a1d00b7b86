/**
 * One run directory as the dashboard sees it, read from its files only (run-dir.ts describes
 * them): the numeric series of metrics.jsonl and steps.jsonl as columns, the timeline of
 * events.jsonl, config.json once written, the checkpoints, and the lines that could not be read.
 *
 * Series names: an epoch's numeric fields by name (`trainLoss`, `validAuc` …; x is the epoch),
 * nested ones by path (`bytesPerStep.all`), a worker's as `workers.RANK.FIELD`; steps.jsonl's as
 * `step:loss` (x is the fractional epoch, so both share an axis).
 *
 * `refresh()` reads what changed and tells the listeners; the caller decides when (fs.watch on the
 * directory and a polling timer: run-index.ts).
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { downsample, type Curve } from './downsample.js';
import { JsonlTail } from './jsonl-tail.js';

/** A growing column of points, in typed arrays (16 bytes a point). */
export class Column {
  x = new Float64Array(64);
  y = new Float64Array(64);
  n = 0;

  push(x: number, y: number): void {
    if (this.n === this.x.length) {
      const grow = (a: Float64Array) => {
        const b = new Float64Array(a.length * 2);
        b.set(a);
        return b;
      };
      this.x = grow(this.x);
      this.y = grow(this.y);
    }
    this.x[this.n] = x;
    this.y[this.n] = y;
    this.n++;
  }
}

export interface Malformed {
  file: string;
  line: number;
  text: string;
  error: string;
}

export interface Checkpoint {
  step: number;
  /** Every shard's file is there. */
  complete: boolean;
  shards: number;
}

/** What changed, for the live stream: new points by series, or `reset` when a file started again. */
export interface RunChange {
  append?: Record<string, { x: number[]; y: Array<number | null> }>;
  reset?: boolean;
  /** events, config, checkpoints, malformed or the latest epoch changed. */
  info?: boolean;
}

/** The numeric leaves of an epoch line, by series name. */
export function epochFields(record: Record<string, unknown>): Array<[string, number]> {
  const out: Array<[string, number]> = [];
  const walk = (v: unknown, path: string) => {
    if (typeof v === 'number') out.push([path, v]);
    else if (Array.isArray(v)) {
      for (const [i, item] of v.entries()) {
        const key = item !== null && typeof item === 'object' && typeof (item as { rank?: unknown }).rank === 'number' ? String((item as { rank: number }).rank) : String(i);
        walk(item, `${path}.${key}`);
      }
    } else if (v !== null && typeof v === 'object') {
      for (const [k, c] of Object.entries(v)) if (k !== 'rank') walk(c, path === '' ? k : `${path}.${k}`);
    }
  };
  for (const [k, v] of Object.entries(record)) if (k !== 'epoch') walk(v, k);
  return out;
}

export class RunState {
  readonly series = new Map<string, Column>();
  events: Array<Record<string, unknown>> = [];
  /** The last epoch line as written (per-worker rows, tables …). */
  latest: Record<string, unknown> | undefined;
  epochs = 0;
  config: unknown;
  checkpoints: Checkpoint[] = [];
  malformed: Malformed[] = [];
  /** Total lines skipped (`malformed` keeps the last 20). */
  skipped = 0;
  private readonly tails: JsonlTail[];
  private readonly listeners = new Set<(c: RunChange) => void>();
  private pendingAppend: NonNullable<RunChange['append']> = {};
  private pendingInfo = false;
  private pendingReset = false;
  private configMtime = 0;
  private checkpointsKey = '';

  constructor(readonly dir: string) {
    const malformed = (file: string) => (m: { line: number; text: string; error: string }) => {
      this.skipped++;
      this.malformed.push({ file, ...m });
      if (this.malformed.length > 20) this.malformed.shift();
      this.pendingInfo = true;
    };
    this.tails = [
      new JsonlTail(join(dir, 'metrics.jsonl'), {
        onRecords: (rs) => {
          for (const { value } of rs) this.addEpoch(value);
        },
        onMalformed: malformed('metrics.jsonl'),
        onReset: () => this.resetSeries((name) => !name.startsWith('step:'), () => ((this.latest = undefined), (this.epochs = 0))),
      }),
      new JsonlTail(join(dir, 'steps.jsonl'), {
        onRecords: (rs) => {
          for (const { value } of rs) this.addStep(value);
        },
        onMalformed: malformed('steps.jsonl'),
        onReset: () => this.resetSeries((name) => name.startsWith('step:'), () => {}),
      }),
      new JsonlTail(join(dir, 'events.jsonl'), {
        onRecords: (rs) => {
          for (const { value } of rs) if (value !== null && typeof value === 'object') this.events.push(value as Record<string, unknown>);
          this.pendingInfo = true;
        },
        onMalformed: malformed('events.jsonl'),
        onReset: () => ((this.events = []), (this.pendingInfo = true)),
      }),
    ];
    this.refresh();
  }

  /** Calls `f` with every change from now on; returns a function that stops it. */
  subscribe(f: (c: RunChange) => void): () => void {
    this.listeners.add(f);
    return () => this.listeners.delete(f);
  }

  /** Reads what changed in the directory and tells the listeners. */
  refresh(): void {
    for (const t of this.tails) t.poll();
    this.readConfig();
    this.readCheckpoints();
    const change: RunChange = {};
    if (this.pendingReset) change.reset = true;
    else if (Object.keys(this.pendingAppend).length > 0) change.append = this.pendingAppend;
    if (this.pendingInfo) change.info = true;
    this.pendingAppend = {};
    this.pendingReset = false;
    this.pendingInfo = false;
    if (change.reset || change.append || change.info) for (const f of this.listeners) f(change);
  }

  /** Every series, each downsampled to `points` buckets over x in [from, to]. */
  curves(points: number, from?: number, to?: number): Record<string, Curve> {
    const out: Record<string, Curve> = {};
    for (const [name, c] of this.series) out[name] = downsample(c.x, c.y, c.n, points, from, to);
    return out;
  }

  /** What the page shows beside the curves. */
  info(): Record<string, unknown> {
    return {
      dir: this.dir, epochs: this.epochs, latest: this.latest ?? null, events: this.events.slice(-500), config: this.config ?? null,
      checkpoints: this.checkpoints, malformed: this.malformed, skipped: this.skipped, status: this.status(),
      points: Object.fromEntries([...this.series].map(([k, c]) => [k, c.n])),
    };
  }

  /** finished (config.json written), running (the process that started it is alive), or stopped. */
  status(): 'finished' | 'running' | 'stopped' {
    if (this.config !== undefined) return 'finished';
    const start = [...this.events].reverse().find((e) => e.event === 'start' || e.event === 'resume');
    const pid = start?.pid;
    if (typeof pid !== 'number') return 'stopped';
    try {
      process.kill(pid, 0);
      return 'running';
    } catch (e) {
      return (e as NodeJS.ErrnoException).code === 'EPERM' ? 'running' : 'stopped';
    }
  }

  private addEpoch(value: unknown): void {
    if (value === null || typeof value !== 'object' || typeof (value as { epoch?: unknown }).epoch !== 'number') return;
    const record = value as Record<string, unknown> & { epoch: number };
    for (const [name, y] of epochFields(record)) this.add(name, record.epoch, y);
    this.latest = record;
    this.epochs = Math.max(this.epochs, record.epoch);
    this.pendingInfo = true;
  }

  private addStep(value: unknown): void {
    const r = value as { epoch?: unknown; loss?: unknown } | null;
    if (typeof r?.epoch !== 'number') return;
    if (typeof r.loss === 'number') this.add('step:loss', r.epoch, r.loss);
    for (const k in r) {
      const v = (r as Record<string, unknown>)[k];
      if (typeof v === 'number' && k !== 'epoch' && k !== 'step' && k !== 'time' && k !== 'loss') this.add(`step:${k}`, r.epoch, v);
    }
  }

  private add(name: string, x: number, y: number): void {
    let c = this.series.get(name);
    if (c === undefined) this.series.set(name, (c = new Column()));
    c.push(x, y);
    // Nobody follows yet (the first read), or the page reloads everything anyway.
    if (this.listeners.size === 0 || this.pendingReset) return;
    const p = (this.pendingAppend[name] ??= { x: [], y: [] });
    p.x.push(x);
    p.y.push(Number.isFinite(y) ? y : null);
  }

  private resetSeries(which: (name: string) => boolean, also: () => void): void {
    for (const name of [...this.series.keys()]) if (which(name)) this.series.delete(name);
    also();
    this.pendingReset = true;
    this.pendingAppend = {};
    this.pendingInfo = true;
  }

  private readConfig(): void {
    const path = join(this.dir, 'config.json');
    let mtime = 0;
    try {
      mtime = statSync(path).mtimeMs;
    } catch {
      if (this.config !== undefined) ((this.config = undefined), (this.configMtime = 0), (this.pendingInfo = true));
      return;
    }
    if (mtime === this.configMtime) return;
    try {
      this.config = JSON.parse(readFileSync(path, 'utf8'));
      this.configMtime = mtime;
      this.pendingInfo = true;
    } catch {
      // Being written (it is renamed into place whole, so rarely): next time.
    }
  }

  /** DIR/checkpoints/step-NNN/shard-i-of-S.json: a checkpoint is complete when every shard's file is there. */
  private readCheckpoints(): void {
    const root = join(this.dir, 'checkpoints');
    if (!existsSync(root)) return;
    const found: Checkpoint[] = [];
    for (const d of readdirSync(root)) {
      const m = /^step-(\d+)$/.exec(d);
      if (!m) continue;
      let files: string[];
      try {
        files = readdirSync(join(root, d));
      } catch {
        continue;
      }
      const shards = new Set<number>();
      let of = 0;
      for (const f of files) {
        const s = /^shard-(\d+)-of-(\d+)\.json$/.exec(f);
        if (s) ((shards.add(Number(s[1]))), (of = Number(s[2])));
      }
      found.push({ step: Number(m[1]), complete: of > 0 && shards.size === of, shards: of });
    }
    found.sort((a, b) => a.step - b.step);
    const key = JSON.stringify(found);
    if (key !== this.checkpointsKey) ((this.checkpointsKey = key), (this.checkpoints = found), (this.pendingInfo = true));
  }
}

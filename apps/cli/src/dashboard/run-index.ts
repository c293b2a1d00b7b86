/**
 * The runs under a directory (`loom dashboard --runs DIR`): every directory holding a
 * metrics.jsonl — DIR itself, its children and their children — found again every few seconds,
 * so a run started later appears. A run is read (RunState) only once the page asks for it, and
 * from then on followed: fs.watch on its directory wakes it at once, and a timer polls it anyway,
 * since fs.watch misses changes on some file systems (NFS, some containers) or may not be
 * available at all.
 */
import { existsSync, readdirSync, readFileSync, statSync, watch, type FSWatcher } from 'node:fs';
import { join, relative, sep } from 'node:path';
import { RunState } from './run-state.js';

export interface RunSummary {
  /** The path under the runs directory ('.' for the directory itself). */
  id: string;
  /** config.json's task and dataset, once written. */
  task?: string;
  dataset?: string;
  /** metrics.jsonl's last change (ms since 1970). */
  modified: number;
}

/** Directories not searched for runs. */
const SKIP = new Set(['checkpoints', 'node_modules', 'tensorboard']);

export class RunIndex {
  private readonly states = new Map<string, { state: RunState; watcher?: FSWatcher; timer: NodeJS.Timeout }>();
  private list: RunSummary[] = [];
  private listKey = '';
  private readonly scanTimer: NodeJS.Timeout;
  private readonly listeners = new Set<() => void>();

  constructor(
    readonly root: string,
    private readonly o: { pollMs?: number; scanMs?: number } = {},
  ) {
    this.scan();
    this.scanTimer = setInterval(() => this.scan(), o.scanMs ?? 2000);
    this.scanTimer.unref();
  }

  runs(): RunSummary[] {
    return this.list;
  }

  /** Calls `f` whenever the list of runs changes. */
  onList(f: () => void): () => void {
    this.listeners.add(f);
    return () => this.listeners.delete(f);
  }

  /** The run `id` (followed from now on), or undefined when there is no such run. */
  get(id: string): RunState | undefined {
    const known = this.states.get(id);
    if (known) return known.state;
    // A run started since the last scan: look again before saying there is none.
    if (!this.list.some((r) => r.id === id)) this.scan();
    if (!this.list.some((r) => r.id === id)) return undefined;
    const dir = id === '.' ? this.root : join(this.root, id);
    const state = new RunState(dir);
    let pending: NodeJS.Timeout | undefined;
    // Several events come for one write: read once, a moment later.
    const wake = () => (pending ??= setTimeout(() => ((pending = undefined), state.refresh()), 20));
    let watcher: FSWatcher | undefined;
    try {
      watcher = watch(dir, { persistent: false }, wake);
      watcher.on('error', () => watcher?.close());
    } catch {
      // No fs.watch here: the timer alone.
    }
    const timer = setInterval(() => state.refresh(), this.o.pollMs ?? 1000);
    timer.unref();
    this.states.set(id, { state, ...(watcher ? { watcher } : {}), timer });
    return state;
  }

  close(): void {
    clearInterval(this.scanTimer);
    for (const s of this.states.values()) {
      clearInterval(s.timer);
      s.watcher?.close();
    }
    this.states.clear();
  }

  /** Finds the runs again; tells the listeners when the list changed. */
  scan(): void {
    const found: RunSummary[] = [];
    const visit = (dir: string, depth: number) => {
      const metrics = join(dir, 'metrics.jsonl');
      if (existsSync(metrics)) found.push(summary(this.root, dir, metrics));
      if (depth === 2) return;
      let entries;
      try {
        entries = readdirSync(dir, { withFileTypes: true });
      } catch {
        return;
      }
      for (const e of entries) if (e.isDirectory() && !e.name.startsWith('.') && !SKIP.has(e.name)) visit(join(dir, e.name), depth + 1);
    };
    visit(this.root, 0);
    found.sort((a, b) => a.id.localeCompare(b.id));
    const key = JSON.stringify(found.map((r) => [r.id, r.task, r.dataset]));
    this.list = found;
    if (key !== this.listKey) {
      this.listKey = key;
      for (const f of this.listeners) f();
    }
  }
}

function summary(root: string, dir: string, metrics: string): RunSummary {
  const id = relative(root, dir).split(sep).join('/') || '.';
  const s: RunSummary = { id, modified: 0 };
  try {
    s.modified = statSync(metrics).mtimeMs;
  } catch {
    // gone since: the next scan drops it
  }
  try {
    const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as { task?: string; dataset?: string };
    if (typeof config.task === 'string') s.task = config.task;
    if (typeof config.dataset === 'string') s.dataset = config.dataset;
  } catch {
    // not written yet
  }
  return s;
}

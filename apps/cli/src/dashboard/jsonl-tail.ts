/**
 * Following a JSON-lines file that another process appends to (a run's metrics.jsonl, steps.jsonl,
 * events.jsonl), as `tail -F` does: `poll()` reads what was appended since the last call and hands
 * over each complete line parsed. The writer does not know it is read.
 *
 *  - A last line without its newline is still being written: it is held until the newline comes.
 *  - A line that is not JSON is skipped and reported (`onMalformed`), and the lines after it are read.
 *  - A file that was started again (truncated, replaced by a rename, or rewritten with other
 *    first bytes, as `loom train` and `--resume` do) is read again from its start, after `onReset`.
 *  - A missing file is an empty one, until it appears.
 *
 * Synchronous and cheap when nothing changed (one stat). Who calls `poll` and when (fs.watch, a
 * timer) is the caller's business: see run-state.ts.
 */
import { closeSync, openSync, readSync, statSync } from 'node:fs';

export interface TailListener {
  /** Complete lines parsed, in order; `line` counts from 1. */
  onRecords(records: Array<{ value: unknown; line: number }>): void;
  /** A complete line that is not JSON: skipped. */
  onMalformed?(m: { line: number; text: string; error: string }): void;
  /** The file started again: what was handed over before is no longer in it. */
  onReset?(): void;
}

/** How many first bytes are compared to tell a rewritten file from a grown one. */
const HEAD = 64;
/** The most read at once; a bigger backlog is read over several calls of `poll`. */
const CHUNK = 4 << 20;

export class JsonlTail {
  private offset = 0;
  private ino = -1;
  private head = Buffer.alloc(0);
  private pending = '';
  private line = 0;

  constructor(
    readonly path: string,
    private readonly listener: TailListener,
  ) {}

  /** Reads what was appended since the last call. Returns true when anything was handed over. */
  poll(): boolean {
    let fd: number;
    try {
      fd = openSync(this.path, 'r');
    } catch {
      if (this.offset > 0 || this.pending !== '') this.reset();
      return false;
    }
    try {
      const st = statSync(this.path);
      if (st.ino !== this.ino || st.size < this.offset || !this.sameHead(fd)) {
        if (this.ino !== -1 && (this.offset > 0 || this.pending !== '')) this.reset();
        this.ino = st.ino;
        this.offset = 0;
      }
      let any = false;
      while (this.offset < st.size) {
        const buf = Buffer.alloc(Math.min(CHUNK, st.size - this.offset));
        const n = readSync(fd, buf, 0, buf.length, this.offset);
        if (n <= 0) break;
        if (this.offset < HEAD) this.head = Buffer.concat([this.head, buf.subarray(0, Math.min(n, HEAD - this.offset))]);
        this.offset += n;
        any = this.consume(buf.subarray(0, n).toString('utf8')) || any;
      }
      return any;
    } finally {
      closeSync(fd);
    }
  }

  /** The bytes at the start of the file are the ones read before (else it was rewritten). */
  private sameHead(fd: number): boolean {
    if (this.head.length === 0) return true;
    const now = Buffer.alloc(this.head.length);
    const n = readSync(fd, now, 0, now.length, 0);
    return n === now.length && now.equals(this.head);
  }

  private reset(): void {
    this.offset = 0;
    this.head = Buffer.alloc(0);
    this.pending = '';
    this.line = 0;
    this.listener.onReset?.();
  }

  private consume(text: string): boolean {
    const parts = (this.pending + text).split('\n');
    // The last part has no newline after it yet: held until it has.
    this.pending = parts.pop()!;
    const records: Array<{ value: unknown; line: number }> = [];
    for (const raw of parts) {
      this.line++;
      const l = raw.trim();
      if (l === '') continue;
      try {
        records.push({ value: JSON.parse(l), line: this.line });
      } catch (e) {
        this.listener.onMalformed?.({ line: this.line, text: l.slice(0, 200), error: (e as Error).message });
      }
    }
    if (records.length > 0) this.listener.onRecords(records);
    return records.length > 0;
  }
}

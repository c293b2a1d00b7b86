/**
 * Progress reporting: a redrawn bar on a terminal (stderr), and nothing in between epochs otherwise,
 * so logs and pipes get one plain line per epoch.
 */
export class Progress {
  private last = 0;
  private readonly tty = process.stderr.isTTY === true;

  /** Redraws the bar (at most every 100 ms). */
  update(label: string, done: number, total: number, extra = ''): void {
    if (!this.tty) return;
    const now = performance.now();
    if (now - this.last < 100 && done < total) return;
    this.last = now;
    const width = 30;
    const filled = Math.round((width * done) / Math.max(total, 1));
    process.stderr.write(`\r${label} [${'#'.repeat(filled)}${' '.repeat(width - filled)}] ${Math.round((100 * done) / Math.max(total, 1))}% ${extra}\x1b[K`);
  }

  /** Clears the bar before a plain line is printed. */
  clear(): void {
    if (this.tty) process.stderr.write('\r\x1b[K');
  }
}

/**
 * Refused connections written to a log without letting the peers fill it. Within a window (10 s),
 * the first refusal from an address is written in full; the others from that address are counted
 * by kind and written as one line when the window ends:
 *
 *     refused 127.0.0.1:50412: bad token (hello with a wrong token)
 *     refused 1,000 connections from 127.0.0.1 in 10 s (bad token 990, no hello 10)
 *
 * At most `maxAddresses` addresses are followed per window; refusals from any further address are
 * only counted, on one line of their own. So a window writes at most 2·maxAddresses + 1 lines and
 * holds at most maxAddresses small records, whatever the peers do.
 *
 * Pure: time comes from `now`, and nothing is scheduled. A window ends at the first refusal or
 * `flush()` after `windowMs`; the owner calls `flush()` then (see `dueIn`) and `end()` when it
 * closes. The servers' Gate (./gate.ts) does both.
 *
 * @example
 * const refusals = new RefusalLog({ log: console.error });
 * refusals.refused('10.0.0.9', 50412, 'bad token', 'hello with a wrong token'); // written
 * refusals.refused('10.0.0.9', 50413, 'bad token');                             // counted
 * refusals.end(); // "refused 2 connections from 10.0.0.9 in 0 s (bad token 2)"
 */
export interface RefusalLogOptions {
  /** Where lines go. */
  log: (line: string) => void;
  /** The window, in ms (default 10 s). */
  windowMs?: number;
  /** Addresses written in full per window (default 16). */
  maxAddresses?: number;
  /** A monotonic clock in ms (default `performance.now`). */
  now?: () => number;
}

/** Refusals in the current window, by kind. */
type Counts = Map<string, number>;

const n = (x: number) => x.toLocaleString('en-US');

export class RefusalLog {
  /** Every refusal since this log was made, by kind. */
  readonly totals: Record<string, number> = {};
  readonly windowMs: number;
  private readonly log: (line: string) => void;
  private readonly maxAddresses: number;
  private readonly now: () => number;
  /** When the current window opened (NaN: none is open). */
  private opened = NaN;
  private readonly byAddress = new Map<string, Counts>();
  /** Refusals from addresses past maxAddresses, this window. */
  private readonly others: Counts = new Map();

  constructor(o: RefusalLogOptions) {
    this.log = o.log;
    this.windowMs = o.windowMs ?? 10_000;
    this.maxAddresses = o.maxAddresses ?? 16;
    this.now = o.now ?? (() => performance.now());
    if (!(this.windowMs > 0)) throw new RangeError(`RefusalLog: windowMs must be > 0, got ${this.windowMs}`);
    if (!(Number.isInteger(this.maxAddresses) && this.maxAddresses >= 1)) throw new RangeError(`RefusalLog: maxAddresses must be an integer ≥ 1, got ${this.maxAddresses}`);
  }

  /**
   * Records one refused connection from `address` (its `port` only goes into a line written in
   * full). `kind` is the short label summaries count by ('bad token', 'no hello', …); `detail`
   * says more, on the full line only. Never pass a secret in either.
   */
  refused(address: string, port: number | undefined, kind: string, detail?: string): void {
    this.flush();
    if (Number.isNaN(this.opened)) this.opened = this.now();
    this.totals[kind] = (this.totals[kind] ?? 0) + 1;
    let counts = this.byAddress.get(address);
    if (counts === undefined && this.byAddress.size < this.maxAddresses) {
      this.byAddress.set(address, (counts = new Map()));
      this.log(`refused ${address}${port !== undefined ? `:${port}` : ''}: ${kind}${detail ? ` (${detail})` : ''}`);
    }
    const into = counts ?? this.others;
    into.set(kind, (into.get(kind) ?? 0) + 1);
  }

  /** Ms until the open window ends (0: it has), or null when no window is open. */
  dueIn(): number | null {
    return Number.isNaN(this.opened) ? null : Math.max(0, this.opened + this.windowMs - this.now());
  }

  /** Writes the summaries of the window if it has ended. */
  flush(): void {
    if (this.dueIn() === 0) this.end();
  }

  /** Writes the summaries of the open window now, and closes it (at shutdown). */
  end(): void {
    if (Number.isNaN(this.opened)) return;
    const seconds = Math.round(Math.min(this.now() - this.opened, this.windowMs) / 1000);
    const line = (counts: Counts, from: string) => {
      const total = [...counts.values()].reduce((a, b) => a + b, 0);
      const kinds = [...counts].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1)).map(([k, c]) => `${k} ${n(c)}`);
      this.log(`refused ${n(total)} connection${total === 1 ? '' : 's'} from ${from} in ${seconds} s (${kinds.join(', ')})`);
    };
    for (const [address, counts] of this.byAddress) {
      // The first was written in full; one alone needs no summary.
      if ([...counts.values()].reduce((a, b) => a + b, 0) > 1) line(counts, address);
    }
    if (this.others.size > 0) line(this.others, `other addresses (over ${this.maxAddresses} this window)`);
    this.byAddress.clear();
    this.others.clear();
    this.opened = NaN;
  }
}

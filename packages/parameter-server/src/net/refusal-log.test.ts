// RefusalLog on a clock the test moves: what is written in full, what is counted, and when.
import { describe, expect, it } from 'vitest';
import { RefusalLog } from './refusal-log.js';

function make(o: { windowMs?: number; maxAddresses?: number } = {}) {
  let t = 1000;
  const lines: string[] = [];
  const log = new RefusalLog({ log: (l) => void lines.push(l), now: () => t, ...o });
  return { log, lines, advance: (ms: number) => void (t += ms) };
}

describe('RefusalLog', () => {
  it('writes the first refusal from an address in full and counts the rest into one line per window', () => {
    const { log, lines, advance } = make();
    log.refused('127.0.0.1', 50000, 'bad token', 'hello with a wrong token');
    for (let i = 1; i < 990; i++) log.refused('127.0.0.1', 50000 + i, 'bad token', 'hello with a wrong token');
    for (let i = 0; i < 10; i++) log.refused('127.0.0.1', 51000 + i, 'no hello');
    expect(lines).toEqual(['refused 127.0.0.1:50000: bad token (hello with a wrong token)']);
    advance(9_999);
    log.flush();
    expect(lines).toHaveLength(1); // the window is still open
    advance(1);
    log.flush();
    expect(lines.slice(1)).toEqual(['refused 1,000 connections from 127.0.0.1 in 10 s (bad token 990, no hello 10)']);
    log.flush();
    expect(lines).toHaveLength(2);
    expect(log.totals).toEqual({ 'bad token': 990, 'no hello': 10 });
  });

  it('starts a new window with the first refusal after the last one ended, written in full again', () => {
    const { log, lines, advance } = make({ windowMs: 1000 });
    log.refused('10.0.0.1', 1, 'bad token');
    log.refused('10.0.0.1', 2, 'bad token');
    advance(1500);
    log.refused('10.0.0.1', 3, 'no hello'); // ends the first window, opens the next
    expect(lines).toEqual([
      'refused 10.0.0.1:1: bad token',
      'refused 2 connections from 10.0.0.1 in 1 s (bad token 2)',
      'refused 10.0.0.1:3: no hello',
    ]);
    log.end(); // one alone needs no summary
    expect(lines).toHaveLength(3);
    expect(log.dueIn()).toBeNull();
  });

  it('follows at most maxAddresses addresses per window; the others share one line', () => {
    const { log, lines } = make({ maxAddresses: 2 });
    for (let i = 0; i < 1000; i++) log.refused(`10.0.${i >> 8}.${i & 255}`, 7, i % 2 ? 'bad token' : 'no upgrade');
    log.end();
    expect(lines).toEqual([
      'refused 10.0.0.0:7: no upgrade',
      'refused 10.0.0.1:7: bad token',
      'refused 998 connections from other addresses (over 2 this window) in 0 s (bad token 499, no upgrade 499)',
    ]);
  });

  it('says when its window is due, and rejects a window or address count that makes no sense', () => {
    const { log, advance } = make({ windowMs: 500 });
    expect(log.dueIn()).toBeNull();
    log.refused('::1', undefined, 'bad token');
    advance(200);
    expect(log.dueIn()).toBe(300);
    expect(() => new RefusalLog({ log: () => {}, windowMs: 0 })).toThrow('windowMs must be > 0, got 0');
    expect(() => new RefusalLog({ log: () => {}, maxAddresses: 0 })).toThrow('maxAddresses must be an integer ≥ 1, got 0');
  });
});

// The page's reading of events.jsonl (static/dashboard/membership.js), tested here in Node.
import { describe, expect, it } from 'vitest';
// @ts-expect-error a plain JavaScript module of the page, without types
import { membership } from '../../static/dashboard/membership.js';

describe('membership(events.jsonl)', () => {
  it('a worker killed with SIGKILL is dropped, whichever of its exit and the server\'s drop comes first', () => {
    const events = [
      { time: 1, event: 'started', role: 'server', shard: '0/1', pid: 10 },
      { time: 2, event: 'joined', role: 'server', shard: '0/1', address: 'ws://127.0.0.1:1' },
      { time: 3, event: 'started', role: 'worker', rank: 0, pid: 11 },
      { time: 3, event: 'started', role: 'worker', rank: 1, pid: 12 },
      { time: 3, event: 'started', role: 'worker', rank: 2, pid: 13 },
      { time: 4, event: 'exited', role: 'worker', rank: 1, code: null, signal: 'SIGKILL' },
      { time: 4, event: 'dropped', role: 'worker', rank: 1, step: 44, why: 'disconnected (1006)' },
      { time: 5, event: 'dropped', role: 'worker', rank: 2, step: 50, why: 'silent for 30000 ms' },
      { time: 6, event: 'exited', role: 'worker', rank: 2, code: null, signal: 'SIGKILL' },
      { time: 7, event: 'exited', role: 'worker', rank: 0, code: 0, signal: null },
    ];
    const { workers, servers } = membership(events);
    expect(workers.get(0).state).toBe('finished');
    expect(workers.get(1).state).toBe('dropped');
    expect(workers.get(1).note).toContain('SIGKILL');
    expect(workers.get(1).note).toContain('at step 44');
    expect(workers.get(2).state).toBe('dropped');
    expect(workers.get(2).note).toBe('SIGKILL; at step 50: silent for 30000 ms');
    expect(servers.get('0/1')).toMatchObject({ state: 'joined', address: 'ws://127.0.0.1:1', pid: 10 });
  });

  it('a worker that comes back is readmitted', () => {
    const { workers } = membership([
      { time: 1, event: 'started', role: 'worker', rank: 3 },
      { time: 2, event: 'dropped', role: 'worker', rank: 3, step: 7, why: 'connection lost' },
      { time: 3, event: 'readmitted', role: 'worker', rank: 3, step: 9 },
    ]);
    expect(workers.get(3)).toMatchObject({ state: 'readmitted', note: 'from step 9' });
  });
});

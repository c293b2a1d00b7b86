// Who is in a run, from its events.jsonl (written by loom train --cluster: orchestration/group.ts):
// each worker and server with its state — joined, dropped, readmitted, finished, killed — and
// how it got there. Pure: tested in apps/cli/src/dashboard/membership.test.ts.

/**
 * @param {Array<Record<string, unknown>>} events events.jsonl's lines, in order
 * @returns {{ workers: Map<number, Member>, servers: Map<string, Member> }}
 * @typedef {{ state: string, note: string, pid?: number, address?: string, since: number }} Member
 */
export function membership(events) {
  const workers = new Map();
  const servers = new Map();
  for (const e of events) {
    if (e.role !== 'worker' && e.role !== 'server') continue;
    const table = e.role === 'worker' ? workers : servers;
    const key = e.role === 'worker' ? e.rank : e.shard;
    if (key === undefined) continue;
    const m = table.get(key) ?? { state: 'joined', note: '', since: e.time };
    const set = (state, note) => Object.assign(m, { state, note, since: e.time });
    switch (e.event) {
      case 'started':
        if (typeof e.pid === 'number') m.pid = e.pid;
        set('joined', e.role === 'server' ? 'starting' : '');
        break;
      case 'joined':
        if (typeof e.address === 'string') m.address = e.address;
        set('joined', '');
        break;
      case 'dropped':
        set('dropped', [m.note, `at step ${e.step}: ${e.why ?? ''}`].filter(Boolean).join('; '));
        break;
      case 'readmitted':
        set('readmitted', `from step ${e.step}`);
        break;
      case 'exited':
        if (e.signal) {
          // A killed worker is dropped by the servers: whichever line came first, it shows as dropped.
          if (m.state === 'dropped') m.note = `${e.signal}; ${m.note}`;
          else set(e.role === 'worker' ? 'dropped' : 'killed', `killed (${e.signal})`);
        } else if (m.state !== 'dropped') set(e.code === 0 ? 'finished' : 'failed', e.code === 0 ? '' : `exit code ${e.code}`);
        break;
    }
    table.set(key, m);
  }
  return { workers, servers };
}

import { describe, expect, it } from 'vitest';
import { describeRendezvous, expandNodelist, parseHostPort, resolveRendezvous } from './rendezvous.js';

const torchrun = { MASTER_ADDR: '10.0.0.1', MASTER_PORT: '29500', RANK: '2', WORLD_SIZE: '4' };
const slurm = { SLURM_PROCID: '1', SLURM_NTASKS: '3', SLURM_NODELIST: 'gpu[07-09]' };
const k8s = { JOB_COMPLETION_INDEX: '3', WORLD_SIZE: '4', MASTER_ADDR: 'loom-0.loom', MASTER_PORT: '7070' };

describe('resolveRendezvous: each scheduler alone', () => {
  it('flags', () => {
    expect(resolveRendezvous({ nodes: 3, nodeRank: 2, master: 'a.example:9000' }, {})).toEqual({
      nodes: 3, nodeRank: 2, masterHost: 'a.example', masterPort: 9000,
      source: { nodes: '--nodes', nodeRank: '--node-rank', masterHost: '--master', masterPort: '--master' },
    });
  });

  it('torchrun: MASTER_ADDR, MASTER_PORT, RANK, WORLD_SIZE', () => {
    expect(resolveRendezvous({}, torchrun)).toEqual({
      nodes: 4, nodeRank: 2, masterHost: '10.0.0.1', masterPort: 29500,
      source: { nodes: 'WORLD_SIZE', nodeRank: 'RANK', masterHost: 'MASTER_ADDR', masterPort: 'MASTER_PORT' },
    });
  });

  it('Slurm: SLURM_PROCID, SLURM_NTASKS, and the first host of SLURM_NODELIST on the default port', () => {
    expect(resolveRendezvous({}, slurm)).toEqual({
      nodes: 3, nodeRank: 1, masterHost: 'gpu07', masterPort: 7070,
      source: { nodes: 'SLURM_NTASKS', nodeRank: 'SLURM_PROCID', masterHost: 'SLURM_NODELIST', masterPort: 'default' },
    });
  });

  it('Kubernetes indexed Job: JOB_COMPLETION_INDEX, with WORLD_SIZE and MASTER_ADDR from the manifest', () => {
    expect(resolveRendezvous({}, k8s)).toMatchObject({ nodes: 4, nodeRank: 3, masterHost: 'loom-0.loom', masterPort: 7070, source: { nodeRank: 'JOB_COMPLETION_INDEX' } });
  });

  it('one node and nothing set: a local run', () => {
    expect(resolveRendezvous({}, {})).toEqual({
      nodes: 1, nodeRank: 0, masterHost: '127.0.0.1', masterPort: 7070,
      source: { nodes: 'default', nodeRank: 'default', masterHost: 'default', masterPort: 'default' },
    });
  });
});

describe('resolveRendezvous: precedence is flags, then torchrun, then Slurm, then Kubernetes, field by field', () => {
  const all = { ...slurm, ...k8s, ...torchrun };
  it('flags beat every variable', () => {
    const r = resolveRendezvous({ nodes: 5, nodeRank: 4, master: 'm:1234' }, all);
    expect([r.nodes, r.nodeRank, r.masterHost, r.masterPort]).toEqual([5, 4, 'm', 1234]);
  });
  it('torchrun beats Slurm and Kubernetes', () => {
    const r = resolveRendezvous({}, all);
    expect([r.nodes, r.nodeRank, r.masterHost, r.masterPort]).toEqual([4, 2, '10.0.0.1', 29500]);
  });
  it('Slurm beats Kubernetes', () => {
    const r = resolveRendezvous({}, { ...slurm, JOB_COMPLETION_INDEX: '0' });
    expect(r.nodeRank).toBe(1);
  });
  it('a flag for one field leaves the others to the environment', () => {
    const r = resolveRendezvous({ nodeRank: 0 }, slurm);
    expect(r).toMatchObject({ nodes: 3, nodeRank: 0, masterHost: 'gpu07', source: { nodeRank: '--node-rank', nodes: 'SLURM_NTASKS' } });
    expect(resolveRendezvous({ master: 'x' }, torchrun)).toMatchObject({ masterHost: 'x', masterPort: 29500, source: { masterPort: 'MASTER_PORT' } });
    expect(resolveRendezvous({}, { ...slurm, MASTER_PORT: '5000' })).toMatchObject({ masterHost: 'gpu07', masterPort: 5000 });
  });
  it('empty variables count as unset', () => {
    expect(resolveRendezvous({}, { ...slurm, RANK: '', WORLD_SIZE: ' ', MASTER_ADDR: '' })).toMatchObject({ nodes: 3, nodeRank: 1, masterHost: 'gpu07' });
  });
  it('describes where each field came from', () => {
    expect(describeRendezvous(resolveRendezvous({}, slurm))).toBe('node 1 of 3 (SLURM_PROCID of SLURM_NTASKS), master gpu07:7070 (SLURM_NODELIST, default port)');
    expect(describeRendezvous(resolveRendezvous({ nodes: 2, nodeRank: 1, master: 'h:1' }, {}))).toBe('node 1 of 2 (--node-rank of --nodes), master h:1 (--master)');
  });
});

describe('resolveRendezvous: errors name the flag or variable', () => {
  const err = (flags: object, env: Record<string, string>) => () => resolveRendezvous(flags, env);
  it('bad numbers', () => {
    expect(err({}, { ...torchrun, RANK: 'two' })).toThrow("RANK must be a whole number ≥ 0, got 'two'");
    expect(err({}, { ...torchrun, WORLD_SIZE: '0' })).toThrow("WORLD_SIZE must be a whole number ≥ 1, got '0'");
    expect(err({}, { ...slurm, SLURM_PROCID: '-1' })).toThrow("SLURM_PROCID must be a whole number ≥ 0, got '-1'");
    expect(err({}, { ...k8s, JOB_COMPLETION_INDEX: '1.5' })).toThrow("JOB_COMPLETION_INDEX must be a whole number ≥ 0, got '1.5'");
    expect(err({}, { ...torchrun, MASTER_PORT: '70000' })).toThrow('MASTER_PORT must be a port, 1 … 65535, got 70000');
    expect(err({}, { ...torchrun, MASTER_PORT: 'http' })).toThrow("MASTER_PORT must be a whole number ≥ 1, got 'http'");
  });
  it('a rank past the nodes, naming both sources', () => {
    expect(err({}, { ...slurm, SLURM_PROCID: '3' })).toThrow('node rank 3 (from SLURM_PROCID) must be less than the number of nodes, 3 (from SLURM_NTASKS)');
    expect(err({ nodes: 2 }, { RANK: '2' })).toThrow('node rank 2 (from RANK) must be less than the number of nodes, 2 (from --nodes)');
  });
  it('missing rank or master for several nodes', () => {
    expect(err({ nodes: 2, master: 'm' }, {})).toThrow(/no node rank for a run of 2 nodes \(from --nodes\): pass --node-rank R, or set RANK \(torchrun\), SLURM_PROCID \(Slurm\) or JOB_COMPLETION_INDEX/);
    expect(err({ nodes: 2, nodeRank: 1 }, {})).toThrow(/no master for a run of 2 nodes: pass --master HOST:PORT, or set MASTER_ADDR \(torchrun\) or SLURM_NODELIST/);
    expect(err({}, { JOB_COMPLETION_INDEX: '1', WORLD_SIZE: '2' })).toThrow(/MASTER_ADDR=JOB-0\.SERVICE, see deploy\/k8s\.yaml/);
  });
  it('bad addresses', () => {
    expect(err({ master: 'a:b:c' }, {})).toThrow("--master must be HOST or HOST:PORT, got 'a:b:c'");
    expect(err({ master: 'a:0' }, {})).toThrow("--master: the port must be 1 … 65535, got '0' in 'a:0'");
    expect(err({}, { ...torchrun, MASTER_ADDR: '10.0.0.1:29500' })).toThrow("MASTER_ADDR must be HOST (the port goes in MASTER_PORT), got '10.0.0.1:29500'");
    expect(err({}, { ...slurm, SLURM_NODELIST: 'gpu[07-' })).toThrow("SLURM_NODELIST: '[' without ']' in 'gpu[07-'");
  });
});

describe('parseHostPort', () => {
  it('host, host:port, [IPv6]:port, and a bare IPv6 MASTER_ADDR', () => {
    expect(parseHostPort('h', 'x')).toEqual({ host: 'h' });
    expect(parseHostPort('10.1.2.3:80', 'x')).toEqual({ host: '10.1.2.3', port: 80 });
    expect(parseHostPort('[fd00::1]:7070', 'x')).toEqual({ host: 'fd00::1', port: 7070 });
    expect(parseHostPort('fd00::1', 'MASTER_ADDR', false)).toEqual({ host: 'fd00::1' });
  });
});

describe('expandNodelist (SLURM_NODELIST)', () => {
  it('expands ranges, lists, zero padding and several groups, as scontrol show hostnames does', () => {
    expect(expandNodelist('node[01-03,07]')).toEqual(['node01', 'node02', 'node03', 'node07']);
    expect(expandNodelist('a1,b[2-3],c')).toEqual(['a1', 'b2', 'b3', 'c']);
    expect(expandNodelist('r[1-2]n[08-10]')).toEqual(['r1n08', 'r1n09', 'r1n10', 'r2n08', 'r2n09', 'r2n10']);
    expect(expandNodelist('10.77.0.[1-3]')).toEqual(['10.77.0.1', '10.77.0.2', '10.77.0.3']);
    expect(expandNodelist('n[8-10]')).toEqual(['n8', 'n9', 'n10']); // padding follows the first bound
    expect(expandNodelist('single')).toEqual(['single']);
  });
  it('refuses what is not a host list', () => {
    expect(() => expandNodelist('n[3-1]')).toThrow("SLURM_NODELIST: the range 3-1 runs backwards in 'n[3-1]'");
    expect(() => expandNodelist('n[a-b]')).toThrow("'a-b' is not N or N-M");
    expect(() => expandNodelist('n[[1]]')).toThrow('nested [');
    expect(() => expandNodelist('n1]')).toThrow("']' without '['");
    expect(() => expandNodelist('a,,b')).toThrow('an empty host name');
    expect(() => expandNodelist('n[0-99999999]')).toThrow('more than 100000 hosts');
  });
});

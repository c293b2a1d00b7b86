/**
 * Where one node of a `loom launch` run stands: how many nodes there are, which one this is, and
 * where the master (node 0, which also runs the parameter servers) listens. A pure function of the
 * flags and the environment, so the same command works under every common scheduler:
 *
 * | field     | flag                 | torchrun     | Slurm                         | Kubernetes indexed Job |
 * |-----------|----------------------|--------------|-------------------------------|------------------------|
 * | nodes     | --nodes N            | WORLD_SIZE   | SLURM_NTASKS                  | (WORLD_SIZE, set in the manifest) |
 * | node rank | --node-rank R        | RANK         | SLURM_PROCID                  | JOB_COMPLETION_INDEX   |
 * | master    | --master HOST[:PORT] | MASTER_ADDR  | the first host of SLURM_NODELIST | (MASTER_ADDR = JOB-0.SERVICE) |
 * | port      | --master HOST:PORT   | MASTER_PORT  | (MASTER_PORT)                 | (MASTER_PORT)          |
 *
 * Each field is taken from the first column that has it, left to right: flags, then torchrun's
 * variables, then Slurm's, then Kubernetes'. One `loom launch` runs per node, so RANK and
 * WORLD_SIZE count nodes, as the PyTorch operator for Kubernetes sets them. With one node and
 * nothing set, the run is local: rank 0, master 127.0.0.1. The port defaults to 7070.
 *
 * @example
 *   resolveRendezvous({}, { SLURM_PROCID: '1', SLURM_NTASKS: '3', SLURM_NODELIST: 'gpu[07-09]' })
 *   // → { nodes: 3, nodeRank: 1, masterHost: 'gpu07', masterPort: 7070, source: { nodes: 'SLURM_NTASKS', … } }
 */
import { UsageError } from './errors.js';

export const DEFAULT_MASTER_PORT = 7070;

export interface RendezvousFlags {
  nodes?: number;
  nodeRank?: number;
  /** HOST or HOST:PORT ([v6::addr]:PORT for IPv6). */
  master?: string;
}

export type Env = Readonly<Record<string, string | undefined>>;

export interface Rendezvous {
  nodes: number;
  nodeRank: number;
  masterHost: string;
  masterPort: number;
  /** Where each field came from: a flag, a variable, or 'default'. */
  source: { nodes: string; nodeRank: string; masterHost: string; masterPort: string };
}

/** Bounds SLURM_NODELIST expansion (a typo like node[1-999999999] must not exhaust memory). */
const MAX_HOSTS = 100_000;

/** Resolves the rendezvous of this node; throws a UsageError naming the flag or variable at fault. */
export function resolveRendezvous(flags: RendezvousFlags, env: Env): Rendezvous {
  const get = (name: string): string | undefined => {
    const v = env[name];
    return v === undefined || v.trim() === '' ? undefined : v.trim();
  };
  const int = (name: string, text: string, min: number): number => {
    if (!/^\d+$/.test(text) || Number(text) < min || !Number.isSafeInteger(Number(text))) {
      throw new UsageError(`${name} must be a whole number ≥ ${min}, got '${text}'`);
    }
    return Number(text);
  };

  let master: { host: string; port?: number } | undefined;
  if (flags.master !== undefined) master = parseHostPort(flags.master, '--master');

  // nodes
  let nodes: number | undefined;
  let nodesFrom = 'default';
  if (flags.nodes !== undefined) [nodes, nodesFrom] = [flags.nodes, '--nodes'];
  else {
    for (const name of ['WORLD_SIZE', 'SLURM_NTASKS']) {
      const v = get(name);
      if (v !== undefined) {
        [nodes, nodesFrom] = [int(name, v, 1), name];
        break;
      }
    }
  }
  nodes ??= 1;
  if (nodes < 1) throw new UsageError(`--nodes must be at least 1, got ${nodes}`);

  // node rank
  let nodeRank: number | undefined;
  let rankFrom = 'default';
  if (flags.nodeRank !== undefined) [nodeRank, rankFrom] = [flags.nodeRank, '--node-rank'];
  else {
    for (const name of ['RANK', 'SLURM_PROCID', 'JOB_COMPLETION_INDEX']) {
      const v = get(name);
      if (v !== undefined) {
        [nodeRank, rankFrom] = [int(name, v, 0), name];
        break;
      }
    }
  }
  if (nodeRank === undefined) {
    if (nodes > 1) {
      throw new UsageError(`no node rank for a run of ${nodes} nodes (from ${nodesFrom}): pass --node-rank R, or set RANK (torchrun), SLURM_PROCID (Slurm) or JOB_COMPLETION_INDEX (Kubernetes)`);
    }
    nodeRank = 0;
  }
  if (nodeRank >= nodes) throw new UsageError(`node rank ${nodeRank} (from ${rankFrom}) must be less than the number of nodes, ${nodes} (from ${nodesFrom})`);

  // master host
  let masterHost: string | undefined;
  let hostFrom = 'default';
  if (master !== undefined) [masterHost, hostFrom] = [master.host, '--master'];
  else if (get('MASTER_ADDR') !== undefined) [masterHost, hostFrom] = [parseHostPort(get('MASTER_ADDR')!, 'MASTER_ADDR', false).host, 'MASTER_ADDR'];
  else if (get('SLURM_NODELIST') !== undefined) [masterHost, hostFrom] = [expandNodelist(get('SLURM_NODELIST')!)[0]!, 'SLURM_NODELIST'];
  if (masterHost === undefined) {
    if (nodes > 1) {
      const k8s = rankFrom === 'JOB_COMPLETION_INDEX' ? ' (in a Kubernetes indexed Job: MASTER_ADDR=JOB-0.SERVICE, see deploy/k8s.yaml)' : '';
      throw new UsageError(`no master for a run of ${nodes} nodes: pass --master HOST:PORT, or set MASTER_ADDR (torchrun) or SLURM_NODELIST (Slurm)${k8s}`);
    }
    masterHost = '127.0.0.1';
  }

  // master port
  let masterPort = DEFAULT_MASTER_PORT;
  let portFrom = 'default';
  if (master?.port !== undefined) [masterPort, portFrom] = [master.port, '--master'];
  else if (get('MASTER_PORT') !== undefined) {
    masterPort = int('MASTER_PORT', get('MASTER_PORT')!, 1);
    if (masterPort > 65535) throw new UsageError(`MASTER_PORT must be a port, 1 … 65535, got ${masterPort}`);
    portFrom = 'MASTER_PORT';
  }
  return { nodes, nodeRank, masterHost, masterPort, source: { nodes: nodesFrom, nodeRank: rankFrom, masterHost: hostFrom, masterPort: portFrom } };
}

/** One line for the log: "node 1 of 3 (SLURM_PROCID of SLURM_NTASKS), master gpu07:7070 (SLURM_NODELIST, default port)". */
export function describeRendezvous(r: Rendezvous): string {
  const port = r.source.masterPort === r.source.masterHost ? '' : r.source.masterPort === 'default' ? ', default port' : `, ${r.source.masterPort}`;
  return `node ${r.nodeRank} of ${r.nodes} (${r.source.nodeRank} of ${r.source.nodes}), master ${r.masterHost}:${r.masterPort} (${r.source.masterHost}${port})`;
}

/**
 * Parses HOST, HOST:PORT or [IPv6]:PORT; `what` names the flag or variable in errors. With
 * `allowPort` false a port is an error (MASTER_ADDR holds an address only; MASTER_PORT the port).
 */
export function parseHostPort(text: string, what: string, allowPort = true): { host: string; port?: number } {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^\s:[\]/]+))(?::(\d*))?$/.exec(text.trim());
  const bad = () => new UsageError(`${what} must be HOST${allowPort ? ' or HOST:PORT' : ' (the port goes in MASTER_PORT)'}, got '${text}'`);
  if (!m) {
    // A bare IPv6 address (no brackets, no port) is a host.
    if (/^[0-9a-fA-F]*:[0-9a-fA-F:.]+$/.test(text.trim()) && !allowPort) return { host: text.trim() };
    throw bad();
  }
  const host = (m[1] ?? m[2])!;
  if (m[3] === undefined) return { host };
  if (!allowPort) throw bad();
  const port = Number(m[3]);
  if (m[3] === '' || !Number.isInteger(port) || port < 1 || port > 65535) throw new UsageError(`${what}: the port must be 1 … 65535, got '${m[3]}' in '${text}'`);
  return { host, port };
}

/**
 * Expands a Slurm host list: `node[01-03,07],gpu1` → node01 node02 node03 node07 gpu1. Zero
 * padding follows the range's first bound; several bracket groups in one name multiply
 * (`r[1-2]n[1-2]` → r1n1 r1n2 r2n1 r2n2), as in Slurm's own `scontrol show hostnames`.
 */
export function expandNodelist(list: string, what = 'SLURM_NODELIST'): string[] {
  const bad = (why: string) => new UsageError(`${what}: ${why} in '${list}'`);
  // Split on commas outside brackets.
  const items: string[] = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i <= list.length; i++) {
    const c = list[i];
    if (c === '[') {
      if (depth++ > 0) throw bad('nested [');
    } else if (c === ']') {
      if (--depth < 0) throw bad("']' without '['");
    } else if ((c === ',' && depth === 0) || c === undefined) {
      if (c === undefined && depth !== 0) throw bad("'[' without ']'");
      const item = list.slice(start, i).trim();
      if (item === '') throw bad('an empty host name');
      items.push(item);
      start = i + 1;
    }
  }
  const hosts: string[] = [];
  for (const item of items) {
    let names = [''];
    for (const part of item.split(/(\[[^\]]*\])/)) {
      if (part === '') continue;
      let choices: string[];
      if (part.startsWith('[')) {
        choices = [];
        for (const range of part.slice(1, -1).split(',')) {
          const m = /^(\d+)(?:-(\d+))?$/.exec(range.trim());
          if (!m) throw bad(`'${range}' is not N or N-M`);
          const [lo, hi] = [Number(m[1]), Number(m[2] ?? m[1])];
          if (hi < lo) throw bad(`the range ${range} runs backwards`);
          if (hi - lo + 1 > MAX_HOSTS) throw bad(`more than ${MAX_HOSTS} hosts`);
          const width = m[1]!.length;
          for (let n = lo; n <= hi; n++) choices.push(String(n).padStart(width, '0'));
        }
      } else {
        if (/\s/.test(part)) throw bad(`'${part}' holds a space`);
        choices = [part];
      }
      if (names.length * choices.length > MAX_HOSTS) throw bad(`more than ${MAX_HOSTS} hosts`);
      names = names.flatMap((n) => choices.map((c) => n + c));
    }
    hosts.push(...names);
    if (hosts.length > MAX_HOSTS) throw bad(`more than ${MAX_HOSTS} hosts`);
  }
  return hosts;
}

// Where the soak's processes run: one network namespace per host — two server hosts, three worker
// hosts — joined by a bridge in a switch namespace, as test/launch-netns.test.ts builds them, plus a
// veth from this (the root) namespace to the bridge, so that the driver's own connections (its
// observer and the injector) come from an address of their own. Needs root and `ip` (iproute2).
// Without them the same processes run on 127.0.0.1 (`loopback`), and there is no link to throttle.
//
// A link is throttled with `tc qdisc … netem delay 20ms loss 1%` on both ends of a worker host's
// veth when the kernel has netem (sch_netem); else with tbf, a rate limit (no delay, no loss), when
// it has that; else not at all. `throttle.how` says which, and why.
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';

const has = (cmd) => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;

/** Why network namespaces cannot be used here, or null when they can. */
export function whyNoNetns() {
  if (process.getuid?.() !== 0) return 'not root';
  if (!has('ip')) return '`ip` (iproute2) is missing';
  return null;
}

const run = (cmd, args) => execFileSync(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] });
const tryRun = (cmd, args) => {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  return r.status === 0 ? null : (r.stderr || r.error?.message || `exit ${r.status}`).trim().split('\n')[0];
};

/** A 10.x.y.0/24 that no route of this namespace covers more specifically than the default route. */
function freeSubnet() {
  for (let tries = 0; tries < 50; tries++) {
    const [a, b] = randomBytes(2);
    const net = `10.${200 + (a % 50)}.${b}`;
    const r = spawnSync('ip', ['-4', 'route', 'get', `${net}.1`], { encoding: 'utf8' });
    const overlaps = spawnSync('ip', ['-4', 'addr', 'show'], { encoding: 'utf8' }).stdout.includes(` ${net}.`);
    // Reached through the default gateway (or unreachable): nothing here uses it.
    if (!overlaps && (r.status !== 0 || / via /.test(r.stdout))) return net;
  }
  throw new Error('no free 10.x.y.0/24 subnet for the soak\'s namespaces');
}

/**
 * The soak's hosts: `servers` and `workers` (ids 's0', 's1', 'w0', …). `addr(host)` is the address
 * a server listens on; `command(host, argv)` the command line that runs `argv` on it; `throttle`
 * slows one worker host's link. `tearDown()` kills what still runs in the namespaces and removes
 * them (and with the switch, the veth to this namespace).
 */
export function makeHosts({ servers, workers, loopback }) {
  const ids = [...Array.from({ length: servers }, (_, i) => `s${i}`), ...Array.from({ length: workers }, (_, i) => `w${i}`)];
  if (loopback) {
    return {
      kind: 'loopback', driverAddr: '127.0.0.1', addr: () => '127.0.0.1', command: (_host, argv) => argv,
      throttle: { how: 'none: every process is on 127.0.0.1 (loopback fallback), with no link of its own', on: () => {}, off: () => {} },
      tearDown: () => {},
    };
  }
  const id = randomBytes(3).toString('hex');
  const net = freeSubnet();
  const sw = `loom${id}sw`;
  const ns = (host) => `loom${id}${host}`;
  const hostAddr = (host) => `${net}.${host[0] === 's' ? 1 + Number(host.slice(1)) : 11 + Number(host.slice(1))}`;
  const driverAddr = `${net}.254`;
  const made = [];
  const tearDown = () => {
    for (const n of [...made].reverse()) {
      for (const pid of spawnSync('ip', ['netns', 'pids', n], { encoding: 'utf8' }).stdout.split('\n').filter((p) => p !== '')) {
        try {
          process.kill(Number(pid), 'SIGKILL');
        } catch {
          // already gone
        }
      }
      spawnSync('ip', ['netns', 'del', n]);
    }
    made.length = 0;
  };
  try {
    run('ip', ['netns', 'add', sw]);
    made.push(sw);
    run('ip', ['-n', sw, 'link', 'add', 'br0', 'type', 'bridge']);
    run('ip', ['-n', sw, 'link', 'set', 'br0', 'up']);
    ids.forEach((host) => {
      run('ip', ['netns', 'add', ns(host)]);
      made.push(ns(host));
      run('ip', ['link', 'add', 'eth0', 'netns', ns(host), 'type', 'veth', 'peer', 'name', `p${host}`, 'netns', sw]);
      run('ip', ['-n', sw, 'link', 'set', `p${host}`, 'master', 'br0', 'up']);
      run('ip', ['-n', ns(host), 'addr', 'add', `${hostAddr(host)}/24`, 'dev', 'eth0']);
      run('ip', ['-n', ns(host), 'link', 'set', 'eth0', 'up']);
      run('ip', ['-n', ns(host), 'link', 'set', 'lo', 'up']);
    });
    // The driver's own end: created in the switch, then its peer moved here (deleting the switch deletes both).
    const mine = `loom${id}d`;
    run('ip', ['-n', sw, 'link', 'add', 'pdriver', 'type', 'veth', 'peer', 'name', mine]);
    run('ip', ['-n', sw, 'link', 'set', mine, 'netns', String(process.pid)]);
    run('ip', ['-n', sw, 'link', 'set', 'pdriver', 'master', 'br0', 'up']);
    run('ip', ['addr', 'add', `${driverAddr}/24`, 'dev', mine]);
    run('ip', ['link', 'set', mine, 'up']);
  } catch (e) {
    tearDown();
    throw new Error(`setting up the soak's network namespaces failed: ${e.stderr?.toString().trim() || e.message}`);
  }

  // What this kernel can do to a link: netem (delay and loss), else tbf (a rate), else nothing.
  const ends = (host) => [['-n', ns(host), 'eth0'], ['-n', sw, `p${host}`]];
  const qdisc = (verb, host, spec) => ends(host).map(([flag, n, dev]) => tryRun('tc', [flag, n, 'qdisc', verb, 'dev', dev, 'root', ...spec])).find((e) => e !== null) ?? null;
  const NETEM = ['netem', 'delay', '20ms', 'loss', '1%'];
  const TBF = ['tbf', 'rate', '512kbit', 'burst', '16kbit', 'latency', '200ms'];
  let how, spec = null;
  if (!has('tc')) how = 'none: `tc` (iproute2) is missing';
  else {
    const probe = ids.find((h) => h[0] === 'w');
    const netem = qdisc('add', probe, NETEM);
    qdisc('del', probe, []);
    if (netem === null) (how = 'netem delay 20ms loss 1% on both ends of the link'), (spec = NETEM);
    else {
      const tbf = qdisc('add', probe, TBF);
      qdisc('del', probe, []);
      if (tbf === null) (how = `tbf rate 512kbit on both ends of the link — not netem delay 20ms loss 1%, which this kernel refuses (tc: ${netem})`), (spec = TBF);
      else how = `none: this kernel has neither netem (tc: ${netem}) nor tbf (tc: ${tbf})`;
    }
  }
  return {
    kind: 'netns', driverAddr, addr: hostAddr,
    command: (host, argv) => ['ip', 'netns', 'exec', ns(host), ...argv],
    throttle: {
      how,
      on: (host) => spec !== null && qdisc('add', host, spec),
      off: (host) => spec !== null && qdisc('del', host, []),
    },
    tearDown,
  };
}

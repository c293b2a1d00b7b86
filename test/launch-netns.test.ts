// `loom launch` across machines simulated as network namespaces: three hosts (10.77.0.1 … .3),
// each a namespace with a veth to a bridge in a fourth, all made here and removed in afterAll
// (the addresses exist only inside them). Node 0 finds itself through torchrun's variables, node 1
// through Slurm's, node 2 through a Kubernetes indexed Job's; then the hostfile launcher starts the
// same run over ssh against an sshd in each namespace, and stops every host when one fails or one
// is unreachable. Needs root, `ip` (iproute2), for the ssh part sshd and ssh (openssh-server,
// openssh-client), and for the manifest Python's yaml (python3-yaml): .ci/run installs them. Under CI
// (CI=true) a missing one fails the run, naming it; elsewhere the tests that need it are skipped
// with the reason printed.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { randomBytes } from 'node:crypto';
import { trainFlags, writeCsv } from './harness.js';

const MAIN = fileURLToPath(new URL('../apps/cli/dist/main.js', import.meta.url));
const K8S = fileURLToPath(new URL('../deploy/k8s.yaml', import.meta.url));
const has = (cmd: string) => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
const whyNot = process.getuid?.() !== 0 ? 'not root' : !has('ip') ? '`ip` (iproute2) is missing' : null;
const whyNoSsh = whyNot ?? (!existsSync('/usr/sbin/sshd') ? 'sshd (openssh-server) is missing' : !has('ssh') || !has('ssh-keygen') ? 'ssh (openssh-client) is missing' : null);
// The manifest read with Python's yaml (python3-yaml): the YAML parser at hand.
const manifest = spawnSync('python3', ['-c', 'import json, sys, yaml; print(json.dumps(list(yaml.safe_load_all(open(sys.argv[1])))))', K8S], { encoding: 'utf8' });
const whyNoYaml = whyNot ?? (manifest.status !== 0 ? 'python3 with yaml (python3-yaml) is missing' : null);
const IN_CI = process.env.CI === 'true';
if (!IN_CI) {
  if (whyNot) console.log(`launch-netns.test.ts: skipped: ${whyNot}`);
  else if (whyNoSsh) console.log(`launch-netns.test.ts: the ssh tests are skipped: ${whyNoSsh}`);
  if (!whyNot && whyNoYaml) console.log(`launch-netns.test.ts: the deploy/k8s.yaml test is skipped: ${whyNoYaml}`);
}

const id = randomBytes(3).toString('hex');
const SWITCH = `loom${id}sw`;
const HOSTS = [0, 1, 2].map((i) => ({ ns: `loom${id}h${i}`, addr: `10.77.0.${i + 1}` }));
const dir = mkdtempSync(join(tmpdir(), 'loom-netns-'));
const CSV = join(dir, 'data.csv');
const TRAIN = trainFlags(CSV);
const TOKEN = randomBytes(24).toString('base64url');
/** The environment of every process here, without any scheduler variables this machine may have. */
const baseEnv = Object.fromEntries(
  Object.entries({ ...process.env, HOME: dir }).filter(([k]) => !/^(MASTER_ADDR|MASTER_PORT|RANK|WORLD_SIZE|SLURM_\w+|JOB_COMPLETION_INDEX|LOOM_TOKEN)$/.test(k)),
) as Record<string, string>;
const children: ChildProcess[] = [];

const ip = (...args: string[]) => execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] });
/** Pids in a namespace running the loom CLI. */
function loomPids(ns: string): string[] {
  const pids = spawnSync('ip', ['netns', 'pids', ns], { encoding: 'utf8' }).stdout.split('\n').filter((p) => p !== '');
  return pids.filter((pid) => {
    try {
      return readFileSync(`/proc/${pid}/cmdline`, 'latin1').includes(MAIN);
    } catch {
      return false;
    }
  });
}
/** Waits (at most 5 s) until no namespace runs a loom process; returns those still running. */
async function leftovers(): Promise<string[]> {
  for (let i = 0; i < 50; i++) {
    const left = HOSTS.flatMap((h) => loomPids(h.ns).map((p) => `${h.ns}:${p}`));
    if (left.length === 0) return [];
    if (i === 49) return left;
    await new Promise((r) => setTimeout(r, 100));
  }
  return [];
}

function run(command: string, args: string[], env: Record<string, string>, onStderr?: (line: string) => void): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const proc = spawn(command, args, { cwd: dir, env });
  children.push(proc);
  let [stdout, stderr] = ['', ''];
  proc.stdout!.on('data', (d) => (stdout += d));
  proc.stderr!.on('data', (d) => {
    stderr += d;
    onStderr?.(stderr);
  });
  return new Promise((r) => proc.once('exit', (code) => r({ code, stdout, stderr })));
}
const inNs = (ns: string, args: string[], env: Record<string, string>, onStderr?: (s: string) => void) => run('ip', ['netns', 'exec', ns, process.execPath, MAIN, ...args], env, onStderr);

let threads: Buffer;
beforeAll(() => {
  if (whyNot) return;
  writeCsv(CSV);
  ip('netns', 'add', SWITCH);
  ip('-n', SWITCH, 'link', 'add', 'br0', 'type', 'bridge');
  ip('-n', SWITCH, 'link', 'set', 'br0', 'up');
  HOSTS.forEach((h, i) => {
    ip('netns', 'add', h.ns);
    ip('link', 'add', 'eth0', 'netns', h.ns, 'type', 'veth', 'peer', 'name', `p${i}`, 'netns', SWITCH);
    ip('-n', SWITCH, 'link', 'set', `p${i}`, 'master', 'br0', 'up');
    ip('-n', h.ns, 'addr', 'add', `${h.addr}/24`, 'dev', 'eth0');
    ip('-n', h.ns, 'link', 'set', 'eth0', 'up');
    ip('-n', h.ns, 'link', 'set', 'lo', 'up');
  });
  // The reference: the same training on 3 local threads.
  const r = spawnSync(process.execPath, [MAIN, 'train', ...TRAIN, '--workers', '3', '--out', 'threads'], { cwd: dir, env: baseEnv, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(r.stderr);
  threads = readFileSync(join(dir, 'threads', 'model.safetensors'));
});

afterAll(() => {
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
  if (whyNot) return;
  for (const ns of [...HOSTS.map((h) => h.ns), SWITCH]) {
    for (const pid of spawnSync('ip', ['netns', 'pids', ns], { encoding: 'utf8' }).stdout.split('\n').filter((p) => p !== '')) {
      try {
        process.kill(Number(pid), 'SIGKILL');
      } catch {
        // already gone
      }
    }
    spawnSync('ip', ['netns', 'del', ns]);
    rmSync(`/etc/netns/${ns}`, { recursive: true, force: true });
  }
  spawnSync('rmdir', ['/etc/netns']); // only when empty, as it was before
});

// CI must not stay green by skipping every multi-machine test: there, a missing prerequisite is a
// failure that names it (the tests that need it are still skipped, rather than failing obscurely).
it.runIf(IN_CI)('under CI, every prerequisite of the multi-machine tests is present', () => {
  const missing = [...new Set([whyNot, whyNoSsh, whyNoYaml].filter((w) => w !== null))];
  if (missing.length > 0) throw new Error(`launch-netns.test.ts: ${missing.join('; ')} (.ci/run installs iproute2, openssh-server, openssh-client and python3-yaml, and runs as root)`);
});

describe.skipIf(whyNot !== null)('loom launch across network namespaces', () => {
  it('2 servers and 3 workers on 3 hosts, found through torchrun, Slurm and Kubernetes variables: the same bits and accuracy as 3 local threads', async () => {
    const env = { ...baseEnv, LOOM_TOKEN: TOKEN };
    const nodes = await Promise.all([
      inNs(HOSTS[0]!.ns, ['launch', '--servers', '2', '--', ...TRAIN, '--out', 'netns', '--json'], { ...env, MASTER_ADDR: '10.77.0.1', MASTER_PORT: '7070', RANK: '0', WORLD_SIZE: '3' }),
      inNs(HOSTS[1]!.ns, ['launch', '--servers', '2', '--', ...TRAIN], { ...env, SLURM_PROCID: '1', SLURM_NTASKS: '3', SLURM_NODELIST: '10.77.0.[1-3]', MASTER_PORT: '7070' }),
      inNs(HOSTS[2]!.ns, ['launch', '--servers', '2', '--', ...TRAIN], { ...env, JOB_COMPLETION_INDEX: '2', WORLD_SIZE: '3', MASTER_ADDR: '10.77.0.1', MASTER_PORT: '7070' }),
    ]);
    for (const n of nodes) expect(n.code, n.stderr).toBe(0);
    expect(nodes[1]!.stderr).toContain('node 1 of 3 (SLURM_PROCID of SLURM_NTASKS), master 10.77.0.1:7070 (SLURM_NODELIST, MASTER_PORT)');
    expect(nodes[2]!.stderr).toContain('node 2 of 3 (JOB_COMPLETION_INDEX of WORLD_SIZE), master 10.77.0.1:7070 (MASTER_ADDR, MASTER_PORT)');
    expect(nodes[0]!.stderr).toMatch(/node 1 joined from 10\.77\.0\.2:\d+/);
    expect(nodes[0]!.stderr).toMatch(/node 2 joined from 10\.77\.0\.3:\d+/);
    expect(readFileSync(join(dir, 'netns', 'model.safetensors')).equals(threads)).toBe(true);
    expect(JSON.parse(nodes[0]!.stdout.trim().split('\n').pop()!).testAccuracy).toBeGreaterThan(0.6);
    expect(await leftovers()).toEqual([]);
  });

  it.skipIf(whyNoYaml !== null)('deploy/k8s.yaml: an indexed Job whose pods find the master through the headless Service — its command run in each namespace, with the Job name resolving there', async () => {
    type Doc = { kind: string; metadata: { name: string }; spec: Record<string, any> };
    const docs = JSON.parse(manifest.stdout) as Doc[];
    const service = docs.find((d) => d.kind === 'Service')!;
    const job = docs.find((d) => d.kind === 'Job')!;
    expect(service.spec.clusterIP).toBe('None');
    expect(job.spec.completionMode).toBe('Indexed');
    expect(job.spec.parallelism).toBe(job.spec.completions);
    const pod = job.spec.template.spec;
    expect(pod.subdomain).toBe(service.metadata.name);
    expect(service.spec.selector).toEqual({ 'job-name': job.metadata.name });
    const container = pod.containers[0];
    const vars = Object.fromEntries((container.env as Array<{ name: string; value?: string }>).filter((e) => e.value !== undefined).map((e) => [e.name, e.value!]));
    expect(vars).toEqual({ WORLD_SIZE: String(job.spec.completions), MASTER_ADDR: `${job.metadata.name}-0.${service.metadata.name}`, MASTER_PORT: String(service.spec.ports[0].port) });
    expect(container.env.find((e: { name: string }) => e.name === 'LOOM_TOKEN').valueFrom.secretKeyRef).toBeDefined();

    // Three pods: the manifest's command (the built CLI here for the image's), the test's train flags.
    expect(job.spec.completions).toBe(HOSTS.length);
    const [node, main, ...launchArgs] = container.command as string[];
    expect([node, main]).toEqual(['node', '/loom/apps/cli/dist/main.js']);
    for (const h of HOSTS) {
      mkdirSync(`/etc/netns/${h.ns}`, { recursive: true });
      writeFileSync(`/etc/netns/${h.ns}/hosts`, `127.0.0.1 localhost\n${HOSTS[0]!.addr} ${vars.MASTER_ADDR}\n`); // what the Service's DNS answers
    }
    const pods = await Promise.all(
      HOSTS.map((h, index) => inNs(h.ns, [...launchArgs, ...TRAIN, '--out', 'k8s'], { ...baseEnv, ...vars, LOOM_TOKEN: TOKEN, JOB_COMPLETION_INDEX: String(index) })),
    );
    for (const p of pods) expect(p.code, p.stderr).toBe(0);
    expect(pods[2]!.stderr).toContain(`node 2 of 3 (JOB_COMPLETION_INDEX of WORLD_SIZE), master ${vars.MASTER_ADDR}:${vars.MASTER_PORT} (MASTER_ADDR, MASTER_PORT)`);
    expect(readFileSync(join(dir, 'k8s', 'model.safetensors')).equals(threads)).toBe(true);
    expect(await leftovers()).toEqual([]);
  });

  describe.skipIf(whyNoSsh !== null)('the hostfile launcher, over ssh', () => {
    const SSH = join(dir, 'ssh');
    const sshConfig = join(SSH, 'config');
    beforeAll(async () => {
      mkdirSync(SSH, { mode: 0o700 });
      mkdirSync('/run/sshd', { recursive: true, mode: 0o755 }); // sshd's privilege-separation directory
      for (const key of ['host_key', 'id_ed25519']) execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(SSH, key)]);
      writeFileSync(join(SSH, 'authorized_keys'), readFileSync(join(SSH, 'id_ed25519.pub')), { mode: 0o600 });
      writeFileSync(sshConfig, `Host *\n  User root\n  IdentityFile ${SSH}/id_ed25519\n  IdentitiesOnly yes\n  StrictHostKeyChecking no\n  UserKnownHostsFile /dev/null\n`);
      await Promise.all(
        HOSTS.map((h, i) => {
          const config = join(SSH, `sshd_config_${i}`);
          writeFileSync(config, [
            'Port 22', `ListenAddress ${h.addr}`, `HostKey ${SSH}/host_key`, `PidFile ${SSH}/sshd_${i}.pid`, `AuthorizedKeysFile ${SSH}/authorized_keys`,
            'PermitRootLogin yes', 'PasswordAuthentication no', 'KbdInteractiveAuthentication no', 'UsePAM no', 'StrictModes no', '',
          ].join('\n'));
          const sshd = spawn('ip', ['netns', 'exec', h.ns, '/usr/sbin/sshd', '-D', '-e', '-f', config], { stdio: ['ignore', 'ignore', 'pipe'] });
          children.push(sshd);
          let log = '';
          return new Promise<void>((ok, fail) => {
            sshd.stderr!.on('data', (d) => {
              log += d;
              if (log.includes('Server listening on')) ok();
            });
            sshd.once('exit', (code) => fail(new Error(`sshd in ${h.ns} exited with ${code}: ${log}`)));
          });
        }),
      );
    });

    const hostfile = (name: string, lines: string[]) => {
      writeFileSync(join(dir, name), lines.join('\n') + '\n');
      return name;
    };
    const launcher = (file: string, extra: string[], train: string[], onStderr?: (s: string) => void) =>
      inNs(HOSTS[0]!.ns, ['launch', '--hostfile', file, '--ssh-config', sshConfig, '--connect-timeout', '2', ...extra, '--', ...train], baseEnv, onStderr);

    it('runs 2 servers and 3 workers on the hosts of the file, with a fresh token, to the same bits as 3 local threads', async () => {
      const file = hostfile('hosts', ['# master first', '10.77.0.1', '10.77.0.2 slots=2']);
      const r = await launcher(file, ['--servers', '2'], [...TRAIN, '--out', 'ssh', '--json']);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stderr).toContain('started 2 nodes over ssh (master 10.77.0.1:7070; slots 1,2)');
      expect(r.stdout).toContain('[10.77.0.2] node 1: done');
      expect(readFileSync(join(dir, 'ssh', 'model.safetensors')).equals(threads)).toBe(true);
      expect(JSON.parse(r.stdout.trim().split('\n').pop()!).workers).toHaveLength(3);
      expect(await leftovers()).toEqual([]);
    });

    it('an unreachable host: an error naming it and its line, and nothing started', async () => {
      const file = hostfile('hosts-bad', ['10.77.0.1', '10.77.0.2', '10.77.0.9  # no such host']);
      const r = await launcher(file, [], TRAIN);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/cannot reach 10\.77\.0\.9 \(hosts-bad:3\) over ssh: ssh: connect to host 10\.77\.0\.9 port 22: (No route to host|Connection timed out).* — nothing was started/);
      expect(r.stderr).not.toContain('10.77.0.2 (hosts-bad');
      expect(await leftovers()).toEqual([]);
    });

    it('a host that dies mid-run stops every other host', async () => {
      const file = hostfile('hosts3', ['10.77.0.1', '10.77.0.2', '10.77.0.3']);
      let killed = false;
      const r = await launcher(file, [], trainFlags(CSV, 500), (stderr) => {
        if (killed || !/node 2 joined/.test(stderr)) return;
        killed = true;
        for (const pid of loomPids(HOSTS[2]!.ns)) if (readFileSync(`/proc/${pid}/cmdline`, 'latin1').includes('\0launch\0')) process.kill(Number(pid), 'SIGKILL');
      });
      expect(killed).toBe(true);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/loom launch: 10\.77\.0\.3 \(hosts3:3\) failed: its ssh session ended without an exit status \(the connection was lost, or its launch was killed\)/);
      expect(await leftovers()).toEqual([]);
    });
  });
});

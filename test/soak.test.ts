// The fault-injection soak at CI length (issue 16; the driver is bench/soak/driver.js, and
// `node bench/soak.js --minutes N` runs it longer): 2 `loom serve` shards and 3 `loom worker`s of
// the built CLI, each on a network namespace of its own, train a sync run with checkpoints while
// workers are kill -9ed and restarted, a server shard is kill -9ed and both are resumed from their
// checkpoint, a hostile client sends bad frames at a fixed rate, and a worker's link is throttled
// (netem, or tbf where the kernel has no netem: the output says which). Needs root and `ip`
// (iproute2): under CI (CI=true) their absence fails the run, naming it; elsewhere the soak runs on
// 127.0.0.1 instead, and says so.
import { expect, it } from 'vitest';
// Plain JavaScript modules, shared with bench/soak.js (which runs without a build step of its own).
import { CI_SOAK, printReport, runSoak, verdicts } from '../bench/soak/driver.js';
import { whyNoNetns } from '../bench/soak/netns.js';

const IN_CI = process.env.CI === 'true';
const whyNot: string | null = whyNoNetns();
if (whyNot !== null && !IN_CI) console.log(`soak.test.ts: network namespaces unavailable (${whyNot}): the soak runs on 127.0.0.1`);

it.runIf(IN_CI)('under CI, the soak\'s network namespaces can be made', () => {
  if (whyNot !== null) throw new Error(`soak.test.ts: ${whyNot} (.ci/run installs iproute2 and runs as root)`);
});

it('a sync cluster trains to its end through worker and server kills, bad frames and a throttled link, as an undisturbed run does', async () => {
  // Progress is printed as it happens, so that a run cut short by the timeout still shows how far it got.
  const report = await runSoak({ ...CI_SOAK, loopback: whyNot !== null, log: (l: string) => console.log(`soak: ${l}`) });
  const lines: string[] = [];
  printReport(report, (l: string) => lines.push(l));
  const checks = verdicts(report) as Array<{ check: string; ok: boolean; detail: string }>;
  lines.push('checks:', ...checks.map((c) => `  ${c.ok ? 'ok  ' : 'FAIL'} ${c.check}${c.ok ? '' : `: ${c.detail}`}`));
  console.log(lines.join('\n'));
  expect(checks.filter((c) => !c.ok).map((c) => `${c.check}: ${c.detail}`)).toEqual([]);
  // The faults happened: kills of workers, one server restart, thousands of bad frames.
  expect(report.workerKills.length).toBeGreaterThanOrEqual(2);
  expect(report.serverKills).toHaveLength(1);
  expect(report.injected.frames).toBeGreaterThan(5000);
  // Refusals are logged a few lines a window, whatever their number: at most the first refusal and
  // a summary per 10 s window per server process (one address: the injector's).
  const windows = report.servers.reduce((n: number, s: { seconds: number }) => n + Math.ceil(s.seconds / 10) + 1, 0);
  expect(report.logLines.kinds.refusals).toBeLessThanOrEqual(2 * windows);
  expect(report.logLines.kinds.other).toBe(0);
}, 300_000);

// The fault-injection soak at any length (issue 16): a sync cluster of 2 `loom serve` shards and 3
// `loom worker`s on network namespaces, trained while workers are kill -9ed and restarted, server
// shards killed and resumed from their checkpoints, a hostile client injects bad frames at a fixed
// rate and a worker's link is throttled — then checked against an undisturbed run. The driver is
// bench/soak/driver.js; test/soak.test.ts runs it at CI length.
// Usage: node bench/soak.js [--minutes N] [--epochs E] [--rate FRAMES_PER_S] [--loopback]
//   --minutes N: a run of about N minutes — E epochs at ~1 s each, the pace under faults on the
//   2-core machine (0.7–3 s, with what else runs: the report says how long it took) — with a
//   worker killed every ~12 s, a server restart every ~2 minutes and a throttled link every minute.
// Exit 1 when a check fails. Needs root and iproute2 for the namespaces (else: loopback, said so).
import { CI_SOAK, printReport, runSoak, verdicts } from './soak/driver.js';

const arg = (name) => (process.argv.includes(name) ? Number(process.argv[process.argv.indexOf(name) + 1]) : undefined);
const minutes = arg('--minutes');
const SECONDS_PER_EPOCH = 1;
const epochs = arg('--epochs') ?? (minutes !== undefined ? Math.max(CI_SOAK.epochs, Math.round((minutes * 60) / SECONDS_PER_EPOCH)) : CI_SOAK.epochs);
// Over the first 75% of the run: a worker kill every ~12 s, a server restart every ~2 minutes and a
// throttled link every minute, each placed by the run's progress (as CI_SOAK's).
const seconds = epochs * SECONDS_PER_EPOCH * 0.75;
const spread = (k, kind, shift) => {
  const n = Math.max(1, Math.round(k));
  return Array.from({ length: n }, (_, i) => ({ at: (0.75 * (i + shift)) / n, kind }));
};
const options = {
  epochs,
  rate: arg('--rate') ?? CI_SOAK.rate,
  faults: minutes === undefined && arg('--epochs') === undefined ? CI_SOAK.faults : [...spread(seconds / 12, 'worker', 0.2), ...spread(seconds / 120, 'server', 0.5), ...spread(seconds / 60, 'throttle', 0.35)],
  deadlineMs: Math.max(CI_SOAK.deadlineMs, epochs * SECONDS_PER_EPOCH * 5000),
  loopback: process.argv.includes('--loopback'),
};
const report = await runSoak(options);
printReport(report);
const checks = verdicts(report);
console.log('\nchecks:');
for (const c of checks) console.log(`  ${c.ok ? 'ok  ' : 'FAIL'} ${c.check}${c.ok ? '' : `: ${c.detail}`}`);
process.exit(checks.every((c) => c.ok) ? 0 : 1);

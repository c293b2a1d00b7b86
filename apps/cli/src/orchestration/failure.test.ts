// The one message a failed run ends with: who, what, when, what next — and the command it suggests
// reads back as the same training with --resume.
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { RunFailure, describeExit, duringEpoch, processLabel, resumeAdvice, resumeArgv, shellQuote } from './failure.js';

describe('RunFailure', () => {
  it('names the process, what happened, when, and what next, on one line', () => {
    const who = processLabel({ role: 'server', shard: { index: 0, count: 2 }, pid: 1234, address: 'ws://127.0.0.1:43175' });
    const f = new RunFailure('server', who, describeExit(null, 'SIGKILL')).during(duringEpoch(3, 10)).advise('Continue it with: loom train --resume runs/x');
    expect(f.message).toBe('server shard 0/2 (pid 1234, ws://127.0.0.1:43175) was killed (SIGKILL) in epoch 3 of 10; the run stopped. Continue it with: loom train --resume runs/x');
    expect(f.summary).toBe('server shard 0/2 (pid 1234, ws://127.0.0.1:43175) was killed (SIGKILL) in epoch 3 of 10');
    // The first to say when and what next is kept.
    expect(f.during('while starting').advise('other').message).toBe(f.message);
  });

  it('a worker that failed keeps its last words; exits read as they happened', () => {
    const w = new RunFailure('worker', processLabel({ role: 'worker', rank: 3, node: 1, pid: 99 }), describeExit(1, null), 'lost parameter server ws://h:1: gave up after 60 s');
    expect(w.during(duringEpoch(6, 5)).message).toBe('worker 3 (node 1, pid 99) failed (exit code 1) after its last epoch (5): lost parameter server ws://h:1: gave up after 60 s; the run stopped');
    expect(describeExit(0, null)).toBe('exited');
    expect(processLabel({ role: 'worker', rank: 0 })).toBe('worker 0');
  });
});

describe('resumeAdvice', () => {
  const argv = ['--dataset', 'csv:my data.csv', '--out', 'runs/x', '--epochs', '10', '--cluster', 'local:2,2'];

  it('--resume DIR in place of --out (either spelling), the rest as typed, quoted for a shell', () => {
    expect(resumeArgv(argv, 'runs/x')).toEqual(['--dataset', 'csv:my data.csv', '--epochs', '10', '--cluster', 'local:2,2', '--resume', 'runs/x']);
    expect(resumeArgv(['--out=a', '--resume=a', '--epochs', '3'], 'a')).toEqual(['--epochs', '3', '--resume', 'a']);
    expect(resumeArgv(['--resume', 'a', '--json'], 'a')).toEqual(['--json', '--resume', 'a']);
    expect(shellQuote("it's")).toBe(`'it'\\''s'`);
    expect(shellQuote('local:2,2')).toBe('local:2,2');
  });

  it('names the latest complete checkpoint, which --resume loads; with none, says so and how to start again', () => {
    const dir = mkdtempSync(join(tmpdir(), 'loom-advice-'));
    const advice = (checkpointEvery = 100) => resumeAdvice({ command: 'loom train', argv, dir: 'runs/x', path: dir, shards: 2, checkpointEvery });
    expect(advice()).toBe(`It saved no checkpoint to continue from (the servers save one every 100 updates); start it again with: loom train --dataset 'csv:my data.csv' --out runs/x --epochs 10 --cluster local:2,2`);
    expect(advice(0)).toContain('with --checkpoint-every 0 the servers save one only at the end');
    for (const [step, shards] of [[800, [0, 1]], [900, [1]]] as const) {
      const at = join(dir, 'checkpoints', `step-${String(step).padStart(9, '0')}`);
      mkdirSync(at, { recursive: true });
      for (const s of shards) writeFileSync(join(at, `shard-${s}-of-2.json`), '{}');
    }
    // Step 900 has shard 1's file only: not complete.
    expect(advice()).toBe(`Continue it with: loom train --dataset 'csv:my data.csv' --epochs 10 --cluster local:2,2 --resume runs/x (its last checkpoint is update 800)`);
  });
});

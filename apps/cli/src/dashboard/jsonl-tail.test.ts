import { describe, expect, it } from 'vitest';
import { appendFileSync, mkdtempSync, renameSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { JsonlTail } from './jsonl-tail.js';

function follow(path: string) {
  const got: unknown[] = [];
  const bad: Array<{ line: number; text: string }> = [];
  let resets = 0;
  const tail = new JsonlTail(path, {
    onRecords: (rs) => got.push(...rs.map((r) => r.value)),
    onMalformed: (m) => bad.push({ line: m.line, text: m.text }),
    onReset: () => resets++,
  });
  return { tail, got, bad, resets: () => resets };
}

describe('JsonlTail', () => {
  it('hands over complete lines only: a line being written is held until its newline', () => {
    const path = join(mkdtempSync(join(tmpdir(), 'loom-tail-')), 'metrics.jsonl');
    const t = follow(path);
    expect(t.tail.poll()).toBe(false); // no file yet: nothing, no error
    writeFileSync(path, '{"epoch":1}\n{"epoch":2,"trainLo');
    t.tail.poll();
    expect(t.got).toEqual([{ epoch: 1 }]);
    appendFileSync(path, 'ss":1.5}\n');
    t.tail.poll();
    expect(t.got).toEqual([{ epoch: 1 }, { epoch: 2, trainLoss: 1.5 }]);
    expect(t.bad).toEqual([]);
  });

  it('skips and reports a line that is not JSON, and goes on', () => {
    const path = join(mkdtempSync(join(tmpdir(), 'loom-tail-')), 'metrics.jsonl');
    writeFileSync(path, '{"epoch":1}\n{"epoch": oops}\n\n{"epoch":3}\n');
    const t = follow(path);
    t.tail.poll();
    expect(t.got).toEqual([{ epoch: 1 }, { epoch: 3 }]);
    expect(t.bad).toEqual([{ line: 2, text: '{"epoch": oops}' }]);
  });

  it('reads a file from its start again when it was truncated, replaced or rewritten', () => {
    const dir = mkdtempSync(join(tmpdir(), 'loom-tail-'));
    const path = join(dir, 'metrics.jsonl');
    writeFileSync(path, '{"epoch":1,"loss":2}\n{"epoch":2,"loss":1}\n');
    const t = follow(path);
    t.tail.poll();
    writeFileSync(path, ''); // loom train started again in the same directory
    t.tail.poll();
    expect(t.resets()).toBe(1);
    writeFileSync(path, '{"epoch":1,"loss":3}\n{"epoch":2,"loss":2.5}\n{"epoch":3,"loss":2}\n'); // longer than before, other bytes
    t.tail.poll();
    expect(t.got.slice(2)).toEqual([{ epoch: 1, loss: 3 }, { epoch: 2, loss: 2.5 }, { epoch: 3, loss: 2 }]);
    // --resume rewrites it whole, by a rename: another inode.
    writeFileSync(join(dir, 'tmp'), '{"epoch":1,"loss":3}\n');
    renameSync(join(dir, 'tmp'), path);
    t.tail.poll();
    expect(t.got.at(-1)).toEqual({ epoch: 1, loss: 3 });
    expect(t.resets()).toBe(2);
  });

  it('a rewrite that grew past the old size between two polls is still seen (its first bytes differ)', () => {
    const path = join(mkdtempSync(join(tmpdir(), 'loom-tail-')), 'metrics.jsonl');
    writeFileSync(path, '{"epoch":1,"trainLoss":1.77}\n');
    const t = follow(path);
    t.tail.poll();
    writeFileSync(path, '{"epoch":1,"trainLoss":1.93}\n{"epoch":2,"trainLoss":1.80}\n');
    t.tail.poll();
    expect(t.resets()).toBe(1);
    expect(t.got).toEqual([{ epoch: 1, trainLoss: 1.77 }, { epoch: 1, trainLoss: 1.93 }, { epoch: 2, trainLoss: 1.8 }]);
  });
});

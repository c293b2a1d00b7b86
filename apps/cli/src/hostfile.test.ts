import { describe, expect, it } from 'vitest';
import { parseHostfile, shellQuote } from './hostfile.js';

describe('parseHostfile', () => {
  it('reads HOST [slots=N] lines, skipping comments and blank lines, keeping line numbers', () => {
    const text = '# the master first\n10.0.0.1 slots=2\n\n  root@node2   # a comment\nnode3\tslots=1\r\n[fd00::4]\n';
    expect(parseHostfile(text, 'hosts', 3)).toEqual([
      { destination: '10.0.0.1', host: '10.0.0.1', slots: 2, line: 2 },
      { destination: 'root@node2', host: 'node2', slots: 3, line: 4 },
      { destination: 'node3', host: 'node3', slots: 1, line: 5 },
      { destination: '[fd00::4]', host: 'fd00::4', slots: 3, line: 6 },
    ]);
  });

  it('names the file and line of a bad line', () => {
    expect(() => parseHostfile('a\nb c\n', 'hosts.txt', 1)).toThrow("hosts.txt:2: expected 'HOST [slots=N]', got 'b c'");
    expect(() => parseHostfile('a\n\nb slots=0', 'h', 1)).toThrow("h:3: slots must be a whole number 1 … 1024, got '0'");
    expect(() => parseHostfile('a slots=x', 'h', 1)).toThrow("h:1: slots must be a whole number 1 … 1024, got 'x'");
    expect(() => parseHostfile('a\nb\nroot@a', 'h', 1)).toThrow('h:3: a is already listed on line 1');
    expect(() => parseHostfile('# nothing\n\n', 'h', 1)).toThrow("h: lists no hosts");
    expect(() => parseHostfile('a;rm -rf /', 'h', 1)).toThrow("h:1: expected 'HOST [slots=N]'");
  });
});

describe('shellQuote', () => {
  it('leaves plain words alone and quotes the rest for sh', () => {
    expect(shellQuote('--epochs')).toBe('--epochs');
    expect(shellQuote('csv:/data/x.csv')).toBe('csv:/data/x.csv');
    expect(shellQuote("it's a $file")).toBe(`'it'\\''s a $file'`);
    expect(shellQuote('')).toBe("''");
  });
});

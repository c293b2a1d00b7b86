/**
 * Where `loom serve` and `loom worker` get the cluster token: --token-file PATH, else the
 * LOOM_TOKEN environment variable, else the default file ~/.loom/token. Never a command-line
 * value: every user of the machine can read another's arguments with `ps`.
 */
import { existsSync } from 'node:fs';
import { createTokenFile, defaultTokenFile, readTokenFile, readableByOthers } from '@loom/parameter-server';
import { UsageError } from './errors.js';

/**
 * The token, and a line saying where it came from. With `generate` (serve), a missing token is
 * created in the default file (0600) rather than refused.
 */
export function resolveToken(tokenFile: string | undefined, generate: boolean): { token: string; source: string } {
  const read = (path: string) => {
    try {
      const token = readTokenFile(path);
      const warning = readableByOthers(path) ? ` (warning: ${path} is readable by other users; chmod 600 it)` : '';
      return { token, source: `the token in ${path}${warning}` };
    } catch (e) {
      throw new UsageError(`--token-file: ${(e as Error).message}`);
    }
  };
  if (tokenFile !== undefined) return read(tokenFile);
  const env = process.env.LOOM_TOKEN;
  if (env !== undefined && env.trim() !== '') return { token: env.trim(), source: 'the token in LOOM_TOKEN' };
  const path = defaultTokenFile();
  if (existsSync(path)) return read(path);
  if (!generate) throw new UsageError(`no cluster token: pass --token-file PATH or set LOOM_TOKEN (the server's token; \`loom serve\` writes one to ${path})`);
  const token = createTokenFile(path);
  return { token, source: `a new token, written to ${path} (readable only by you); give it to workers with --token-file or LOOM_TOKEN` };
}

/** When a cluster coordinator started this process: exit when it goes away (its pipe to our stdin closes). */
export function exitWithParent(): void {
  if (process.env.LOOM_EXIT_WITH_PARENT !== '1') return;
  process.stdin.on('end', () => process.exit(1));
  process.stdin.on('error', () => process.exit(1));
  process.stdin.resume();
  (process.stdin as unknown as { unref?: () => void }).unref?.();
}

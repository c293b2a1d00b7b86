/**
 * The cluster token: a shared secret every connection presents in its hello. It is read from a file
 * or the LOOM_TOKEN environment variable — never from a command-line argument, which `ps` shows to
 * every user of the machine — and compared in constant time.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, statSync, writeSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';

/** Where `loom serve` writes a token it generated, and where `loom worker` looks when given none. */
export const defaultTokenFile = (): string => join(homedir(), '.loom', 'token');

/** A new random token: 32 bytes, base64url. */
export function generateToken(): string {
  return randomBytes(32).toString('base64url');
}

/** True when the two tokens are equal; takes the same time whatever they hold. */
export function tokensEqual(a: string, b: string): boolean {
  const h = (s: string) => createHash('sha256').update(s, 'utf8').digest();
  return timingSafeEqual(h(a), h(b)) && a.length > 0;
}

/** Reads a token file (its first line, trimmed); throws naming the file when it is missing or empty. */
export function readTokenFile(path: string): string {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new Error(`cannot read the token file ${path} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  const token = text.split('\n')[0]!.trim();
  if (token === '') throw new Error(`the token file ${path} is empty`);
  return token;
}

/** True when a file can be read by users other than its owner. */
export function readableByOthers(path: string): boolean {
  return (statSync(path).mode & 0o077) !== 0;
}

/**
 * Writes a new token to `path`, readable and writable only by the user (0600, in a 0700 directory
 * when it creates one), refusing to overwrite an existing file. Returns the token.
 */
export function createTokenFile(path: string): string {
  if (!existsSync(dirname(path))) mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const token = generateToken();
  const fd = openSync(path, 'wx', 0o600);
  try {
    writeSync(fd, token + '\n');
  } finally {
    closeSync(fd);
  }
  return token;
}

/**
 * What starting worker threads needs, for both kinds of thread this package runs — a local run's
 * (./thread.ts, through piscina) and a remote worker process's (../net/hierarchy-thread.ts): the
 * compiled file of the thread's entry point, and the training data in shared memory.
 */
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { SharedData } from './messages.js';

/**
 * The compiled file of a thread entry point, given by its path under src/ with a .js extension
 * (e.g. 'local/thread.js'): dist/local/thread.js, also when this module runs from src/ (tests run
 * the sources, but a thread needs the built JavaScript).
 */
export function threadFile(entry: string): string {
  const here = fileURLToPath(import.meta.url); // <package>/{src,dist}/local/thread-setup.{ts,js}
  const root = dirname(dirname(here));
  return join(here.endsWith('.ts') ? join(dirname(root), 'dist') : root, entry);
}

/** `a`'s memory as a SharedArrayBuffer: its own when it already views one whole, else a copy. */
export function shared<T extends Float32Array | Int32Array>(a: T): SharedArrayBuffer {
  if (a.buffer instanceof SharedArrayBuffer && a.byteOffset === 0 && a.byteLength === a.buffer.byteLength) return a.buffer;
  const sab = new SharedArrayBuffer(a.byteLength);
  new (a.constructor as { new (b: SharedArrayBuffer): T })(sab).set(a);
  return sab;
}

/** A data set in shared memory, for threads to view without a copy each. */
export function sharedData(data: { features: Float32Array; labels: Int32Array; rows: Int32Array; width: number }): SharedData {
  return { features: shared(data.features), labels: shared(data.labels), rows: shared(data.rows), width: data.width };
}

/**
 * Waiting on shared control words: a sense-reversing barrier and "wait until a word changes", both
 * aborted by the coordinator's Abort word.
 *
 * A wait first spins, then sleeps in Atomics.wait with a timeout. The spin matters: waking a thread
 * that sleeps in Atomics.wait took ~140 µs here (median; a KVM guest whose idle vCPU halts), and a
 * sync step pays it at each of its two barriers whenever the threads arrive more than the spin apart
 * — 10% of a 2.5 ms Fashion-MNIST step. With at most one thread per core a spinning thread takes
 * nothing from anyone, so runs that fit the cores spin for up to a few milliseconds (`setSpin`);
 * oversubscribed ones spin only briefly, since their spinning would take the core from the thread
 * they wait for. The timeout bounds how long a thread can miss an abort (Atomics.notify is not
 * guaranteed to reach a thread between its check and its sleep).
 */
import { availableParallelism } from 'node:os';
import { LINE, Word } from './shared.js';

/** Spin budgets: about a step's imbalance when each thread has a core; a small step's compute otherwise. */
const LONG_SPIN_MS = 5;
const SHORT_SPIN_MS = 0.05;
const SLEEP_MS = 50;
let spinMs = SHORT_SPIN_MS;

/** Sets how long this thread's waits spin, for a run of `threads` compute threads in this process. */
export function setSpin(threads: number): void {
  spinMs = threads <= availableParallelism() ? LONG_SPIN_MS : SHORT_SPIN_MS;
}

/** Thrown in a worker thread when the coordinator aborted the run. */
export class RunAborted extends Error {
  constructor() {
    super('the run was aborted because another worker failed');
    this.name = 'RunAborted';
  }
}

export const at = (w: Word | number): number => w * LINE;

function checkAbort(ctrl: Int32Array): void {
  if (Atomics.load(ctrl, at(Word.Abort)) !== 0) throw new RunAborted();
}

/** Blocks while ctrl[word] === value; returns the new value. */
export function waitWhileEquals(ctrl: Int32Array, word: Word | number, value: number): number {
  const i = at(word);
  const until = performance.now() + spinMs;
  do {
    for (let s = 0; s < 256; s++) {
      const v = Atomics.load(ctrl, i);
      if (v !== value) return v;
    }
  } while (performance.now() < until);
  for (;;) {
    const v = Atomics.load(ctrl, i);
    if (v !== value) return v;
    checkAbort(ctrl);
    Atomics.wait(ctrl, i, value, SLEEP_MS);
  }
}

/** Blocks until ctrl[word] ≥ target, or `giveUp()` returns true (then returns −1). */
export function waitAtLeast(ctrl: Int32Array, word: Word | number, target: number, giveUp: () => boolean = () => false): number {
  const i = at(word);
  const until = performance.now() + spinMs;
  do {
    for (let s = 0; s < 256; s++) {
      const v = Atomics.load(ctrl, i);
      if (v >= target) return v;
    }
  } while (performance.now() < until);
  for (;;) {
    const v = Atomics.load(ctrl, i);
    if (v >= target) return v;
    checkAbort(ctrl);
    if (giveUp()) return -1;
    Atomics.wait(ctrl, i, v, SLEEP_MS);
  }
}

/**
 * Blocks until all `n` threads have called it. The last to arrive copies StopRequested into
 * StopDecided before releasing the others, so every thread reads the same decision afterwards.
 */
export function barrier(ctrl: Int32Array, n: number): void {
  const generation = Atomics.load(ctrl, at(Word.Generation));
  if (Atomics.add(ctrl, at(Word.Count), 1) === n - 1) {
    Atomics.store(ctrl, at(Word.Count), 0);
    Atomics.store(ctrl, at(Word.StopDecided), Atomics.load(ctrl, at(Word.StopRequested)));
    Atomics.add(ctrl, at(Word.Generation), 1);
    Atomics.notify(ctrl, at(Word.Generation));
    return;
  }
  waitWhileEquals(ctrl, Word.Generation, generation);
}

/** Wakes every thread waiting on any control word (after setting Abort or StopRequested). */
export function wakeAll(ctrl: Int32Array): void {
  for (let w = 0; w * LINE < ctrl.length; w++) Atomics.notify(ctrl, w * LINE);
}

/**
 * Waiting on shared control words: a sense-reversing barrier and "wait until a word changes", both
 * aborted by the coordinator's Abort word.
 *
 * A wait first spins briefly, then sleeps in Atomics.wait with a timeout. The spin matters: a
 * small model's step takes tens of microseconds, and waking a sleeping thread costs about as much;
 * with one thread per core, a short spin wastes nothing. The timeout bounds how long a thread can
 * miss an abort (Atomics.notify is not guaranteed to reach a thread between its check and its sleep).
 */
import { LINE, Word } from './shared.js';

/** How long a wait spins before it sleeps: about one small step's compute. */
const SPIN_MS = 0.05;
const SLEEP_MS = 50;

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
  const until = performance.now() + SPIN_MS;
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
  const until = performance.now() + SPIN_MS;
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

/**
 * Hyperparameter checks shared by every optimizer, and `resolveOptions`, which turns what a user
 * passed into a complete, validated options object (the same function serves the classes, the
 * functional cores' callers and loadStateDict).
 */
import type { Algorithm } from './core/common.js';
import { OptimizerError, invalidValue, unknownOption } from './errors.js';

/** `what` must be a finite number ≥ 0: `Invalid learning rate: -0.1`. */
export function checkNonNegative(what: string, v: unknown): void {
  if (typeof v !== 'number' || !(v >= 0) || v === Infinity) throw invalidValue(what, v);
}

/** `what` must be a finite number > 0: `Invalid epsilon value: 0 (must be > 0)`. */
export function checkPositive(what: string, v: unknown): void {
  if (typeof v !== 'number' || !(v > 0) || v === Infinity) throw invalidValue(what, v, 'must be > 0');
}

/** `what` must be a finite number. */
export function checkFinite(what: string, v: unknown): void {
  if (typeof v !== 'number' || !Number.isFinite(v)) throw invalidValue(what, v, 'must be a finite number');
}

export function checkBoolean(what: string, v: unknown): void {
  if (typeof v !== 'boolean') throw invalidValue(what, v, 'must be true or false');
}

/** `what` must be in [0, 1): `Invalid beta parameter at index 1: 1`. */
export function checkUnitInterval(what: string, v: unknown): void {
  if (typeof v !== 'number' || !(v >= 0 && v < 1)) throw invalidValue(what, v);
}

/** Adam's betas: two numbers, each in [0, 1). */
export function checkBetas(v: unknown): void {
  if (!Array.isArray(v) || v.length !== 2) throw invalidValue('betas', v, 'expected two numbers [beta1, beta2]');
  checkUnitInterval('beta parameter at index 0', v[0]);
  checkUnitInterval('beta parameter at index 1', v[1]);
}

/**
 * Merges `given` over the algorithm's defaults (a dense `Algorithm` or a `SparseAlgorithm`) and validates the result. Throws on an unknown key
 * (`allowed` lists extra keys that are not hyperparameters, like a group's `params`), on a missing
 * required value and on an invalid one.
 */
export function resolveOptions<O extends object>(
  alg: Pick<Algorithm<O>, 'name' | 'defaults' | 'validate'>,
  given: object,
  base: Readonly<O> = alg.defaults,
  allowed: readonly string[] = [],
): O {
  const known = Object.keys(alg.defaults);
  const out: Record<string, unknown> = { ...base };
  for (const [key, value] of Object.entries(given)) {
    if (allowed.includes(key)) continue;
    if (!known.includes(key)) throw unknownOption(key, alg.name, known);
    if (value !== undefined) out[key] = Array.isArray(value) ? Object.freeze([...value]) : value;
  }
  for (const key of known) {
    if (out[key] === undefined) throw new OptimizerError(`Missing option '${key}' for ${alg.name}: it has no default, pass { ${key}: ... }`);
  }
  const options = out as O;
  alg.validate(options);
  return options;
}

/**
 * Every error the optimizer package throws is made here, so messages share one form: what was
 * wrong, the value that was found, and (where it helps) what was expected. Hyperparameter messages
 * read like PyTorch's (`Invalid learning rate: -0.1`) so a user moving between the two recognises
 * them.
 */

/** The error class for every failure in this package; `instanceof OptimizerError` tells them apart. */
export class OptimizerError extends Error {
  override name = 'OptimizerError';
}

/** Formats a value for a message: numbers as JavaScript prints them, strings quoted, arrays in brackets. */
export function fmtValue(v: unknown): string {
  if (typeof v === 'string') return `'${v}'`;
  if (Array.isArray(v)) return `[${v.map(fmtValue).join(', ')}]`;
  if (ArrayBuffer.isView(v)) return `${v.constructor.name}(${(v as unknown as ArrayLike<number>).length})`;
  if (v !== null && typeof v === 'object') return v.constructor?.name ?? 'object';
  return String(v);
}

/** `Invalid learning rate: -0.1`, with an optional reason: `Invalid epsilon value: 0 (must be > 0)`. */
export function invalidValue(what: string, value: unknown, expected?: string): OptimizerError {
  return new OptimizerError(`Invalid ${what}: ${fmtValue(value)}${expected ? ` (${expected})` : ''}`);
}

/** `Unknown option 'lrr' for Adam (expected one of: lr, betas, eps, weightDecay, amsgrad, maximize)`. */
export function unknownOption(key: string, optimizer: string, known: readonly string[]): OptimizerError {
  return new OptimizerError(`Unknown option '${key}' for ${optimizer} (expected one of: ${known.join(', ')})`);
}

/** An error in the arguments of a function: `adamStep: grads has length 36, params has length 37`. */
export function argError(fn: string, message: string): OptimizerError {
  return new OptimizerError(`${fn}: ${message}`);
}

/** An error in a state dict being loaded: `loadStateDict: parameter group 0 has 3 parameters in the state dict, 4 in the optimizer`. */
export function stateDictError(message: string): OptimizerError {
  return new OptimizerError(`loadStateDict: ${message}`);
}

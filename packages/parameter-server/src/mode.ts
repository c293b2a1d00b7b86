/**
 * How workers' gradients become updates: the one choice every part of the parameter server shares
 * (local threads, network servers and clients, the wire protocol). See local/policies.ts and
 * net/policy.ts for what each mode means.
 */

/** `sync`: bulk-synchronous; `async`: Hogwild!, each gradient on arrival; `ssp`: stale synchronous parallel, bounded by S. */
export type Mode = 'sync' | 'async' | 'ssp';

/** Every Mode, for validating a flag or an option. */
export const MODES: readonly Mode[] = ['sync', 'async', 'ssp'];

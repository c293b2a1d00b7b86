/**
 * The two kinds of failure the `loom` command tells apart by exit code: a usage error (a bad flag,
 * value or config file: exit 2, as getopt-style tools do) and a runtime failure (exit 1).
 */
export class UsageError extends Error {
  override name = 'UsageError';
}

/** Exit codes, as documented in `loom --help`. */
export const EXIT = { ok: 0, failure: 1, usage: 2, interrupted: 130 } as const;

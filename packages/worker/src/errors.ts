// Every error @loom/worker throws is built here, so that all of them read the same way: where,
// what was expected, and what was found.

/** The one error class of @loom/worker. `where` is the function or option at fault. */
export class WorkerError extends Error {
  override name = 'WorkerError';
  constructor(
    readonly where: string,
    readonly detail: string,
  ) {
    super(`${where}: ${detail}`);
  }
}

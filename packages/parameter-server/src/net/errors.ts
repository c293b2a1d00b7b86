/**
 * The one error class of the network parameter server, shared by server and client: an error reply
 * travels as its `code` and `message`, and the client rethrows it as a PsError with the same code,
 * naming the server it came from.
 */

/** Why a request was refused; every code is documented in the package README. */
export const ERROR_CODES = [
  'bad-frame', // the bytes are not a frame: too short, bad header length, bad msgpack, payload not whole floats
  'unknown-type', // a header whose `type` is not a message of this protocol version
  'bad-request', // a known message with a missing or invalid field
  'version', // hello with a protocol version the server does not speak
  'auth', // no hello first, or a wrong token
  'config-mismatch', // hello's size or workers differ from the server's
  'rank-taken', // another live connection already is this worker rank
  'not-worker', // push or barrier from an observer connection
  'not-owner', // a range this server does not own
  'bad-length', // a payload whose length does not match its range
  'non-finite', // NaN or ±Inf in a gradient
  'bad-step', // a push for a step already applied, too far ahead, or pushed twice
  'bad-id', // (protocol 3) an id in a key section that is not an integer in [0, 2^53): negative, fractional, NaN, too large
  'unknown-table', // (protocol 3) a row message naming a table this server does not host
  'not-pulled', // (protocol 3) a pushrows for an id that has no row on this server (never pulled there)
  'too-many-requests', // more requests in flight on one connection than the server allows
  'closed', // (client side) the connection closed before the reply
  'timeout', // (client side) no answer in time
  'internal', // a bug in the server: the request failed, the server goes on
] as const;
export type ErrorCode = (typeof ERROR_CODES)[number];

export class PsError extends Error {
  override name = 'PsError';
  constructor(
    readonly code: ErrorCode,
    message: string,
  ) {
    super(message);
  }
}

/**
 * A checkpoint that cannot be used: unreadable, incomplete, or saved from another model, shard or
 * optimizer. The message names the file and the field, what was expected and what was found.
 */
export class CheckpointError extends Error {
  override name = 'CheckpointError';
  constructor(
    readonly file: string,
    message: string,
  ) {
    super(`${file}: ${message}`);
  }
}

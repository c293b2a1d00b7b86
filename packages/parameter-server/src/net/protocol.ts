/**
 * The wire protocol between workers and parameter servers, version 3: every message type, in one
 * place, and the checks that turn a decoded header into one. The package README documents each
 * field; keep the two in step. How a message travels as frames (header, payload, parts) is
 * ./frame.ts.
 *
 * A message is a msgpack header with the fields below, and a payload of float32 values (a
 * gradient or parameters; empty for most types). Every request but hello carries an `id` that its
 * reply echoes. A hello must come first on a connection and carry `v` = PROTOCOL_VERSION: a peer of
 * another version is refused there, with a `version` error, before any other frame is read.
 */
import { PsError, type ErrorCode } from './errors.js';
import type { StepPlan } from '@loom/worker';
import { describe, int, isFields, str, type Fields } from './fields.js';
import type { Mode } from '../mode.js';
import type { TrainedEpoch } from './plans.js';

/**
 * 4: step plans — `params` tell a worker who trains the step (`plan`), pushes name the live ranks
 * they were cut for (`live`), stats hold the ledger of rows trained (`trained`). 3: row-keyed tables
 * (pullrows, pushrows, rows; frames with a key section). 2: the dense key range only. A peer of
 * another version is refused at hello with a `version` error: a version 3 worker cuts every batch
 * by its own rank and would train rows a version 4 worker was given.
 */
export const PROTOCOL_VERSION = 4;

// ---- client → server -------------------------------------------------------------------------

/** The first message on every connection; nothing else is read before it. */
export interface Hello {
  type: 'hello';
  v: number;
  token: string;
  /** A worker pushes gradients as `rank`; an observer (a coordinator, a checkpointer) only pulls. */
  role: 'worker' | 'observer';
  rank: number; // 0 ≤ rank < workers for a worker; -1 for an observer
  workers: number; // W, checked against the server's
  size: number; // P, the model's parameter count, checked against the server's
}

/** Pull [lo, hi) of the parameters to compute step `step` with (see the README for when it answers). */
export interface Pull {
  type: 'pull';
  id: number;
  step: number;
  lo: number;
  hi: number;
}

/**
 * Push the gradient of step `step` for the server's whole range, starting at key `lo`, payload
 * hi − lo floats: the mean over the worker's `rows` rows of a global batch of `batchRows` rows.
 * `live` (version 4, sync and ssp): the live ranks of the step's plan the worker cut its rows by
 * (the plan shard 0 sent with the step's parameters); absent, the worker split the batch itself.
 */
export interface Push {
  type: 'push' | 'pushpull';
  id: number;
  step: number;
  lo: number;
  rows: number;
  batchRows: number;
  live?: number[];
}

/**
 * The fields a message whose payload travels in parts adds to its header (push, pushpull, params):
 * `parts` K ≥ 2 frames in all, this one first, then K − 1 `Part` frames; `floats` n, the whole payload.
 */
export interface InParts {
  parts: number;
  floats: number;
}

/** A continuation of message `id`: the next piece of its payload (sent right after the message's first frame). */
export interface Part {
  type: 'part';
  id: number;
}

/** Resolves when every worker has sent a barrier of the same name. */
export interface Barrier {
  type: 'barrier';
  id: number;
  name: string;
}

export interface StatsRequest {
  type: 'stats';
  id: number;
}

/** Stop training (pulls answer `stop`); with `exit`, then close the server. */
export interface Shutdown {
  type: 'shutdown';
  id: number;
  exit: boolean;
}

/**
 * A worker asks to be counted from step `step` on (sync and ssp): clocks before it no longer wait
 * for it, clocks from it do. Sent after hello by every worker of this version — at the start, after
 * a resume, and when it reconnects after being dropped. `stepsPerEpoch` (0: not said) lets the
 * server record the data position in its checkpoints. Answered with `ack`, or `bad-step` when
 * `step` is already applied.
 */
export interface Join {
  type: 'join';
  id: number;
  step: number;
  stepsPerEpoch: number;
}

/**
 * Rows of table `table` to compute step `step` with: the frame's key section holds N ids
 * (non-negative integers < 2^53, any order, repeats allowed); the reply (`rows`) carries N·D floats,
 * each id's row in the order of the ids. A worker's pull creates the rows of ids never seen (their
 * deterministic initial value) and is answered when the table's policy allows `step` (as `pull`);
 * an observer's pull only reads (RowTable.read: nothing is created, admitted or touched) and waits
 * for update `step` of the table, as an observer's `pull` does.
 */
export interface PullRows {
  type: 'pullrows';
  id: number;
  table: string;
  step: number;
}

/**
 * The gradient of step `step` for N rows of table `table` (key section: their ids; payload N·D
 * floats): the mean over the worker's `rows` rows of a global batch of `batchRows`, as `push`.
 * Every worker sends one per table per step to every server — with N = 0 when none of its ids
 * live there — so that each shard's table counts the step (sync: its clock; async: its update
 * count, the optimizer's step). Answered with `ack` once taken.
 */
export interface PushRows {
  type: 'pushrows';
  id: number;
  table: string;
  step: number;
  rows: number;
  batchRows: number;
  /** As push's. */
  live?: number[];
}

export type Request = Pull | Push | Barrier | StatsRequest | Shutdown | Join | PullRows | PushRows;

// ---- server → client -------------------------------------------------------------------------

export interface Welcome {
  type: 'welcome';
  v: number;
  shard: number;
  shards: number;
  lo: number;
  hi: number;
  size: number;
  workers: number;
  mode: Mode;
  staleness: number;
  /** Updates applied so far. */
  applied: number;
  /** Protocol 3: the row tables this server hosts (every server of a run hosts the same), by name and dim. */
  tables?: Array<{ name: string; dim: number }>;
}

/** The answer to pull and pushpull: parameters [lo, hi) as the payload. */
export interface Params {
  type: 'params';
  id: number;
  /** The step these parameters are for. */
  step: number;
  /** Updates applied when they were read: the parameters are the result of updates 0 … applied−1. */
  applied: number;
  /** The server is stopping: the worker should end its run (the payload still holds the parameters). */
  stop: boolean;
  lo: number;
  /** pushpull only: updates applied by others between this worker's last pull and its push. */
  stale: number;
  /**
   * Version 4, to a worker: the plan of step `step` (who trains it, and the rows of earlier steps it
   * carries; async: its epoch's, nothing carried). Every shard sends its own; workers follow shard 0's.
   */
  plan?: WirePlan;
}

/**
 * A StepPlan (@loom/worker's plan.ts) in a header: `live` the ranks, ascending; `carry` the carried
 * segments as [step, lo, hi] triples laid end to end.
 */
export interface WirePlan {
  live: number[];
  carry: number[];
}

/** Carried segments a plan may hold on the wire. */
export const MAX_CARRY = 4096;

export function planToWire(p: StepPlan): WirePlan {
  return { live: [...p.live], carry: p.carry.flatMap((s) => [s.step, s.lo, s.hi]) };
}

/** The answer to pullrows: N·D floats, the rows of the request's ids in its order. */
export interface Rows {
  type: 'rows';
  id: number;
  table: string;
  step: number;
  /** Updates of this table applied when the rows were read. */
  applied: number;
  stop: boolean;
}

export interface Ack {
  type: 'ack';
  id: number;
  stale: number;
}

export interface StatsReply {
  type: 'stats';
  id: number;
  stats: ServerStats;
}

export interface ErrorReply {
  type: 'error';
  /** The request's id, or -1 when the frame could not be read far enough to find one. */
  id: number;
  code: ErrorCode;
  message: string;
}

export type Reply = Params | Rows | Ack | StatsReply | ErrorReply;

/** What `stats` reports: configuration, progress and everything refused, by cause. */
export interface ServerStats {
  shard: number;
  shards: number;
  lo: number;
  hi: number;
  mode: Mode;
  workers: number;
  applied: number;
  stopped: boolean;
  connections: number;
  pushes: number;
  pulls: number;
  bytesIn: number;
  bytesOut: number;
  /** Refused requests and connections, by error code. */
  errors: Partial<Record<ErrorCode, number>>;
  /** Connections refused before authenticating, by kind ('bad token', 'no hello', 'connection limit', …; see the README). */
  refused?: Record<string, number>;
  /** Gradients with NaN or Inf that were skipped (counted as zero) instead of refused. */
  skippedNonFinite: number;
  /** Worker ranks the next update waits for (sync, ssp; every connected worker in async). */
  members?: number[];
  /** Workers dropped (disconnected or silent past the heartbeat timeout) and readmitted (joined again). */
  dropped?: number;
  readmitted?: number;
  /** The step of the last checkpoint this server saved or resumed from (−1: none). */
  checkpoint?: number;
  /**
   * Version 4: what the dense table's updates of each recent epoch were made of — rows trained
   * against expected, by rank, and the plans that changed who trains (./plans.ts). Shard 0's is
   * the run's: workers follow its plans.
   */
  trained?: TrainedEpoch[];
  /**
   * Row-keyed tables (protocol 3), by name: updates applied, rows held and created/evicted, and the
   * bytes of their frames in (pullrows + pushrows) and out (rows + acks), whole frames counted.
   */
  tables?: Record<string, RowTableStatsLine>;
}

/** One row table's line of `stats`. */
export interface RowTableStatsLine {
  dim: number;
  applied: number;
  rows: number;
  created: number;
  evicted: number;
  admitted: number;
  /** Ids seen but not yet admitted (admitAfter > 1). */
  pending: number;
  /** Gradient rows dropped: their id awaited admission, or its row was evicted since the pull. */
  dropped: number;
  pulls: number;
  pushes: number;
  /** Rows pulled and pushed (ids in those requests, repeats counted). */
  rowsPulled: number;
  rowsPushed: number;
  bytesIn: number;
  bytesOut: number;
}

// ---- checking headers ------------------------------------------------------------------------

const REQUEST_TYPES = ['pull', 'push', 'pushpull', 'barrier', 'stats', 'shutdown', 'join', 'pullrows', 'pushrows'];

/** The type of a decoded header, or throws 'bad-frame' when it is not a map with a string `type`. */
export function typeOf(h: unknown): string {
  if (!isFields(h) || typeof h.type !== 'string') throw new PsError('bad-frame', 'the header must be a map with a string field `type`');
  return h.type;
}

/** Checks a hello: only its shape; the server checks the version, token and config. */
export function parseHello(h: unknown): Hello | null {
  if (!isFields(h) || h.type !== 'hello') return null;
  const v = int(h, 'v', 0);
  if (v !== PROTOCOL_VERSION) return { type: 'hello', v, token: '', role: 'observer', rank: -1, workers: 0, size: 0 };
  const token = str(h, 'token', 1024);
  const role = h.role;
  if (role !== 'worker' && role !== 'observer') throw new PsError('bad-request', `hello: role must be 'worker' or 'observer', got ${describe(role)}`);
  const workers = int(h, 'workers', 1, 1 << 20);
  return { type: 'hello', v, token, role, rank: role === 'worker' ? int(h, 'rank', 0, workers - 1) : -1, workers, size: int(h, 'size', 0) };
}

/** Checks a request header field by field; throws PsError('unknown-type' | 'bad-request'). */
export function parseRequest(h: unknown): Request {
  const type = typeOf(h);
  const f = h as Fields;
  if (!REQUEST_TYPES.includes(type)) throw new PsError('unknown-type', `unknown message type ${describe(type)} (protocol ${PROTOCOL_VERSION} requests: ${REQUEST_TYPES.join(', ')})`);
  const id = int(f, 'id', 0, 2 ** 31 - 1);
  switch (type) {
    case 'pull':
      return { type, id, step: int(f, 'step', 0), lo: int(f, 'lo', 0), hi: int(f, 'hi', 0) };
    case 'push':
    case 'pushpull': {
      const batchRows = int(f, 'batchRows', 0);
      return { type: type as Push['type'], id, step: int(f, 'step', 0), lo: int(f, 'lo', 0), rows: int(f, 'rows', 0, batchRows), batchRows, ...liveOf(f) };
    }
    case 'barrier':
      return { type, id, name: str(f, 'name', 256) };
    case 'stats':
      return { type, id };
    case 'join':
      return { type, id, step: int(f, 'step', 0), stepsPerEpoch: f.stepsPerEpoch === undefined ? 0 : int(f, 'stepsPerEpoch', 0) };
    case 'pullrows':
      return { type, id, table: str(f, 'table', 256), step: int(f, 'step', 0) };
    case 'pushrows': {
      const batchRows = int(f, 'batchRows', 0);
      return { type, id, table: str(f, 'table', 256), step: int(f, 'step', 0), rows: int(f, 'rows', 0, batchRows), batchRows, ...liveOf(f) };
    }
    default: {
      if (typeof f.exit !== 'boolean') throw new PsError('bad-request', `shutdown: exit must be true or false, got ${describe(f.exit)}`);
      return { type: 'shutdown', id, exit: f.exit };
    }
  }
}

/** Ranks: an array of integers in [0, 2^20), strictly ascending (so at most 2^20 of them). */
function ranks(f: Fields, key: string, where = String(f.type)): number[] {
  const v = f[key];
  const bad = () => new PsError('bad-request', `${where}: ${key} must be an ascending array of distinct worker ranks, got ${describe(v)}`);
  if (!Array.isArray(v) || v.length > 1 << 20) throw bad();
  for (let i = 0; i < v.length; i++) {
    const r = v[i] as unknown;
    if (typeof r !== 'number' || !Number.isInteger(r) || r < 0 || r >= 1 << 20 || (i > 0 && r <= (v[i - 1] as number))) throw bad();
  }
  return v as number[];
}

/** A push's `live`, when it has one. */
function liveOf(f: Fields): { live?: number[] } {
  return f.live === undefined ? {} : { live: ranks(f, 'live') };
}

/** A params reply's `plan`, checked. */
function wirePlan(f: Fields): WirePlan {
  const p = f.plan;
  if (!isFields(p)) throw new PsError('bad-frame', `params: plan must be a map, got ${describe(p)}`);
  const live = ranks(p, 'live', 'params plan');
  const carry = p.carry;
  if (!Array.isArray(carry) || carry.length % 3 !== 0 || carry.length > 3 * MAX_CARRY || !carry.every((n) => typeof n === 'number' && Number.isSafeInteger(n) && n >= 0)) {
    throw new PsError('bad-frame', `params: plan.carry must be [step, lo, hi] triples of non-negative integers (at most ${MAX_CARRY}), got ${describe(carry)}`);
  }
  for (let i = 0; i < carry.length; i += 3) {
    if (carry[i + 1]! > carry[i + 2]!) throw new PsError('bad-frame', `params: plan.carry segment ${i / 3} has lo ${carry[i + 1]} > hi ${carry[i + 2]}`);
  }
  return { live, carry: carry as number[] };
}

/** A plan read from the wire, as @loom/worker's StepPlan. */
export function planFromWire(w: WirePlan): StepPlan {
  const carry = [];
  for (let i = 0; i < w.carry.length; i += 3) carry.push({ step: w.carry[i]!, lo: w.carry[i + 1]!, hi: w.carry[i + 2]! });
  return { live: w.live, carry };
}

/** The id of a request header, when it has a usable one (for error replies to bad requests). */
export function idOf(h: unknown): number {
  return isFields(h) && typeof h.id === 'number' && Number.isInteger(h.id) && h.id >= 0 && h.id < 2 ** 31 ? h.id : -1;
}

/** Checks a reply header (the client trusts its servers less than nothing: a server may be wrong too). */
export function parseReply(h: unknown): Reply | Welcome {
  const type = typeOf(h);
  const f = h as Fields;
  switch (type) {
    case 'welcome':
      return f as unknown as Welcome; // checked field by field by the client against its own config
    case 'params':
      return {
        type, id: int(f, 'id', 0), step: int(f, 'step', 0), applied: int(f, 'applied', 0), stop: f.stop === true, lo: int(f, 'lo', 0), stale: int(f, 'stale', 0),
        ...(f.plan !== undefined ? { plan: wirePlan(f) } : {}),
      };
    case 'rows':
      return { type, id: int(f, 'id', 0), table: str(f, 'table', 256), step: int(f, 'step', 0), applied: int(f, 'applied', 0), stop: f.stop === true };
    case 'ack':
      return { type, id: int(f, 'id', 0), stale: int(f, 'stale', 0) };
    case 'stats':
      if (!isFields(f.stats)) throw new PsError('bad-frame', 'stats reply without stats');
      return { type, id: int(f, 'id', 0), stats: f.stats as unknown as ServerStats };
    case 'error':
      return { type, id: int(f, 'id', -1), code: str(f, 'code', 64) as ErrorCode, message: str(f, 'message', 4096) };
    default:
      throw new PsError('unknown-type', `unknown reply type ${describe(type)}`);
  }
}

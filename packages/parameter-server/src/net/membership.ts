/**
 * A worker's membership of a run: connecting to every server (again, after losing one) with
 * jittered exponential backoff, and joining the barrier at a step every server agrees on.
 *
 * Losing a server — it closed, crashed or stopped answering — is retried: the worker closes its
 * other connections too (so every server drops it the same way), waits 0.1 s, 0.2 s, 0.4 s … (at
 * most 5 s, each ±50 % at random, so that W workers do not reconnect in lockstep), and connects
 * again, until `retryForMs` have passed since the loss; then it fails with
 * "lost parameter server ws://…: gave up after N s (last error: …)". A refusal that retrying cannot
 * fix (a wrong token, another model, a rank another live worker holds at the first connect) fails
 * at once.
 *
 * Joining: the servers report the updates they have applied; the worker asks to be counted from
 * J = the largest of them (sync and ssp: the clock being gathered, or the next one). When a server
 * has meanwhile applied J without it, it asks again from a later step — a bounded loop.
 */
import { PsClient, type ClientOptions } from './client.js';
import { PsError } from './errors.js';

export interface JoinOptions extends ClientOptions {
  /** How long to keep trying to (re)connect before giving up, in ms (default 60 s). */
  retryForMs?: number;
  /** The worker's batches per epoch, recorded by the servers in their checkpoints. */
  stepsPerEpoch?: number;
  /** False at the first connect: a taken rank is then another worker's, not our own old connection. */
  reconnecting?: boolean;
  log?: (line: string) => void;
  /** Cancels the waiting between attempts. */
  signal?: AbortSignal;
}

/** Errors that another attempt may cure: the connection, not the request, failed. */
export function isConnectionLoss(e: unknown, reconnecting = true): boolean {
  if (!(e instanceof PsError)) return false;
  return e.code === 'closed' || e.code === 'timeout' || (reconnecting && e.code === 'rank-taken');
}

const URL_IN = /wss?:\/\/[^\s/:]+(?::\d+)?/;

/** The delay before attempt `n` (0, 1, …): 100 ms · 2ⁿ, at most 5 s, times a random factor in [0.5, 1.5). */
export function backoffMs(n: number, random = Math.random): number {
  return Math.min(5000, 100 * 2 ** Math.min(n, 16)) * (0.5 + random());
}

/**
 * Connects to every server, retrying lost connections with backoff for up to `retryForMs`, then
 * joins the barrier. Resolves with the client and the step this worker continues with: sync and
 * ssp, the step it joined at; async, ⌊updates applied / W⌋ (its share of the update counter).
 * Rejects with the PsError of a refusal, or "lost parameter server …: gave up after N s".
 */
export async function joinRun(urls: readonly string[], o: JoinOptions): Promise<{ client: PsClient; step: number }> {
  const retryFor = o.retryForMs ?? 60_000;
  const t0 = performance.now();
  for (let attempt = 0; ; attempt++) {
    let client: PsClient;
    try {
      client = await PsClient.connect(urls, o);
    } catch (e) {
      if (!isConnectionLoss(e, o.reconnecting ?? false)) throw e;
      const waited = performance.now() - t0;
      if (waited >= retryFor || o.signal?.aborted) {
        const url = URL_IN.exec((e as Error).message)?.[0] ?? urls.join(',');
        throw new PsError('closed', `lost parameter server ${url}: gave up after ${Math.round(waited / 1000)} s (last error: ${(e as Error).message})`);
      }
      const delay = Math.min(backoffMs(attempt), Math.max(0, retryFor - waited));
      if (attempt === 0) o.log?.(`cannot reach the servers (${(e as Error).message}); retrying for up to ${Math.round(retryFor / 1000)} s`);
      await new Promise((r) => setTimeout(r, delay));
      continue;
    }
    try {
      return { client, step: await join(client, o) };
    } catch (e) {
      await client.close().catch(() => {});
      if (!isConnectionLoss(e, true) || performance.now() - t0 >= retryFor) throw e;
    }
  }
}

async function join(client: PsClient, o: JoinOptions): Promise<number> {
  let applied = client.applied;
  if (client.mode === 'async') {
    await client.join(0, o.stepsPerEpoch ?? 0);
    return Math.floor(Math.min(...applied) / o.workers);
  }
  // Servers of one live run are at most 1 + S updates apart (a worker pushes every shard before its
  // next step). Further apart, one was restarted from an older checkpoint than the others — or the
  // welcomes were read at different moments of a run that trains on: each hello reaches its server
  // when that connection is up, and a worker restarted beside others that train at 100 updates/s
  // saw shards "13 apart" whose hellos were answered 0.1 s apart. So a gap is read again from every
  // server at once (stats) before it is believed: servers restarted from different checkpoints stay
  // apart, as nobody can train the one behind forward. Even stats asked at once are answered at
  // moments a loaded machine may set updates apart: a gap is believed only when a read finds every
  // count where the read before left it (a run that moves is one run, whatever its reads show).
  const spread = (a: number[]) => Math.max(...a) - Math.min(...a);
  for (let reads = 0; spread(applied) > 1 + client.staleness && reads < 20; reads++) {
    const again = (await client.stats()).map((s) => s.applied);
    if (spread(again) > 1 + client.staleness && again.every((n, i) => n === applied[i])) {
      throw new PsError('config-mismatch', `the servers disagree on the step: ${client.urls.map((u, i) => `${u} has applied ${again[i]} updates`).join(', ')}; restart every server with --resume from the same checkpoint`);
    }
    applied = again;
  }
  let step = Math.max(...applied);
  for (let tries = 0; ; tries++) {
    try {
      await client.join(step, o.stepsPerEpoch ?? 0);
      return step;
    } catch (e) {
      if (!(e instanceof PsError && e.code === 'bad-step') || tries >= 20) throw e;
      // A server applied `step` before our join reached it: ask again from beyond its progress, by
      // a margin that doubles each time — 1, 2, 4 … 63 updates, within the 64 a server lets a join
      // be ahead — so that a run that moves on faster than our round trip is caught up with. (One
      // more update each time fell behind for good: a worker restarted beside two that trained at
      // 450 updates/s gave up, "join at step 4521: 4580 updates are already applied".)
      const now = (await client.stats()).map((s) => s.applied);
      step = Math.max(...now) + Math.min(63, 2 ** tries);
    }
  }
}

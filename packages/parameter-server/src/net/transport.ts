/**
 * The WebSocket Transport: @loom/worker's loop, unchanged, over parameter servers. Each step costs
 * one round trip per server: push(t) sends a pushpull (the gradient of step t, and "the parameters
 * for step t+1, please") without waiting, and the loop's next pull(t+1) awaits its answer.
 *
 * With a task that has row tables (StepInfo.tables: the CTR model's embeddings), pull(t) also
 * pulls each table's rows for the step's unique ids into `rows`, each id from the server that
 * holds it, and push(t) sends `grads` back by id (pushrows, without waiting; every server gets one
 * per table, empty when it holds none of the ids). The rows of step t+1 cannot ride on push(t) as
 * the dense parameters do — their ids are the next batch's — so a step with tables costs a second
 * round trip; the socket's order puts each push before the next pull on every server.
 *
 * Plans: the parameters for step t come with its StepPlan (who trains it, and rows carried from
 * earlier steps: @loom/worker's plan.ts; async servers plan per epoch), so `plan(t)` is the answer
 * of the pushpull of step t − 1 — or, for the first step on a connection, of a pull it starts. The
 * loop cuts the step's part by it; the push names the plan's live ranks; and a rank the plan leaves
 * out (one readmitted after the plan was fixed) pushes nothing and only pulls step t + 1. With
 * tables, runEpoch cuts the step by the last plan and pulls its rows while the plan is on its way,
 * and pulls again in the rare step whose plan differs.
 */
import { Staleness, type StepInfo, type StepPlan, type Transport } from '@loom/worker';
import type { PsClient, PullResult } from './client.js';

/**
 * How stale the parameters a pull answered are: in async mode, the updates other workers made since
 * this worker's last pull (the server counts them); in sync and ssp, the step minus the updates applied.
 */
export function stalenessOf(client: PsClient, step: number, r: Pick<PullResult, 'applied' | 'stale'>): number {
  return client.mode === 'async' ? r.stale : Math.max(0, step - r.applied);
}

export class WsTransport implements Transport {
  /** Staleness seen at each pull: ssp, step − updates applied; async, updates by others since this worker's last pull. */
  readonly staleness = new Staleness();
  private params: Float32Array | null = null;
  private next: { step: number; result: Promise<PullResult> } | null = null;
  /** The row pushes of the last step, not awaited (their errors surface at the next pull or settle). */
  private rowPushes: Promise<unknown> | null = null;

  constructor(readonly client: PsClient) {}

  /** The plan of `step`: the answer of the pull that brings its parameters (started here if none is in flight). */
  async plan(step: number, params: Float32Array): Promise<StepPlan | undefined> {
    if (!(this.next !== null && this.next.step === step && this.params === params)) {
      await this.settle();
      const result = this.client.pull(step, params);
      result.catch(() => {}); // rethrown below and by the pull
      this.next = { step, result };
      this.params = params;
    }
    return (await this.next.result).plan;
  }

  async pull(params: Float32Array, info: StepInfo): Promise<boolean> {
    let r: PullResult;
    const rows = info.tables === undefined ? [] : [...info.tables].map((t) => this.client.pullRows(t.name, info.step, t.ids, t.rows));
    if (this.next !== null && this.next.step === info.step && this.params === params) {
      r = await this.next.result;
    } else {
      await this.settle();
      r = await this.client.pull(info.step, params);
    }
    if (this.rowPushes !== null) await this.rowPushes;
    this.rowPushes = null;
    for (const p of rows) r.stop ||= (await p).stop;
    this.next = null;
    this.params = params;
    this.staleness.observe(stalenessOf(this.client, info.step, r));
    return !r.stop;
  }

  /** Starts the pushpull and returns at once; the gradient is copied before it returns. */
  push(grads: Float32Array, info: StepInfo): void {
    if (this.params === null) throw new Error('WsTransport: push before the first pull');
    const live = info.plan?.live;
    if (live !== undefined && !live.includes(this.client.rank)) {
      // Not among the step's live ranks: nothing to push, only the next step's parameters to pull.
      const result = this.client.pull(info.step + 1, this.params);
      result.catch(() => {});
      this.next = { step: info.step + 1, result };
      return;
    }
    const pushInfo = { rows: info.rows, batchRows: info.batchRows, ...(live !== undefined ? { live } : {}) };
    const result = this.client.pushPull(info.step, grads, this.params, pushInfo);
    result.catch(() => {}); // rethrown by the next pull or settle
    this.next = { step: info.step + 1, result };
    if (info.tables !== undefined) {
      const info_ = pushInfo;
      const pushes = Promise.all([...info.tables].map((t) => this.client.pushRows(t.name, info.step, t.ids, t.grads, info_)));
      pushes.catch(() => {});
      this.rowPushes = pushes;
    }
  }

  /**
   * Waits for the last push's answer, after which the parameters hold the values for the next
   * step and nothing writes them until the next pull. Call it before reading the parameters
   * between epochs. Rethrows the push's error.
   */
  async settle(): Promise<void> {
    if (this.next !== null) await this.next.result;
    if (this.rowPushes !== null) await this.rowPushes;
  }
}

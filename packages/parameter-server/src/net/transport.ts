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
 */
import { Staleness, type StepInfo, type Transport } from '@loom/worker';
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
    const result = this.client.pushPull(info.step, grads, this.params, info);
    result.catch(() => {}); // rethrown by the next pull or settle
    this.next = { step: info.step + 1, result };
    if (info.tables !== undefined) {
      const info_ = { rows: info.rows, batchRows: info.batchRows };
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

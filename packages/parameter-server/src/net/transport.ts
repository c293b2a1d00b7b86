/**
 * The WebSocket Transport: @loom/worker's loop, unchanged, over parameter servers. Each step costs
 * one round trip per server: push(t) sends a pushpull (the gradient of step t, and "the parameters
 * for step t+1, please") without waiting, and the loop's next pull(t+1) awaits its answer.
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

  constructor(readonly client: PsClient) {}

  async pull(params: Float32Array, info: StepInfo): Promise<boolean> {
    let r: PullResult;
    if (this.next !== null && this.next.step === info.step && this.params === params) {
      r = await this.next.result;
    } else {
      await this.settle();
      r = await this.client.pull(info.step, params);
    }
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
  }

  /**
   * Waits for the last push's answer, after which the parameters hold the values for the next
   * step and nothing writes them until the next pull. Call it before reading the parameters
   * between epochs. Rethrows the push's error.
   */
  async settle(): Promise<void> {
    if (this.next !== null) await this.next.result;
  }
}

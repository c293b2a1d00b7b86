/**
 * The WebSocket Transport: @loom/worker's loop, unchanged, over parameter servers. Each step costs
 * one round trip per server: push(t) sends a pushpull (the gradient of step t, and "the parameters
 * for step t+1, please") without waiting, and the loop's next pull(t+1) awaits its answer.
 */
import type { StepInfo, Transport } from '@loom/worker';
import type { PsClient, PullResult } from './client.js';

export class WsTransport implements Transport {
  /** Staleness seen at each pull: ssp, step − updates applied; async, updates by others since this worker's last pull. */
  readonly staleness = { max: 0, sum: 0, count: 0 };
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
    const stale = this.client.mode === 'async' ? r.stale : Math.max(0, info.step - r.applied);
    this.staleness.max = Math.max(this.staleness.max, stale);
    this.staleness.sum += stale;
    this.staleness.count++;
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

  resetStaleness(): void {
    Object.assign(this.staleness, { max: 0, sum: 0, count: 0 });
  }
}

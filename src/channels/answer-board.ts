// Where a request's outcome passes from the worker to an API waiting for it in the same process.
// The request workflow hands its outcome to the `answers` sink (src/core/contract.ts) before the
// workflow task that records it is sent; the sink settles it here, and the API answers without
// waiting for the recording round trip (the `early` answer path, docs/REQUESTS.md).
// Nothing is kept for a request nobody waits for.
import type { SettledRequest } from '../core/contract.js';

export class AnswerBoard {
  private readonly waiting = new Map<string, (outcome: SettledRequest) => void>();

  /** The outcome of `requestId` once its workflow settles in this process; `cancel` stops waiting. */
  wait(requestId: string): { settled: Promise<SettledRequest>; cancel(): void } {
    let cancel = () => undefined as void;
    const settled = new Promise<SettledRequest>((resolve) => {
      this.waiting.set(requestId, resolve);
      cancel = () => {
        if (this.waiting.get(requestId) === resolve) this.waiting.delete(requestId);
      };
    });
    return { settled, cancel };
  }

  /** Called by the worker's sink; false when no one here waits for the request. */
  settle(requestId: string, outcome: SettledRequest): boolean {
    const resolve = this.waiting.get(requestId);
    if (!resolve) return false;
    this.waiting.delete(requestId);
    resolve(outcome);
    return true;
  }

  get size(): number {
    return this.waiting.size;
  }
}

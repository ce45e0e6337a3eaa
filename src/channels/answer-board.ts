// Where a request's outcome passes from the worker to an API waiting for it in the same process.
// The request workflow hands its outcome to the `answers` sink (src/core/contract.ts) before the
// workflow task that records it is sent; the sink settles it here, and the API answers without
// waiting for the recording round trip (the `early` answer path, docs/REQUESTS.md).
// Nothing is kept for a request nobody waits for.
// It also bounds the requests answered from their call (the `call` answer point) whose workflow
// has not settled yet: answering ahead of the workflow must not let clients outrun the worker, or
// the work deferred past each answer piles up (and with it the requests a crash would run again).
import type { SettledRequest } from '../core/contract.js';

/** Requests answered ahead of their workflow at once, per process, before answers wait for it. */
export const MAX_ANSWERED_AHEAD = 16;
/** A request answered ahead whose workflow settles elsewhere (its task moved on) stops counting after this. */
const AHEAD_FORGOTTEN_MS = 30_000;

export class AnswerBoard {
  private readonly waiting = new Map<string, (outcome: SettledRequest) => void>();
  private readonly ahead = new Map<string, NodeJS.Timeout>();

  constructor(private readonly maxAhead = MAX_ANSWERED_AHEAD) {}

  /**
   * Claims a place for answering `requestId` before its workflow settles; false when as many
   * requests are answered ahead already (the answer then waits for the workflow).
   */
  answerAhead(requestId: string): boolean {
    if (this.ahead.has(requestId)) return true;
    if (this.ahead.size >= this.maxAhead) return false;
    const timer = setTimeout(() => this.ahead.delete(requestId), AHEAD_FORGOTTEN_MS);
    timer.unref();
    this.ahead.set(requestId, timer);
    return true;
  }

  /** Requests answered ahead of their workflow, not settled yet. */
  get answeredAhead(): number {
    return this.ahead.size;
  }

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
    const timer = this.ahead.get(requestId);
    if (timer) {
      clearTimeout(timer);
      this.ahead.delete(requestId);
    }
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

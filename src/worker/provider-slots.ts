// A provider worker's options: the Temporal server's task-queue rate limit (the average, across all
// workers), and an activity slot supplier that holds this worker's concurrency cap and its strict
// share of the rate limit (docs/ROUTING.md, "Per-provider task queues and rate limits").
//
// Why both: the server's limiter lets a full second's worth of tasks through at once after an idle
// spell (burst = 1 s of the rate, fixed in Temporal's matching service), so on its own a second can
// see 2R calls. The worker-side `maxActivitiesPerSecond` does not help: it spaces poll requests,
// but the polls already waiting at the server all receive a task at once. A slot supplier sees
// every poll: Temporal core reserves a slot before each activity poll and marks it used when the
// poll returns a task, so counting the reserved slots, the calls not sent yet and the calls sent
// in the last window bounds how many calls can reach the provider in any window.
import { AsyncLocalStorage } from 'node:async_hooks';
import diagnostics from 'node:diagnostics_channel';
import type {
  ActivityInboundCallsInterceptor,
  ActivitySlotInfo,
  CustomSlotSupplier,
  SlotMarkUsedContext,
  SlotPermit,
  SlotReleaseContext,
  SlotReserveContext,
  WorkerOptions,
} from '@temporalio/worker';
import { DEFAULT_PROVIDER_CONCURRENCY, type ProviderConfig } from '../config/schema.js';

/**
 * Added to each worker's window: a request sent by the worker reaches the provider a little later,
 * and that delay varies (network jitter; measured on one busy machine, provider in the same
 * process: 0-25 ms, spikes of ~50 ms). A window this much longer than a second keeps most of the
 * variation from squeezing two windows' calls into one second at the provider, for ~2.5 % of the
 * rate; a spike beyond it can let one extra call into a second. 100 ms held every measured second
 * to R but cost 9 %, which puts a rate-limited batch outside 5 % of its ideal duration.
 */
export const RATE_WINDOW_GUARD_MS = 25;

/**
 * How long before a window frees up the worker may already poll for the next task. A task takes
 * tens of ms from the poll to its request (the poll's round trip, starting the activity, building
 * the request); polling only once the window had freed made each window that much longer (~5 %
 * of the rate measured). A task that arrives early waits for its turn to send (`sendTurn`).
 */
export const RATE_POLL_LEAD_MS = 100;

/**
 * A worker's share of a limit of `ratePerSecond` shared by `workers` worker processes:
 * ⌊R / W⌋ calls in any window of a second (plus the guard); below one call a second per worker,
 * one call per W / R seconds.
 */
export function rateShare(ratePerSecond: number, workers: number, guardMs = RATE_WINDOW_GUARD_MS): { perWindow: number; windowMs: number } {
  const share = ratePerSecond / workers;
  return share >= 1 ? { perWindow: Math.floor(share), windowMs: 1000 + guardMs } : { perWindow: 1, windowMs: 1000 / share + guardMs };
}

/** A rate-limited provider's slot supplier: its worker's strict share of the limit (undefined without a limit). */
export function providerSlotSupplier(provider: ProviderConfig): ProviderSlotSupplier | undefined {
  if (provider.rateLimitPerSecond === undefined) return undefined;
  const concurrency = provider.concurrency ?? DEFAULT_PROVIDER_CONCURRENCY;
  return new ProviderSlotSupplier({ maxConcurrent: concurrency, leadMs: RATE_POLL_LEAD_MS, ...rateShare(provider.rateLimitPerSecond, provider.rateLimitWorkers ?? 1) });
}

export interface ProviderWorkerHooks {
  /**
   * A call starts waiting for its turn to send; the returned function is called when it may.
   * `scheduledAtMs`: when its attempt was scheduled (the server's clock), so the wait can include
   * the time its task was held back at the server and by this worker's polling.
   */
  onWait?: (scheduledAtMs: number) => () => void;
}

/** `slots`: the provider's supplier, when other calls to it in this process (streamed ones) must share its window. */
export function providerWorkerOptions(provider: ProviderConfig, hooks: ProviderWorkerHooks = {}, slots: ProviderSlotSupplier | undefined = providerSlotSupplier(provider)): Partial<WorkerOptions> {
  const concurrency = provider.concurrency ?? DEFAULT_PROVIDER_CONCURRENCY;
  if (provider.rateLimitPerSecond === undefined || !slots) return { maxConcurrentActivityTaskExecutions: concurrency };
  return {
    maxTaskQueueActivitiesPerSecond: provider.rateLimitPerSecond,
    tuner: {
      activityTaskSlotSupplier: slots,
      // A provider worker runs no workflows, local activities or Nexus operations.
      workflowTaskSlotSupplier: { type: 'fixed-size', numSlots: 1 },
      localActivityTaskSlotSupplier: { type: 'fixed-size', numSlots: 1 },
      nexusTaskSlotSupplier: { type: 'fixed-size', numSlots: 1 },
    },
    interceptors: { activity: [(ctx) => ({ inbound: sendTracker(slots, hooks, ctx.info.currentAttemptScheduledTimestampMs) })] },
  };
}

// When a call's request is sent. The activity runs in a context naming its supplier; Node's fetch
// (undici, which the three provider SDKs use) publishes each request it creates, in the caller's
// context, and the moment its headers are written to the socket, after connecting (and TLS).
interface Call {
  slots: ProviderSlotSupplier;
  sent: boolean;
}
const currentCall = new AsyncLocalStorage<Call>();
const callOfRequest = new WeakMap<object, Call>();
let watching = false;

function watchRequests(): void {
  if (watching) return;
  watching = true;
  diagnostics.subscribe('undici:request:create', (message) => {
    const call = currentCall.getStore();
    if (call && !call.sent) callOfRequest.set((message as { request: object }).request, call);
  });
  diagnostics.subscribe('undici:client:sendHeaders', (message) => {
    const call = callOfRequest.get((message as { request: object }).request);
    if (call && !call.sent) {
      call.sent = true;
      call.slots.callSent();
    }
  });
}

/** Runs one provider call within `slots`' window: it waits for its turn to send, and its send is counted. */
async function trackCall<T>(slots: ProviderSlotSupplier, run: () => Promise<T>, opts: { external?: boolean; onWait?: () => () => void } = {}): Promise<T> {
  watchRequests();
  const call: Call = { slots, sent: false };
  slots.callStarted(opts.external);
  try {
    const waited = opts.onWait?.();
    try {
      await slots.sendTurn();
    } finally {
      waited?.();
    }
    return await currentCall.run(call, run);
  } finally {
    // No request seen (failed before it, or a client that is not fetch): counted as sent now,
    // which is never earlier than a request it may have sent.
    if (!call.sent) {
      call.sent = true;
      slots.callSent();
    }
    slots.callEnded(opts.external);
  }
}

function sendTracker(slots: ProviderSlotSupplier, hooks: ProviderWorkerHooks, scheduledAtMs: number): ActivityInboundCallsInterceptor {
  const onWait = hooks.onWait;
  return { execute: (input, next) => trackCall(slots, () => next(input), onWait ? { onWait: () => onWait(scheduledAtMs) } : {}) };
}

/**
 * Streamed calls do not run on their provider's task queue (they run in the process that streams
 * them, docs/STREAMING.md), so the server's task-queue limit does not see them; a rate-limited
 * provider's strict per-worker share still does: each streamed call to it waits for its turn in
 * the same window as the provider worker's own calls in this process.
 */
export function streamedCallLimiter(slotsByProvider: ReadonlyMap<string, ProviderSlotSupplier>): ActivityInboundCallsInterceptor {
  return {
    execute(input, next) {
      const arg = input.args[0] as { provider?: unknown; stream?: unknown } | undefined;
      const slots = arg?.stream && typeof arg.provider === 'string' ? slotsByProvider.get(arg.provider) : undefined;
      return slots ? trackCall(slots, () => next(input), { external: true }) : next(input);
    },
  };
}

export interface ProviderSlotOptions {
  /** Provider calls running at once on this worker (polls waiting for a task included). */
  maxConcurrent: number;
  /** Provider calls that may be sent from this worker within any `windowMs`; unset: no rate limit. */
  perWindow?: number;
  windowMs?: number;
  /** Poll this long before the window frees up (default 0); the call then waits for `sendTurn`. */
  leadMs?: number;
  /** Monotonic clock in ms (tests). */
  now?: () => number;
}

interface Permit extends SlotPermit {
  used: boolean;
  released: boolean;
}

interface Waiter {
  resolve(p: Permit): void;
  signal: AbortSignal;
  onAbort(): void;
}

/**
 * A sliding-window limiter as a Temporal activity slot supplier. A slot is granted when fewer than
 * `maxConcurrent` are reserved or running, and fewer than `perWindow` calls are pending (a slot
 * reserved for a poll, a task received and its request not sent yet) or were sent within the last
 * `windowMs`. Then no `windowMs` window holds more than `perWindow` sends: of any perWindow + 1 of
 * them, the last one to get its slot found each other one pending or sent within the window.
 *
 * The worker reports a call's progress: `callStarted` when the activity starts, `callSent` when
 * its request goes out (or when the activity ends without one), `callEnded` when it ends. Tasks
 * that are received but never run are recognised when their slots are released.
 */
export class ProviderSlotSupplier implements CustomSlotSupplier<ActivitySlotInfo> {
  readonly type = 'custom';
  private readonly maxConcurrent: number;
  private readonly perWindow: number;
  private readonly windowMs: number;
  private readonly leadMs: number;
  private readonly now: () => number;
  /** Slots handed out for a poll that has not returned a task yet. */
  private reserved = 0;
  /** Slots running a task. */
  private inUse = 0;
  /** Totals: tasks received, activities started and ended, used slots released. */
  private received = 0;
  private started = 0;
  private ended = 0;
  private releasedUsed = 0;
  /** Activities running whose request has not been sent. */
  private unsent = 0;
  /** Of those, the ones that had their turn to send (`sendTurn`). */
  private cleared = 0;
  private turnWaiters: (() => void)[] = [];
  private turnTimer: NodeJS.Timeout | undefined;
  /** When the calls of the last window were sent (ascending). */
  private sent: number[] = [];
  private waiters: Waiter[] = [];
  private timer: NodeJS.Timeout | undefined;

  constructor(opts: ProviderSlotOptions) {
    this.maxConcurrent = opts.maxConcurrent;
    this.perWindow = opts.perWindow ?? Infinity;
    this.windowMs = opts.windowMs ?? 1000;
    this.leadMs = opts.leadMs ?? 0;
    this.now = opts.now ?? (() => performance.now());
  }

  reserveSlot(_ctx: SlotReserveContext, abortSignal: AbortSignal): Promise<SlotPermit> {
    if (abortSignal.aborted) return Promise.reject(abortSignal.reason);
    const permit = this.waiters.length === 0 ? this.tryIssue() : null;
    if (permit) return Promise.resolve(permit);
    return new Promise<SlotPermit>((resolve, reject) => {
      const waiter: Waiter = {
        resolve,
        signal: abortSignal,
        onAbort: () => {
          this.waiters = this.waiters.filter((w) => w !== waiter);
          if (this.waiters.length === 0) this.clearTimer(); // nothing left to wake (worker shutdown)
          reject(abortSignal.reason);
        },
      };
      abortSignal.addEventListener('abort', waiter.onAbort, { once: true });
      this.waiters.push(waiter);
      this.schedule();
    });
  }

  tryReserveSlot(_ctx: SlotReserveContext): SlotPermit | null {
    return this.waiters.length === 0 ? this.tryIssue() : null;
  }

  markSlotUsed(ctx: SlotMarkUsedContext<ActivitySlotInfo>): void {
    const permit = ctx.permit as Permit;
    if (permit.used || permit.released) return;
    permit.used = true;
    this.reserved--;
    this.inUse++;
    this.received++;
  }

  releaseSlot(ctx: SlotReleaseContext<ActivitySlotInfo>): void {
    const permit = ctx.permit as Permit;
    if (permit.released) return;
    permit.released = true;
    if (permit.used) {
      this.inUse--;
      this.releasedUsed++;
    } else {
      this.reserved--; // a poll that ended without a task: its place in the window is free again
    }
    this.pump();
  }

  /** `external`: a call to this provider that did not come through this supplier's slots (a streamed call). */
  callStarted(external = false): void {
    if (!external) this.started++;
    this.unsent++;
  }

  /**
   * Resolves when this call may send its request: fewer than `perWindow` calls were sent in the
   * last window or were cleared to send and have not yet. Polling ahead (`leadMs`) may hand a
   * task over before the window frees up; this holds its request back until it does, so the
   * bound on sends per window holds whatever the poll timing. Call once per started call.
   */
  sendTurn(): Promise<void> {
    return new Promise<void>((resolve) => {
      this.turnWaiters.push(resolve);
      this.pumpTurns();
    });
  }

  callSent(): void {
    this.unsent--;
    if (this.cleared > 0) this.cleared--;
    this.sent.push(this.now());
    this.schedule(); // waiters held back by unsent calls wait for this one to leave the window
    this.pumpTurns();
  }

  callEnded(external = false): void {
    if (!external) this.ended++;
  }

  /**
   * Tasks received whose activity has not started. A task's activity ends before its slot is
   * released, so of the used slots released, at least `releasedUsed - ended` never ran: this count
   * is never below the true one, and it is 0 once everything is released.
   */
  private receivedNotStarted(): number {
    return Math.max(0, this.received - this.started - Math.max(0, this.releasedUsed - this.ended));
  }

  private pruneSent(now: number): void {
    while (this.sent.length > 0 && this.sent[0] + this.windowMs <= now) this.sent.shift();
  }

  /** Sends still in the window `ms` from now. */
  private sentInWindowAt(now: number, ms: number): number {
    let i = 0;
    while (i < this.sent.length && this.sent[i] + this.windowMs <= now + ms) i++;
    return this.sent.length - i;
  }

  private pumpTurns(): void {
    const now = this.now();
    this.pruneSent(now);
    while (this.turnWaiters.length > 0 && this.sent.length + this.cleared < this.perWindow) {
      this.cleared++;
      this.turnWaiters.shift()!();
    }
    if (this.turnWaiters.length > 0 && !this.turnTimer && this.sent.length > 0) {
      this.turnTimer = setTimeout(() => {
        this.turnTimer = undefined;
        this.pumpTurns();
      }, Math.ceil(Math.max(0, this.sent[0] + this.windowMs - now)) + 1);
    }
  }

  private tryIssue(): Permit | null {
    const now = this.now();
    this.pruneSent(now);
    if (this.reserved + this.inUse >= this.maxConcurrent) return null;
    if (this.reserved + this.receivedNotStarted() + this.unsent + this.sentInWindowAt(now, this.leadMs) >= this.perWindow) return null;
    this.reserved++;
    return { used: false, released: false } satisfies Permit;
  }

  private pump(): void {
    while (this.waiters.length > 0) {
      const permit = this.tryIssue();
      if (!permit) break;
      const waiter = this.waiters.shift()!;
      waiter.signal.removeEventListener('abort', waiter.onAbort);
      waiter.resolve(permit);
    }
    this.schedule();
  }

  /** Wakes the waiters when the oldest send is about to leave the window (a release wakes them by itself). */
  private schedule(): void {
    if (this.timer || this.waiters.length === 0) return;
    const now = this.now();
    // The oldest send still counted: the ones leaving within the lead no longer hold a slot back.
    const next = this.sent.find((t) => t + this.windowMs > now + this.leadMs);
    if (next === undefined) return;
    const delay = Math.max(0, next + this.windowMs - this.leadMs - now);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.pump();
    }, Math.ceil(delay) + 1);
  }

  private clearTimer(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }
}

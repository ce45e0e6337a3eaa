// A request's first provider call, begun by the API of a gateway the moment the request is durable
// (docs/ROUTING.md, "Head start"). With an eager start the workflow's first task runs in this
// process, and its first attempt is a local call to the plan's first target — but only after the
// workflow's first activation and the local activity's dispatch, which cost several ms of SDK work
// on every request. The API knows that call already (the same plan from the same input), so it
// sends it at once; the first attempt adopts the call in flight instead of sending its own, and
// everything else (attempt log, retries, fallback, health, metrics, the stream board) is the
// activity's as before. A head start that no attempt adopts is aborted: one the workflow did not
// plan (it planned from the same input, so only a bug or a cancellation before the call leaves one).
import type { ChatRequestBody } from '../../src/core/chat-request.js';
import type { AttemptRecord, HeadStartSpec, HeadStartTicket } from '../../src/core/request-types.js';
import { DEFAULT_PROVIDER_CONCURRENCY, type KeelConfig, type ProviderConfig } from '../../src/config/schema.js';
import { randomUUID } from 'node:crypto';
import type { StreamBoard } from '../../src/channels/stream-board.js';
import { createAdapter } from '../providers/index.js';
import type { ChatCompletion, ChatRequest } from '../providers/types.js';
import { tryAcquirePermit } from './local-gate.js';
import { streamCall, type StreamCallResult } from './stream-call.js';

/** How long a head start waits for its attempt: well past a workflow task's first activation. */
const ADOPT_WITHIN_MS = 10_000;

type HeadStartOutcome = 'adopted' | 'abandoned';

/** What an attempt adopts: the call's HTTP request is out, its answer (or first event) on its way. */
export interface HeadStartedCall {
  /** When the request went out (the attempt's start). */
  startedAt: number;
  /** Aborts the HTTP call (the attempt's cancellation, a lost race, a stall). */
  controller: AbortController;
  /** The provider's concurrency permit, taken when the call went out; the attempt releases it. */
  release: () => void;
  call:
    /** `finishedAt`: when the answer came (the attempt's duration ends there, not when it was adopted). */
    | { kind: 'complete'; answer: Promise<ChatCompletion>; finishedAt(): number | undefined }
    /**
     * The stream runs already, publishing to the board as the attempt would (a client may have
     * chunks before the attempt starts). `adopt` hands the attempt its outcome, and its progress
     * from then on; `firstChunkAt`, when the first content chunk went out, if it has.
     */
    | { kind: 'stream'; adopt(onProgress: (chunks: number) => void): Promise<StreamCallResult>; firstChunkAt(): number | undefined };
}

/** The record of a head-started call that answered: the adopting attempt keeps the same one. */
export function answeredAttempt(provider: string, model: string, startedAt: number, finishedAt: number): AttemptRecord {
  return { target: `${provider}/${model}`, provider, model, attempt: 1, startedAt, durationMs: finishedAt - startedAt, outcome: 'success' };
}

/** The body the provider gets: Keel's and OpenRouter's routing fields are not the provider's. */
export function providerRequest(request: ChatRequestBody, model: string): ChatRequest {
  const { models: _m, provider: _p, keel: _k, stream: _s, ...rest } = request;
  return { ...(rest as unknown as ChatRequest), model };
}

function stop(call: Pick<HeadStartedCall, 'controller' | 'release'>, why: string): void {
  call.controller.abort(new DOMException(why, 'AbortError'));
  call.release();
}

export class HeadStarts {
  private readonly pending = new Map<string, HeadStartedCall & { provider: string; model: string; timer: NodeJS.Timeout }>();
  /** Head starts begun, adopted by their attempt, and abandoned (aborted unadopted). */
  readonly counts = { begun: 0, adopted: 0, abandoned: 0 };
  /**
   * Requests whose first attempt came for its head start before the API began one (when), kept for
   * the adoption wait: the attempt makes its own call, so a head start begun after it would be a
   * second call — and, with the `call` answer point, an answer the workflow never records.
   */
  private readonly attemptedFirst = new Map<string, number>();

  constructor(
    private readonly config: KeelConfig,
    private readonly opts: {
      /** Where streamed calls publish their chunks (no board: no streamed head starts). */
      board?: StreamBoard;
      /** How long a head start waits for its attempt before it is aborted. */
      adoptWithinMs?: number;
      /**
       * Whether the target's circuit breaker lets a call through: asked when the call goes out,
       * so the attempt that adopts it does not ask again (a client may have its answer already).
       */
      admits?: (target: string) => boolean;
      /** Each head start's end, for the process's metrics. */
      onEnd?: (provider: string, outcome: HeadStartOutcome) => void;
    } = {},
  ) {}

  /**
   * Sends the call now, unless the provider's concurrency cap is reached (the attempt then waits
   * for a permit as usual) or the provider has a rate limit (its turns are the worker's to give).
   */
  begin(spec: HeadStartSpec): HeadStartTicket | undefined {
    const provider = this.config.providers[spec.provider];
    if (!provider || provider.rateLimitPerSecond !== undefined || this.pending.has(spec.requestId) || this.attemptedFirst.has(spec.requestId)) return undefined;
    if (spec.stream && !this.opts.board) return undefined;
    // An open breaker: the attempt refuses the call itself (and the workflow falls back).
    if (this.opts.admits && !this.opts.admits(`${spec.provider}/${spec.model}`)) return undefined;
    const release = tryAcquirePermit(spec.provider, provider.concurrency ?? DEFAULT_PROVIDER_CONCURRENCY);
    if (!release) return undefined;
    let ticket: HeadStartTicket;
    try {
      ticket = this.send(spec, provider, release);
    } catch {
      // A head start is only a head start: whatever stops it here, the attempt makes the call itself.
      release();
      return undefined;
    }
    this.counts.begun += 1;
    return ticket;
  }

  private send(spec: HeadStartSpec, provider: ProviderConfig, release: () => void): HeadStartTicket {
    const adapter = createAdapter(provider.type, { baseURL: provider.baseURL, ...(provider.apiKey && { apiKey: provider.apiKey }) });
    const controller = new AbortController();
    const body = providerRequest(spec.request, spec.model);
    const startedAt = Date.now();
    let call: HeadStartedCall['call'];
    let ticket: HeadStartTicket = {};
    if (spec.stream) {
      let listener: ((chunks: number) => void) | undefined;
      let firstChunkAt: number | undefined;
      const result = streamCall({
        adapter,
        request: body,
        upstreamModel: spec.model,
        spec: spec.stream,
        board: this.opts.board!,
        requestId: spec.requestId,
        runId: spec.runId,
        callId: `head#${randomUUID()}`,
        target: `${spec.provider}/${spec.model}`,
        cancelled: controller.signal,
        onProgress: (n) => {
          if (n === 1) firstChunkAt = Date.now();
          listener?.(n);
        },
      });
      // Kept for the attempt, which awaits it: no unhandled rejection meanwhile.
      result.catch(() => undefined);
      call = {
        kind: 'stream',
        adopt(onProgress) {
          listener = onProgress;
          return result;
        },
        firstChunkAt: () => firstChunkAt,
      };
    } else {
      let finishedAt: number | undefined;
      const answer = adapter.complete(body, spec.model, controller.signal).then((completion) => {
        finishedAt = Date.now();
        return completion;
      });
      call = { kind: 'complete', answer, finishedAt: () => finishedAt };
      answer.catch(() => undefined);
      ticket = {
        answered: answer.then(
          (completion) => ({ completion, attempt: answeredAttempt(spec.provider, spec.model, startedAt, finishedAt!) }),
          () => undefined,
        ),
      };
    }
    const timer = setTimeout(() => this.abandon(spec.requestId), this.opts.adoptWithinMs ?? ADOPT_WITHIN_MS);
    timer.unref();
    this.pending.set(spec.requestId, { startedAt, controller, release, call, provider: spec.provider, model: spec.model, timer });
    return ticket;
  }

  /**
   * The head start of `requestId` for an attempt calling `provider`/`model` (streamed or not),
   * once: undefined when there is none, or when it is another call (it is then aborted).
   */
  take(requestId: string, provider: string, model: string, stream: boolean): HeadStartedCall | undefined {
    const p = this.pending.get(requestId);
    if (!p) {
      this.noteAttemptedFirst(requestId);
      return undefined;
    }
    if (p.provider !== provider || p.model !== model || (p.call.kind === 'stream') !== stream) {
      this.abandon(requestId);
      return undefined;
    }
    this.pending.delete(requestId);
    clearTimeout(p.timer);
    this.counts.adopted += 1;
    this.opts.onEnd?.(provider, 'adopted');
    return { startedAt: p.startedAt, controller: p.controller, release: p.release, call: p.call };
  }

  private noteAttemptedFirst(requestId: string): void {
    const now = Date.now();
    // Oldest first (a Map keeps insertion order): drop what is past the adoption wait.
    for (const [id, at] of this.attemptedFirst) {
      if (now - at < (this.opts.adoptWithinMs ?? ADOPT_WITHIN_MS)) break;
      this.attemptedFirst.delete(id);
    }
    this.attemptedFirst.set(requestId, now);
  }

  /** Head starts waiting for their attempt. */
  get waiting(): number {
    return this.pending.size;
  }

  private abandon(requestId: string): void {
    const p = this.pending.get(requestId);
    if (!p) return;
    this.pending.delete(requestId);
    clearTimeout(p.timer);
    stop(p, 'head start not adopted');
    this.counts.abandoned += 1;
    this.opts.onEnd?.(p.provider, 'abandoned');
  }

  /** Aborts every head start (the process is stopping). */
  close(): void {
    for (const id of [...this.pending.keys()]) this.abandon(id);
  }
}

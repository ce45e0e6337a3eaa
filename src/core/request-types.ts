// Shapes that cross the workflow/activity/API boundaries. Type-only, so workflows may import them.
import type { ChatCompletion } from 'openai/resources/chat/completions';
import type { RetrySettings, RoutingConfig } from '../config/schema.js';
import type { ChatRequestBody } from './chat-request.js';
import type { ErrorClass } from './error-classes.js';
import type { RoutingHealth } from './health-types.js';
import type { Plan } from './routing.js';
import type { LayoutEntry } from './stream-chunks.js';

export interface AttemptRecord {
  /** provider/upstream-model */
  target: string;
  provider: string;
  model: string;
  /** 1-based attempt number on this target. */
  attempt: number;
  /** Epoch ms. */
  startedAt: number;
  durationMs: number;
  outcome: 'success' | 'error' | 'cancelled';
  errorClass?: ErrorClass;
  status?: number;
  message?: string;
  /** Delay before the next attempt on this target, when one follows. */
  retryInMs?: number;
  /** A streamed call: how far its answer got (chunks it streamed, characters of content). */
  stream?: StreamProgress;
}

export interface StreamProgress {
  chunks: number;
  chars: number;
  /** A call that continued an interrupted answer: what the client had when it took over. */
  continuedAt?: { chunks: number; chars: number };
}

/** A streamed answer so far: what the client has of an interrupted stream (docs/STREAMING.md). */
export interface PartialStream {
  completion: ChatCompletion;
  layout: LayoutEntry[];
}

/** What a streamed provider call needs besides the request. */
export interface StreamCallSpec {
  /** Once the first chunk is in: no chunk for this long is a stall. */
  idleTimeoutMs: number;
  /** No first chunk within this: an ordinary attempt timeout (retried, falls back). */
  firstChunkTimeoutMs: number;
  /** Continue this interrupted answer (`stream_recovery: continue`) instead of starting one. */
  continuation?: PartialStream;
}

export interface ProviderCallInput {
  requestId: string;
  provider: string;
  model: string;
  request: ChatRequestBody;
  retry: RetrySettings;
  /** Epoch ms after which no new attempt is worth starting (whole-request budget). */
  deadline: number;
  /** This call is the half-open probe of its target's circuit breaker. */
  probe?: boolean;
  /** Stream the answer to the API in this process as it comes (a streamed request). */
  stream?: StreamCallSpec;
}

export type ProviderCallOutput =
  | {
      completion: ChatCompletion;
      attempts: AttemptRecord[];
      /** A streamed call: where its chunks cut the answer. */
      layout?: LayoutEntry[];
    }
  | {
      /** A streamed call that another call of the request beat to the first token (a race or a hedge). */
      lost: true;
      attempts: AttemptRecord[];
    };

/** Carried in heartbeat details and failure details so every attempt reaches the attempt log. */
export interface AttemptLogDetails {
  attempts: AttemptRecord[];
  /** A streamed call: chunks it had sent to the client (a retry after its worker died must not start another answer). */
  streamed?: number;
}

export interface ChatWorkflowInput {
  request: ChatRequestBody;
  routing: RoutingConfig;
  batchId?: string;
  /** Async jobs: POSTed (signed) when the request ends. Keel's own: never sent to providers. */
  webhook?: WebhookSpec;
  /** Plan computed by the caller for validation; the workflow recomputes it from the same inputs. */
  plan?: Plan;
  /**
   * Provider health for this request's candidate targets, read by the API from its worker's
   * snapshot when the two share a process; absent, the workflow reads it (a local activity).
   */
  health?: RoutingHealth | null;
  /** The virtual key the request was made with (its id only, never the secret): settled as the request ends. */
  key?: RequestKey;
  /** A streamed request, started by an API that streams it from its own process (docs/STREAMING.md). */
  stream?: StreamRequestSpec;
}

export interface StreamRequestSpec {
  /** The starting process's own activity queue: where hedged streamed calls run (timers need a task queue). */
  processQueue: string;
  /** The client asked for a last chunk with the usage (`stream_options.include_usage`). */
  includeUsage: boolean;
}

/**
 * A request's first provider call as a gateway's API sends it before the workflow asks for it
 * (docs/ROUTING.md, "Head start"): the call the workflow's first attempt will make.
 */
export interface HeadStartSpec {
  requestId: string;
  /** The run the call belongs to (the stream board keys a request's stream by it). */
  runId: string;
  provider: string;
  model: string;
  request: ChatRequestBody;
  /** A streamed request: the limits its call streams under (as the workflow gives them). */
  stream?: { idleTimeoutMs: number; firstChunkTimeoutMs: number };
}

/**
 * What the API of the process may answer a waiting client with (the `call` answer point,
 * docs/REQUESTS.md): a non-streamed head start's completion and the attempt record its attempt
 * will keep, or undefined when the call failed (the workflow's retries and fallbacks decide then).
 */
export interface HeadStartTicket {
  answered?: Promise<{ completion: ChatCompletion; attempt: AttemptRecord } | undefined>;
}

export interface RequestKey {
  id: string;
  /** The worst case reserved against the key before the start, nano-USD (absent: nothing was reserved). */
  reservedNanos?: number;
  /** The worst-case tokens reserved (TPM). */
  reservedTokens?: number;
  /** The key's budget left once this request was admitted, nano-USD (keys with a budget). */
  remainingNanos?: number;
}

/** The key's part of a request's record (`keel.key`): what was reserved and what was charged. */
export interface RequestKeyInfo {
  id: string;
  reserved_usd?: number;
  /** The budget left once the request was admitted (its reservation counted). */
  budget_remaining_usd?: number;
  charged_usd: number;
}

export interface KeelResponseInfo {
  request_id: string;
  provider: string;
  model: string;
  mode: Plan['mode'];
  attempts: AttemptRecord[];
  /** USD, from the configured pricing of the target that answered (absent without pricing). */
  cost?: number;
  /** Requests made with a virtual key. */
  key?: RequestKeyInfo;
}

export interface ChatWorkflowResult {
  completion: ChatCompletion;
  keel: KeelResponseInfo;
  /**
   * A streamed request: how its answer was cut into chunks, so a replay of the stream is the same
   * stream (no layout: the answer was not streamed live, e.g. its process was gone).
   */
  stream?: { layout?: LayoutEntry[]; includeUsage: boolean };
}

/** Details of the ApplicationFailure a request workflow fails with when every target is spent. */
export interface RequestFailureDetails {
  errorClass: ErrorClass;
  /** HTTP status the client gets. */
  status: number;
  message: string;
  attempts: AttemptRecord[];
  /** Requests made with a virtual key: a failed request is charged nothing. */
  key?: RequestKeyInfo;
  /** A stream that broke after its first token: what the client had (absent when its worker died with it). */
  stream?: PartialStream;
  /** stream_interrupted: the class of what broke it. */
  cause?: ErrorClass;
}

export type RequestState = 'running' | 'succeeded' | 'failed' | 'cancelled';

/** What the request workflow needs to deliver a webhook; the signing secret stays on the worker. */
export interface WebhookSpec {
  url: string;
  timeoutMs: number;
  retry: { maxAttempts: number; initialIntervalMs: number; backoffCoefficient: number; maximumIntervalMs: number };
}

export type WebhookState = 'pending' | 'delivering' | 'delivered' | 'failed';

export interface RequestErrorView {
  message: string;
  type: string;
  code: string | null;
  status: number;
}

/** The JSON body POSTed to a webhook (the activity adds `data.ui_url`). */
export interface WebhookEvent {
  /** Stable across delivery retries of one run; a replayed request sends a new event. */
  id: string;
  object: 'keel.webhook_event';
  type: 'request.succeeded' | 'request.failed' | 'request.cancelled';
  /** Epoch seconds. */
  created_at: number;
  data: {
    id: string;
    object: 'keel.request';
    status: 'succeeded' | 'failed' | 'cancelled';
    model: string | null;
    attempts: AttemptRecord[];
    result?: ChatCompletion & { keel: KeelResponseInfo };
    error?: RequestErrorView;
    ui_url?: string;
  };
}

export interface WebhookDeliveryInput {
  url: string;
  timeoutMs: number;
  event: WebhookEvent;
}

export interface RequestStatusView {
  state: RequestState;
  requestedModel: string;
  mode: Plan['mode'];
  /** Targets with a provider call in flight. */
  activeTargets: string[];
  attempts: AttemptRecord[];
  startedAt: number;
  /** Set when the request asked for a webhook. */
  webhook?: WebhookState;
  /** The outcome while the workflow is still open (delivering its webhook). */
  result?: ChatWorkflowResult;
  failure?: RequestFailureDetails;
}

// Starting request workflows and reading their outcome: shared by every API route that runs a request.
import { createHash, randomUUID } from 'node:crypto';
import {
  WorkflowExecutionAlreadyStartedError,
  WorkflowFailedError,
  type Client,
  type WorkflowHandle,
} from '@temporalio/client';
import { WORKFLOW_TYPES, type RequestWorkflow, type SettledRequest } from '../core/contract.js';
import type { AnswerBoard } from '../channels/answer-board.js';
import type { StreamBoard } from '../channels/stream-board.js';
import type { RoutingHealth } from '../core/health-types.js';
import { ApiError, failureError, requestFailureError } from '../core/openai-error.js';
import type { ChatRequestBody } from '../core/chat-request.js';
import type { KeelConfig } from '../config/schema.js';
import type { ChatWorkflowInput, ChatWorkflowResult, HeadStartSpec, HeadStartTicket, RequestFailureDetails, RequestKey, WebhookSpec } from '../core/request-types.js';
import { succeededResult } from '../core/request-result.js';
import { keyedRequestProblem, worstCase } from '../core/key-cost.js';
import { nanosToUsd } from '../core/keys.js';
import { refusalError, type KeyPrincipal, type KeyService } from './key-service.js';
import { requestFeatures } from '../core/capabilities.js';
import { LOCAL_CALL_TASK_TIMEOUT, healthCandidates, isLocalCall, planRequest, routingFor, type Plan } from '../core/routing.js';
import { KeelBatchId, KeelKey, KeelModel, KeelStatus } from '../core/search-attributes.js';
import { listRequests, type ListRequestsOptions } from './request-list.js';

export type RequestHandle = WorkflowHandle<RequestWorkflow>;

/** Which point the outcome was taken at (docs/REQUESTS.md): the client sees it as `x-keel-answer`. */
export type AnsweredAt = 'call' | 'early' | 'recorded';

export type RequestOutcome = (
  | { ok: true; result: ChatWorkflowResult }
  | { ok: false; error: ApiError; failure?: RequestFailureDetails }
) & { answeredAt?: AnsweredAt };

function hash(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

/**
 * An Idempotency-Key maps onto one workflow ID, so a retried POST finds the request it started.
 * With a virtual key the mapping is the key's own: another key's Idempotency-Key never finds it.
 */
export function requestIdForKey(idempotencyKey: string, keyId?: string): string {
  return `req-idem-${hash(keyId === undefined ? idempotencyKey : `${keyId}\n${idempotencyKey}`).slice(0, 40)}`;
}

/** A reservation outlives its request's deadline by this much before it is released unsettled. */
export const RESERVATION_MARGIN_MS = 60_000;

/** Health for a request's candidate targets, read without a round trip (the worker's snapshot). */
export type HealthSource = (targets: string[]) => RoutingHealth | null | undefined;

/** What an API shares with workers running in the same process (`npm start`, the gateway role). */
export interface LocalWorkers {
  /** Where the workers' `answers` sink settles outcomes. */
  answers: AnswerBoard;
  health?: HealthSource;
  /** Where streamed requests' calls publish their chunks, and this process's own activity queue (docs/STREAMING.md). */
  streams?: { board: StreamBoard; processQueue: string };
  /** First provider calls sent by the API, for the worker's first attempt to adopt (docs/ROUTING.md, "Head start"). */
  headStarts?: {
    /** Sends the call now; undefined when it did not (a full concurrency cap, a rate-limited provider, an open breaker). */
    begin(call: HeadStartSpec): HeadStartTicket | undefined;
  };
}

export interface StartedRequest {
  handle: RequestHandle;
  plan: Plan;
  /** Waiting for the outcome settled in this process (the `early` answer path). */
  early?: { settled: Promise<SettledRequest>; cancel(): void };
  /**
   * The result built from the head-started first call once it answers (the `call` answer path);
   * undefined when that call failed (the workflow's outcome answers then).
   */
  called?: Promise<ChatWorkflowResult | undefined>;
  /** The server handed the first workflow task to this process's worker with the start. */
  eagerlyStarted?: boolean;
  /** The key's budget left after this request's reservation, USD (keys with a budget). */
  budgetRemainingUsd?: number;
}

/** How long an early-answer wait on an eagerly started request goes without the recorded result's long poll. */
const RECORDED_FALLBACK_MS = 1_000;

export class RequestService {
  constructor(
    readonly client: Client,
    readonly config: KeelConfig,
    /** Workers in this process: requests start eagerly on them and may be answered early. */
    readonly local?: LocalWorkers,
    readonly keys?: KeyService,
  ) {}

  requestIdFor(idempotencyKey?: string, keyId?: string): string {
    return idempotencyKey ? requestIdForKey(idempotencyKey, keyId) : `req-${randomUUID()}`;
  }

  /**
   * A keyed request's part of the start: the models it may use, then — for a key with a budget or
   * a rate limit — its worst case reserved through the key's workflow (the exact check across API
   * processes). Keys with neither pay no round trip here.
   */
  private async reserveFor(key: KeyPrincipal, body: ChatRequestBody, features: ReturnType<typeof requestFeatures>, plan: Plan, requestId: string): Promise<{ key: RequestKey; fresh: boolean; remainingNanos?: number }> {
    if (!this.keys) throw new Error('virtual keys need a KeyService');
    const routing = this.config.routing;
    const budgeted = key.view.budget !== null;
    const tpm = key.view.limits.tpm !== null;
    const allowance = { ...(key.view.models && { models: key.view.models }), budgeted, tpm };
    const reserves = budgeted || tpm || key.view.limits.rpm !== null;
    const wc = budgeted || tpm ? worstCase(body, routing, features) : undefined;
    const problem = keyedRequestProblem(allowance, body, routing, wc);
    if (problem) throw new ApiError(problem.status, problem.message, 'invalid_request_error', problem.param, problem.code);
    // Keys without a budget or a limit pay no round trip here.
    if (!reserves) return { key: { id: key.id }, fresh: false };
    const item = { requestId, nanos: budgeted ? wc!.nanos : 0, tokens: tpm ? wc!.tokens : 0, holdMs: plan.timeouts.requestMs + RESERVATION_MARGIN_MS };
    const outcome = await this.keys.reserve(key.id, item);
    if (!outcome.ok) throw refusalError(key.id, outcome.refusal);
    return {
      key: {
        id: key.id,
        ...(budgeted && { reservedNanos: item.nanos }),
        ...(tpm && { reservedTokens: item.tokens }),
        ...(outcome.remainingNanos !== undefined && { remainingNanos: outcome.remainingNanos }),
      },
      fresh: outcome.duplicate !== true,
      ...(outcome.remainingNanos !== undefined && { remainingNanos: outcome.remainingNanos }),
    };
  }

  uiLink(requestId: string): string {
    return `${this.config.uiUrl}/namespaces/${encodeURIComponent(this.config.namespace)}/workflows/${encodeURIComponent(requestId)}`;
  }

  /** Validates routing up front (unknown model → 404, a feature no target can carry → 400) and starts the workflow, or joins the one the key already started. */
  async start(
    body: ChatRequestBody,
    opts: {
      requestId: string;
      idempotencyKey?: string;
      batchId?: string;
      webhook?: WebhookSpec;
      /** A client waits for the answer (a synchronous request): it may be answered early. */
      waiting?: boolean;
      /** The virtual key the request was made with. */
      key?: KeyPrincipal;
      /**
       * A streamed request: its calls stream to this process (when a worker here runs them; an API
       * alone starts an ordinary request and streams the recorded answer).
       */
      stream?: { includeUsage: boolean };
    },
  ): Promise<StartedRequest> {
    // A feature no target can carry is the client's 400 here, before anything starts.
    const features = requestFeatures(body);
    const plan = planRequest(body, this.config.routing, undefined, { features });
    // Before any provider call: the key's models, budget and limits (a refusal starts nothing).
    const reserved = opts.key ? await this.reserveFor(opts.key, body, features, plan, opts.requestId) : undefined;
    const release = () => {
      if (reserved?.fresh) this.keys!.release(reserved.key.id, opts.requestId).catch(() => undefined);
    };
    // The webhook URL is part of what an Idempotency-Key stands for (a changed URL is a different request).
    const bodyHash = opts.idempotencyKey ? hash(JSON.stringify(body) + (opts.webhook ? `\nwebhook:${opts.webhook.url}` : '')) : undefined;
    const routing = routingFor(body, this.config.routing);
    const health = this.local?.health?.(healthCandidates(body, routing));
    const streams = opts.stream && this.local?.streams;
    const input: ChatWorkflowInput = {
      request: body,
      routing,
      ...(health !== undefined && { health }),
      ...(opts.batchId && { batchId: opts.batchId }),
      ...(opts.webhook && { webhook: opts.webhook }),
      ...(reserved && { key: reserved.key }),
      ...(streams && opts.stream && { stream: { processQueue: streams.processQueue, includeUsage: opts.stream.includeUsage } }),
    };
    // Streamed calls are local unless the request hedges (docs/STREAMING.md).
    const localFirst = streams ? plan.mode !== 'hedge' : plan.targets[0] !== undefined && isLocalCall(plan, plan.targets[0]);
    // Registered before the start: an eagerly started request can settle before start() returns.
    // `call` is answered early when its first call fails (the workflow's retries and fallbacks decide).
    const early = opts.waiting && plan.answer !== 'recorded' ? this.local?.answers.wait(opts.requestId) : undefined;
    let handle: RequestHandle;
    let eagerlyStarted = false;
    let runId: string | undefined;
    try {
      const startedHandle = await this.client.workflow.start<RequestWorkflow>(WORKFLOW_TYPES.request, {
        taskQueue: this.config.taskQueue,
        workflowId: opts.requestId,
        args: [input],
        workflowIdConflictPolicy: 'USE_EXISTING',
        workflowIdReusePolicy: 'REJECT_DUPLICATE',
        // The first workflow task comes back with the start's answer to this process's worker.
        requestEagerStart: this.local !== undefined,
        ...(localFirst && { workflowTaskTimeout: LOCAL_CALL_TASK_TIMEOUT }),
        ...(bodyHash && { memo: { bodyHash } }),
        staticSummary: `${plan.requestedModel} (${plan.mode}: ${plan.targets.map((t) => `${t.provider}/${t.model}`).join(', ')})`,
        typedSearchAttributes: [
          { key: KeelModel, value: plan.requestedModel },
          { key: KeelStatus, value: 'running' },
          ...(opts.batchId ? [{ key: KeelBatchId, value: opts.batchId }] : []),
          ...(reserved ? [{ key: KeelKey, value: reserved.key.id }] : []),
        ],
      });
      handle = startedHandle;
      eagerlyStarted = startedHandle.eagerlyStarted;
      runId = startedHandle.firstExecutionRunId;
    } catch (err) {
      // Nothing new runs: a reservation made for this call goes back.
      release();
      // The key's request already finished: answer with its outcome instead of running it again.
      if (!(err instanceof WorkflowExecutionAlreadyStartedError)) {
        early?.cancel();
        throw err;
      }
      handle = this.client.workflow.getHandle(opts.requestId);
    }
    // The first workflow task is this process's: its first call can go out now.
    const head = eagerlyStarted && runId !== undefined ? this.headStart(input, features, opts.requestId, runId) : undefined;
    // Never for streams (their content goes out live already), batches or async jobs (nobody waits).
    const called = early && plan.answer === 'call' && !opts.stream && head?.answered ? this.fromCall(head.answered, input, opts.requestId, plan.mode) : undefined;
    if (opts.idempotencyKey) {
      const memo = (await handle.describe()).memo as { bodyHash?: string } | undefined;
      if (memo?.bodyHash !== undefined && memo.bodyHash !== bodyHash) {
        early?.cancel();
        throw new ApiError(422, 'This Idempotency-Key was already used with a different request body', 'invalid_request_error', null, 'idempotency_key_reused');
      }
    }
    return { handle, plan, eagerlyStarted, ...(early && { early }), ...(called && { called }), ...(reserved?.remainingNanos !== undefined && { budgetRemainingUsd: nanosToUsd(reserved.remainingNanos) }) };
  }

  /**
   * The first call of a request whose workflow plans with the health in its input (no local
   * activity first), as that workflow plans it: the same planner on the same input. Only where the
   * workflow's first attempt is a local call of one target: no race, no hedge, no breaker probe.
   */
  private headStart(input: ChatWorkflowInput, features: ReturnType<typeof requestFeatures>, requestId: string, runId: string): HeadStartTicket | undefined {
    const heads = this.local?.headStarts;
    if (!heads || input.health === undefined) return undefined;
    // Best effort: the request has started, and a head start that cannot go leaves the call to the attempt.
    try {
      const plan = planRequest(input.request, input.routing, input.health ?? undefined, { features });
      const first = plan.targets[0];
      if (!first || plan.mode !== 'fallback' || plan.probe || plan.probeCandidate) return undefined;
      // A streamed request's calls are local whatever their path (docs/STREAMING.md).
      if (!input.stream && !isLocalCall(plan, first)) return undefined;
      return heads.begin({
        requestId,
        runId,
        provider: first.provider,
        model: first.model,
        request: input.request,
        // As the workflow gives its calls their limits.
        ...(input.stream && { stream: { idleTimeoutMs: plan.stream.idleTimeoutMs, firstChunkTimeoutMs: plan.timeouts.attemptMs } }),
      });
    } catch {
      // planned differently than the workflow will (it reports its own PlanError): no head start
      return undefined;
    }
  }

  /** The result the workflow will record for a head-started call that answered, from the same function. */
  private async fromCall(answered: NonNullable<HeadStartTicket['answered']>, input: ChatWorkflowInput, requestId: string, mode: Plan['mode']): Promise<ChatWorkflowResult | undefined> {
    const call = await answered;
    if (!call) return undefined;
    try {
      return succeededResult({
        requestId,
        provider: call.attempt.provider,
        model: call.attempt.model,
        mode,
        completion: call.completion,
        attempts: [call.attempt],
        routing: input.routing,
        ...(input.key && { key: input.key }),
      });
    } catch {
      // An answer this cannot price or describe is the workflow's to record and answer.
      return undefined;
    }
  }

  /** Requests found through Temporal visibility (GET /v1/requests). */
  list(opts: ListRequestsOptions) {
    return listRequests(this.client, (id) => this.uiLink(id), opts);
  }

  /**
   * The request's outcome: the recorded one (the workflow's result), or — when the request was
   * started waiting for an early answer — whichever comes first of that and the outcome its
   * workflow settled in this process before recording it.
   */
  async outcome(started: RequestHandle | StartedRequest): Promise<RequestOutcome> {
    const { handle, early, called, eagerlyStarted } = 'handle' in started ? started : { handle: started, early: undefined, called: undefined, eagerlyStarted: false };
    if (!early) return this.recordedOutcome(handle);
    // An eager start hands the first workflow task to this process's worker, which settles the
    // outcome here: the long poll for the recorded result (one more RPC and server read per
    // request) is only the fallback for a request whose task went elsewhere — not eager, or moved
    // to another worker after a workflow task timeout — so it starts late, or at once when needed.
    let timer: NodeJS.Timeout | undefined;
    const recorded = new Promise<RequestOutcome>((resolve, reject) => {
      timer = setTimeout(() => this.recordedOutcome(handle).then(resolve, reject), eagerlyStarted ? RECORDED_FALLBACK_MS : 0);
    });
    // Whichever loses is still settled: a rejection of the long poll must not go unhandled.
    recorded.catch(() => undefined);
    try {
      // A first call that failed leaves the answer to the workflow: it never settles this race; so
      // does one answered while too many answers are ahead of their workflows (backpressure).
      const fromCall = called?.then((result) =>
        result && this.local!.answers.answerAhead(handle.workflowId) ? { ok: true as const, result, answeredAt: 'call' as const } : new Promise<never>(() => undefined),
      );
      return await Promise.race([early.settled.then(settledOutcome), recorded, ...(fromCall ? [fromCall] : [])]);
    } finally {
      clearTimeout(timer);
      early.cancel();
    }
  }

  private async recordedOutcome(handle: RequestHandle): Promise<RequestOutcome> {
    try {
      return { ok: true, result: await handle.result(), answeredAt: 'recorded' };
    } catch (err) {
      if (!(err instanceof WorkflowFailedError)) throw err;
      return { ...failureOutcome(err.cause), answeredAt: 'recorded' };
    }
  }
}

export function failureOutcome(cause: unknown): RequestOutcome & { ok: false } {
  return { ok: false, ...failureError(cause) };
}

function settledOutcome(settled: SettledRequest): RequestOutcome {
  return settled.ok
    ? { ok: true, result: settled.result, answeredAt: 'early' }
    : { ok: false, error: requestFailureError(settled.failure), failure: settled.failure, answeredAt: 'early' };
}

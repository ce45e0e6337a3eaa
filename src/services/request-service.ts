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
import type { ChatWorkflowInput, ChatWorkflowResult, RequestFailureDetails, WebhookSpec } from '../core/request-types.js';
import { requestFeatures } from '../core/capabilities.js';
import { LOCAL_CALL_TASK_TIMEOUT, healthCandidates, isLocalCall, planRequest, routingFor, type Plan } from '../core/routing.js';
import { KeelBatchId, KeelModel, KeelStatus } from '../core/search-attributes.js';
import { listRequests, type ListRequestsOptions } from './request-list.js';

export type RequestHandle = WorkflowHandle<RequestWorkflow>;

/** Which point the outcome was taken at (docs/REQUESTS.md): the client sees it as `x-keel-answer`. */
export type AnsweredAt = 'early' | 'recorded';

export type RequestOutcome = (
  | { ok: true; result: ChatWorkflowResult }
  | { ok: false; error: ApiError; failure?: RequestFailureDetails }
) & { answeredAt?: AnsweredAt };

function hash(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

/** An Idempotency-Key maps onto one workflow ID, so a retried POST finds the request it started. */
export function requestIdForKey(idempotencyKey: string): string {
  return `req-idem-${hash(idempotencyKey).slice(0, 40)}`;
}

/** Health for a request's candidate targets, read without a round trip (the worker's snapshot). */
export type HealthSource = (targets: string[]) => RoutingHealth | null;

/** What an API shares with workers running in the same process (`npm start`, the gateway role). */
export interface LocalWorkers {
  /** Where the workers' `answers` sink settles outcomes. */
  answers: AnswerBoard;
  health?: HealthSource;
  /** Where streamed requests' calls publish their chunks, and this process's own activity queue (docs/STREAMING.md). */
  streams?: { board: StreamBoard; processQueue: string };
}

export interface StartedRequest {
  handle: RequestHandle;
  plan: Plan;
  /** Waiting for the outcome settled in this process (the `early` answer path). */
  early?: { settled: Promise<SettledRequest>; cancel(): void };
}

export class RequestService {
  constructor(
    readonly client: Client,
    readonly config: KeelConfig,
    /** Workers in this process: requests start eagerly on them and may be answered early. */
    readonly local?: LocalWorkers,
  ) {}

  requestIdFor(idempotencyKey?: string): string {
    return idempotencyKey ? requestIdForKey(idempotencyKey) : `req-${randomUUID()}`;
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
      /**
       * A streamed request: its calls stream to this process (when a worker here runs them; an API
       * alone starts an ordinary request and streams the recorded answer).
       */
      stream?: { includeUsage: boolean };
    },
  ): Promise<StartedRequest> {
    // A feature no target can carry is the client's 400 here, before anything starts.
    const plan = planRequest(body, this.config.routing, undefined, { features: requestFeatures(body) });
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
      ...(streams && opts.stream && { stream: { processQueue: streams.processQueue, includeUsage: opts.stream.includeUsage } }),
    };
    // Streamed calls are local unless the request hedges (docs/STREAMING.md).
    const localFirst = streams ? plan.mode !== 'hedge' : plan.targets[0] !== undefined && isLocalCall(plan, plan.targets[0]);
    // Registered before the start: an eagerly started request can settle before start() returns.
    const early = opts.waiting && plan.answer === 'early' ? this.local?.answers.wait(opts.requestId) : undefined;
    let handle: RequestHandle;
    try {
      handle = await this.client.workflow.start<RequestWorkflow>(WORKFLOW_TYPES.request, {
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
        ],
      });
    } catch (err) {
      // The key's request already finished: answer with its outcome instead of running it again.
      if (!(err instanceof WorkflowExecutionAlreadyStartedError)) {
        early?.cancel();
        throw err;
      }
      handle = this.client.workflow.getHandle(opts.requestId);
    }
    if (opts.idempotencyKey) {
      const memo = (await handle.describe()).memo as { bodyHash?: string } | undefined;
      if (memo?.bodyHash !== undefined && memo.bodyHash !== bodyHash) {
        early?.cancel();
        throw new ApiError(422, 'This Idempotency-Key was already used with a different request body', 'invalid_request_error', null, 'idempotency_key_reused');
      }
    }
    return { handle, plan, ...(early && { early }) };
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
    const { handle, early } = 'handle' in started ? started : { handle: started, early: undefined };
    const recorded = this.recordedOutcome(handle);
    if (!early) return recorded;
    // Whichever loses is still settled: a rejection of the long poll must not go unhandled.
    recorded.catch(() => undefined);
    try {
      return await Promise.race([early.settled.then(settledOutcome), recorded]);
    } finally {
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

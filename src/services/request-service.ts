// Starting request workflows and reading their outcome: shared by every API route that runs a request.
import { createHash, randomUUID } from 'node:crypto';
import {
  WorkflowExecutionAlreadyStartedError,
  WorkflowFailedError,
  type Client,
  type WorkflowHandle,
} from '@temporalio/client';
import { WORKFLOW_TYPES, type RequestWorkflow } from '../core/contract.js';
import { ApiError, failureError } from '../core/openai-error.js';
import type { ChatRequestBody } from '../core/chat-request.js';
import type { KeelConfig } from '../config/schema.js';
import type { ChatWorkflowResult, RequestFailureDetails, WebhookSpec } from '../core/request-types.js';
import { requestFeatures } from '../core/capabilities.js';
import { planRequest, type Plan } from '../core/routing.js';
import { KeelBatchId, KeelModel, KeelStatus } from '../core/search-attributes.js';
import { listRequests, type ListRequestsOptions } from './request-list.js';

export type RequestHandle = WorkflowHandle<RequestWorkflow>;

export type RequestOutcome =
  | { ok: true; result: ChatWorkflowResult }
  | { ok: false; error: ApiError; failure?: RequestFailureDetails };

function hash(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

/** An Idempotency-Key maps onto one workflow ID, so a retried POST finds the request it started. */
export function requestIdForKey(idempotencyKey: string): string {
  return `req-idem-${hash(idempotencyKey).slice(0, 40)}`;
}

export class RequestService {
  constructor(
    readonly client: Client,
    readonly config: KeelConfig,
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
    opts: { requestId: string; idempotencyKey?: string; batchId?: string; webhook?: WebhookSpec },
  ): Promise<{ handle: RequestHandle; plan: Plan }> {
    // A feature no target can carry is the client's 400 here, before anything starts.
    const plan = planRequest(body, this.config.routing, undefined, { features: requestFeatures(body) });
    // The webhook URL is part of what an Idempotency-Key stands for (a changed URL is a different request).
    const bodyHash = hash(JSON.stringify(body) + (opts.webhook ? `\nwebhook:${opts.webhook.url}` : ''));
    let handle: RequestHandle;
    try {
      handle = await this.client.workflow.start<RequestWorkflow>(WORKFLOW_TYPES.request, {
        taskQueue: this.config.taskQueue,
        workflowId: opts.requestId,
        args: [{ request: body, routing: this.config.routing, ...(opts.batchId && { batchId: opts.batchId }), ...(opts.webhook && { webhook: opts.webhook }) }],
        workflowIdConflictPolicy: 'USE_EXISTING',
        workflowIdReusePolicy: 'REJECT_DUPLICATE',
        memo: { bodyHash },
        staticSummary: `${plan.requestedModel} (${plan.mode}: ${plan.targets.map((t) => `${t.provider}/${t.model}`).join(', ')})`,
        typedSearchAttributes: [
          { key: KeelModel, value: plan.requestedModel },
          { key: KeelStatus, value: 'running' },
          ...(opts.batchId ? [{ key: KeelBatchId, value: opts.batchId }] : []),
        ],
      });
    } catch (err) {
      // The key's request already finished: answer with its outcome instead of running it again.
      if (!(err instanceof WorkflowExecutionAlreadyStartedError)) throw err;
      handle = this.client.workflow.getHandle(opts.requestId);
    }
    if (opts.idempotencyKey) {
      const memo = (await handle.describe()).memo as { bodyHash?: string } | undefined;
      if (memo?.bodyHash !== undefined && memo.bodyHash !== bodyHash) {
        throw new ApiError(422, 'This Idempotency-Key was already used with a different request body', 'invalid_request_error', null, 'idempotency_key_reused');
      }
    }
    return { handle, plan };
  }

  /** Requests found through Temporal visibility (GET /v1/requests). */
  list(opts: ListRequestsOptions) {
    return listRequests(this.client, (id) => this.uiLink(id), opts);
  }

  async outcome(handle: RequestHandle): Promise<RequestOutcome> {
    try {
      return { ok: true, result: await handle.result() };
    } catch (err) {
      if (!(err instanceof WorkflowFailedError)) throw err;
      return failureOutcome(err.cause);
    }
  }
}

export function failureOutcome(cause: unknown): RequestOutcome & { ok: false } {
  return { ok: false, ...failureError(cause) };
}

// A live handle on every request: POST /v1/requests (async job, optional signed webhook),
// GET /v1/requests (find requests, e.g. the failed ones, through Temporal visibility),
// GET /v1/requests/:id (status, attempts, result), POST /v1/requests/:id/cancel (Temporal
// cancellation: provider calls in flight are aborted) and POST /v1/requests/:id/replay (Temporal
// reset of a failed request). See docs/REQUESTS.md.
import { Router, type Request, type Response } from 'express';
import { z } from 'zod';
import { WorkflowNotFoundError, type Connection, type WorkflowExecutionDescription } from '@temporalio/client';
import { ChatRequestSchema } from '../chat-request.js';
import { ERROR_POLICY } from '../error-classes.js';
import type { RequestHandle, RequestService } from '../request-service.js';
import { LISTABLE_STATUSES, listRequests, type ListableStatus, type PublicStatus } from '../request-list.js';
import type { RequestStatusView, WebhookSpec } from '../request-types.js';
import { replayRequest } from '../replay.js';
import { KeelModel } from '../search-attributes.js';
import { checkWebhookUrl, destinationPolicy, WebhookDestinationError } from '../webhook-destination.js';
import { idempotencyKey, planErrorToApi } from './chat-completions.js';
import { ApiError, fromZodError, invalidRequest } from './errors.js';


function publicStatus(name: string): PublicStatus {
  switch (name) {
    case 'COMPLETED':
      return 'succeeded';
    case 'CANCELLED':
    case 'TERMINATED':
      return 'cancelled';
    case 'RUNNING':
    case 'CONTINUED_AS_NEW':
      return 'running';
    default:
      return 'failed';
  }
}

/** Pending provider calls as Temporal sees them: attempt numbers and the last failure of each. */
function pendingCalls(description: WorkflowExecutionDescription) {
  return (description.raw.pendingActivities ?? []).map((a) => ({
    summary: a.activityType?.name ?? 'activity',
    attempt: a.attempt ?? 1,
    state: a.state === 2 ? 'started' : a.state === 1 ? 'scheduled' : 'cancel_requested',
    last_failure: a.lastFailure?.message ?? null,
  }));
}

async function describeExecution(requests: RequestService, id: string): Promise<{ handle: RequestHandle; description: WorkflowExecutionDescription }> {
  const handle: RequestHandle = requests.client.workflow.getHandle(id);
  let description: WorkflowExecutionDescription;
  try {
    description = await handle.describe();
  } catch (err) {
    if (err instanceof WorkflowNotFoundError) throw new ApiError(404, `No request with id '${id}'`, 'invalid_request_error', 'id', 'request_not_found');
    throw err;
  }
  if (description.type !== 'chatCompletionWorkflow') throw new ApiError(404, `No request with id '${id}'`, 'invalid_request_error', 'id', 'request_not_found');
  return { handle, description };
}

function baseView(requests: RequestService, id: string, description: WorkflowExecutionDescription) {
  return {
    id,
    object: 'keel.request' as const,
    model: description.typedSearchAttributes.get(KeelModel) ?? null,
    created_at: Math.floor(description.startTime.getTime() / 1000),
    completed_at: description.closeTime ? Math.floor(description.closeTime.getTime() / 1000) : null,
    run_id: description.runId,
    ui_url: requests.uiLink(id),
  };
}

export async function describeRequest(requests: RequestService, id: string) {
  const { handle, description } = await describeExecution(requests, id);
  let status = publicStatus(description.status.name);
  const base = baseView(requests, id, description);
  if (status === 'running') {
    const pending = pendingCalls(description);
    let live: RequestStatusView;
    try {
      live = await handle.query('status');
    } catch {
      // No workflow task has run yet (or the worker is away): what the server knows.
      return { ...base, status: 'queued' as PublicStatus, attempts: [], pending_calls: pending };
    }
    const webhook = live.webhook ? { webhook_status: live.webhook } : {};
    // Settled, delivering its webhook: the outcome is already known.
    if (live.result) {
      return { ...base, status: 'succeeded' as PublicStatus, ...webhook, attempts: live.result.keel.attempts, result: { ...live.result.completion, keel: live.result.keel } };
    }
    if (live.state === 'failed' && live.failure) {
      const f = live.failure;
      return { ...base, status: 'failed' as PublicStatus, ...webhook, attempts: f.attempts, error: { message: f.message, type: ERROR_POLICY[f.errorClass]?.openaiType ?? 'upstream_error', param: null, code: f.errorClass, status: f.status } };
    }
    if (live.attempts.length === 0 && !pending.some((p) => p.state === 'started')) status = 'queued';
    return { ...base, status, ...webhook, mode: live.mode, active_targets: live.activeTargets, attempts: live.attempts, pending_calls: pending };
  }
  if (status === 'succeeded') {
    const result = await handle.result();
    return { ...base, status, attempts: result.keel.attempts, result: { ...result.completion, keel: result.keel } };
  }
  const outcome = await requests.outcome(handle);
  const error = outcome.ok ? null : outcome.error;
  return {
    ...base,
    status,
    attempts: outcome.ok ? outcome.result.keel.attempts : (outcome.failure?.attempts ?? []),
    error: error && { message: error.message, type: error.type, param: error.param, code: error.code, status: error.status },
  };
}

/** `webhook: { url }` (an object, so delivery options can be added without a breaking change). */
const WebhookFieldSchema = z.object({ url: z.string().min(1).max(2048) }).strict();

/** The Temporal frontend addresses the API knows of: the configured one and the one it is connected to. */
function frontendAddresses(requests: RequestService): string[] {
  const connected = (requests.client.connection as Connection).options?.address;
  return [...new Set([requests.config.temporalAddress, ...(connected ? [connected] : [])])];
}

function webhookSpec(requests: RequestService, field: unknown): WebhookSpec | undefined {
  if (field === undefined || field === null) return undefined;
  const parsed = WebhookFieldSchema.safeParse(field);
  if (!parsed.success) throw invalidRequest('webhook must be an object { "url": "https://..." }', 'webhook', 'invalid_value');
  const settings = requests.config.webhooks;
  if (!settings.secret) throw invalidRequest('Webhooks are not configured on this Keel (webhooks.secret)', 'webhook', 'webhooks_not_configured');
  try {
    for (const address of frontendAddresses(requests)) checkWebhookUrl(parsed.data.url, destinationPolicy(settings, address));
  } catch (err) {
    if (err instanceof WebhookDestinationError) throw invalidRequest(err.message, 'webhook.url', 'webhook_destination_refused');
    throw err;
  }
  return { url: parsed.data.url, timeoutMs: settings.timeoutMs, retry: settings.retry };
}

function single(req: Request, name: string): string | undefined {
  const v = req.query[name];
  if (v === undefined) return undefined;
  if (typeof v !== 'string') throw invalidRequest(`${name} must be given once`, name, 'invalid_value');
  return v;
}

function uiHeader(res: Response, requests: RequestService, id: string): void {
  res.setHeader('x-request-id', id);
  res.setHeader('x-keel-ui-url', requests.uiLink(id));
}

export function requestsRouter(requests: RequestService): Router {
  const router = Router();

  // Async job: 202 at once; poll GET /v1/requests/:id or receive the webhook.
  router.post('/v1/requests', async (req, res) => {
    const { webhook: webhookField, ...body } = (req.body ?? {}) as Record<string, unknown>;
    const parsed = ChatRequestSchema.safeParse(body);
    if (!parsed.success) throw fromZodError(parsed.error);
    if (parsed.data.stream === true) throw invalidRequest('An async request cannot stream: omit stream', 'stream', 'unsupported_parameter');
    const webhook = webhookSpec(requests, webhookField);
    const key = idempotencyKey(req.header('idempotency-key'));
    const requestId = key ? requests.requestIdFor(key) : (res.locals.requestId as string);
    res.setHeader('x-request-id', requestId);
    await requests
      .start(parsed.data, { requestId, ...(key && { idempotencyKey: key }), ...(webhook && { webhook }) })
      .catch((err) => {
        // The key's request exists (another body): still point at it.
        if (err instanceof ApiError && err.code === 'idempotency_key_reused') res.setHeader('x-keel-ui-url', requests.uiLink(requestId));
        throw planErrorToApi(err);
      });
    uiHeader(res, requests, requestId);
    res.setHeader('location', `/v1/requests/${encodeURIComponent(requestId)}`);
    const { description } = await describeExecution(requests, requestId);
    const status = publicStatus(description.status.name);
    const view = status === 'running' ? { ...baseView(requests, requestId, description), status: (description.raw.pendingActivities ?? []).length > 0 ? 'running' : 'queued' } : await describeRequest(requests, requestId);
    res.status(202).json({ ...view, webhook: webhook ? { url: webhook.url } : null });
  });

  router.get('/v1/requests', async (req, res) => {
    const status = single(req, 'status');
    if (status !== undefined && !(LISTABLE_STATUSES as readonly string[]).includes(status)) {
      throw invalidRequest(`status must be one of ${LISTABLE_STATUSES.join(', ')}`, 'status', 'invalid_value');
    }
    const limitText = single(req, 'limit');
    const limit = limitText === undefined ? 20 : Number(limitText);
    if (!Number.isInteger(limit) || limit < 1 || limit > 100) throw invalidRequest('limit must be an integer from 1 to 100', 'limit', 'invalid_value');
    const model = single(req, 'model');
    const batch = single(req, 'batch');
    const after = single(req, 'after');
    res.json(
      await listRequests(requests.client, (id) => requests.uiLink(id), {
        limit,
        ...(status && { status: status as ListableStatus }),
        ...(model !== undefined && { model }),
        ...(batch !== undefined && { batch }),
        ...(after && { after }),
      }),
    );
  });

  router.get('/v1/requests/:id', async (req, res) => {
    res.setHeader('x-request-id', req.params.id);
    const view = await describeRequest(requests, req.params.id);
    uiHeader(res, requests, req.params.id);
    res.json(view);
  });

  // Re-runs a failed (or cancelled) request: a Temporal reset, the same as the UI's Reset.
  router.post('/v1/requests/:id/replay', async (req, res) => {
    res.setHeader('x-request-id', req.params.id);
    const replay = await replayRequest(requests.client, req.params.id, { reason: 'replayed through POST /v1/requests/:id/replay' });
    uiHeader(res, requests, req.params.id);
    const { description } = await describeExecution(requests, req.params.id);
    res.status(202).json({ ...baseView(requests, req.params.id, description), status: 'queued', replayed_run_id: replay.previousRunId, run_id: replay.runId });
  });

  router.post('/v1/requests/:id/cancel', async (req, res) => {
    res.setHeader('x-request-id', req.params.id);
    const current = await describeRequest(requests, req.params.id);
    uiHeader(res, requests, req.params.id);
    if (current.status === 'running' || current.status === 'queued') {
      await requests.client.workflow.getHandle(req.params.id).cancel();
    }
    res.status(202).json({ ...current, cancel_requested: current.status === 'running' || current.status === 'queued' });
  });
  return router;
}

// A live handle on every request: POST /v1/requests (async job, optional signed webhook),
// GET /v1/requests (find requests, e.g. the failed ones, through Temporal visibility),
// GET /v1/requests/:id (status, attempts, result), POST /v1/requests/:id/cancel (Temporal
// cancellation: provider calls in flight are aborted) and POST /v1/requests/:id/replay (Temporal
// reset of a failed request). See docs/REQUESTS.md.
import { Router, type Request, type Response } from 'express';
import { ChatRequestSchema } from '../core/chat-request.js';
import { ApiError, invalidRequest } from '../core/openai-error.js';
import type { RequestService } from '../services/request-service.js';
import { LISTABLE_STATUSES, type ListableStatus } from '../services/request-list.js';
import { acceptedView, cancelRequest, describeExecution, describeRequest, replayedView } from '../services/request-view.js';
import { webhookSpec } from '../services/webhook-spec.js';
import { idempotencyKey, planErrorToApi, refuseUnstreamable } from './chat-completions.js';
import { fromZodError } from './errors.js';
import { keyOf, requireAdmin } from './auth.js';
import { followStream } from '../services/request-stream.js';
import { sendStream } from './sse.js';
import type { KeelMetrics } from '../observability/metrics.js';
import { noteKeyRefusal } from './telemetry.js';

/** `?after=N`, else the SSE `Last-Event-ID` header (a reconnecting EventSource sends it): the last chunk the client has. */
function streamCursor(req: Request): number {
  const after = single(req, 'after');
  const lastEventId = req.header('last-event-id');
  const [value, param] = after !== undefined ? [after, 'after'] : lastEventId !== undefined ? [lastEventId, 'Last-Event-ID'] : ['0', 'after'];
  if (!/^\d{1,9}$/.test(value.trim())) throw invalidRequest(`${param} must be a chunk's sequence number (a non-negative integer)`, param, 'invalid_value');
  return Number(value.trim());
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

export function requestsRouter(requests: RequestService, metrics?: KeelMetrics): Router {
  const router = Router();

  // Async job: 202 at once; poll GET /v1/requests/:id, receive the webhook, or (stream: true) follow
  // GET /v1/requests/:id/stream.
  router.post('/v1/requests', async (req, res) => {
    const { webhook: webhookField, ...body } = (req.body ?? {}) as Record<string, unknown>;
    const parsed = ChatRequestSchema.safeParse(body);
    if (!parsed.success) throw fromZodError(parsed.error);
    const streamed = parsed.data.stream === true;
    if (streamed) refuseUnstreamable(parsed.data);
    const webhook = webhookSpec(requests, webhookField);
    const key = idempotencyKey(req.header('idempotency-key'));
    const apiKey = keyOf(res);
    const requestId = key ? requests.requestIdFor(key, apiKey?.id) : (res.locals.requestId as string);
    res.setHeader('x-request-id', requestId);
    const started = await requests
      .start(parsed.data, {
        requestId,
        ...(key && { idempotencyKey: key }),
        ...(webhook && { webhook }),
        ...(streamed && { stream: { includeUsage: parsed.data.stream_options?.include_usage === true } }),
        ...(apiKey && { key: apiKey }),
      })
      .catch((err) => {
        // The key's request exists (another body): still point at it.
        if (err instanceof ApiError && err.code === 'idempotency_key_reused') res.setHeader('x-keel-ui-url', requests.uiLink(requestId));
        noteKeyRefusal(metrics, res, err);
        throw planErrorToApi(err);
      });
    uiHeader(res, requests, requestId);
    if (started.budgetRemainingUsd !== undefined) res.setHeader('x-keel-budget-remaining', String(started.budgetRemainingUsd));
    res.setHeader('location', `/v1/requests/${encodeURIComponent(requestId)}`);
    const view = await acceptedView(requests, requestId);
    const streamUrl = streamed ? { stream_url: `/v1/requests/${encodeURIComponent(requestId)}/stream` } : {};
    res.status(202).json({ ...view, webhook: webhook ? { url: webhook.url } : null, ...streamUrl });
  });

  // The request's answer as a stream (SSE), from after chunk N: live while it is produced in this
  // process, from the record otherwise; a client that lost its connection resumes here.
  router.get('/v1/requests/:id/stream', async (req, res) => {
    const id = req.params.id;
    res.setHeader('x-request-id', id);
    const after = streamCursor(req);
    const { handle } = await describeExecution(requests, id);
    uiHeader(res, requests, id);
    await sendStream(res, followStream(requests, id, handle, after), { headers: {}, headersAt: 'now', requestId: id, uiUrl: requests.uiLink(id) });
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
    // A virtual key lists its own requests only; the admin may filter by key.
    const owner = keyOf(res)?.id ?? single(req, 'key');
    res.json(
      await requests.list({
        limit,
        ...(status && { status: status as ListableStatus }),
        ...(model !== undefined && { model }),
        ...(batch !== undefined && { batch }),
        ...(owner !== undefined && { key: owner }),
        ...(after && { after }),
      }),
    );
  });

  router.get('/v1/requests/:id', async (req, res) => {
    res.setHeader('x-request-id', req.params.id);
    const view = await describeRequest(requests, req.params.id, keyOf(res)?.id);
    uiHeader(res, requests, req.params.id);
    res.json(view);
  });

  // Re-runs a failed (or cancelled) request: a Temporal reset, the same as the UI's Reset.
  router.post('/v1/requests/:id/replay', async (req, res) => {
    // A replay runs the request again without a reservation: the operator's decision, not a key's.
    requireAdmin(res);
    res.setHeader('x-request-id', req.params.id);
    const view = await replayedView(requests, req.params.id);
    uiHeader(res, requests, req.params.id);
    res.status(202).json(view);
  });

  router.post('/v1/requests/:id/cancel', async (req, res) => {
    res.setHeader('x-request-id', req.params.id);
    const view = await cancelRequest(requests, req.params.id, keyOf(res)?.id);
    uiHeader(res, requests, req.params.id);
    res.status(202).json(view);
  });
  return router;
}

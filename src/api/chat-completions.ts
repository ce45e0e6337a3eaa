// POST /v1/chat/completions: one request workflow per call; the answer waits for its result.
import { Router, type Response } from 'express';
import { ChatRequestSchema } from '../core/chat-request.js';
import type { RequestService } from '../services/request-service.js';
import type { ChatWorkflowResult } from '../core/request-types.js';
import { PlanError } from '../core/routing.js';
import { ApiError, invalidRequest } from '../core/openai-error.js';
import { fromZodError, sendError } from './errors.js';
import type { KeelMetrics } from '../observability/metrics.js';
import { keyLabel, noteKeyRefusal } from './telemetry.js';
import { modelLabel } from '../core/metric-labels.js';
import { keyOf } from './auth.js';
import { followStream } from '../services/request-stream.js';
import type { ChatRequestBody } from '../core/chat-request.js';
import { sendStream } from './sse.js';

/** What Keel cannot stream yet: refused with a 400 rather than silently dropped. */
export function refuseUnstreamable(body: ChatRequestBody): void {
  if (body.logprobs) throw invalidRequest('logprobs cannot be streamed through Keel yet: send stream: false to get them', 'logprobs', 'unsupported_parameter');
  if (body.modalities?.includes('audio')) throw invalidRequest('Audio output cannot be streamed through Keel yet: send stream: false', 'modalities', 'unsupported_parameter');
}

export function idempotencyKey(header: string | undefined): string | undefined {
  if (header === undefined) return undefined;
  if (header.length === 0 || header.length > 255) throw invalidRequest('Idempotency-Key must be 1 to 255 characters', 'Idempotency-Key', 'invalid_idempotency_key');
  return header;
}

export function planErrorToApi(err: unknown): unknown {
  return err instanceof PlanError
    ? new ApiError(err.status, err.message, 'invalid_request_error', err.param, err.code)
    : err;
}

export function sendCompletion(res: Response, result: ChatWorkflowResult, uiUrl: string): void {
  res.setHeader('x-keel-provider', result.keel.provider);
  res.setHeader('x-keel-attempts', String(result.keel.attempts.length));
  res.json({ ...result.completion, keel: { ...result.keel, ui_url: uiUrl } });
}

export function chatCompletionsRouter(requests: RequestService, metrics?: KeelMetrics): Router {
  const router = Router();
  router.post('/v1/chat/completions', async (req, res) => {
    const received = performance.now();
    const parsed = ChatRequestSchema.safeParse(req.body);
    if (!parsed.success) throw fromZodError(parsed.error);
    const streamed = parsed.data.stream === true;
    if (streamed) refuseUnstreamable(parsed.data);
    const key = idempotencyKey(req.header('idempotency-key'));
    const apiKey = keyOf(res);
    const requestId = key ? requests.requestIdFor(key, apiKey?.id) : (res.locals.requestId as string);
    res.setHeader('x-request-id', requestId);
    const uiUrl = requests.uiLink(requestId);
    const stream = streamed ? { stream: { includeUsage: parsed.data.stream_options?.include_usage === true } } : {};
    const started = await requests.start(parsed.data, { requestId, waiting: true, ...stream, ...(key && { idempotencyKey: key }), ...(apiKey && { key: apiKey }) }).catch((err) => {
      // The key's request exists (with another body): still point at it.
      if (err instanceof ApiError && err.code === 'idempotency_key_reused') res.setHeader('x-keel-ui-url', uiUrl);
      noteKeyRefusal(metrics, res, err);
      throw planErrorToApi(err);
    });
    res.setHeader('x-keel-ui-url', uiUrl);
    if (started.budgetRemainingUsd !== undefined) res.setHeader('x-keel-budget-remaining', String(started.budgetRemainingUsd));
    if (streamed) {
      return sendStream(res, followStream(requests, requestId, started, 0), { headers: {}, headersAt: 'first-event', requestId, uiUrl });
    }
    const outcome = await requests.outcome(started);
    if (outcome.answeredAt) res.setHeader('x-keel-answer', outcome.answeredAt);
    const attempts = outcome.ok ? outcome.result.keel.attempts : (outcome.failure?.attempts ?? []);
    metrics?.chatCompletion({
      // A name the configuration knows: never free client text as a label.
      model: modelLabel(started.plan.requestedModel, requests.config.routing),
      provider: outcome.ok ? outcome.result.keel.provider : (attempts.at(-1)?.provider ?? ''),
      outcome: outcome.ok ? 'succeeded' : 'failed',
      ...(!outcome.ok && { errorClass: outcome.failure?.errorClass ?? outcome.error.code ?? 'unknown' }),
      answeredAt: outcome.answeredAt ?? '',
      key: keyLabel(res),
      seconds: (performance.now() - received) / 1000,
    });
    if (outcome.ok) return sendCompletion(res, outcome.result, uiUrl);
    if (outcome.failure) res.setHeader('x-keel-attempts', String(outcome.failure.attempts.length));
    // The failed request's id and UI link travel in the error body too (GET /v1/requests/:id, replay).
    const e = outcome.error;
    const keelExtra = (e.extra?.keel ?? {}) as Record<string, unknown>;
    // Keel's own failure: the message a client reports names the request whose log line has the stack.
    const message = e.code === 'internal_error' ? `Internal error in Keel (request ${requestId}): ${e.message}` : e.message;
    sendError(res, new ApiError(e.status, message, e.type, e.param, e.code, { ...e.extra, keel: { ...keelExtra, request_id: requestId, ui_url: uiUrl } }));
  });
  return router;
}

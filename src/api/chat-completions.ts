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
    if (parsed.data.stream === true) {
      throw invalidRequest('Streaming is not supported yet: send stream: false (or omit it)', 'stream', 'unsupported_parameter');
    }
    const key = idempotencyKey(req.header('idempotency-key'));
    const apiKey = keyOf(res);
    const requestId = key ? requests.requestIdFor(key, apiKey?.id) : (res.locals.requestId as string);
    res.setHeader('x-request-id', requestId);
    const uiUrl = requests.uiLink(requestId);
    const started = await requests.start(parsed.data, { requestId, waiting: true, ...(key && { idempotencyKey: key }), ...(apiKey && { key: apiKey }) }).catch((err) => {
      // The key's request exists (with another body): still point at it.
      if (err instanceof ApiError && err.code === 'idempotency_key_reused') res.setHeader('x-keel-ui-url', uiUrl);
      noteKeyRefusal(metrics, res, err);
      throw planErrorToApi(err);
    });
    res.setHeader('x-keel-ui-url', uiUrl);
    if (started.budgetRemainingUsd !== undefined) res.setHeader('x-keel-budget-remaining', String(started.budgetRemainingUsd));
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

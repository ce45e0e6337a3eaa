// The API's part of metrics and traces: every HTTP request is timed by route pattern (never by its
// path, which may hold ids), and — with tracing on — runs inside a server span that continues the
// caller's W3C `traceparent`, so the request's workflow and provider calls join the caller's trace.
// GET /metrics serves this process's metrics (docs/OPERATIONS.md).
import { ROOT_CONTEXT, SpanKind, SpanStatusCode, context, propagation, trace, type Context } from '@opentelemetry/api';
import { Router, type Request, type RequestHandler, type Response } from 'express';
import type { KeelMetrics } from '../observability/metrics.js';
import { METRICS_CONTENT_TYPE, type MetricsEndpoint } from '../observability/metrics-endpoint.js';
import { METRICS_UNAUTHORIZED, type MetricsAccess } from '../observability/metrics-access.js';
import type { KeelTracing } from '../observability/tracing.js';
import { NO_KEY } from '../core/metric-labels.js';
import { ApiError } from '../core/openai-error.js';

/** The route pattern a request matched (`/v1/requests/:id`), or `unmatched`. */
function routeOf(req: Request): string {
  const path = (req.route as { path?: unknown } | undefined)?.path;
  return typeof path === 'string' ? `${req.baseUrl}${path}` : 'unmatched';
}

/**
 * Two middlewares: `start` first of all (it times everything, body-parser refusals included), and
 * `resume` after the body parser — whose callbacks run in the socket's async context, not the
 * request's — so route handlers (and the workflow start in them) run inside the server span.
 */
export function observeHttp(metrics: KeelMetrics, tracing: KeelTracing | undefined): { start: RequestHandler; resume: RequestHandler } {
  const start: RequestHandler = (req, res, next) => {
    const started = performance.now();
    const inFlight = metrics.httpStarted();
    // Scrapes and health probes come every few seconds: timing them is enough, a trace each would be noise.
    const traced = tracing && req.path !== '/metrics' && req.path !== '/healthz';
    const parent = traced ? propagation.extract(ROOT_CONTEXT, req.headers) : ROOT_CONTEXT;
    // Method and path only: no headers (Authorization carries a key), no query, no body.
    const span = traced
      ? tracing.tracer.startSpan(req.method, { kind: SpanKind.SERVER, attributes: { 'http.request.method': req.method, 'url.path': req.path } }, parent)
      : undefined;
    res.once('close', () => {
      inFlight();
      const route = routeOf(req);
      // A client that went away before the answer: no status was sent.
      const status = res.headersSent ? res.statusCode : 499;
      metrics.httpServed(req.method, route, status, (performance.now() - started) / 1000);
      if (span) {
        span.updateName(`${req.method} ${route}`);
        span.setAttributes({ 'http.route': route, 'http.response.status_code': status });
        const requestId = res.getHeader('x-request-id');
        if (typeof requestId === 'string') span.setAttribute('keel.request_id', requestId);
        if (status >= 500) span.setStatus({ code: SpanStatusCode.ERROR });
        span.end();
      }
    });
    if (!span) return next();
    const active = trace.setSpan(parent, span);
    res.locals.traceContext = active;
    context.with(active, next);
  };
  const resume: RequestHandler = (_req, res, next) => {
    const active = res.locals.traceContext as Context | undefined;
    if (active) context.with(active, next);
    else next();
  };
  return { start, resume };
}

/** GET /metrics, ahead of the gateway's keys: it checks its own (`access`: src/observability/metrics-access.ts). */
export function metricsRouter(endpoint: MetricsEndpoint, access: MetricsAccess): Router {
  const router = Router();
  router.get('/metrics', async (req, res) => {
    if (!access(req.header('authorization'))) {
      res.status(METRICS_UNAUTHORIZED.status).set(METRICS_UNAUTHORIZED.headers).send(METRICS_UNAUTHORIZED.body);
      return;
    }
    const text = await endpoint.text();
    res.setHeader('content-type', METRICS_CONTENT_TYPE);
    res.send(text);
  });
  return router;
}

/** The `key` label of a request: its virtual key's id (never the secret), or 'none' (src/api/auth.ts sets `keyId`). */
export function keyLabel(res: Response): string {
  return typeof res.locals.keyId === 'string' ? res.locals.keyId : NO_KEY;
}

/** What a virtual key's request can be refused with before it starts (src/services/key-service.ts, src/core/key-cost.ts). */
const KEY_REFUSALS = new Set(['budget_exceeded', 'rate_limit_exceeded', 'model_not_allowed', 'model_not_priced', 'max_tokens_required']);

/** Counts a keyed request's refusal (`keel_key_refusals_total`); other errors pass by. */
export function noteKeyRefusal(metrics: KeelMetrics | undefined, res: Response, err: unknown): void {
  if (!metrics || !(err instanceof ApiError) || typeof err.code !== 'string' || !KEY_REFUSALS.has(err.code)) return;
  const key = keyLabel(res);
  if (key !== NO_KEY) metrics.keyRefused(key, err.code);
}

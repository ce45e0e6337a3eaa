// The API's part of metrics and traces: every HTTP request is timed by route pattern (never by its
// path, which may hold ids), and — with tracing on — runs inside a server span that continues the
// caller's W3C `traceparent`, so the request's workflow and provider calls join the caller's trace.
// GET /metrics serves this process's metrics (docs/OPERATIONS.md).
import { ROOT_CONTEXT, SpanKind, SpanStatusCode, context, propagation, trace, type Context } from '@opentelemetry/api';
import { Router, type Request, type RequestHandler, type Response } from 'express';
import type { KeelMetrics } from '../observability/metrics.js';
import { METRICS_CONTENT_TYPE, type MetricsEndpoint } from '../observability/metrics-endpoint.js';
import type { KeelTracing } from '../observability/tracing.js';

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

export function metricsRouter(endpoint: MetricsEndpoint): Router {
  const router = Router();
  router.get('/metrics', async (_req, res) => {
    const text = await endpoint.text();
    res.setHeader('content-type', METRICS_CONTENT_TYPE);
    res.send(text);
  });
  return router;
}

/**
 * The key a request is made with, as a metric label: the gateway-key work sets `res.locals.keyId`
 * (the key's id, never its secret) once it has authenticated the caller; '' until then.
 */
export function keyLabel(res: Response): string {
  return typeof res.locals.keyId === 'string' ? res.locals.keyId : '';
}

// Who may read /metrics, on the API and on a worker's metrics port alike. Prometheus is no gateway
// client: it gets a scrape token of its own (`telemetry.metrics.token`) that reads /metrics and
// nothing else, so the admin key — which creates keys — need not sit in its configuration. The
// admin key reads it too. Neither configured, or `/metrics` in `auth.openPaths`: open, like
// /healthz. docs/OPERATIONS.md, "Who may scrape".
import { createHash, timingSafeEqual } from 'node:crypto';
import type { KeelConfig } from '../config/schema.js';

const digest = (text: string) => createHash('sha256').update(text).digest();

function bearer(header: string | undefined): string | undefined {
  return /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(header ?? '')?.[1];
}

/** Whether a request with this `Authorization` header may read /metrics. */
export type MetricsAccess = (authorization: string | undefined) => boolean;

export function metricsAccess(config: Pick<KeelConfig, 'auth' | 'telemetry'>): MetricsAccess {
  const accepted = [config.telemetry.metrics.token, config.auth.adminKey].filter((k): k is string => typeof k === 'string' && k.length > 0).map(digest);
  if (accepted.length === 0 || config.auth.openPaths.includes('/metrics')) return () => true;
  return (authorization) => {
    const presented = bearer(authorization);
    if (presented === undefined) return false;
    // SHA-256 digests: equal lengths, so each comparison takes the same time whatever was sent.
    const d = digest(presented);
    let ok = false;
    for (const a of accepted) ok = timingSafeEqual(d, a) || ok;
    return ok;
  };
}

/** The 401 a scrape without an accepted key gets (OpenAI's error shape, as every Keel error). */
export const METRICS_UNAUTHORIZED = {
  status: 401,
  headers: { 'content-type': 'application/json', 'www-authenticate': 'Bearer' },
  body: JSON.stringify({
    error: {
      message: 'GET /metrics needs "Authorization: Bearer <key>": the metrics token (telemetry.metrics.token) or the admin key.',
      type: 'invalid_request_error',
      param: null,
      code: 'invalid_api_key',
    },
  }),
};

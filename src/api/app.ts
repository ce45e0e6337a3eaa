// The API role: a thin Express app that starts request workflows and returns their results.
import { randomUUID } from 'node:crypto';
import express, { type Express } from 'express';
import type { Client } from '@temporalio/client';
import type { KeelConfig } from '../config/schema.js';
import { RequestService, type LocalWorkers } from '../services/request-service.js';
import { listModels } from '../core/routing.js';
import { chatCompletionsRouter } from './chat-completions.js';
import { errorHandler, notFoundRoute } from './errors.js';
import { healthRouter } from './health.js';
import { providersRouter } from './providers.js';
import { requestsRouter } from './requests.js';
import { openBatchStore } from '../store/batch-store.js';
import { batchesRouter } from './batches.js';
import { BatchService } from '../services/batch-service.js';
import { filesRouter } from './files.js';
import type { KeelMetrics } from '../observability/metrics.js';
import type { MetricsEndpoint } from '../observability/metrics-endpoint.js';
import type { KeelTracing } from '../observability/tracing.js';
import { metricsRouter, observeHttp } from './telemetry.js';
import { metricsAccess } from '../observability/metrics-access.js';
import { codecRouter } from './codec.js';
import { KeyService } from '../services/key-service.js';
import { authMiddleware, keyOf } from './auth.js';
import { keysRouter } from './keys.js';
import { modelAllowed } from '../core/keys.js';

export interface ApiDeps {
  client: Client;
  config: KeelConfig;
  local?: LocalWorkers;
  metrics: KeelMetrics;
  /** GET /metrics; absent when metrics are turned off. */
  metricsEndpoint?: MetricsEndpoint;
  tracing?: KeelTracing;
}

export function createApp({ client, config, local, metrics, metricsEndpoint, tracing }: ApiDeps): Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  const keys = new KeyService(client, config);
  const requests = new RequestService(client, config, local, keys);
  const observe = observeHttp(metrics, tracing);
  app.use(observe.start);

  // Every response carries a request id; routes that start a workflow use it as the workflow ID.
  app.use((_req, res, next) => {
    res.locals.requestId = `req-${randomUUID()}`;
    res.setHeader('x-request-id', res.locals.requestId);
    next();
  });
  // Before the API's JSON parser: the codec server takes bodies of its own size (a history's payloads).
  // Before the gateway's keys too: the codec server checks its own bearer tokens (docs/ENCRYPTION.md).
  if (config.codec.server.enabled) app.use('/codec', codecRouter(config));
  // Ahead of the gateway's keys too: a scrape token is no gateway key (docs/OPERATIONS.md, "Who may scrape").
  if (metricsEndpoint) app.use(metricsRouter(metricsEndpoint, metricsAccess(config)));
  // Before the body is read: an unauthenticated request costs no parsing.
  app.use(authMiddleware(config, keys));
  // Over-limit bodies are refused from Content-Length, before anything is read or started.
  app.use(express.json({ limit: config.bodyLimitBytes, type: (req) => !String(req.headers['content-type'] ?? '').startsWith('multipart/') }));
  app.use(observe.resume);

  app.get('/v1/models', (_req, res) => {
    // A virtual key sees the models it may use.
    const allowed = keyOf(res)?.view.models ?? undefined;
    const models = listModels(config.routing).filter((m) => modelAllowed(allowed, m.id, config.routing.models[m.id]?.targets ?? []));
    res.json({ object: 'list', data: models.map((m) => ({ id: m.id, object: 'model', created: 0, owned_by: m.owned_by })) });
  });
  app.use(chatCompletionsRouter(requests, metrics));
  app.use(requestsRouter(requests, metrics));
  app.use(healthRouter(client, config));
  app.use(providersRouter(client, config));
  const batchFiles = openBatchStore(config.codec);
  app.use(filesRouter(batchFiles, config.batches.maxFileBytes));
  app.use(batchesRouter(new BatchService(client, config, batchFiles, keys)));
  app.use(keysRouter(keys, config));
  app.use(notFoundRoute);
  app.use(errorHandler);
  return app;
}

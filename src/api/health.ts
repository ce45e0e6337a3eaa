// GET /healthz: 200 when the API is up, Temporal answers and a worker polls; 503 otherwise, with
// error.code `temporal_unreachable` or `no_worker_polling` saying which.
import { Router } from 'express';
import type { Client } from '@temporalio/client';
import type { KeelConfig } from '../config/schema.js';
import { checkHealth } from '../services/health-check.js';

export function healthRouter(client: Client, config: KeelConfig): Router {
  const router = Router();
  router.get('/healthz', async (_req, res) => {
    const health = await checkHealth(client, config);
    res.status(health.ok ? 200 : 503).json({
      status: health.ok ? 'ok' : 'unavailable',
      api: 'ok',
      temporal: health.temporal,
      workers: health.workers,
      ...(health.code && { error: { message: health.problem, type: 'service_unavailable', param: null, code: health.code } }),
    });
  });
  return router;
}

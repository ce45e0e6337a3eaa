// GET /v1/providers (health, breakers and live stats per provider and target) and GET /status
// (the same as charts).
import { Router } from 'express';
import type { Client } from '@temporalio/client';
import type { KeelConfig } from '../config/schema.js';
import { providersView, readSnapshot } from '../services/health-view.js';
import { renderStatusPage } from './status-page.js';

export function providersRouter(client: Client, config: KeelConfig): Router {
  const router = Router();
  router.get('/v1/providers', async (req, res) => {
    const series = req.query.series === '1' || req.query.series === 'true';
    res.json(providersView(config, await readSnapshot(client, config, series)));
  });
  router.get('/status', async (_req, res) => {
    const view = providersView(config, await readSnapshot(client, config, true));
    res.type('html').send(renderStatusPage(view));
  });
  return router;
}

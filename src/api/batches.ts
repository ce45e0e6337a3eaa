// OpenAI's Batch API routes: parse, call the batch service, answer (src/services/batch-service.ts).
import { Router } from 'express';
import { z } from 'zod';
import { parseCompletionWindow } from '../core/batch-types.js';
import type { BatchService } from '../services/batch-service.js';
import { fromZodError } from './errors.js';
import { listPage } from './files.js';
import { keyOf } from './auth.js';

const CreateBatch = z.object({
  input_file_id: z.string().min(1),
  endpoint: z.literal('/v1/chat/completions', { message: "Only '/v1/chat/completions' is supported" }),
  completion_window: z.string().refine((w) => parseCompletionWindow(w) !== undefined, { message: "must be '24h' (or a Keel duration like '30m')" }),
  metadata: z.record(z.string().max(64), z.string().max(512)).refine((m) => Object.keys(m).length <= 16, { message: 'at most 16 keys' }).nullable().optional(),
});

const ListQuery = z.object({
  limit: z.coerce.number().int().min(1).max(100).default(20),
  after: z.string().optional(),
});

export function batchesRouter(batches: BatchService): Router {
  const router = Router();

  router.post('/v1/batches', async (req, res) => {
    const parsed = CreateBatch.safeParse(req.body);
    if (!parsed.success) throw fromZodError(parsed.error);
    res.json(await batches.create(parsed.data, keyOf(res)));
  });

  router.get('/v1/batches', async (req, res) => {
    const q = ListQuery.safeParse(req.query);
    if (!q.success) throw fromZodError(q.error);
    res.json(listPage(await batches.list(keyOf(res)?.id), q.data.after, q.data.limit));
  });

  router.get('/v1/batches/:id', async (req, res) => {
    res.json(await batches.get(req.params.id, keyOf(res)?.id));
  });

  router.post('/v1/batches/:id/cancel', async (req, res) => {
    res.json(await batches.cancel(req.params.id, keyOf(res)?.id));
  });

  router.post('/v1/batches/:id/retry-failed', async (req, res) => {
    res.json(await batches.retryFailed(req.params.id, keyOf(res)));
  });

  return router;
}

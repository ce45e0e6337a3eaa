// OpenAI's Batch API. The API writes a batch's record once, at creation, then hands the batch to
// its workflow (workflow ID = batch id), which alone updates the record through activities.
// Cancel is a signal; retry-failed starts the next round of the same workflow ID.
import { Router } from 'express';
import { WorkflowExecutionAlreadyStartedError, WorkflowNotFoundError, type Client } from '@temporalio/client';
import { z } from 'zod';
import { newId, type BatchStore } from '../batch-store.js';
import { TERMINAL_STATUSES, cancelBatchSignalName, parseCompletionWindow, type BatchObject, type BatchWorkflowInput } from '../batch-types.js';
import type { KeelConfig } from '../config.js';
import { KeelBatchId } from '../search-attributes.js';
import { batchTaskQueue } from '../task-queues.js';
import { ApiError, fromZodError, invalidRequest } from './errors.js';
import { listPage } from './files.js';

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

export function batchesRouter(client: Client, config: KeelConfig, files: BatchStore): Router {
  const router = Router();

  const workflowInput = (batch: BatchObject, round: number): BatchWorkflowInput => ({
    batchId: batch.id,
    inputFileId: batch.input_file_id,
    endpoint: batch.endpoint,
    expiresAt: (batch.expires_at ?? 0) * 1000,
    routing: config.routing,
    requestTaskQueue: config.taskQueue,
    window: config.batches.window,
    childrenPerRun: config.batches.childrenPerRun,
    flushSize: config.batches.flushSize,
    maxLines: config.batches.maxLines,
    round,
  });

  const startRound = (batch: BatchObject, round: number) =>
    client.workflow.start('batchWorkflow', {
      taskQueue: batchTaskQueue(config.taskQueue),
      workflowId: batch.id,
      args: [workflowInput(batch, round)],
      staticSummary: round === 0 ? `batch ${batch.input_file_id}` : `batch retry-failed round ${round}`,
      typedSearchAttributes: [{ key: KeelBatchId, value: batch.id }],
    });

  const found = async (id: string) => {
    const batch = await files.getBatch(id);
    if (!batch) throw new ApiError(404, `No batch found with id '${id}'`, 'invalid_request_error', 'batch_id', 'batch_not_found');
    return batch;
  };

  router.post('/v1/batches', async (req, res) => {
    const parsed = CreateBatch.safeParse(req.body);
    if (!parsed.success) throw fromZodError(parsed.error);
    const body = parsed.data;
    const input = await files.getFile(body.input_file_id);
    if (!input) throw new ApiError(404, `No such File object: ${body.input_file_id}`, 'invalid_request_error', 'input_file_id', 'file_not_found');
    if (input.purpose !== 'batch') throw invalidRequest(`The file ${input.id} has purpose '${input.purpose}', not 'batch'`, 'input_file_id', 'invalid_file_purpose');
    const now = Math.floor(Date.now() / 1000);
    const batch: BatchObject = {
      id: newId('batch'),
      object: 'batch',
      endpoint: body.endpoint,
      errors: null,
      input_file_id: input.id,
      completion_window: body.completion_window,
      status: 'validating',
      output_file_id: null,
      error_file_id: null,
      created_at: now,
      in_progress_at: null,
      expires_at: now + Math.ceil(parseCompletionWindow(body.completion_window)! / 1000),
      finalizing_at: null,
      completed_at: null,
      failed_at: null,
      expired_at: null,
      cancelling_at: null,
      cancelled_at: null,
      request_counts: { total: 0, completed: 0, failed: 0 },
      metadata: body.metadata ?? null,
      keel: { retry_rounds: 0 },
    };
    // Record first, so the workflow always finds it; a crash between the two leaves a
    // `validating` record without a workflow, which GET shows and nothing else touches.
    await files.putBatch(batch);
    await startRound(batch, 0);
    res.json(batch);
  });

  router.get('/v1/batches', async (req, res) => {
    const q = ListQuery.safeParse(req.query);
    if (!q.success) throw fromZodError(q.error);
    const all = await files.listBatches();
    all.sort((a, b) => b.created_at - a.created_at || b.id.localeCompare(a.id));
    res.json(listPage(all, q.data.after, q.data.limit));
  });

  router.get('/v1/batches/:id', async (req, res) => {
    res.json(await found(req.params.id));
  });

  router.post('/v1/batches/:id/cancel', async (req, res) => {
    const batch = await found(req.params.id);
    if (batch.status === 'cancelled' || batch.status === 'cancelling') return res.json(batch);
    if (TERMINAL_STATUSES.includes(batch.status)) {
      throw invalidRequest(`Cannot cancel a batch with status '${batch.status}'`, null, 'batch_not_cancellable');
    }
    try {
      await client.workflow.getHandle(batch.id).signal(cancelBatchSignalName);
    } catch (err) {
      // It finished between the read and the signal: answer with what it became.
      if (err instanceof WorkflowNotFoundError) return res.json(await found(batch.id));
      throw err;
    }
    // The workflow writes `cancelling` itself; answer with it now rather than race its writes.
    res.json({ ...batch, status: 'cancelling', cancelling_at: Math.floor(Date.now() / 1000) });
  });

  router.post('/v1/batches/:id/retry-failed', async (req, res) => {
    const batch = await found(req.params.id);
    if (!TERMINAL_STATUSES.includes(batch.status)) {
      throw new ApiError(409, `The batch is still ${batch.status}: retry its failed lines once it has finished`, 'invalid_request_error', null, 'batch_not_finished');
    }
    if (batch.status === 'failed') throw invalidRequest('The batch failed validation: nothing ran, so nothing can be retried. Fix the input file and create a new batch.', null, 'batch_failed_validation');
    const round = (batch.keel?.retry_rounds ?? 0) + 1;
    // A retry round gets a completion window of its own.
    const expiresAt = Math.floor(Date.now() / 1000) + Math.ceil(parseCompletionWindow(batch.completion_window)! / 1000);
    const next: BatchObject = { ...batch, status: 'in_progress', expires_at: expiresAt, keel: { retry_rounds: round }, finalizing_at: null, completed_at: null, expired_at: null, cancelled_at: null, cancelling_at: null };
    // Record before start: the round's first activity updates the record and must not be overwritten.
    await files.putBatch(next);
    try {
      // The previous round's run is closed, so the same workflow ID starts again (Temporal's default reuse policy).
      await startRound(next, round);
    } catch (err) {
      if (err instanceof WorkflowExecutionAlreadyStartedError) throw new ApiError(409, 'A retry of this batch is already running', 'invalid_request_error', null, 'batch_retry_running');
      throw err;
    }
    res.json(next);
  });

  return router;
}

// OpenAI's Batch API on Temporal. The service writes a batch's record once, at creation, then
// hands the batch to its workflow (workflow ID = batch id), which alone updates the record
// through activities. Cancel is a signal; retry-failed starts the next round of the same
// workflow ID (docs/BATCHES.md).
import { WorkflowExecutionAlreadyStartedError, WorkflowNotFoundError, type Client } from '@temporalio/client';
import type { KeelConfig } from '../config/schema.js';
import { TERMINAL_STATUSES, parseCompletionWindow, type BatchObject, type BatchWorkflowInput } from '../core/batch-types.js';
import { WORKFLOW_TYPES, cancelBatchSignal, type BatchWorkflow } from '../core/contract.js';
import { ApiError, invalidRequest } from '../core/openai-error.js';
import { KeelBatchId } from '../core/search-attributes.js';
import { batchTaskQueue } from '../core/task-queues.js';
import { newId, type BatchStore } from '../store/batch-store.js';
import type { BatchKey } from '../core/batch-types.js';
import { KeelKey } from '../core/search-attributes.js';
import type { KeyPrincipal, KeyService } from './key-service.js';

/** What a batch's key allows its lines, from the key's settings when the batch is created. */
function batchKey(key: KeyPrincipal): BatchKey {
  return { id: key.id, ...(key.view.models && { models: key.view.models }), budgeted: key.view.budget !== null, tpm: key.view.limits.tpm !== null };
}

/** How long a retry waits for the previous round's run to close after it reported its final status. */
const RUN_CLOSE_WAIT_MS = 10_000;

export interface CreateBatchParams {
  input_file_id: string;
  endpoint: string;
  completion_window: string;
  metadata?: Record<string, string> | null;
}

export class BatchService {
  constructor(
    readonly client: Client,
    readonly config: KeelConfig,
    readonly files: BatchStore,
    readonly keys?: KeyService,
  ) {}

  private workflowInput(batch: BatchObject, round: number, key?: BatchKey): BatchWorkflowInput {
    const { config } = this;
    return {
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
      ...(key && { key }),
    };
  }

  private startRound(batch: BatchObject, round: number, key?: BatchKey) {
    return this.client.workflow.start<BatchWorkflow>(WORKFLOW_TYPES.batch, {
      taskQueue: batchTaskQueue(this.config.taskQueue),
      workflowId: batch.id,
      args: [this.workflowInput(batch, round, key)],
      staticSummary: round === 0 ? `batch ${batch.input_file_id}` : `batch retry-failed round ${round}`,
      typedSearchAttributes: [{ key: KeelBatchId, value: batch.id }, ...(key ? [{ key: KeelKey, value: key.id }] : [])],
    });
  }

  /** Waits (a bounded time) for the batch's workflow run to close; a run still open after it is a retry already running. */
  private async previousRunClosed(id: string): Promise<void> {
    const handle = this.client.workflow.getHandle(id);
    const closed = handle.result().then(
      () => true,
      (err: unknown) => {
        // Failed, cancelled or gone: closed all the same.
        if (err instanceof WorkflowNotFoundError || (err as Error)?.name === 'WorkflowFailedError') return true;
        throw err;
      },
    );
    closed.catch(() => undefined);
    const timedOut = new Promise<false>((resolve) => setTimeout(() => resolve(false), RUN_CLOSE_WAIT_MS).unref());
    if (!(await Promise.race([closed, timedOut]))) {
      throw new ApiError(409, 'A retry of this batch is already running', 'invalid_request_error', null, 'batch_retry_running');
    }
  }

  /** `owner`: a virtual key's id — another key's batch answers as if it did not exist. */
  async get(id: string, owner?: string): Promise<BatchObject> {
    const batch = await this.files.getBatch(id);
    if (!batch || (owner !== undefined && batch.keel?.key_id !== owner)) throw new ApiError(404, `No batch found with id '${id}'`, 'invalid_request_error', 'batch_id', 'batch_not_found');
    return batch;
  }

  async list(owner?: string): Promise<BatchObject[]> {
    const all = (await this.files.listBatches()).filter((b) => owner === undefined || b.keel?.key_id === owner);
    return all.sort((a, b) => b.created_at - a.created_at || b.id.localeCompare(a.id));
  }

  /** With a virtual key, the batch is the key's: its lines are checked and reserved against it. */
  async create(params: CreateBatchParams, key?: KeyPrincipal): Promise<BatchObject> {
    const input = await this.files.getFile(params.input_file_id);
    if (!input || (key && input.keel?.key_id !== key.id)) throw new ApiError(404, `No such File object: ${params.input_file_id}`, 'invalid_request_error', 'input_file_id', 'file_not_found');
    if (input.purpose !== 'batch') throw invalidRequest(`The file ${input.id} has purpose '${input.purpose}', not 'batch'`, 'input_file_id', 'invalid_file_purpose');
    const now = Math.floor(Date.now() / 1000);
    const batch: BatchObject = {
      id: newId('batch'),
      object: 'batch',
      endpoint: params.endpoint,
      errors: null,
      input_file_id: input.id,
      completion_window: params.completion_window,
      status: 'validating',
      output_file_id: null,
      error_file_id: null,
      created_at: now,
      in_progress_at: null,
      expires_at: now + Math.ceil(parseCompletionWindow(params.completion_window)! / 1000),
      finalizing_at: null,
      completed_at: null,
      failed_at: null,
      expired_at: null,
      cancelling_at: null,
      cancelled_at: null,
      request_counts: { total: 0, completed: 0, failed: 0 },
      metadata: params.metadata ?? null,
      keel: { retry_rounds: 0, ...(key && { key_id: key.id }) },
    };
    // Record first, so the workflow always finds it; a crash between the two leaves a
    // `validating` record without a workflow, which GET shows and nothing else touches.
    await this.files.putBatch(batch);
    await this.startRound(batch, 0, key && batchKey(key));
    return batch;
  }

  async cancel(id: string, owner?: string): Promise<BatchObject> {
    const batch = await this.get(id, owner);
    if (batch.status === 'cancelled' || batch.status === 'cancelling') return batch;
    if (TERMINAL_STATUSES.includes(batch.status)) {
      throw invalidRequest(`Cannot cancel a batch with status '${batch.status}'`, null, 'batch_not_cancellable');
    }
    try {
      await this.client.workflow.getHandle(batch.id).signal(cancelBatchSignal);
    } catch (err) {
      // It finished between the read and the signal: answer with what it became.
      if (err instanceof WorkflowNotFoundError) return this.get(batch.id);
      throw err;
    }
    // The workflow writes `cancelling` itself; answer with it now rather than race its writes.
    return { ...batch, status: 'cancelling', cancelling_at: Math.floor(Date.now() / 1000) };
  }

  /** A keyed batch's retry round runs under the key's current settings (`key`, the caller's key when it owns the batch). */
  /** The key a retry round runs under: the batch's own, as it is now (an admin retrying a key's batch reads it). */
  private async roundKey(batch: BatchObject, caller?: KeyPrincipal): Promise<BatchKey | undefined> {
    const id = batch.keel?.key_id;
    if (!id) return undefined;
    if (caller?.id === id) return batchKey(caller);
    if (!this.keys) throw new Error('a keyed batch needs the KeyService');
    const view = await this.keys.get(id);
    return batchKey({ kind: 'key', id, view });
  }

  async retryFailed(id: string, key?: KeyPrincipal): Promise<BatchObject> {
    const batch = await this.get(id, key?.id);
    if (!TERMINAL_STATUSES.includes(batch.status)) {
      throw new ApiError(409, `The batch is still ${batch.status}: retry its failed lines once it has finished`, 'invalid_request_error', null, 'batch_not_finished');
    }
    if (batch.status === 'failed') throw invalidRequest('The batch failed validation: nothing ran, so nothing can be retried. Fix the input file and create a new batch.', null, 'batch_failed_validation');
    const round = (batch.keel?.retry_rounds ?? 0) + 1;
    // A retry round gets a completion window of its own.
    const expiresAt = Math.floor(Date.now() / 1000) + Math.ceil(parseCompletionWindow(batch.completion_window)! / 1000);
    const next: BatchObject = { ...batch, status: 'in_progress', expires_at: expiresAt, keel: { ...batch.keel, retry_rounds: round }, finalizing_at: null, completed_at: null, expired_at: null, cancelled_at: null, cancelling_at: null };
    // The previous run writes its final status a moment before it closes: a retry asked for as
    // soon as the client sees that status waits for the close, or the start below would meet it.
    await this.previousRunClosed(batch.id);
    // Record before start: the round's first activity updates the record and must not be overwritten.
    await this.files.putBatch(next);
    try {
      // The previous round's run is closed, so the same workflow ID starts again (Temporal's default reuse policy).
      await this.startRound(next, round, await this.roundKey(batch, key));
    } catch (err) {
      // Nothing started: the record goes back to what it was, not `in_progress` with nothing running.
      await this.files.putBatch(batch);
      if (err instanceof WorkflowExecutionAlreadyStartedError) throw new ApiError(409, 'A retry of this batch is already running', 'invalid_request_error', null, 'batch_retry_running');
      throw err;
    }
    return next;
  }
}

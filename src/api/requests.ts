// A live handle on every request: GET /v1/requests/:id (status, attempts, result) and
// POST /v1/requests/:id/cancel (Temporal cancellation: provider calls in flight are aborted).
import { Router } from 'express';
import { WorkflowNotFoundError, type WorkflowExecutionDescription } from '@temporalio/client';
import type { RequestHandle, RequestService } from '../request-service.js';
import type { RequestStatusView } from '../request-types.js';
import { KeelModel } from '../search-attributes.js';
import { ApiError } from './errors.js';

type PublicStatus = 'queued' | 'running' | 'succeeded' | 'failed' | 'cancelled';

function publicStatus(name: string): PublicStatus {
  switch (name) {
    case 'COMPLETED':
      return 'succeeded';
    case 'CANCELLED':
    case 'TERMINATED':
      return 'cancelled';
    case 'RUNNING':
    case 'CONTINUED_AS_NEW':
      return 'running';
    default:
      return 'failed';
  }
}

/** Pending provider calls as Temporal sees them: attempt numbers and the last failure of each. */
function pendingCalls(description: WorkflowExecutionDescription) {
  return (description.raw.pendingActivities ?? []).map((a) => ({
    summary: a.activityType?.name ?? 'activity',
    attempt: a.attempt ?? 1,
    state: a.state === 2 ? 'started' : a.state === 1 ? 'scheduled' : 'cancel_requested',
    last_failure: a.lastFailure?.message ?? null,
  }));
}

export async function describeRequest(requests: RequestService, id: string) {
  const handle: RequestHandle = requests.client.workflow.getHandle(id);
  let description: WorkflowExecutionDescription;
  try {
    description = await handle.describe();
  } catch (err) {
    if (err instanceof WorkflowNotFoundError) throw new ApiError(404, `No request with id '${id}'`, 'invalid_request_error', 'id', 'request_not_found');
    throw err;
  }
  if (description.type !== 'chatCompletionWorkflow') throw new ApiError(404, `No request with id '${id}'`, 'invalid_request_error', 'id', 'request_not_found');
  let status = publicStatus(description.status.name);
  const base = {
    id,
    object: 'keel.request' as const,
    model: description.typedSearchAttributes.get(KeelModel) ?? null,
    created_at: Math.floor(description.startTime.getTime() / 1000),
    completed_at: description.closeTime ? Math.floor(description.closeTime.getTime() / 1000) : null,
    ui_url: requests.uiLink(id),
  };
  if (status === 'running') {
    const live: RequestStatusView = await handle.query('status');
    const pending = pendingCalls(description);
    if (live.attempts.length === 0 && !pending.some((p) => p.state === 'started')) status = 'queued';
    return { ...base, status, mode: live.mode, active_targets: live.activeTargets, attempts: live.attempts, pending_calls: pending };
  }
  if (status === 'succeeded') {
    const result = await handle.result();
    return { ...base, status, attempts: result.keel.attempts, result: { ...result.completion, keel: result.keel } };
  }
  const outcome = await requests.outcome(handle);
  const error = outcome.ok ? null : outcome.error;
  return {
    ...base,
    status,
    attempts: outcome.ok ? outcome.result.keel.attempts : (outcome.failure?.attempts ?? []),
    error: error && { message: error.message, type: error.type, param: error.param, code: error.code, status: error.status },
  };
}

export function requestsRouter(requests: RequestService): Router {
  const router = Router();
  router.get('/v1/requests/:id', async (req, res) => {
    res.setHeader('x-request-id', req.params.id);
    res.json(await describeRequest(requests, req.params.id));
  });
  router.post('/v1/requests/:id/cancel', async (req, res) => {
    res.setHeader('x-request-id', req.params.id);
    const current = await describeRequest(requests, req.params.id);
    if (current.status === 'running' || current.status === 'queued') {
      await requests.client.workflow.getHandle(req.params.id).cancel();
    }
    res.status(202).json({ ...current, cancel_requested: current.status === 'running' || current.status === 'queued' });
  });
  return router;
}

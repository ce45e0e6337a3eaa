// A request as the API shows it (GET /v1/requests/:id and the answers of POST /v1/requests,
// replay and cancel): Temporal's description of the execution, the live status query while it
// runs, its result or its error once it has ended.
import { WorkflowNotFoundError, type WorkflowExecutionDescription } from '@temporalio/client';
import { isRequestWorkflowType, requestStatusQuery } from '../core/contract.js';
import { ApiError, requestFailureError } from '../core/openai-error.js';
import type { RequestStatusView } from '../core/request-types.js';
import { KeelKey, KeelModel } from '../core/search-attributes.js';
import type { RequestHandle, RequestService } from './request-service.js';
import type { PublicStatus } from './request-list.js';
import { replayRequest } from './replay.js';

export function publicStatus(name: string): PublicStatus {
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

/** `owner`: a virtual key's id — another key's request answers as if it did not exist. */
export async function describeExecution(requests: RequestService, id: string, owner?: string): Promise<{ handle: RequestHandle; description: WorkflowExecutionDescription }> {
  const handle: RequestHandle = requests.client.workflow.getHandle(id);
  let description: WorkflowExecutionDescription;
  try {
    description = await handle.describe();
  } catch (err) {
    if (err instanceof WorkflowNotFoundError) throw new ApiError(404, `No request with id '${id}'`, 'invalid_request_error', 'id', 'request_not_found');
    throw err;
  }
  const foreign = owner !== undefined && description.typedSearchAttributes.get(KeelKey) !== owner;
  if (!isRequestWorkflowType(description.type) || foreign) throw new ApiError(404, `No request with id '${id}'`, 'invalid_request_error', 'id', 'request_not_found');
  return { handle, description };
}

export function baseView(requests: RequestService, id: string, description: WorkflowExecutionDescription) {
  return {
    id,
    object: 'keel.request' as const,
    model: description.typedSearchAttributes.get(KeelModel) ?? null,
    key_id: description.typedSearchAttributes.get(KeelKey) ?? null,
    created_at: Math.floor(description.startTime.getTime() / 1000),
    completed_at: description.closeTime ? Math.floor(description.closeTime.getTime() / 1000) : null,
    run_id: description.runId,
    ui_url: requests.uiLink(id),
  };
}

export async function describeRequest(requests: RequestService, id: string, owner?: string, retried = false): Promise<RequestView> {
  const { handle, description } = await describeExecution(requests, id, owner);
  let status = publicStatus(description.status.name);
  const base = baseView(requests, id, description);
  if (status === 'running') {
    const pending = pendingCalls(description);
    let live: RequestStatusView;
    try {
      live = await handle.query(requestStatusQuery);
    } catch (err) {
      // It closed while the query waited (a query is answered with the workflow task in flight,
      // e.g. the one recording an outcome a client already has): describe it as it is now.
      if (!retried && !(err instanceof WorkflowNotFoundError)) return describeRequest(requests, id, owner, true);
      // No workflow task has run yet (or the worker is away): what the server knows.
      return { ...base, status: 'queued' as PublicStatus, attempts: [], pending_calls: pending };
    }
    const webhook = live.webhook ? { webhook_status: live.webhook } : {};
    // Settled, delivering its webhook: the outcome is already known.
    if (live.result) {
      return { ...base, status: 'succeeded' as PublicStatus, ...webhook, attempts: live.result.keel.attempts, result: { ...live.result.completion, keel: live.result.keel } };
    }
    if (live.state === 'failed' && live.failure) {
      const error = requestFailureError(live.failure);
      return { ...base, status: 'failed' as PublicStatus, ...webhook, attempts: live.failure.attempts, error: { ...error.toObject(), status: error.status } };
    }
    // A call in flight is running, on a task queue (a started pending activity) or as a local call.
    if (live.attempts.length === 0 && live.activeTargets.length === 0 && !pending.some((p) => p.state === 'started')) status = 'queued';
    return { ...base, status, ...webhook, mode: live.mode, active_targets: live.activeTargets, attempts: live.attempts, pending_calls: pending };
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
    error: error && { ...error.toObject(), status: error.status },
  };
}


export type RequestView = Record<string, unknown> & { status: PublicStatus };

/** What POST /v1/requests answers with: `queued` until a provider call has started. */
export async function acceptedView(requests: RequestService, id: string) {
  const { description } = await describeExecution(requests, id);
  const status = publicStatus(description.status.name);
  if (status !== 'running') return describeRequest(requests, id);
  return { ...baseView(requests, id, description), status: (description.raw.pendingActivities ?? []).length > 0 ? 'running' : 'queued' };
}

/** Re-runs a failed or cancelled request (a Temporal reset) and shows the new run, queued. */
export async function replayedView(requests: RequestService, id: string) {
  const replay = await replayRequest(requests.client, id, { reason: 'replayed through POST /v1/requests/:id/replay' });
  const { description } = await describeExecution(requests, id);
  return { ...baseView(requests, id, description), status: 'queued' as PublicStatus, replayed_run_id: replay.previousRunId, run_id: replay.runId };
}

/**
 * Temporal cancellation of a running request (provider calls in flight are aborted), then its
 * view. The cancel goes out before the status query: a request whose call runs locally answers
 * queries only when its workflow task next checks in, and the cancel must not wait for that.
 */
export async function cancelRequest(requests: RequestService, id: string, owner?: string) {
  const { handle, description } = await describeExecution(requests, id, owner);
  const live = publicStatus(description.status.name) === 'running';
  if (live) await handle.cancel();
  return { ...(await describeRequest(requests, id, owner)), cancel_requested: live };
}

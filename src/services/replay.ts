// Replaying a failed request: a Temporal reset of its workflow to the first completed workflow
// task — exactly what the Temporal UI's "Reset" does. The request keeps its id (the workflow ID
// the client already holds, and any Idempotency-Key that maps onto it); the failed run stays in
// the UI's run history, linked to the new run. See docs/REQUESTS.md, "Why reset".
import { setTimeout as sleep } from 'node:timers/promises';
import { WorkflowNotFoundError, type Client } from '@temporalio/client';
import proto from '@temporalio/proto';
import type { temporal as T } from '@temporalio/proto';
const { temporal } = proto;
import { ApiError } from '../core/openai-error.js';
import { isRequestWorkflowType } from '../core/contract.js';

/** Closed states a request can be replayed from. */
const REPLAYABLE = new Set(['FAILED', 'TIMED_OUT', 'CANCELLED', 'TERMINATED']);

/**
 * A request answered early (docs/REQUESTS.md) has told its client it failed a moment before its run
 * closes: a replay asked for at once waits this long for the close rather than calling it running.
 */
const CLOSING_GRACE_MS = 3_000;
const CLOSING_POLL_MS = 100;

export interface ReplayResult {
  requestId: string;
  /** The failed (or cancelled) run that was reset. */
  previousRunId: string;
  /** The run now executing the request again. */
  runId: string;
}

type EventId = NonNullable<T.api.history.v1.IHistoryEvent['eventId']>;

/** The first WorkflowTaskCompleted event of a run: resetting to it re-runs everything after the start. */
export async function firstWorkflowTaskCompletedEventId(client: Client, workflowId: string, runId: string): Promise<EventId | undefined> {
  let nextPageToken: Uint8Array | undefined;
  do {
    const page = await client.workflowService.getWorkflowExecutionHistory({
      namespace: client.options.namespace,
      execution: { workflowId, runId },
      maximumPageSize: 50,
      ...(nextPageToken && { nextPageToken }),
    });
    const found = page.history?.events?.find((e) => e.eventType === temporal.api.enums.v1.EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED);
    if (found?.eventId !== undefined && found.eventId !== null) return found.eventId;
    nextPageToken = page.nextPageToken && page.nextPageToken.length > 0 ? page.nextPageToken : undefined;
  } while (nextPageToken);
  return undefined;
}

/**
 * Re-runs a failed, timed-out or cancelled request from its start (same input, same request id).
 * Throws ApiError 404 (no such request) or 409 (not in a replayable state). Reusable by batch
 * code (`POST /v1/batches/:id/retry-failed`) for each failed child.
 */
export async function replayRequest(client: Client, requestId: string, opts: { reason?: string } = {}): Promise<ReplayResult> {
  const handle = client.workflow.getHandle(requestId);
  let description;
  try {
    description = await handle.describe();
  } catch (err) {
    if (err instanceof WorkflowNotFoundError) throw new ApiError(404, `No request with id '${requestId}'`, 'invalid_request_error', 'id', 'request_not_found');
    throw err;
  }
  if (!isRequestWorkflowType(description.type)) throw new ApiError(404, `No request with id '${requestId}'`, 'invalid_request_error', 'id', 'request_not_found');
  // Read again until it closes or the grace is over (a long poll on the result is not cut short by
  // the client's abort signal, so the status is asked for instead).
  for (const until = Date.now() + CLOSING_GRACE_MS; description.status.name === 'RUNNING' && Date.now() < until; ) {
    await sleep(CLOSING_POLL_MS);
    description = await handle.describe();
  }
  if (!REPLAYABLE.has(description.status.name)) {
    throw new ApiError(409, `Request '${requestId}' is ${description.status.name.toLowerCase()}: only failed or cancelled requests can be replayed`, 'invalid_request_error', 'id', 'request_not_replayable');
  }
  const eventId = await firstWorkflowTaskCompletedEventId(client, requestId, description.runId);
  if (eventId === undefined) {
    throw new ApiError(409, `Request '${requestId}' has no completed workflow task to reset to`, 'invalid_request_error', 'id', 'request_not_replayable');
  }
  const res: T.api.workflowservice.v1.IResetWorkflowExecutionResponse = await client.workflowService.resetWorkflowExecution({
    namespace: client.options.namespace,
    workflowExecution: { workflowId: requestId, runId: description.runId },
    reason: opts.reason ?? 'keel replay',
    workflowTaskFinishEventId: eventId,
    // Deterministic per failed run: two concurrent replays of one run make one new run.
    requestId: `keel-replay-${description.runId}`,
  });
  return { requestId, previousRunId: description.runId, runId: res.runId ?? '' };
}

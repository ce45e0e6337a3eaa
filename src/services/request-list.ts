// Finding requests through Temporal visibility: GET /v1/requests?status=failed&model=…&batch=…
// Everything filtered on is a search attribute or a built-in field; no prompt text is in either.
import type { Client } from '@temporalio/client';
import { defaultPayloadConverter } from '@temporalio/common';
import proto from '@temporalio/proto';
import type { temporal as T } from '@temporalio/proto';
const { temporal } = proto;
import { ApiError, invalidRequest } from '../core/openai-error.js';
import { REQUEST_WORKFLOW_TYPES } from '../core/contract.js';
import { KeelBatchId, KeelErrorClass, KeelKey, KeelModel, KeelProvider } from '../core/search-attributes.js';

export type PublicStatus = 'queued' | 'running' | 'succeeded' | 'failed' | 'cancelled';
export const LISTABLE_STATUSES = ['running', 'succeeded', 'failed', 'cancelled'] as const;
export type ListableStatus = (typeof LISTABLE_STATUSES)[number];

/** Temporal execution statuses per public status (a timed-out request counts as failed). */
const EXECUTION_STATUSES: Record<ListableStatus, string[]> = {
  running: ['Running'],
  succeeded: ['Completed'],
  failed: ['Failed', 'TimedOut'],
  cancelled: ['Canceled', 'Terminated'],
};

/**
 * A visibility-query string literal. Values are user input: quotes and backslashes are escaped,
 * and control characters (which no model name or batch id has) are refused.
 */
export function queryLiteral(value: string, param: string): string {
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(value)) throw invalidRequest(`${param} contains control characters`, param, 'invalid_value');
  if (value.length > 256) throw invalidRequest(`${param} is too long`, param, 'invalid_value');
  return `'${value.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
}

export interface ListRequestsOptions {
  status?: ListableStatus;
  model?: string;
  batch?: string;
  /** A virtual key's id: its requests only. */
  key?: string;
  /** 1..100, default 20. */
  limit?: number;
  /** The `next_after` cursor of the previous page. */
  after?: string;
}

export interface RequestListItem {
  id: string;
  object: 'keel.request';
  status: PublicStatus;
  model: string | null;
  provider: string | null;
  error_class: string | null;
  batch_id: string | null;
  key_id: string | null;
  created_at: number;
  completed_at: number | null;
  run_id: string;
  ui_url: string;
}

export interface RequestList {
  object: 'list';
  data: RequestListItem[];
  first_id: string | null;
  last_id: string | null;
  has_more: boolean;
  /** Pass as `after` for the next page (an opaque visibility cursor, not a request id). */
  next_after: string | null;
}

export function visibilityQuery(opts: Pick<ListRequestsOptions, 'status' | 'model' | 'batch' | 'key'>): string {
  const clauses = [`WorkflowType IN (${REQUEST_WORKFLOW_TYPES.map((t) => queryLiteral(t, 'type')).join(', ')})`];
  if (opts.status) clauses.push(`ExecutionStatus IN (${EXECUTION_STATUSES[opts.status].map((s) => `'${s}'`).join(', ')})`);
  if (opts.model !== undefined) clauses.push(`${KeelModel.name} = ${queryLiteral(opts.model, 'model')}`);
  if (opts.batch !== undefined) clauses.push(`${KeelBatchId.name} = ${queryLiteral(opts.batch, 'batch')}`);
  if (opts.key !== undefined) clauses.push(`${KeelKey.name} = ${queryLiteral(opts.key, 'key')}`);
  return clauses.join(' AND ');
}

const S = temporal.api.enums.v1.WorkflowExecutionStatus;
function statusOf(code: number | null | undefined): PublicStatus {
  switch (code) {
    case S.WORKFLOW_EXECUTION_STATUS_RUNNING:
    case S.WORKFLOW_EXECUTION_STATUS_CONTINUED_AS_NEW:
      return 'running';
    case S.WORKFLOW_EXECUTION_STATUS_COMPLETED:
      return 'succeeded';
    case S.WORKFLOW_EXECUTION_STATUS_CANCELED:
    case S.WORKFLOW_EXECUTION_STATUS_TERMINATED:
      return 'cancelled';
    default:
      return 'failed';
  }
}

function seconds(ts: { seconds?: unknown } | null | undefined): number | null {
  return ts?.seconds === undefined || ts.seconds === null ? null : Number(ts.seconds);
}

function keyword(fields: Record<string, T.api.common.v1.IPayload> | null | undefined, name: string): string | null {
  const payload = fields?.[name];
  if (!payload) return null;
  const v = defaultPayloadConverter.fromPayload<unknown>(payload as never);
  return typeof v === 'string' ? v : Array.isArray(v) && typeof v[0] === 'string' ? v[0] : null;
}

export async function listRequests(client: Client, uiLink: (id: string) => string, opts: ListRequestsOptions): Promise<RequestList> {
  const limit = opts.limit ?? 20;
  const query = visibilityQuery(opts);
  let nextPageToken: Uint8Array | undefined;
  if (opts.after) {
    nextPageToken = Buffer.from(opts.after, 'base64url');
    if (nextPageToken.length === 0) throw invalidRequest('after is not a cursor from a previous page', 'after', 'invalid_cursor');
  }
  let res: T.api.workflowservice.v1.IListWorkflowExecutionsResponse;
  try {
    res = await client.workflowService.listWorkflowExecutions({
      namespace: client.options.namespace,
      query,
      pageSize: limit,
      ...(nextPageToken && { nextPageToken }),
    });
  } catch (err) {
    // A cursor from another query (or a mangled one) is the client's mistake.
    if (opts.after && (err as { code?: number }).code === 3) throw invalidRequest('after is not a cursor for this query', 'after', 'invalid_cursor');
    if ((err as { code?: number }).code === 3) throw new ApiError(400, `Invalid filter: ${(err as Error).message}`, 'invalid_request_error', null, 'invalid_filter');
    throw err;
  }
  const data: RequestListItem[] = (res.executions ?? []).map((e) => {
    const fields = e.searchAttributes?.indexedFields;
    const id = e.execution?.workflowId ?? '';
    return {
      id,
      object: 'keel.request',
      status: statusOf(e.status),
      model: keyword(fields, KeelModel.name),
      provider: keyword(fields, KeelProvider.name),
      error_class: keyword(fields, KeelErrorClass.name),
      batch_id: keyword(fields, KeelBatchId.name),
      key_id: keyword(fields, KeelKey.name),
      created_at: seconds(e.startTime) ?? 0,
      completed_at: seconds(e.closeTime),
      run_id: e.execution?.runId ?? '',
      ui_url: uiLink(id),
    };
  });
  let token = res.nextPageToken && res.nextPageToken.length > 0 ? Buffer.from(res.nextPageToken).toString('base64url') : null;
  if (token && res.nextPageToken) {
    // A full page comes with a token even when nothing follows: look before saying has_more.
    const peek = await client.workflowService.listWorkflowExecutions({ namespace: client.options.namespace, query, pageSize: 1, nextPageToken: res.nextPageToken });
    if ((peek.executions ?? []).length === 0) token = null;
  }
  return {
    object: 'list',
    data,
    first_id: data[0]?.id ?? null,
    last_id: data.at(-1)?.id ?? null,
    has_more: token !== null,
    next_after: token,
  };
}

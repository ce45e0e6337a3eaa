// Keel's errors in OpenAI's shape — `{"error": {message, type, param, code}}` plus the HTTP
// status — and the one translation of a failed request into such an error, used by the API's
// answers, request views, batch output lines and webhook events alike. Workflow-safe.
import { ApplicationFailure, CancelledFailure, TerminatedFailure, TimeoutFailure } from '@temporalio/common';
import { ERROR_POLICY, isErrorClass } from './error-classes.js';
import type { RequestFailureDetails } from './request-types.js';

export interface OpenAIErrorObject {
  message: string;
  type: string;
  param: string | null;
  code: string | null;
}

/** An error a client gets: thrown by services and routes, sent by the API's error handler. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly type: string,
    readonly param: string | null = null,
    readonly code: string | null = null,
    /** Top-level fields sent beside `error` (e.g. `keel.attempts`). */
    readonly extra?: Record<string, unknown>,
    /** Response headers that go with it (e.g. `retry-after`). */
    readonly headers?: Record<string, string>,
  ) {
    super(message);
    this.name = 'ApiError';
  }

  toObject(): OpenAIErrorObject {
    return { message: this.message, type: this.type, param: this.param, code: this.code };
  }
}

export function invalidRequest(message: string, param: string | null = null, code: string | null = null): ApiError {
  return new ApiError(400, message, 'invalid_request_error', param, code);
}

/** The error a request that ended with these failure details answers with. */
export function requestFailureError(details: RequestFailureDetails): ApiError {
  const policy = ERROR_POLICY[details.errorClass] ?? ERROR_POLICY.bad_response;
  return new ApiError(details.status ?? policy.clientStatus, details.message, policy.openaiType, null, policy.code ?? details.errorClass, { keel: { attempts: details.attempts } });
}

export const CANCELLED_ERROR = { status: 409, message: 'The request was cancelled', type: 'request_cancelled', code: 'cancelled' } as const;

/**
 * Whatever a request workflow failed with (the cause of a WorkflowFailedError, or a failure seen
 * inside a workflow) as the client's error, with the attempt log when the workflow recorded one.
 */
export function failureError(cause: unknown): { error: ApiError; failure?: RequestFailureDetails } {
  if (cause instanceof ApplicationFailure) {
    const details = cause.details?.[0] as RequestFailureDetails | undefined;
    const errorClass = isErrorClass(cause.type) ? cause.type : undefined;
    const status = details?.status ?? (errorClass ? ERROR_POLICY[errorClass].clientStatus : 502);
    const type = errorClass ? ERROR_POLICY[errorClass].openaiType : 'upstream_error';
    const code = (errorClass && ERROR_POLICY[errorClass].code) ?? cause.type ?? null;
    return {
      error: new ApiError(status, cause.message, type, null, code, details ? { keel: { attempts: details.attempts } } : undefined),
      ...(details && { failure: details }),
    };
  }
  if (cause instanceof CancelledFailure) {
    return { error: new ApiError(CANCELLED_ERROR.status, CANCELLED_ERROR.message, CANCELLED_ERROR.type, null, CANCELLED_ERROR.code) };
  }
  if (cause instanceof TerminatedFailure) {
    return { error: new ApiError(409, 'The request was terminated by an operator', 'request_cancelled', null, 'terminated') };
  }
  if (cause instanceof TimeoutFailure) {
    return { error: new ApiError(504, 'The request timed out', 'timeout', null, 'timeout') };
  }
  return { error: new ApiError(502, 'The request failed', 'upstream_error', null, null) };
}

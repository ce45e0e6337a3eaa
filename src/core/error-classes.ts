// The provider error taxonomy and what each class means for routing. Pure: shared by the
// activities (which classify), the workflow (which decides) and the API (which answers).

export const ERROR_CLASSES = [
  'rate_limited',
  'unavailable',
  'timeout',
  'unreachable',
  'auth',
  'quota_exhausted',
  'model_not_found',
  'context_too_long',
  'content_filtered',
  'invalid_request',
  'bad_response',
  'internal',
  'stream_interrupted',
] as const;
export type ErrorClass = (typeof ERROR_CLASSES)[number];

export interface ErrorPolicy {
  /** Another attempt on the same target can help. */
  retrySameTarget: boolean;
  /** Whether the next target is tried: always, never (the client's own fault), or only a target with a larger context window. */
  fallback: 'yes' | 'no' | 'larger-context';
  /** HTTP status the client gets when this is the error that ends the request. */
  clientStatus: number;
  /** OpenAI error `type` for the client. */
  openaiType: string;
  /** OpenAI error `code` for the client, when it is not the class's own name. */
  code?: string;
}

export const ERROR_POLICY: Record<ErrorClass, ErrorPolicy> = {
  rate_limited: { retrySameTarget: true, fallback: 'yes', clientStatus: 429, openaiType: 'rate_limit_error' },
  unavailable: { retrySameTarget: true, fallback: 'yes', clientStatus: 503, openaiType: 'service_unavailable' },
  timeout: { retrySameTarget: true, fallback: 'yes', clientStatus: 504, openaiType: 'timeout' },
  unreachable: { retrySameTarget: true, fallback: 'yes', clientStatus: 502, openaiType: 'upstream_unreachable' },
  auth: { retrySameTarget: false, fallback: 'yes', clientStatus: 502, openaiType: 'upstream_auth_error' },
  // The upstream account's quota, not the client's: to the client it is an unavailable service.
  quota_exhausted: { retrySameTarget: false, fallback: 'yes', clientStatus: 503, openaiType: 'upstream_quota_exhausted' },
  model_not_found: { retrySameTarget: false, fallback: 'yes', clientStatus: 502, openaiType: 'upstream_model_not_found' },
  context_too_long: { retrySameTarget: false, fallback: 'larger-context', clientStatus: 400, openaiType: 'invalid_request_error' },
  content_filtered: { retrySameTarget: false, fallback: 'no', clientStatus: 400, openaiType: 'content_filter' },
  invalid_request: { retrySameTarget: false, fallback: 'no', clientStatus: 400, openaiType: 'invalid_request_error' },
  bad_response: { retrySameTarget: true, fallback: 'yes', clientStatus: 502, openaiType: 'bad_upstream_response' },
  // Keel's own code threw (translating the request it was given): no provider was at fault and
  // another attempt or target would hit the same bug, so the request fails at once, as a 500 the
  // operator finds by its request id in the worker's log, and can replay once the bug is fixed.
  internal: { retrySameTarget: false, fallback: 'no', clientStatus: 500, openaiType: 'server_error', code: 'internal_error' },
  // A streamed answer broke after the client had its first token (a provider error, a dropped
  // connection, a stall): another attempt or target would give the client a second, different
  // answer after part of the first, so the stream ends with an error event — unless the request
  // asked the next target to continue it (`keel.stream_recovery: continue`, docs/STREAMING.md).
  stream_interrupted: { retrySameTarget: false, fallback: 'no', clientStatus: 502, openaiType: 'stream_interrupted' },
};

export function isErrorClass(value: unknown): value is ErrorClass {
  return typeof value === 'string' && (ERROR_CLASSES as readonly string[]).includes(value);
}

/** What an activity reports about one failed provider call (never contains secrets). */
export interface ProviderErrorInfo {
  errorClass: ErrorClass;
  message: string;
  status?: number;
  /** Provider's own error code, e.g. OpenAI's `insufficient_quota`. */
  providerCode?: string;
  /** From Retry-After / retry-after-ms. */
  retryAfterMs?: number;
}

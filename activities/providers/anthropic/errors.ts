// How Anthropic says what went wrong: `{"type":"error","error":{"type":"overloaded_error", ...}}`,
// parsed by the SDK into APIError `.error`. Its error types name the class outright.
import type { ErrorClass } from '../../../src/core/error-classes.js';
import type { HttpFailure, ProviderErrorReader } from '../types.js';

const TYPES: Record<string, ErrorClass> = {
  billing_error: 'quota_exhausted',
  request_too_large: 'context_too_long',
  not_found_error: 'model_not_found',
  overloaded_error: 'unavailable',
  api_error: 'unavailable',
  rate_limit_error: 'rate_limited',
  authentication_error: 'auth',
  permission_error: 'auth',
  timeout_error: 'timeout',
};

export const anthropicErrors: ProviderErrorReader = {
  body: (err) => err.error,
  classify(f: HttpFailure): ErrorClass | undefined {
    // An empty prepaid balance comes as a 400 invalid_request_error.
    if (/credit balance is too low/i.test(f.message)) return 'quota_exhausted';
    return TYPES[f.type?.toLowerCase() ?? ''];
  },
};

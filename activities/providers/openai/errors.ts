// How OpenAI (and OpenAI-compatible endpoints: Azure, Groq, OpenRouter, vLLM, ...) say what went
// wrong: the openai SDK's APIError carries the parsed body in `.error`, with OpenAI's `code`.
import type { ErrorClass } from '../../../src/core/error-classes.js';
import type { HttpFailure, ProviderErrorReader } from '../types.js';

export const openaiErrors: ProviderErrorReader = {
  body: (err) => err.error,
  classify(f: HttpFailure): ErrorClass | undefined {
    const code = f.code?.toLowerCase();
    switch (code) {
      case 'insufficient_quota':
      case 'billing_hard_limit_reached':
        return 'quota_exhausted';
      case 'context_length_exceeded':
        return 'context_too_long';
      // content_policy_violation: Azure OpenAI's content filter.
      case 'content_filter':
      case 'content_policy_violation':
        return 'content_filtered';
      case 'model_not_found':
        return 'model_not_found';
    }
    return undefined;
  },
};

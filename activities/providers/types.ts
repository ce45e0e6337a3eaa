// The contract between the provider-call activity and each provider's adapter.
import type { ChatCompletion, ChatCompletionCreateParamsNonStreaming } from 'openai/resources/chat/completions';
import type { ErrorClass, ProviderErrorInfo } from '../../src/error-classes.js';

export type ChatRequest = ChatCompletionCreateParamsNonStreaming;
export type { ChatCompletion };

export interface ProviderAdapter {
  /**
   * One provider call, no retries (Temporal owns retrying): translate the OpenAI-shaped request
   * to the provider's wire format, call it with `signal` so a cancelled activity aborts the HTTP
   * request, and translate the answer back to an OpenAI ChatCompletion (with usage).
   * `model` in the returned completion is the upstream model. Throws on any failure;
   * `classifyError` turns what it throws into a ProviderErrorInfo.
   */
  complete(request: ChatRequest, upstreamModel: string, signal: AbortSignal): Promise<ChatCompletion>;
}

/** Thrown by adapters for failures they detect themselves (e.g. an answer that cannot be translated). */
export class ProviderCallError extends Error {
  constructor(
    readonly errorClass: ErrorClass,
    message: string,
    readonly status?: number,
    readonly providerCode?: string,
    readonly retryAfterMs?: number,
  ) {
    super(message);
    this.name = 'ProviderCallError';
  }

  toInfo(): ProviderErrorInfo {
    return {
      errorClass: this.errorClass,
      message: this.message,
      ...(this.status !== undefined && { status: this.status }),
      ...(this.providerCode !== undefined && { providerCode: this.providerCode }),
      ...(this.retryAfterMs !== undefined && { retryAfterMs: this.retryAfterMs }),
    };
  }
}

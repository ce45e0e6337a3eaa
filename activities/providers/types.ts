// The contract between the provider-call activity and each provider's adapter.
import type { ChatCompletion, ChatCompletionCreateParamsNonStreaming } from 'openai/resources/chat/completions';
import type { ErrorClass, ProviderErrorInfo } from '../../src/core/error-classes.js';

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

/** An HTTP failure as read from one SDK's error: the provider's own words, codes and wait. */
export interface HttpFailure {
  status: number;
  /** OpenAI `code`. */
  code?: string;
  /** OpenAI/Anthropic `type`, Gemini `status` (e.g. RESOURCE_EXHAUSTED). */
  type?: string;
  message: string;
  details: Record<string, unknown>[];
  retryAfterMs?: number;
}

/**
 * How one provider's errors are read, beside its adapter (providers/<name>/errors.ts). The
 * shared classification (activities/provider-call/classify-error.ts) asks it first and decides
 * from the HTTP status and the common signs when it has no opinion.
 */
export interface ProviderErrorReader {
  /** Where this SDK puts the error body: undefined when `err` carries none. */
  body(err: Record<string, unknown>): unknown;
  /** This provider's codes and words that say more than the status; undefined = no opinion. */
  classify(f: HttpFailure): ErrorClass | undefined;
  /** A wait the provider gave outside the Retry-After headers. */
  retryAfterMs?(f: HttpFailure): number | undefined;
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

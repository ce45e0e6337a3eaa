// The contract between the provider-call activity and each provider's adapter.
import type { ChatCompletion, ChatCompletionCreateParamsNonStreaming } from 'openai/resources/chat/completions';
import type { CompletionUsage } from 'openai/resources/completions';
import type { ErrorClass, ProviderErrorInfo } from '../../src/core/error-classes.js';
import type { StreamPiece } from '../../src/core/stream-chunks.js';

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
  /**
   * The same call, streamed (the provider's own streaming, no retries): the answer as it comes, in
   * OpenAI's terms — pieces of text, refusal or tool-call arguments (tool calls numbered from 0 per
   * choice; a tool call's first piece carries its id and name), each choice's finish reason, the
   * usage. Throws like `complete`, before or during the stream.
   */
  stream(request: ChatRequest, upstreamModel: string, signal: AbortSignal): AsyncIterable<AdapterStreamEvent>;
}

export type AdapterStreamEvent =
  | { type: 'start'; id?: string; created?: number }
  | { type: 'piece'; piece: StreamPiece }
  | { type: 'finish'; choice: number; reason: ChatCompletion.Choice['finish_reason'] }
  | { type: 'usage'; usage: CompletionUsage };

/**
 * The pure half of `complete`: the body sent on the wire for a validated request. Throws
 * `unsupported()` only for what src/core/capabilities.ts lists for its wire format, and
 * KeelInternalError for anything else that goes wrong in Keel's own code.
 */
export type RequestTranslator = (request: ChatRequest, upstreamModel: string) => unknown;

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
    options?: ErrorOptions,
  ) {
    super(message, options);
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

/**
 * Keel's own code threw where no provider was involved (translating a request Keel had accepted):
 * a bug, never the provider's failure. Class `internal`: not retried, no fallback, no mark against
 * the provider's health; the activity logs `cause`'s stack.
 */
export class KeelInternalError extends ProviderCallError {
  constructor(message: string, cause: unknown) {
    super('internal', message, undefined, 'internal_error', undefined, { cause });
    this.name = 'KeelInternalError';
  }
}

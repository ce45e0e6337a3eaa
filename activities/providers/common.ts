// Helpers shared by the three adapters: content flattening, data URLs, ids, usage, and the
// transport settings that hand retrying and timing out to Temporal.
import { randomBytes } from 'node:crypto';
import type { ChatCompletion } from 'openai/resources/chat/completions';
import type { CompletionUsage } from 'openai/resources/completions';
import { ChatRequestSchema } from '../../src/core/chat-request.js';
import { fileMediaType, splitDataUrl } from '../../src/core/media-types.js';
import { describeZodError } from '../../src/core/zod-issues.js';
import { KeelInternalError, ProviderCallError, type ChatRequest } from './types.js';

export { guessMediaType } from '../../src/core/media-types.js';
export { contentText } from '../../src/core/message-content.js';

/**
 * SDK timeouts are "off": Temporal's activity timeout governs each attempt. setTimeout caps
 * delays at 2^31-1 ms (a larger value fires after 1 ms), so this is the largest usable value.
 */
export const NO_TIMEOUT_MS = 2_147_483_647;

/**
 * Node's fetch (undici) gives up after 300 s without response headers or body bytes. A
 * non-streaming completion sends nothing until the whole answer is generated, so long answers
 * would die at 5 minutes whatever the activity timeout says. This dispatcher forwards to the
 * global one (same connection pool) with both limits off, as @google/genai does for itself.
 */
const GLOBAL_DISPATCHER = Symbol.for('undici.globalDispatcher.1');
interface Dispatcher {
  dispatch(opts: object, handler: unknown): boolean;
}
export const noTimeoutDispatcher: Dispatcher = {
  dispatch(opts, handler) {
    const slot = globalThis as unknown as Record<symbol, Dispatcher | undefined>;
    if (!slot[GLOBAL_DISPATCHER]) new Headers(); // makes Node load undici, which installs its Agent
    const global = slot[GLOBAL_DISPATCHER];
    if (!global) throw new Error('undici global dispatcher is not available');
    return global.dispatch({ ...opts, headersTimeout: 0, bodyTimeout: 0 }, handler);
  },
};

/**
 * A feature this provider cannot serve, though another target may. No class means exactly
 * "unsupported here", so this borrows model_not_found: its policy (no retry on this target,
 * fall back to the next) is the right one, while invalid_request would end the whole request
 * even when a later target (e.g. an OpenAI model for n > 1) could answer it.
 */
export function unsupported(provider: string, feature: string): ProviderCallError {
  return new ProviderCallError('model_not_found', `${feature} is not supported by ${provider}`, undefined, 'unsupported_feature');
}

/**
 * Runs Keel's translation of a request for `provider`, on a request checked against the schema
 * first: the API checked it, but an execution started under an older, laxer schema may carry one
 * that is not, and it must be the client's 400 naming the path, not a crash in an adapter. What
 * the translation throws on purpose (ProviderCallError: unsupported, invalid) passes; anything
 * else is a bug in Keel, classed `internal` rather than blamed on the provider.
 */
export function translating<T>(provider: string, request: ChatRequest, translate: () => T): T {
  const checked = ChatRequestSchema.safeParse(request);
  if (!checked.success) {
    const { param, message } = describeZodError(checked.error);
    throw new ProviderCallError('invalid_request', `Invalid request: ${param ? `${param}: ` : ''}${message}`, undefined, 'invalid_value');
  }
  try {
    return translate();
  } catch (err) {
    if (err instanceof ProviderCallError) throw err;
    const what = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
    throw new KeelInternalError(`Keel failed to translate the request for ${provider} (${what})`, err);
  }
}

export function invalidRequest(message: string): ProviderCallError {
  return new ProviderCallError('invalid_request', message);
}

export function badResponse(provider: string, what: string): ProviderCallError {
  return new ProviderCallError('bad_response', `${provider} answer ${what}`);
}

export interface DataUrl {
  mediaType: string;
  /** base64 */
  data: string;
}

export function parseDataUrl(url: string): DataUrl | undefined {
  const parts = splitDataUrl(url);
  if (!parts) return undefined;
  const data = parts.base64 ? parts.payload : Buffer.from(decodeURIComponent(parts.payload), 'utf8').toString('base64');
  return { mediaType: parts.mediaType, data };
}

/** OpenAI's file part carries a data URL or (per its docs) bare base64. */
export function parseFileData(fileData: string, filename?: string): DataUrl {
  return parseDataUrl(fileData) ?? { mediaType: fileMediaType(fileData, filename), data: fileData };
}

export function stopSequences(stop: ChatRequest['stop']): string[] | undefined {
  if (stop == null) return undefined;
  const list = (typeof stop === 'string' ? [stop] : stop).filter((s) => s.length > 0);
  return list.length > 0 ? list : undefined;
}

export function maxOutputTokens(req: ChatRequest): number | undefined {
  return req.max_completion_tokens ?? req.max_tokens ?? undefined;
}

/** Tool-call arguments as an object; providers other than OpenAI need one, and the client's string may not parse. */
export function parseToolArguments(args: string): Record<string, unknown> {
  try {
    const value: unknown = JSON.parse(args || '{}');
    if (value && typeof value === 'object' && !Array.isArray(value)) return value as Record<string, unknown>;
  } catch {
    // Model-written arguments are not guaranteed to be JSON; OpenAI itself accepts them as text.
  }
  return {};
}

export function newToolCallId(): string {
  // OpenAI rejects tool_call ids over 40 characters, and a conversation may move there on fallback.
  return `call_${randomBytes(12).toString('hex')}`;
}

export function newCompletionId(): string {
  return `chatcmpl-${randomBytes(12).toString('hex')}`;
}

export function makeUsage(prompt: number, completion: number, extra: Partial<CompletionUsage> = {}): CompletionUsage {
  return { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion, ...extra };
}

export function makeCompletion(
  upstreamModel: string,
  choices: ChatCompletion.Choice[],
  usage: CompletionUsage,
  id: string = newCompletionId(),
): ChatCompletion {
  return {
    id,
    object: 'chat.completion',
    created: Math.floor(Date.now() / 1000),
    model: upstreamModel,
    choices,
    usage,
  };
}

/** Providers without a native JSON mode get the format as an instruction; see anthropic-adapter.ts. */
export function jsonInstruction(format: ChatRequest['response_format']): string | undefined {
  if (!format) return undefined;
  if (format.type === 'json_object') {
    return 'Respond with a single valid JSON object and nothing else: no prose, no Markdown code fences.';
  }
  if (format.type === 'json_schema') {
    const { name, schema, description } = format.json_schema;
    return [
      `Respond with a single valid JSON value and nothing else (no prose, no Markdown code fences).`,
      `It must conform to the JSON Schema named "${name}"${description ? ` (${description})` : ''}:`,
      JSON.stringify(schema ?? {}),
    ].join('\n');
  }
  return undefined;
}

/** Undo the Markdown fence models like to wrap JSON in despite being told not to. */
export function unwrapJsonFence(text: string): string {
  const m = /^\s*```(?:json)?\s*\n([\s\S]*?)\n?```\s*$/i.exec(text);
  return m ? m[1] : text;
}

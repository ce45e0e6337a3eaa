// OpenAI and OpenAI-compatible servers (vLLM, llama.cpp, Ollama, proxies): the request is
// already in the provider's format, so translation is only removing what Keel added.
import { isRecord } from '../../../src/core/guards.js';
import OpenAI from 'openai';
import type { ChatCompletionCreateParamsNonStreaming } from 'openai/resources/chat/completions';
import { badResponse, makeUsage, newCompletionId, noTimeoutDispatcher, NO_TIMEOUT_MS, translating } from '../common.js';
import type { ChatCompletion, ChatRequest, ProviderAdapter } from '../types.js';

/** Fields of Keel's request that are routing instructions, not model parameters. */
const KEEL_FIELDS = ['models', 'provider', 'keel', 'route', 'stream', 'stream_options'] as const;

export function toOpenAIRequest(req: ChatRequest, upstreamModel: string): ChatCompletionCreateParamsNonStreaming {
  const body: Record<string, unknown> = { ...req };
  for (const field of KEEL_FIELDS) delete body[field];
  body.model = upstreamModel;
  return body as unknown as ChatCompletionCreateParamsNonStreaming;
}

/** The body sent on the wire (pure): see RequestTranslator. */
export function openaiRequestBody(req: ChatRequest, upstreamModel: string): ChatCompletionCreateParamsNonStreaming {
  return translating('openai', req, () => toOpenAIRequest(req, upstreamModel));
}

/**
 * Compatible servers vary: some omit usage, `object` or `created`, some answer 200 with an
 * error object, and the SDK returns a plain string for a non-JSON content type.
 */
export function fromOpenAIResponse(answer: unknown, upstreamModel: string): ChatCompletion {
  if (!isRecord(answer)) throw badResponse('openai', `is not a JSON object (${typeof answer})`);
  if (!Array.isArray(answer.choices)) {
    const err = isRecord(answer.error) ? answer.error : undefined;
    const detail = err && typeof err.message === 'string' ? `: ${err.message.slice(0, 200)}` : '';
    throw badResponse('openai', `has no choices${detail}`);
  }
  const completion = answer as unknown as ChatCompletion;
  return {
    ...completion,
    id: typeof answer.id === 'string' && answer.id ? answer.id : newCompletionId(),
    object: 'chat.completion',
    created: typeof answer.created === 'number' ? answer.created : Math.floor(Date.now() / 1000),
    model: upstreamModel,
    usage: completion.usage ?? makeUsage(0, 0),
  };
}

export function createOpenAIAdapter(opts: { baseURL: string; apiKey?: string }): ProviderAdapter {
  const client = new OpenAI({
    baseURL: opts.baseURL.replace(/\/+$/, ''),
    // Local OpenAI-compatible servers need no key, but the SDK refuses to start without one.
    apiKey: opts.apiKey ?? 'unused',
    // Explicit nulls keep OPENAI_ORG_ID / OPENAI_PROJECT_ID from the environment off other hosts.
    organization: null,
    project: null,
    maxRetries: 0,
    timeout: NO_TIMEOUT_MS,
    fetchOptions: { dispatcher: noTimeoutDispatcher } as OpenAI['fetchOptions'],
  });
  return {
    async complete(request, upstreamModel, signal) {
      const answer: unknown = await client.chat.completions.create(openaiRequestBody(request, upstreamModel), { signal });
      return fromOpenAIResponse(answer, upstreamModel);
    },
  };
}

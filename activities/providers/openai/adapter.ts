// OpenAI and OpenAI-compatible servers (vLLM, llama.cpp, Ollama, proxies): the request is
// already in the provider's format, so translation is only removing what Keel added.
import { isRecord } from '../../../src/core/guards.js';
import OpenAI from 'openai';
import type { ChatCompletionCreateParamsNonStreaming } from 'openai/resources/chat/completions';
import { badResponse, makeUsage, newCompletionId, newToolCallId, noTimeoutDispatcher, NO_TIMEOUT_MS, translating } from '../common.js';
import type { AdapterStreamEvent, ChatCompletion, ChatRequest, ProviderAdapter } from '../types.js';

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
    async *stream(request, upstreamModel, signal) {
      const body = { ...openaiRequestBody(request, upstreamModel), stream: true as const, stream_options: { include_usage: true } };
      const chunks = await client.chat.completions.create(body, { signal });
      yield* fromOpenAIChunks(chunks);
    },
  };
}

/** OpenAI's chunks as adapter events: tool calls renumbered from 0 per choice, as servers vary. */
export async function* fromOpenAIChunks(chunks: AsyncIterable<unknown>): AsyncGenerator<AdapterStreamEvent> {
  let started = false;
  const toolIndex = new Map<string, number>();
  const toolsOf = new Map<number, number>();
  for await (const chunk of chunks) {
    if (!isRecord(chunk)) throw badResponse('openai', `stream chunk is not a JSON object (${typeof chunk})`);
    if (!started) {
      started = true;
      yield { type: 'start', ...(typeof chunk.id === 'string' && chunk.id && { id: chunk.id }), ...(typeof chunk.created === 'number' && { created: chunk.created }) };
    }
    for (const c of Array.isArray(chunk.choices) ? chunk.choices : []) {
      if (!isRecord(c)) continue;
      const choice = typeof c.index === 'number' ? c.index : 0;
      const delta = isRecord(c.delta) ? c.delta : {};
      if (typeof delta.content === 'string' && delta.content) yield { type: 'piece', piece: { choice, kind: 'text', text: delta.content } };
      if (typeof delta.refusal === 'string' && delta.refusal) yield { type: 'piece', piece: { choice, kind: 'refusal', text: delta.refusal } };
      for (const t of Array.isArray(delta.tool_calls) ? delta.tool_calls : []) {
        if (!isRecord(t)) continue;
        const key = `${choice}:${typeof t.index === 'number' ? t.index : 0}`;
        const fn = isRecord(t.function) ? t.function : {};
        const args = typeof fn.arguments === 'string' ? fn.arguments : '';
        let index = toolIndex.get(key);
        if (index === undefined) {
          index = toolsOf.get(choice) ?? 0;
          toolsOf.set(choice, index + 1);
          toolIndex.set(key, index);
          const id = typeof t.id === 'string' && t.id ? t.id : newToolCallId();
          yield { type: 'piece', piece: { choice, kind: 'tool', index, id, name: typeof fn.name === 'string' ? fn.name : '', text: args } };
        } else if (args) {
          yield { type: 'piece', piece: { choice, kind: 'tool', index, text: args } };
        }
      }
      if (typeof c.finish_reason === 'string' && c.finish_reason) yield { type: 'finish', choice, reason: c.finish_reason as ChatCompletion.Choice['finish_reason'] };
    }
    if (isRecord(chunk.usage)) yield { type: 'usage', usage: chunk.usage as unknown as ChatCompletion['usage'] & object };
  }
}

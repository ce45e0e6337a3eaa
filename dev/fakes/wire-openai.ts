// OpenAI Chat Completions wire format, as the `openai` SDK sends and parses it.

import { z } from 'zod';
import { bearerToken, describeIssues, findLast, sseData, type NeutralRequest, type StreamEvent, type WireFormat } from './wire.js';

const bodySchema = z.looseObject({
  model: z.string().min(1),
  messages: z.array(z.looseObject({ role: z.string(), content: z.unknown().optional() })).min(1),
  n: z.number().int().min(1).max(128).nullish(),
  max_tokens: z.number().int().min(1).nullish(),
  max_completion_tokens: z.number().int().min(1).nullish(),
  stop: z.union([z.string(), z.array(z.string())]).nullish(),
  tools: z.array(z.looseObject({ type: z.string(), function: z.looseObject({ name: z.string() }).optional() })).nullish(),
  tool_choice: z.unknown().optional(),
  stream: z.boolean().nullish(),
  stream_options: z.looseObject({ include_usage: z.boolean().nullish() }).nullish(),
});

function contentText(content: unknown): string {
  if (typeof content === 'string') return content;
  if (!Array.isArray(content)) return '';
  return content
    .map((part) => (part && typeof part === 'object' && typeof part.text === 'string' ? part.text : ''))
    .filter((t) => t !== '')
    .join('\n');
}

function toolChoice(choice: unknown): NeutralRequest['toolChoice'] {
  if (choice === 'none') return { mode: 'none' };
  if (choice === 'required') return { mode: 'forced' };
  if (choice && typeof choice === 'object') {
    const c = choice as { type?: unknown; function?: { name?: unknown } };
    if (c.type === 'function' && typeof c.function?.name === 'string') return { mode: 'forced', name: c.function.name };
  }
  return { mode: 'auto' };
}

// Defaults follow what the real API answers for a bare status, so error classification
// sees realistic bodies; an explicit code is put in both places, as for `insufficient_quota`.
function errorTypeAndCode(status: number): { type: string; code: string | null } {
  if (status === 401) return { type: 'invalid_request_error', code: 'invalid_api_key' };
  if (status === 404) return { type: 'invalid_request_error', code: 'model_not_found' };
  if (status === 429) return { type: 'requests', code: 'rate_limit_exceeded' };
  if (status >= 500) return { type: 'server_error', code: null };
  return { type: 'invalid_request_error', code: null };
}

/** The last assistant turn, when it ends the conversation or only one user turn follows it. */
function priorAssistant(messages: { role: string; content?: unknown }[]): { priorAssistantText?: string } {
  const last = messages.at(-1);
  const turn = last?.role === 'assistant' ? last : last?.role === 'user' && messages.at(-2)?.role === 'assistant' ? messages.at(-2) : undefined;
  const text = turn ? contentText(turn.content) : '';
  return text ? { priorAssistantText: text } : {};
}

const FINISH = { stop: 'stop', stop_sequence: 'stop', length: 'length', tool: 'tool_calls' } as const;

export const openaiWire: WireFormat = {
  type: 'openai',
  basePath: '/v1',
  requestIdHeader: 'x-request-id',

  route(method, url) {
    if (method === 'POST' && url.pathname === '/v1/chat/completions') return { op: 'generate' };
    if (method === 'GET' && url.pathname === '/v1/models') return { op: 'models' };
    return undefined;
  },

  apiKey: (headers) => bearerToken(headers),

  parse(raw) {
    const parsed = bodySchema.safeParse(raw);
    if (!parsed.success) return describeIssues(parsed.error);
    const body = parsed.data;
    const lastUser = findLast(body.messages, (m) => m.role === 'user');
    const tools = (body.tools ?? []).flatMap((t) => (t.type === 'function' && t.function ? [t.function.name] : []));
    const maxTokens = body.max_completion_tokens ?? body.max_tokens ?? undefined;
    return {
      model: body.model,
      lastUserText: lastUser ? contentText(lastUser.content) : '',
      endsWithUser: body.messages.at(-1)?.role === 'user',
      promptChars: body.messages.reduce((sum, m) => sum + contentText(m.content).length, 0),
      tools,
      toolChoice: toolChoice(body.tool_choice),
      ...(maxTokens !== undefined ? { maxTokens } : {}),
      stop: body.stop == null ? [] : typeof body.stop === 'string' ? [body.stop] : body.stop,
      n: body.n ?? 1,
      stream: body.stream === true,
      includeUsage: body.stream_options?.include_usage === true,
      ...priorAssistant(body.messages),
    };
  },

  answer(req, answer, id) {
    return {
      id: `chatcmpl-${id}`,
      object: 'chat.completion',
      created: Math.floor(Date.now() / 1000),
      model: req.model,
      choices: answer.choices.map((choice, index) => ({
        index,
        message: choice.toolCall
          ? {
              role: 'assistant',
              content: null,
              refusal: null,
              tool_calls: [
                {
                  id: `call_${id}_${index}`,
                  type: 'function',
                  function: { name: choice.toolCall.name, arguments: JSON.stringify(choice.toolCall.args) },
                },
              ],
            }
          : { role: 'assistant', content: choice.text, refusal: null },
        finish_reason: FINISH[choice.finish],
        logprobs: null,
      })),
      usage: {
        prompt_tokens: answer.promptTokens,
        completion_tokens: answer.completionTokens,
        total_tokens: answer.promptTokens + answer.completionTokens,
      },
      system_fingerprint: 'fp_keel_fake',
    };
  },

  error({ status, message, code }) {
    const defaults = errorTypeAndCode(status);
    return { error: { message, type: code ?? defaults.type, param: null, code: code ?? defaults.code } };
  },

  // OpenAI's chat.completion.chunk stream: a role chunk per choice, content (or tool-call) deltas, a
  // finish chunk per choice, a usage chunk when asked for, then [DONE].
  stream(req, answer, id, pieces) {
    const created = Math.floor(Date.now() / 1000);
    const usageField = req.includeUsage ? { usage: null } : {};
    const chunk = (choices: unknown[], extra: Record<string, unknown> = usageField): string =>
      sseData({ id: `chatcmpl-${id}`, object: 'chat.completion.chunk', created, model: req.model, system_fingerprint: 'fp_keel_fake', choices, ...extra });
    const delta = (index: number, d: Record<string, unknown>, finish: string | null = null) => [{ index, delta: d, logprobs: null, finish_reason: finish }];
    const events: StreamEvent[] = [];
    answer.choices.forEach((choice, index) => {
      events.push({ sse: chunk(delta(index, { role: 'assistant', content: '', refusal: null })), content: false });
      if (choice.toolCall) {
        const header = { index: 0, id: `call_${id}_${index}`, type: 'function', function: { name: choice.toolCall.name, arguments: '' } };
        events.push({ sse: chunk(delta(index, { tool_calls: [header] })), content: true });
        for (const piece of pieces(JSON.stringify(choice.toolCall.args))) {
          events.push({ sse: chunk(delta(index, { tool_calls: [{ index: 0, function: { arguments: piece } }] })), content: true });
        }
      } else {
        for (const piece of pieces(choice.text)) events.push({ sse: chunk(delta(index, { content: piece })), content: true });
      }
      events.push({ sse: chunk(delta(index, {}, FINISH[choice.finish])), content: false });
    });
    if (req.includeUsage) {
      const usage = { prompt_tokens: answer.promptTokens, completion_tokens: answer.completionTokens, total_tokens: answer.promptTokens + answer.completionTokens };
      events.push({ sse: chunk([], { usage }), content: false });
    }
    events.push({ sse: sseData('[DONE]'), content: false });
    return events;
  },

  // What OpenAI sends when generation fails mid-stream: an error object in a data event.
  streamError(spec) {
    return sseData(this.error(spec));
  },

  models(ids) {
    return { object: 'list', data: ids.map((id) => ({ id, object: 'model', created: 0, owned_by: 'keel-fake' })) };
  },
};

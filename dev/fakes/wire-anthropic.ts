// Anthropic Messages wire format, as the `@anthropic-ai/sdk` SDK sends and parses it.

import { z } from 'zod';
import { bearerToken, describeIssues, findLast, sseData, type NeutralRequest, type StreamEvent, type WireFormat } from './wire.js';

const bodySchema = z.looseObject({
  model: z.string().min(1),
  // Required by the real API too: clients that forget it must see the 400 here, not in production.
  max_tokens: z.number().int().min(1),
  messages: z.array(z.looseObject({ role: z.enum(['user', 'assistant']), content: z.unknown() })).min(1),
  system: z.unknown().optional(),
  stop_sequences: z.array(z.string()).nullish(),
  tools: z.array(z.looseObject({ name: z.string(), type: z.string().nullish() })).nullish(),
  tool_choice: z.looseObject({ type: z.string(), name: z.string().optional() }).nullish(),
  stream: z.boolean().nullish(),
});

type Block = { type?: unknown; text?: unknown; content?: unknown };

function blocks(content: unknown): Block[] {
  if (typeof content === 'string') return [{ type: 'text', text: content }];
  return Array.isArray(content) ? content.filter((b): b is Block => !!b && typeof b === 'object') : [];
}

function blockText(list: Block[], type: 'text' | 'tool_result'): string {
  return list
    .filter((b) => b.type === type)
    .map((b) => (type === 'text' ? (typeof b.text === 'string' ? b.text : '') : blockText(blocks(b.content), 'text')))
    .filter((t) => t !== '')
    .join('\n');
}

function allText(content: unknown): string {
  const list = blocks(content);
  return [blockText(list, 'text'), blockText(list, 'tool_result')].join('');
}

function toolChoice(choice: { type: string; name?: string } | null | undefined): NeutralRequest['toolChoice'] {
  if (choice?.type === 'none') return { mode: 'none' };
  if (choice?.type === 'any') return { mode: 'forced' };
  if (choice?.type === 'tool') return { mode: 'forced', ...(choice.name ? { name: choice.name } : {}) };
  return { mode: 'auto' };
}

const ERROR_TYPES: Record<number, string> = {
  400: 'invalid_request_error',
  401: 'authentication_error',
  402: 'billing_error',
  403: 'permission_error',
  404: 'not_found_error',
  413: 'request_too_large',
  429: 'rate_limit_error',
  504: 'timeout_error',
  529: 'overloaded_error',
};

const STOP_REASON = { stop: 'end_turn', stop_sequence: 'stop_sequence', length: 'max_tokens', tool: 'tool_use' } as const;

export const anthropicWire: WireFormat = {
  type: 'anthropic',
  basePath: '',
  requestIdHeader: 'request-id',

  route(method, url) {
    if (method === 'POST' && url.pathname === '/v1/messages') return { op: 'generate' };
    if (method === 'GET' && url.pathname === '/v1/models') return { op: 'models' };
    return undefined;
  },

  // The SDK sends its apiKey as `Authorization: Bearer` (1.x); the documented header is x-api-key.
  apiKey: (headers) => {
    const key = headers['x-api-key'];
    return (Array.isArray(key) ? key[0] : key) ?? bearerToken(headers);
  },

  parse(raw) {
    const parsed = bodySchema.safeParse(raw);
    if (!parsed.success) return describeIssues(parsed.error);
    const body = parsed.data;
    const lastUser = findLast(body.messages, (m) => m.role === 'user');
    const lastUserBlocks = blocks(lastUser?.content);
    const last = body.messages[body.messages.length - 1];
    // A last assistant turn is a prefill: the answer goes on from it.
    const prior = last.role === 'assistant' ? last : last.role === 'user' && body.messages.at(-2)?.role === 'assistant' ? body.messages.at(-2) : undefined;
    const priorText = prior ? blockText(blocks(prior.content), 'text') : '';
    const systemChars = typeof body.system === 'string' ? body.system.length : blockText(blocks(body.system), 'text').length;
    return {
      model: body.model,
      lastUserText: blockText(lastUserBlocks, 'text') || blockText(lastUserBlocks, 'tool_result'),
      endsWithUser: last.role === 'user' && !blocks(last.content).some((b) => b.type === 'tool_result'),
      promptChars: systemChars + body.messages.reduce((sum, m) => sum + allText(m.content).length, 0),
      // Server tools (web search and the like) carry a versioned `type`; only client tools can be called.
      tools: (body.tools ?? []).filter((t) => t.type == null || t.type === 'custom').map((t) => t.name),
      toolChoice: toolChoice(body.tool_choice),
      maxTokens: body.max_tokens,
      stop: body.stop_sequences ?? [],
      n: 1,
      stream: body.stream === true,
      ...(priorText ? { priorAssistantText: priorText } : {}),
    };
  },

  answer(req, answer, id) {
    const choice = answer.choices[0];
    return {
      id: `msg_${id}`,
      type: 'message',
      role: 'assistant',
      model: req.model,
      content: choice.toolCall
        ? [{ type: 'tool_use', id: `toolu_${id}`, name: choice.toolCall.name, input: choice.toolCall.args }]
        : [{ type: 'text', text: choice.text }],
      stop_reason: STOP_REASON[choice.finish],
      stop_sequence: choice.stopSequence ?? null,
      usage: {
        input_tokens: answer.promptTokens,
        output_tokens: answer.completionTokens,
        cache_creation_input_tokens: 0,
        cache_read_input_tokens: 0,
      },
    };
  },

  error({ status, message, code }) {
    return { type: 'error', error: { type: code ?? ERROR_TYPES[status] ?? (status >= 500 ? 'api_error' : 'invalid_request_error'), message } };
  },

  // Messages streaming: message_start, one content block (text or tool_use) with its deltas,
  // message_delta with the stop reason and output tokens, message_stop; a ping as the real API sends.
  stream(req, answer, id, pieces) {
    const choice = answer.choices[0];
    const ev = (type: string, data: Record<string, unknown>, content = false): StreamEvent => ({ sse: sseData({ type, ...data }, type), content });
    const events: StreamEvent[] = [
      ev('message_start', {
        message: {
          id: `msg_${id}`,
          type: 'message',
          role: 'assistant',
          model: req.model,
          content: [],
          stop_reason: null,
          stop_sequence: null,
          usage: { input_tokens: answer.promptTokens, output_tokens: 1, cache_creation_input_tokens: 0, cache_read_input_tokens: 0 },
        },
      }),
    ];
    if (choice.toolCall) {
      events.push(ev('content_block_start', { index: 0, content_block: { type: 'tool_use', id: `toolu_${id}`, name: choice.toolCall.name, input: {} } }, true));
      events.push(ev('ping', {}));
      for (const piece of pieces(JSON.stringify(choice.toolCall.args))) {
        events.push(ev('content_block_delta', { index: 0, delta: { type: 'input_json_delta', partial_json: piece } }, true));
      }
    } else {
      events.push(ev('content_block_start', { index: 0, content_block: { type: 'text', text: '' } }));
      events.push(ev('ping', {}));
      for (const piece of pieces(choice.text)) events.push(ev('content_block_delta', { index: 0, delta: { type: 'text_delta', text: piece } }, true));
    }
    events.push(ev('content_block_stop', { index: 0 }));
    events.push(ev('message_delta', { delta: { stop_reason: STOP_REASON[choice.finish], stop_sequence: choice.stopSequence ?? null }, usage: { output_tokens: answer.completionTokens } }));
    events.push(ev('message_stop', {}));
    return events;
  },

  // Anthropic reports a failure after the stream began as an `error` event (e.g. overloaded_error).
  streamError(spec) {
    return sseData(this.error(spec), 'error');
  },

  models(ids) {
    return {
      data: ids.map((id) => ({ type: 'model', id, display_name: id, created_at: '1970-01-01T00:00:00Z' })),
      has_more: false,
      first_id: ids[0] ?? null,
      last_id: ids.at(-1) ?? null,
    };
  },
};

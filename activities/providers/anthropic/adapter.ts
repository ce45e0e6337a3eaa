// Anthropic Messages API <-> OpenAI chat completions.
import { ANTHROPIC_IMAGE_TYPES, FEATURES } from '../../../src/core/capabilities.js';
import { isRecord } from '../../../src/core/guards.js';
import Anthropic from '@anthropic-ai/sdk';
import type {
  ContentBlockParam,
  ImageBlockParam,
  Message,
  RawMessageStreamEvent,
  MessageCreateParamsNonStreaming,
  MessageParam,
  Tool,
  ToolChoice,
} from '@anthropic-ai/sdk/resources/messages';
import type {
  ChatCompletionAssistantMessageParam,
  ChatCompletionContentPart,
  ChatCompletionMessageToolCall,
} from 'openai/resources/chat/completions';
import {
  badResponse,
  contentText,
  jsonInstruction,
  makeCompletion,
  makeUsage,
  maxOutputTokens,
  noTimeoutDispatcher,
  NO_TIMEOUT_MS,
  parseDataUrl,
  parseFileData,
  parseToolArguments,
  stopSequences,
  translating,
  unsupported,
  unwrapJsonFence,
} from '../common.js';
import type { AdapterStreamEvent, ChatCompletion, ChatRequest, ProviderAdapter } from '../types.js';

/** Anthropic requires max_tokens; OpenAI's default is "as much as fits", this is a safe middle. */
export const ANTHROPIC_DEFAULT_MAX_TOKENS = 4096;

type ImageType = (typeof ANTHROPIC_IMAGE_TYPES)[number];

/**
 * The SDK (1.12) no longer types temperature/top_p: Anthropic deprecated them and its newest
 * models reject them, while older models and Anthropic-compatible servers still honour them.
 * They are sent when the client sets them; a rejection is classified as an unsupported
 * feature (fall back), see classify-error.ts.
 */
export type AnthropicRequest = MessageCreateParamsNonStreaming & { temperature?: number; top_p?: number };

export function toAnthropicRequest(req: ChatRequest, upstreamModel: string): AnthropicRequest {
  // One Messages call yields one answer; see unsupported() for why this falls back rather than fails.
  if ((req.n ?? 1) > 1) throw unsupported('anthropic', 'n > 1');
  if (req.functions?.length) throw unsupported('anthropic', 'legacy `functions`');

  const system: string[] = [];
  const messages: MessageParam[] = [];
  // Anthropic wants user/assistant alternation; consecutive same-role turns (notably several
  // tool results, or tool results followed by a user message) become one turn.
  const push = (role: 'user' | 'assistant', blocks: ContentBlockParam[]): void => {
    if (blocks.length === 0) return;
    const last = messages.at(-1);
    if (last && last.role === role && Array.isArray(last.content)) last.content.push(...blocks);
    else messages.push({ role, content: blocks });
  };

  for (const m of req.messages) {
    switch (m.role) {
      case 'system':
      case 'developer': {
        const text = contentText(m.content);
        if (text) system.push(text);
        break;
      }
      case 'user':
        push('user', userBlocks(m.content));
        break;
      case 'assistant':
        push('assistant', assistantBlocks(m));
        break;
      case 'tool': {
        const text = contentText(m.content);
        push('user', [{ type: 'tool_result', tool_use_id: m.tool_call_id, ...(text && { content: text }) }]);
        break;
      }
      case 'function':
        throw unsupported('anthropic', 'legacy `function` role messages');
    }
  }

  // Messages has no JSON mode that fits every model and every schema (native structured outputs
  // need a recent model and a restricted schema dialect), so the format goes into the system
  // prompt as an instruction; fromAnthropicResponse strips any code fence the model adds anyway.
  const json = jsonInstruction(req.response_format);
  if (json) system.push(json);

  const body: AnthropicRequest = {
    model: upstreamModel,
    messages,
    max_tokens: maxOutputTokens(req) ?? ANTHROPIC_DEFAULT_MAX_TOKENS,
  };
  if (system.length) body.system = system.join('\n\n');
  // OpenAI allows 0..2, Anthropic 0..1.
  if (req.temperature != null) body.temperature = Math.min(1, Math.max(0, req.temperature));
  // top_p = 1 is OpenAI's default and a no-op; recent Claude models refuse temperature and top_p together.
  if (req.top_p != null && !(req.top_p >= 1 && req.temperature != null)) body.top_p = req.top_p;
  const stop = stopSequences(req.stop);
  if (stop) body.stop_sequences = stop;
  if (req.user) body.metadata = { user_id: req.user };
  Object.assign(body, toolsAndChoice(req));
  return body;
}

/** The body sent on the wire (pure): see RequestTranslator. */
export function anthropicRequestBody(req: ChatRequest, upstreamModel: string): AnthropicRequest {
  return translating('anthropic', req, () => {
    const body = toAnthropicRequest(req, upstreamModel);
    if (!body.messages.length) throw unsupported('anthropic', FEATURES.no_turn);
    return body;
  });
}

function userBlocks(content: string | ChatCompletionContentPart[]): ContentBlockParam[] {
  if (typeof content === 'string') return content ? [{ type: 'text', text: content }] : [];
  return content.flatMap((part): ContentBlockParam[] => {
    switch (part.type) {
      case 'text':
        return part.text ? [{ type: 'text', text: part.text }] : [];
      case 'image_url':
        return [imageBlock(part.image_url.url)];
      case 'file': {
        if (!part.file.file_data) throw unsupported('anthropic', 'file parts without file_data');
        const file = parseFileData(part.file.file_data, part.file.filename);
        if (file.mediaType !== 'application/pdf') throw unsupported('anthropic', `file type ${file.mediaType}`);
        return [{ type: 'document', source: { type: 'base64', media_type: 'application/pdf', data: file.data } }];
      }
      default:
        throw unsupported('anthropic', `${part.type} content parts`);
    }
  });
}

function imageBlock(url: string): ImageBlockParam {
  const data = parseDataUrl(url);
  if (!data) return { type: 'image', source: { type: 'url', url } };
  if (!(ANTHROPIC_IMAGE_TYPES as readonly string[]).includes(data.mediaType)) {
    throw unsupported('anthropic', `image type ${data.mediaType}`);
  }
  return { type: 'image', source: { type: 'base64', media_type: data.mediaType as ImageType, data: data.data } };
}

function assistantBlocks(m: ChatCompletionAssistantMessageParam): ContentBlockParam[] {
  const blocks: ContentBlockParam[] = [];
  const text = contentText(m.content);
  if (text) blocks.push({ type: 'text', text });
  for (const call of m.tool_calls ?? []) {
    if (call.type !== 'function') throw unsupported('anthropic', 'custom tool calls');
    blocks.push({ type: 'tool_use', id: call.id, name: call.function.name, input: parseToolArguments(call.function.arguments) });
  }
  return blocks;
}

function toolsAndChoice(req: ChatRequest): Pick<MessageCreateParamsNonStreaming, 'tools' | 'tool_choice'> {
  if (!req.tools?.length) return {};
  let tools: Tool[] = req.tools.map((t) => {
    if (t.type !== 'function') throw unsupported('anthropic', 'custom tools');
    const params = t.function.parameters ?? {};
    return {
      name: t.function.name,
      ...(t.function.description && { description: t.function.description }),
      input_schema: { ...params, type: 'object' } as Tool.InputSchema,
    };
  });

  const noParallel = req.parallel_tool_calls === false ? { disable_parallel_tool_use: true } : {};
  let choice: ToolChoice | undefined;
  const tc = req.tool_choice;
  if (tc === 'none') choice = { type: 'none' };
  else if (tc === 'required') choice = { type: 'any', ...noParallel };
  else if (tc === 'auto' || tc === undefined) choice = req.parallel_tool_calls === false ? { type: 'auto', ...noParallel } : undefined;
  else if (tc.type === 'function') choice = { type: 'tool', name: tc.function.name, ...noParallel };
  else if (tc.type === 'allowed_tools') {
    // No allow-list in Messages: send only the allowed tools instead.
    const allowed = new Set(tc.allowed_tools.tools.map(toolName).filter((n): n is string => !!n));
    tools = tools.filter((t) => allowed.has(t.name));
    choice = { type: tc.allowed_tools.mode === 'required' ? 'any' : 'auto', ...noParallel };
  } else throw unsupported('anthropic', 'custom tool_choice');
  return { tools, ...(choice && { tool_choice: choice }) };
}

function toolName(entry: Record<string, unknown>): string | undefined {
  const fn = entry.function;
  return isRecord(fn) && typeof fn.name === 'string' ? fn.name : undefined;
}

const FINISH: Record<string, ChatCompletion.Choice['finish_reason']> = {
  end_turn: 'stop',
  stop_sequence: 'stop',
  pause_turn: 'stop',
  max_tokens: 'length',
  model_context_window_exceeded: 'length',
  tool_use: 'tool_calls',
  refusal: 'content_filter',
};

export function fromAnthropicResponse(
  answer: Message,
  upstreamModel: string,
  opts: { jsonMode?: boolean } = {},
): ChatCompletion {
  if (!isRecord(answer) || !Array.isArray(answer.content)) throw badResponse('anthropic', 'has no content array');
  const texts: string[] = [];
  const toolCalls: ChatCompletionMessageToolCall[] = [];
  for (const block of answer.content) {
    if (block.type === 'text') texts.push(block.text);
    else if (block.type === 'tool_use') {
      toolCalls.push({ id: block.id, type: 'function', function: { name: block.name, arguments: JSON.stringify(block.input ?? {}) } });
    }
    // thinking / server-tool blocks have no place in a chat completion.
  }
  let text = texts.length ? texts.join('') : null;
  if (text !== null && opts.jsonMode) text = unwrapJsonFence(text);

  const u = answer.usage;
  // input_tokens excludes cache reads and writes; OpenAI's prompt_tokens counts everything sent.
  const cached = u?.cache_read_input_tokens ?? 0;
  const prompt = (u?.input_tokens ?? 0) + cached + (u?.cache_creation_input_tokens ?? 0);
  const usage = makeUsage(prompt, u?.output_tokens ?? 0, cached ? { prompt_tokens_details: { cached_tokens: cached } } : {});

  return makeCompletion(
    upstreamModel,
    [
      {
        index: 0,
        finish_reason: FINISH[answer.stop_reason ?? 'end_turn'] ?? 'stop',
        logprobs: null,
        message: {
          role: 'assistant',
          content: text,
          refusal: null,
          ...(toolCalls.length && { tool_calls: toolCalls }),
        },
      },
    ],
    usage,
    answer.id || undefined,
  );
}

export function createAnthropicAdapter(opts: { baseURL: string; apiKey?: string }): ProviderAdapter {
  const client = new Anthropic({
    // The SDK appends /v1/messages itself.
    baseURL: opts.baseURL.replace(/\/+$/, '').replace(/\/v1$/, ''),
    // A key given here is the only credential the SDK uses: ANTHROPIC_AUTH_TOKEN etc. stay unread.
    apiKey: opts.apiKey ?? 'unused',
    maxRetries: 0,
    // Also stops the SDK refusing large max_tokens non-streaming calls ("streaming is required").
    timeout: NO_TIMEOUT_MS,
    fetchOptions: { dispatcher: noTimeoutDispatcher } as Anthropic['fetchOptions'],
  });
  return {
    async complete(request, upstreamModel, signal) {
      const body = anthropicRequestBody(request, upstreamModel);
      const answer = await client.messages.create(body, { signal });
      const jsonMode = request.response_format?.type === 'json_object' || request.response_format?.type === 'json_schema';
      return fromAnthropicResponse(answer, upstreamModel, { jsonMode });
    },
    async *stream(request, upstreamModel, signal) {
      const body = anthropicRequestBody(request, upstreamModel);
      const events = await client.messages.create({ ...body, stream: true }, { signal });
      yield* fromAnthropicEvents(events);
    },
  };
}

/**
 * Messages stream events as adapter events: text deltas, tool_use blocks (numbered from 0) and their
 * input_json deltas; thinking blocks are left out, as in a complete answer. A JSON answer's code
 * fence is not removed here: the client has the text as it came.
 */
export async function* fromAnthropicEvents(events: AsyncIterable<RawMessageStreamEvent>): AsyncGenerator<AdapterStreamEvent> {
  const tools = new Map<number, { index: number; args: boolean }>();
  let promptTokens = 0;
  let cached = 0;
  let outputTokens = 0;
  for await (const ev of events) {
    switch (ev.type) {
      case 'message_start': {
        yield { type: 'start', ...(ev.message.id && { id: ev.message.id }) };
        const u = ev.message.usage;
        cached = u?.cache_read_input_tokens ?? 0;
        promptTokens = (u?.input_tokens ?? 0) + cached + (u?.cache_creation_input_tokens ?? 0);
        outputTokens = u?.output_tokens ?? 0;
        break;
      }
      case 'content_block_start': {
        const block = ev.content_block;
        if (block.type === 'text' && block.text) yield { type: 'piece', piece: { choice: 0, kind: 'text', text: block.text } };
        if (block.type === 'tool_use') {
          const index = tools.size;
          tools.set(ev.index, { index, args: false });
          yield { type: 'piece', piece: { choice: 0, kind: 'tool', index, id: block.id, name: block.name, text: '' } };
        }
        break;
      }
      case 'content_block_delta': {
        const d = ev.delta;
        if (d.type === 'text_delta' && d.text) yield { type: 'piece', piece: { choice: 0, kind: 'text', text: d.text } };
        const tool = tools.get(ev.index);
        if (d.type === 'input_json_delta' && tool && d.partial_json) {
          tool.args = true;
          yield { type: 'piece', piece: { choice: 0, kind: 'tool', index: tool.index, text: d.partial_json } };
        }
        break;
      }
      case 'content_block_stop': {
        // A tool called without input streams none; a complete answer shows it as {}.
        const tool = tools.get(ev.index);
        if (tool && !tool.args) yield { type: 'piece', piece: { choice: 0, kind: 'tool', index: tool.index, text: '{}' } };
        break;
      }
      case 'message_delta':
        if (ev.delta.stop_reason) yield { type: 'finish', choice: 0, reason: FINISH[ev.delta.stop_reason] ?? 'stop' };
        outputTokens = ev.usage?.output_tokens ?? outputTokens;
        break;
      case 'message_stop':
        yield { type: 'usage', usage: makeUsage(promptTokens, outputTokens, cached ? { prompt_tokens_details: { cached_tokens: cached } } : {}) };
        break;
    }
  }
}

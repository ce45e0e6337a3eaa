// Gemini generateContent (via @google/genai) <-> OpenAI chat completions.
import { FEATURES } from '../../../src/core/capabilities.js';
import { isRecord } from '../../../src/core/guards.js';
import {
  FinishReason,
  FunctionCallingConfigMode,
  GoogleGenAI,
  type Content,
  type FunctionDeclaration,
  type GenerateContentConfig,
  type GenerateContentParameters,
  type GenerateContentResponse,
  type Part,
  type ToolConfig,
} from '@google/genai';
import type {
  ChatCompletionAssistantMessageParam,
  ChatCompletionContentPart,
  ChatCompletionMessageToolCall,
} from 'openai/resources/chat/completions';
import {
  contentText,
  guessMediaType,
  invalidRequest,
  makeCompletion,
  makeUsage,
  maxOutputTokens,
  newToolCallId,
  parseDataUrl,
  parseFileData,
  parseToolArguments,
  stopSequences,
  translating,
  unsupported,
} from '../common.js';
import { ProviderCallError, type AdapterStreamEvent, type ChatCompletion, type ChatRequest, type ProviderAdapter } from '../types.js';

/**
 * Gemini 3 rejects a replayed functionCall part without the thought signature it was issued
 * with, and an OpenAI-shaped history cannot carry one (tool-call ids are capped at 40 chars).
 * Google documents this value for histories that come from elsewhere: it skips the check.
 */
export const SKIP_THOUGHT_SIGNATURE = 'skip_thought_signature_validator';

export function toGeminiRequest(req: ChatRequest, upstreamModel: string): GenerateContentParameters {
  if (req.functions?.length) throw unsupported('gemini', 'legacy `functions`');
  const system: string[] = [];
  const contents: Content[] = [];
  // functionResponse parts are matched by name, which OpenAI tool messages do not carry.
  const toolNames = new Map<string, string>();
  const push = (role: 'user' | 'model', parts: Part[]): void => {
    if (parts.length === 0) return;
    const last = contents.at(-1);
    // Parallel tool results must arrive as one turn; merging keeps roles alternating too.
    if (last && last.role === role) last.parts!.push(...parts);
    else contents.push({ role, parts });
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
        push('user', userParts(m.content));
        break;
      case 'assistant':
        push('model', modelParts(m, toolNames));
        break;
      case 'tool': {
        const name = toolNames.get(m.tool_call_id);
        if (!name) throw invalidRequest(`tool message refers to unknown tool_call_id "${m.tool_call_id}"`);
        push('user', [{ functionResponse: { name, response: toolResponse(contentText(m.content)) } }]);
        break;
      }
      case 'function':
        push('user', [{ functionResponse: { name: m.name, response: toolResponse(m.content ?? '') } }]);
        break;
    }
  }

  const config: GenerateContentConfig = {
    // Plain function declarations only, so the SDK would not call anything itself; made explicit.
    automaticFunctionCalling: { disable: true },
  };
  if (system.length) config.systemInstruction = { parts: [{ text: system.join('\n\n') }] };
  if (req.temperature != null) config.temperature = req.temperature;
  if (req.top_p != null) config.topP = req.top_p;
  const maxTokens = maxOutputTokens(req);
  if (maxTokens != null) config.maxOutputTokens = maxTokens;
  const stop = stopSequences(req.stop);
  if (stop) config.stopSequences = stop;
  if (req.n != null && req.n > 1) config.candidateCount = req.n;
  if (req.presence_penalty != null) config.presencePenalty = req.presence_penalty;
  if (req.frequency_penalty != null) config.frequencyPenalty = req.frequency_penalty;
  if (req.seed != null) config.seed = req.seed;
  const format = req.response_format;
  if (format?.type === 'json_object' || format?.type === 'json_schema') config.responseMimeType = 'application/json';
  // responseJsonSchema takes standard JSON Schema; responseSchema wants Gemini's OpenAPI subset.
  if (format?.type === 'json_schema' && format.json_schema.schema) config.responseJsonSchema = format.json_schema.schema;
  Object.assign(config, toolsAndConfig(req));

  return { model: upstreamModel, contents, config };
}

/** The body sent on the wire (pure): see RequestTranslator. */
export function geminiRequestBody(req: ChatRequest, upstreamModel: string): GenerateContentParameters {
  return translating('gemini', req, () => {
    const params = toGeminiRequest(req, upstreamModel);
    if (!(params.contents as Content[]).length) throw unsupported('gemini', FEATURES.no_turn);
    return params;
  });
}

function userParts(content: string | ChatCompletionContentPart[]): Part[] {
  if (typeof content === 'string') return content ? [{ text: content }] : [];
  return content.flatMap((part): Part[] => {
    switch (part.type) {
      case 'text':
        return part.text ? [{ text: part.text }] : [];
      case 'image_url': {
        const url = part.image_url.url;
        const data = parseDataUrl(url);
        if (data) return [{ inlineData: { mimeType: data.mediaType, data: data.data } }];
        return [{ fileData: { fileUri: url, mimeType: guessMediaType(url) ?? 'image/jpeg' } }];
      }
      case 'input_audio':
        return [{ inlineData: { mimeType: part.input_audio.format === 'mp3' ? 'audio/mpeg' : 'audio/wav', data: part.input_audio.data } }];
      case 'file': {
        if (!part.file.file_data) throw unsupported('gemini', 'file parts without file_data');
        const file = parseFileData(part.file.file_data, part.file.filename);
        return [{ inlineData: { mimeType: file.mediaType, data: file.data } }];
      }
      default:
        throw unsupported('gemini', `${(part as { type: string }).type} content parts`);
    }
  });
}

function modelParts(m: ChatCompletionAssistantMessageParam, toolNames: Map<string, string>): Part[] {
  const parts: Part[] = [];
  const text = contentText(m.content);
  if (text) parts.push({ text });
  for (const [i, call] of (m.tool_calls ?? []).entries()) {
    if (call.type !== 'function') throw unsupported('gemini', 'custom tool calls');
    toolNames.set(call.id, call.function.name);
    parts.push({
      functionCall: { name: call.function.name, args: parseToolArguments(call.function.arguments) },
      // Only the first call of a turn carries a signature.
      ...(i === 0 && { thoughtSignature: SKIP_THOUGHT_SIGNATURE }),
    });
  }
  return parts;
}

/** functionResponse.response must be an object: JSON objects pass as they are, anything else is wrapped. */
function toolResponse(text: string): Record<string, unknown> {
  try {
    const value: unknown = JSON.parse(text);
    if (isRecord(value)) return value;
    return { result: value };
  } catch {
    return { result: text };
  }
}

function toolsAndConfig(req: ChatRequest): Pick<GenerateContentConfig, 'tools' | 'toolConfig'> {
  if (!req.tools?.length) return {};
  let declarations: FunctionDeclaration[] = req.tools.map((t) => {
    if (t.type !== 'function') throw unsupported('gemini', 'custom tools');
    return {
      name: t.function.name,
      ...(t.function.description && { description: t.function.description }),
      // OpenAI parameters are JSON Schema, which `parameters` (an OpenAPI subset) may reject.
      ...(t.function.parameters && { parametersJsonSchema: t.function.parameters }),
    };
  });

  let toolConfig: ToolConfig | undefined;
  const tc = req.tool_choice;
  const mode = (m: FunctionCallingConfigMode, allowedFunctionNames?: string[]): ToolConfig => ({
    functionCallingConfig: { mode: m, ...(allowedFunctionNames && { allowedFunctionNames }) },
  });
  if (tc === 'auto') toolConfig = mode(FunctionCallingConfigMode.AUTO);
  else if (tc === 'none') toolConfig = mode(FunctionCallingConfigMode.NONE);
  else if (tc === 'required') toolConfig = mode(FunctionCallingConfigMode.ANY);
  else if (tc === undefined) toolConfig = undefined;
  else if (tc.type === 'function') toolConfig = mode(FunctionCallingConfigMode.ANY, [tc.function.name]);
  else if (tc.type === 'allowed_tools') {
    const allowed = tc.allowed_tools.tools
      .map((t) => (isRecord(t.function) && typeof t.function.name === 'string' ? t.function.name : undefined))
      .filter((n): n is string => !!n);
    if (tc.allowed_tools.mode === 'required') toolConfig = mode(FunctionCallingConfigMode.ANY, allowed);
    else {
      // allowedFunctionNames only works with ANY, so AUTO gets the restricted list instead.
      declarations = declarations.filter((d) => d.name && allowed.includes(d.name));
      toolConfig = mode(FunctionCallingConfigMode.AUTO);
    }
  } else throw unsupported('gemini', 'custom tool_choice');

  return { tools: [{ functionDeclarations: declarations }], ...(toolConfig && { toolConfig }) };
}

export type GeminiAnswer = Pick<GenerateContentResponse, 'candidates' | 'promptFeedback' | 'usageMetadata' | 'responseId' | 'modelVersion'>;

const FILTERED = new Set<string>([
  FinishReason.SAFETY,
  FinishReason.RECITATION,
  FinishReason.BLOCKLIST,
  FinishReason.PROHIBITED_CONTENT,
  FinishReason.SPII,
  FinishReason.IMAGE_SAFETY,
  FinishReason.IMAGE_PROHIBITED_CONTENT,
  FinishReason.IMAGE_RECITATION,
]);

function finishReason(reason: string | undefined, hasToolCalls: boolean): ChatCompletion.Choice['finish_reason'] {
  if (reason === FinishReason.MAX_TOKENS) return 'length';
  if (reason && FILTERED.has(reason)) return 'content_filter';
  // Gemini reports STOP when it calls functions; OpenAI clients look for tool_calls.
  return hasToolCalls ? 'tool_calls' : 'stop';
}

function refuseBlocked(answer: GeminiAnswer): void {
  const block = answer.promptFeedback?.blockReason;
  if (block) {
    const detail = answer.promptFeedback?.blockReasonMessage;
    throw new ProviderCallError('content_filtered', `gemini blocked the prompt (${block})${detail ? `: ${detail}` : ''}`, undefined, block);
  }
}

function geminiUsage(u: GeminiAnswer['usageMetadata']): ChatCompletion['usage'] & object {
  const prompt = (u?.promptTokenCount ?? 0) + (u?.toolUsePromptTokenCount ?? 0);
  const thoughts = u?.thoughtsTokenCount ?? 0;
  // Thinking tokens are billed as output, which is what OpenAI's reasoning_tokens report too.
  return makeUsage(prompt, (u?.candidatesTokenCount ?? 0) + thoughts, {
    ...(thoughts && { completion_tokens_details: { reasoning_tokens: thoughts } }),
    ...(u?.cachedContentTokenCount && { prompt_tokens_details: { cached_tokens: u.cachedContentTokenCount } }),
  });
}

/**
 * streamGenerateContent's answers as adapter events: each candidate's text as it comes, function
 * calls whole (Gemini does not stream their arguments), finish reasons, the last usage seen.
 */
export async function* fromGeminiStream(answers: AsyncIterable<GeminiAnswer>): AsyncGenerator<AdapterStreamEvent> {
  let started = false;
  let usage: GeminiAnswer['usageMetadata'];
  let candidates = 0;
  const toolsOf = new Map<number, number>();
  for await (const answer of answers) {
    if (!isRecord(answer)) throw new ProviderCallError('bad_response', 'gemini stream chunk is not a JSON object');
    if (!started) {
      started = true;
      yield { type: 'start', ...(answer.responseId && { id: answer.responseId }) };
    }
    refuseBlocked(answer);
    candidates += answer.candidates?.length ?? 0;
    for (const [i, c] of (answer.candidates ?? []).entries()) {
      const choice = c.index ?? i;
      for (const part of c.content?.parts ?? []) {
        if (part.thought) continue;
        if (typeof part.text === 'string' && part.text) yield { type: 'piece', piece: { choice, kind: 'text', text: part.text } };
        if (part.functionCall) {
          const index = toolsOf.get(choice) ?? 0;
          toolsOf.set(choice, index + 1);
          yield {
            type: 'piece',
            piece: { choice, kind: 'tool', index, id: part.functionCall.id || newToolCallId(), name: part.functionCall.name ?? '', text: JSON.stringify(part.functionCall.args ?? {}) },
          };
        }
      }
      if (c.finishReason) yield { type: 'finish', choice, reason: finishReason(c.finishReason, (toolsOf.get(choice) ?? 0) > 0) };
    }
    if (answer.usageMetadata) usage = answer.usageMetadata;
  }
  if (candidates === 0) throw new ProviderCallError('content_filtered', 'gemini returned no candidates', undefined, 'NO_CANDIDATES');
  yield { type: 'usage', usage: geminiUsage(usage) };
}

export function fromGeminiResponse(answer: GeminiAnswer, upstreamModel: string): ChatCompletion {
  if (!isRecord(answer)) throw new ProviderCallError('bad_response', 'gemini answer is not a JSON object');
  refuseBlocked(answer);
  const candidates = answer.candidates ?? [];
  if (candidates.length === 0) throw new ProviderCallError('content_filtered', 'gemini returned no candidates', undefined, 'NO_CANDIDATES');

  const choices = candidates.map((c, i): ChatCompletion.Choice => {
    const texts: string[] = [];
    const toolCalls: ChatCompletionMessageToolCall[] = [];
    for (const part of c.content?.parts ?? []) {
      if (part.thought) continue; // thought summaries are not part of the answer
      if (typeof part.text === 'string') texts.push(part.text);
      if (part.functionCall) {
        toolCalls.push({
          id: part.functionCall.id || newToolCallId(),
          type: 'function',
          function: { name: part.functionCall.name ?? '', arguments: JSON.stringify(part.functionCall.args ?? {}) },
        });
      }
    }
    return {
      index: c.index ?? i,
      finish_reason: finishReason(c.finishReason, toolCalls.length > 0),
      logprobs: null,
      message: {
        role: 'assistant',
        content: texts.length ? texts.join('') : null,
        refusal: null,
        ...(toolCalls.length && { tool_calls: toolCalls }),
      },
    };
  });

  return makeCompletion(upstreamModel, choices, geminiUsage(answer.usageMetadata), answer.responseId || undefined);
}

/** A base URL may carry the API version (".../v1beta"); the SDK wants them apart. */
export function splitGeminiBaseURL(baseURL: string): { baseUrl: string; apiVersion?: string } {
  const trimmed = baseURL.replace(/\/+$/, '');
  const m = /^(.*)\/(v\d+(?:alpha|beta)?\d*)$/.exec(trimmed);
  return m ? { baseUrl: m[1], apiVersion: m[2] } : { baseUrl: trimmed };
}

export function createGeminiAdapter(opts: { baseURL: string; apiKey?: string }): ProviderAdapter {
  const client = new GoogleGenAI({
    apiKey: opts.apiKey ?? 'unused',
    // Explicit, so GOOGLE_GENAI_USE_VERTEXAI in the environment cannot switch the API.
    vertexai: false,
    // No retryOptions: @google/genai retries (p-retry, 5 attempts on 408/429/5xx) only when
    // retryOptions is set, so leaving it out means one attempt. No timeout: without one the SDK
    // sets none and uses an undici dispatcher without header/body timeouts.
    httpOptions: splitGeminiBaseURL(opts.baseURL),
  });
  return {
    async complete(request, upstreamModel, signal) {
      const params = geminiRequestBody(request, upstreamModel);
      const answer = await client.models.generateContent({ ...params, config: { ...params.config, abortSignal: signal } });
      return fromGeminiResponse(answer, upstreamModel);
    },
    async *stream(request, upstreamModel, signal) {
      const params = geminiRequestBody(request, upstreamModel);
      const answers = await client.models.generateContentStream({ ...params, config: { ...params.config, abortSignal: signal } });
      yield* fromGeminiStream(answers);
    },
  };
}

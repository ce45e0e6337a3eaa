// Provider adapters: pure request/answer translation, and error classification on the errors the
// real SDKs throw (produced by pointing them at a local HTTP server that answers like the provider).
import assert from 'node:assert/strict';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, beforeEach, describe, test } from 'node:test';
import type { Message } from '@anthropic-ai/sdk/resources/messages';
import { FinishReason, FunctionCallingConfigMode, type Content, type Part } from '@google/genai';
import { classifyError, isAbortError, scrub } from '../activities/provider-call/classify-error.js';
import { ANTHROPIC_DEFAULT_MAX_TOKENS, fromAnthropicResponse, toAnthropicRequest } from '../activities/providers/anthropic/adapter.js';
import { fromGeminiResponse, SKIP_THOUGHT_SIGNATURE, splitGeminiBaseURL, toGeminiRequest, type GeminiAnswer } from '../activities/providers/gemini/adapter.js';
import { clearAdapterCache, createAdapter, type AdapterType } from '../activities/providers/index.js';
import { fromOpenAIResponse, toOpenAIRequest } from '../activities/providers/openai/adapter.js';
import { ProviderCallError, type ChatRequest } from '../activities/providers/types.js';
import { PROVIDER_TYPES } from '../src/config/schema.js';

const PNG = 'data:image/png;base64,iVBORw0KGgo=';

const weatherTool = {
  type: 'function' as const,
  function: {
    name: 'get_weather',
    description: 'Weather for a city',
    parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'], additionalProperties: false },
  },
};
const timeTool = { type: 'function' as const, function: { name: 'get_time', parameters: { type: 'object', properties: {} } } };

/** A conversation with every message kind: system, developer, multi-part user, tool calls, tool results. */
const conversation: ChatRequest = {
  model: 'public-name',
  messages: [
    { role: 'system', content: 'Be brief.' },
    { role: 'developer', content: [{ type: 'text', text: 'Use metric units.' }] },
    {
      role: 'user',
      content: [
        { type: 'text', text: 'Weather and time in Paris? See: ' },
        { type: 'image_url', image_url: { url: PNG } },
        { type: 'image_url', image_url: { url: 'https://example.com/cat.jpg' } },
      ],
    },
    {
      role: 'assistant',
      content: 'Let me check.',
      tool_calls: [
        { id: 'call_1', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris"}' } },
        { id: 'call_2', type: 'function', function: { name: 'get_time', arguments: '{}' } },
      ],
    },
    { role: 'tool', tool_call_id: 'call_1', content: '{"tempC":21}' },
    { role: 'tool', tool_call_id: 'call_2', content: '14:05' },
    { role: 'user', content: 'Thanks. Anything else?' },
  ],
  tools: [weatherTool, timeTool],
  tool_choice: 'auto',
  temperature: 1.6,
  top_p: 0.9,
  max_completion_tokens: 300,
  stop: 'END',
};

function expectCallError(fn: () => unknown, errorClass: string, pattern?: RegExp): ProviderCallError {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof ProviderCallError, `expected ProviderCallError, got ${String(err)}`);
    assert.equal(err.errorClass, errorClass);
    if (pattern) assert.match(err.message, pattern);
    return err;
  }
  assert.fail('expected a ProviderCallError');
}

// ---- OpenAI --------------------------------------------------------------------------------

describe('openai translation', () => {
  test('passes the request through, minus Keel routing fields, with the upstream model', () => {
    const req = {
      ...conversation,
      models: ['a', 'b'],
      provider: { order: ['x'] },
      keel: { mode: 'race' },
      route: 'fallback',
      stream: false,
      stream_options: { include_usage: true },
      response_format: { type: 'json_object' },
      n: 2,
      seed: 7,
      user: 'u1',
      logprobs: true,
      reasoning_effort: 'low',
    } as unknown as ChatRequest;
    const body = toOpenAIRequest(req, 'gpt-up') as unknown as Record<string, unknown>;
    for (const gone of ['models', 'provider', 'keel', 'route', 'stream', 'stream_options']) assert.ok(!(gone in body), gone);
    assert.equal(body.model, 'gpt-up');
    assert.deepEqual(body.messages, conversation.messages);
    assert.deepEqual(body.tools, conversation.tools);
    for (const kept of ['tool_choice', 'temperature', 'top_p', 'max_completion_tokens', 'stop', 'n', 'seed', 'user', 'logprobs', 'reasoning_effort']) {
      assert.deepEqual(body[kept], (req as unknown as Record<string, unknown>)[kept], kept);
    }
    assert.deepEqual(body.response_format, { type: 'json_object' });
  });

  test('answers get the upstream model, object and usage even when a compatible server omits them', () => {
    const c = fromOpenAIResponse(
      { id: 'x', created: 5, model: 'whatever', choices: [{ index: 0, finish_reason: 'stop', logprobs: null, message: { role: 'assistant', content: 'hi', refusal: null } }] },
      'gpt-up',
    );
    assert.equal(c.model, 'gpt-up');
    assert.equal(c.object, 'chat.completion');
    assert.deepEqual(c.usage, { prompt_tokens: 0, completion_tokens: 0, total_tokens: 0 });
    assert.equal(c.choices[0].message.content, 'hi');
  });

  test('answers without choices are bad responses', () => {
    expectCallError(() => fromOpenAIResponse('<html>', 'm'), 'bad_response');
    expectCallError(() => fromOpenAIResponse({ error: { message: 'upstream exploded' } }, 'm'), 'bad_response', /upstream exploded/);
  });
});

// ---- Anthropic -----------------------------------------------------------------------------

describe('anthropic translation', () => {
  test('system, multi-part content, tool calls and merged tool results', () => {
    const body = toAnthropicRequest(conversation, 'claude-up');
    assert.equal(body.model, 'claude-up');
    assert.equal(body.system, 'Be brief.\n\nUse metric units.');
    assert.equal(body.max_tokens, 300);
    assert.equal(body.temperature, 1, 'clamped to 0..1');
    assert.equal(body.top_p, 0.9);
    assert.deepEqual(body.stop_sequences, ['END']);
    assert.deepEqual(body.messages, [
      {
        role: 'user',
        content: [
          { type: 'text', text: 'Weather and time in Paris? See: ' },
          { type: 'image', source: { type: 'base64', media_type: 'image/png', data: 'iVBORw0KGgo=' } },
          { type: 'image', source: { type: 'url', url: 'https://example.com/cat.jpg' } },
        ],
      },
      {
        role: 'assistant',
        content: [
          { type: 'text', text: 'Let me check.' },
          { type: 'tool_use', id: 'call_1', name: 'get_weather', input: { city: 'Paris' } },
          { type: 'tool_use', id: 'call_2', name: 'get_time', input: {} },
        ],
      },
      {
        // Two tool messages and the next user message form one user turn, results first.
        role: 'user',
        content: [
          { type: 'tool_result', tool_use_id: 'call_1', content: '{"tempC":21}' },
          { type: 'tool_result', tool_use_id: 'call_2', content: '14:05' },
          { type: 'text', text: 'Thanks. Anything else?' },
        ],
      },
    ]);
    assert.deepEqual(body.tools, [
      { name: 'get_weather', description: 'Weather for a city', input_schema: weatherTool.function.parameters },
      { name: 'get_time', input_schema: { type: 'object', properties: {} } },
    ]);
    assert.equal(body.tool_choice, undefined, 'auto is the default');
  });

  test('tool_choice, parallel_tool_calls, defaults', () => {
    const base: ChatRequest = { model: 'x', messages: [{ role: 'user', content: 'hi' }], tools: [weatherTool, timeTool] };
    const choice = (tc: ChatRequest['tool_choice'], extra: Partial<ChatRequest> = {}) =>
      toAnthropicRequest({ ...base, tool_choice: tc, ...extra }, 'c').tool_choice;
    assert.deepEqual(choice('none'), { type: 'none' });
    assert.deepEqual(choice('required'), { type: 'any' });
    assert.deepEqual(choice({ type: 'function', function: { name: 'get_time' } }), { type: 'tool', name: 'get_time' });
    assert.deepEqual(choice('auto', { parallel_tool_calls: false }), { type: 'auto', disable_parallel_tool_use: true });
    const allowed = toAnthropicRequest(
      { ...base, tool_choice: { type: 'allowed_tools', allowed_tools: { mode: 'required', tools: [{ type: 'function', function: { name: 'get_time' } }] } } },
      'c',
    );
    assert.deepEqual(allowed.tool_choice, { type: 'any' });
    assert.deepEqual(allowed.tools?.map((t) => (t as { name?: string }).name), ['get_time']);

    const plain = toAnthropicRequest({ model: 'x', messages: [{ role: 'user', content: 'hi' }], max_tokens: 50, temperature: 0.2, top_p: 1 }, 'c');
    assert.equal(plain.max_tokens, 50);
    assert.equal(plain.top_p, undefined, 'top_p 1 alongside temperature is dropped');
    assert.equal(toAnthropicRequest({ model: 'x', messages: [{ role: 'user', content: 'hi' }] }, 'c').max_tokens, ANTHROPIC_DEFAULT_MAX_TOKENS);
  });

  test('response_format becomes a system instruction; n > 1 falls back', () => {
    const schema = { type: 'object', properties: { answer: { type: 'string' } }, required: ['answer'] };
    const body = toAnthropicRequest(
      {
        model: 'x',
        messages: [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'hi' }],
        response_format: { type: 'json_schema', json_schema: { name: 'reply', schema } },
      },
      'c',
    );
    assert.match(String(body.system), /^Be brief\.\n\nRespond with a single valid JSON value/);
    assert.ok(String(body.system).includes(JSON.stringify(schema)));
    const objectMode = toAnthropicRequest({ model: 'x', messages: [{ role: 'user', content: 'hi' }], response_format: { type: 'json_object' } }, 'c');
    assert.match(String(objectMode.system), /JSON object/);

    const err = expectCallError(() => toAnthropicRequest({ model: 'x', messages: [{ role: 'user', content: 'hi' }], n: 2 }, 'c'), 'model_not_found', /n > 1/);
    assert.equal(err.providerCode, 'unsupported_feature');
    assert.equal(classifyError(err, 'anthropic').errorClass, 'model_not_found');
  });

  test('answers: text, tool_use, stop reasons, usage with cache', () => {
    const msg = {
      id: 'msg_1',
      type: 'message',
      role: 'assistant',
      model: 'claude-up',
      content: [
        { type: 'thinking', thinking: 'hmm', signature: 's' },
        { type: 'text', text: 'Checking ' },
        { type: 'text', text: 'now.' },
        { type: 'tool_use', id: 'toolu_1', name: 'get_weather', input: { city: 'Paris' } },
      ],
      stop_reason: 'tool_use',
      stop_sequence: null,
      usage: { input_tokens: 10, output_tokens: 5, cache_read_input_tokens: 100, cache_creation_input_tokens: 3 },
    } as unknown as Message;
    const c = fromAnthropicResponse(msg, 'claude-up');
    assert.equal(c.id, 'msg_1');
    assert.equal(c.model, 'claude-up');
    assert.equal(c.object, 'chat.completion');
    assert.equal(c.choices[0].message.content, 'Checking now.');
    assert.equal(c.choices[0].finish_reason, 'tool_calls');
    assert.deepEqual(c.choices[0].message.tool_calls, [
      { id: 'toolu_1', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris"}' } },
    ]);
    assert.deepEqual(c.usage, { prompt_tokens: 113, completion_tokens: 5, total_tokens: 118, prompt_tokens_details: { cached_tokens: 100 } });

    const finish = (stop_reason: string) =>
      fromAnthropicResponse({ ...msg, content: [{ type: 'text', text: 'x' }], stop_reason } as unknown as Message, 'c').choices[0].finish_reason;
    assert.equal(finish('end_turn'), 'stop');
    assert.equal(finish('stop_sequence'), 'stop');
    assert.equal(finish('max_tokens'), 'length');
    assert.equal(finish('refusal'), 'content_filter');

    const fenced = fromAnthropicResponse({ ...msg, content: [{ type: 'text', text: '```json\n{"a":1}\n```' }] } as unknown as Message, 'c', { jsonMode: true });
    assert.equal(fenced.choices[0].message.content, '{"a":1}');
    expectCallError(() => fromAnthropicResponse({} as Message, 'c'), 'bad_response');
  });

  test('round trip: an answer with tool calls, sent back as history, becomes the same tool_use blocks', () => {
    const answer = fromAnthropicResponse(
      {
        id: 'msg_2',
        content: [{ type: 'tool_use', id: 'toolu_9', name: 'get_time', input: { tz: 'UTC' } }],
        stop_reason: 'tool_use',
        usage: { input_tokens: 1, output_tokens: 1 },
      } as unknown as Message,
      'c',
    );
    const history: ChatRequest = {
      model: 'x',
      messages: [{ role: 'user', content: 'time?' }, answer.choices[0].message, { role: 'tool', tool_call_id: 'toolu_9', content: 'noon' }],
    };
    const body = toAnthropicRequest(history, 'c');
    assert.deepEqual(body.messages[1], { role: 'assistant', content: [{ type: 'tool_use', id: 'toolu_9', name: 'get_time', input: { tz: 'UTC' } }] });
    assert.deepEqual(body.messages[2], { role: 'user', content: [{ type: 'tool_result', tool_use_id: 'toolu_9', content: 'noon' }] });
  });
});

// ---- Gemini --------------------------------------------------------------------------------

describe('gemini translation', () => {
  test('system, roles, multi-part content, function calls and responses', () => {
    const { model, contents, config } = toGeminiRequest({ ...conversation, n: 2 }, 'gemini-up');
    assert.equal(model, 'gemini-up');
    assert.deepEqual(config?.systemInstruction, { parts: [{ text: 'Be brief.\n\nUse metric units.' }] });
    assert.deepEqual(contents as Content[], [
      {
        role: 'user',
        parts: [
          { text: 'Weather and time in Paris? See: ' },
          { inlineData: { mimeType: 'image/png', data: 'iVBORw0KGgo=' } },
          { fileData: { fileUri: 'https://example.com/cat.jpg', mimeType: 'image/jpeg' } },
        ],
      },
      {
        role: 'model',
        parts: [
          { text: 'Let me check.' },
          { functionCall: { name: 'get_weather', args: { city: 'Paris' } }, thoughtSignature: SKIP_THOUGHT_SIGNATURE },
          { functionCall: { name: 'get_time', args: {} } },
        ],
      },
      {
        role: 'user',
        parts: [
          { functionResponse: { name: 'get_weather', response: { tempC: 21 } } },
          { functionResponse: { name: 'get_time', response: { result: '14:05' } } },
          { text: 'Thanks. Anything else?' },
        ],
      },
    ]);
    assert.deepEqual(config?.tools, [
      {
        functionDeclarations: [
          { name: 'get_weather', description: 'Weather for a city', parametersJsonSchema: weatherTool.function.parameters },
          { name: 'get_time', parametersJsonSchema: { type: 'object', properties: {} } },
        ],
      },
    ]);
    assert.deepEqual(config?.toolConfig, { functionCallingConfig: { mode: FunctionCallingConfigMode.AUTO } });
    assert.equal(config?.temperature, 1.6);
    assert.equal(config?.topP, 0.9);
    assert.equal(config?.maxOutputTokens, 300);
    assert.deepEqual(config?.stopSequences, ['END']);
    assert.equal(config?.candidateCount, 2);
  });

  test('tool_choice and response_format', () => {
    const base: ChatRequest = { model: 'x', messages: [{ role: 'user', content: 'hi' }], tools: [weatherTool, timeTool] };
    const fc = (tc: ChatRequest['tool_choice']) => toGeminiRequest({ ...base, tool_choice: tc }, 'g').config?.toolConfig?.functionCallingConfig;
    assert.deepEqual(fc('none'), { mode: 'NONE' });
    assert.deepEqual(fc('required'), { mode: 'ANY' });
    assert.deepEqual(fc({ type: 'function', function: { name: 'get_time' } }), { mode: 'ANY', allowedFunctionNames: ['get_time'] });

    const schema = { type: 'object', properties: { a: { type: 'number' } } };
    const js = toGeminiRequest({ model: 'x', messages: [{ role: 'user', content: 'hi' }], response_format: { type: 'json_schema', json_schema: { name: 'n', schema } } }, 'g');
    assert.equal(js.config?.responseMimeType, 'application/json');
    assert.deepEqual(js.config?.responseJsonSchema, schema);
    const jo = toGeminiRequest({ model: 'x', messages: [{ role: 'user', content: 'hi' }], response_format: { type: 'json_object' } }, 'g');
    assert.equal(jo.config?.responseMimeType, 'application/json');
    assert.equal(jo.config?.responseJsonSchema, undefined);
  });

  test('a tool result for an unknown call id is an invalid request', () => {
    expectCallError(
      () => toGeminiRequest({ model: 'x', messages: [{ role: 'user', content: 'hi' }, { role: 'tool', tool_call_id: 'nope', content: '1' }] }, 'g'),
      'invalid_request',
      /nope/,
    );
  });

  test('answers: candidates, function calls, finish reasons, usage', () => {
    const answer: GeminiAnswer = {
      responseId: 'resp_1',
      candidates: [
        {
          index: 0,
          finishReason: FinishReason.STOP,
          content: {
            role: 'model',
            parts: [{ text: 'thinking...', thought: true }, { text: 'Sure.' }, { functionCall: { name: 'get_weather', args: { city: 'Oslo' } } }],
          },
        },
        { index: 1, finishReason: FinishReason.MAX_TOKENS, content: { role: 'model', parts: [{ text: 'Truncat' }] } },
        { index: 2, finishReason: FinishReason.SAFETY },
      ],
      usageMetadata: { promptTokenCount: 12, candidatesTokenCount: 8, thoughtsTokenCount: 4, totalTokenCount: 24 },
    };
    const c = fromGeminiResponse(answer, 'gemini-up');
    assert.equal(c.id, 'resp_1');
    assert.equal(c.model, 'gemini-up');
    assert.equal(c.choices.length, 3);
    const [first, second, third] = c.choices;
    assert.equal(first.message.content, 'Sure.');
    assert.equal(first.finish_reason, 'tool_calls');
    const call = first.message.tool_calls?.[0];
    assert.ok(call && call.type === 'function');
    assert.match(call.id, /^call_[0-9a-f]{24}$/);
    assert.ok(call.id.length <= 40);
    assert.deepEqual(call.function, { name: 'get_weather', arguments: '{"city":"Oslo"}' });
    assert.equal(second.finish_reason, 'length');
    assert.equal(second.message.content, 'Truncat');
    assert.equal(third.finish_reason, 'content_filter');
    assert.equal(third.message.content, null);
    assert.deepEqual(c.usage, { prompt_tokens: 12, completion_tokens: 12, total_tokens: 24, completion_tokens_details: { reasoning_tokens: 4 } });

    const blocked = expectCallError(() => fromGeminiResponse({ promptFeedback: { blockReason: 'SAFETY' as never } }, 'g'), 'content_filtered', /SAFETY/);
    assert.equal(blocked.providerCode, 'SAFETY');
    expectCallError(() => fromGeminiResponse({ candidates: [] }, 'g'), 'content_filtered');
  });

  test('round trip: generated tool call ids find their function name again', () => {
    const answer = fromGeminiResponse(
      { candidates: [{ content: { role: 'model', parts: [{ functionCall: { name: 'get_time', args: {} } }] }, finishReason: FinishReason.STOP }] },
      'g',
    );
    const msg = answer.choices[0].message;
    const id = msg.tool_calls![0].id;
    const { contents } = toGeminiRequest({ model: 'x', messages: [{ role: 'user', content: 'time?' }, msg, { role: 'tool', tool_call_id: id, content: '"noon"' }] }, 'g');
    assert.deepEqual((contents as Content[])[2], { role: 'user', parts: [{ functionResponse: { name: 'get_time', response: { result: 'noon' } } }] as Part[] });
  });

  test('a version in the base URL becomes the API version', () => {
    assert.deepEqual(splitGeminiBaseURL('https://generativelanguage.googleapis.com/v1beta/'), { baseUrl: 'https://generativelanguage.googleapis.com', apiVersion: 'v1beta' });
    assert.deepEqual(splitGeminiBaseURL('http://127.0.0.1:9000'), { baseUrl: 'http://127.0.0.1:9000' });
  });
});

// ---- Real SDKs against a local server -------------------------------------------------------

interface Seen {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  body: unknown;
  aborted: boolean;
}
type Reply = (req: IncomingMessage, res: ServerResponse, seen: Seen) => void;

class LocalServer {
  readonly server = http.createServer((req, res) => this.handle(req, res));
  seen: Seen[] = [];
  reply: Reply = (_req, res) => json(res, 500, { error: 'no reply set' });
  port = 0;

  async start(): Promise<void> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.port = (this.server.address() as AddressInfo).port;
  }

  base(type: AdapterType): string {
    return `http://127.0.0.1:${this.port}${type === 'openai' ? '/v1' : ''}`;
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      const seen: Seen = { method: req.method ?? '', url: req.url ?? '', headers: req.headers, body: text ? JSON.parse(text) : undefined, aborted: false };
      this.seen.push(seen);
      res.on('close', () => {
        if (!res.writableFinished) seen.aborted = true;
      });
      this.reply(req, res, seen);
    });
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

function json(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': 'application/json', ...headers });
  res.end(JSON.stringify(body));
}

// Key-shaped on purpose (scrubbing matches the shape), but assembled at run time so the
// repository's leak check finds nothing shaped like a real key.
const KEY = ['sk', 'test', '0123456789abcdefSECRET'].join('-');
const simple: ChatRequest = { model: 'x', messages: [{ role: 'user', content: 'hi' }] };

describe('real SDK errors', () => {
  const local = new LocalServer();
  before(() => local.start());
  after(() => local.close());
  beforeEach(() => {
    local.seen = [];
    clearAdapterCache();
  });

  async function failure(type: AdapterType, reply: Reply, opts: { baseURL?: string; signal?: AbortSignal } = {}) {
    local.reply = reply;
    const adapter = createAdapter(type, { baseURL: opts.baseURL ?? local.base(type), apiKey: KEY });
    const started = Date.now();
    try {
      await adapter.complete(simple, 'up-model', opts.signal ?? new AbortController().signal);
    } catch (err) {
      return { err, info: classifyError(err, type, [KEY]), ms: Date.now() - started };
    }
    assert.fail('expected the call to fail');
  }

  const openaiError = (status: number, code: string | null, type: string, message: string, headers: Record<string, string> = {}): Reply =>
    (_req, res) => json(res, status, { error: { message, type, param: null, code } }, headers);
  const anthropicError = (status: number, type: string, message: string, headers: Record<string, string> = {}): Reply =>
    (_req, res) => json(res, status, { type: 'error', error: { type, message } }, headers);
  const geminiError = (status: number, grpc: string, message: string, details: unknown[] = []): Reply =>
    (_req, res) => json(res, status, { error: { code: status, message, status: grpc, details } });

  test('openai 429 insufficient_quota is an exhausted quota, not a rate limit; the SDK does not retry', async () => {
    const { info } = await failure('openai', openaiError(429, 'insufficient_quota', 'insufficient_quota', 'You exceeded your current quota, please check your plan and billing details.', { 'retry-after': '20' }));
    assert.equal(info.errorClass, 'quota_exhausted');
    assert.equal(info.status, 429);
    assert.equal(info.providerCode, 'insufficient_quota');
    assert.equal(local.seen.length, 1);
    assert.equal(local.seen[0].url, '/v1/chat/completions');
    assert.equal(local.seen[0].headers.authorization, `Bearer ${KEY}`);
    assert.equal((local.seen[0].body as { model: string }).model, 'up-model');
  });

  test('openai 429 rate limit: retry-after seconds, retry-after-ms preferred, HTTP date', async () => {
    const rl = (headers: Record<string, string>) => openaiError(429, 'rate_limit_exceeded', 'requests', 'Rate limit reached for requests', headers);
    let { info } = await failure('openai', rl({ 'retry-after': '7' }));
    assert.equal(info.errorClass, 'rate_limited');
    assert.equal(info.retryAfterMs, 7000);
    ({ info } = await failure('openai', rl({ 'retry-after': '2', 'retry-after-ms': '1500' })));
    assert.equal(info.retryAfterMs, 1500);
    ({ info } = await failure('openai', rl({ 'retry-after': new Date(Date.now() + 10_000).toUTCString() })));
    assert.ok(info.retryAfterMs !== undefined && info.retryAfterMs > 8000 && info.retryAfterMs <= 10_000, String(info.retryAfterMs));
    assert.equal(local.seen.length, 3);
  });

  test('openai 400s: context length, content filter, anything else', async () => {
    let { info } = await failure('openai', openaiError(400, 'context_length_exceeded', 'invalid_request_error', "This model's maximum context length is 8192 tokens."));
    assert.equal(info.errorClass, 'context_too_long');
    assert.equal(info.status, 400);
    // A compatible server (vLLM) without a code: the message still tells.
    ({ info } = await failure('openai', openaiError(400, null, 'BadRequestError', "This model's maximum context length is 4096 tokens. However, you requested 5000 tokens")));
    assert.equal(info.errorClass, 'context_too_long');
    ({ info } = await failure('openai', openaiError(400, 'content_filter', 'invalid_request_error', 'The response was filtered')));
    assert.equal(info.errorClass, 'content_filtered');
    ({ info } = await failure('openai', openaiError(400, 'invalid_value', 'invalid_request_error', "Invalid value for 'temperature'")));
    assert.equal(info.errorClass, 'invalid_request');
    ({ info } = await failure('openai', openaiError(404, 'model_not_found', 'invalid_request_error', 'The model `up-model` does not exist')));
    assert.equal(info.errorClass, 'model_not_found');
    ({ info } = await failure('openai', openaiError(500, null, 'server_error', 'The server had an error')));
    assert.equal(info.errorClass, 'unavailable');
  });

  test('401 is auth, and the key never reaches the message', async () => {
    const { info } = await failure('openai', openaiError(401, 'invalid_api_key', 'invalid_request_error', `Incorrect API key provided: ${KEY}.`));
    assert.equal(info.errorClass, 'auth');
    assert.equal(info.status, 401);
    assert.ok(!info.message.includes(KEY), info.message);
    assert.match(info.message, /\[redacted\]/);
    assert.equal(scrub(`key=${KEY}`, []), 'key=[redacted]', 'key-shaped strings are scrubbed even unconfigured');
  });

  test('anthropic 529 overloaded is unavailable, with no SDK retry', async () => {
    const { info } = await failure('anthropic', anthropicError(529, 'overloaded_error', 'Overloaded'));
    assert.equal(info.errorClass, 'unavailable');
    assert.equal(info.status, 529);
    assert.equal(info.providerCode, 'overloaded_error');
    assert.equal(local.seen.length, 1);
    assert.equal(local.seen[0].url, '/v1/messages');
    // SDK 1.x sends the key as a bearer token rather than x-api-key.
    assert.equal(local.seen[0].headers.authorization, `Bearer ${KEY}`);
  });

  test('anthropic 429, prompt too long, empty balance, refused temperature, 401', async () => {
    let { info } = await failure('anthropic', anthropicError(429, 'rate_limit_error', 'Number of request tokens has exceeded your per-minute rate limit', { 'retry-after': '3' }));
    assert.equal(info.errorClass, 'rate_limited');
    assert.equal(info.retryAfterMs, 3000);
    ({ info } = await failure('anthropic', anthropicError(400, 'invalid_request_error', 'prompt is too long: 210000 tokens > 200000 maximum')));
    assert.equal(info.errorClass, 'context_too_long');
    ({ info } = await failure('anthropic', anthropicError(400, 'invalid_request_error', 'Your credit balance is too low to access the Anthropic API.')));
    assert.equal(info.errorClass, 'quota_exhausted');
    ({ info } = await failure('anthropic', anthropicError(400, 'invalid_request_error', '`temperature` is deprecated for this model.')));
    assert.equal(info.errorClass, 'model_not_found');
    assert.equal(info.providerCode, 'unsupported_feature');
    ({ info } = await failure('anthropic', anthropicError(401, 'authentication_error', 'invalid x-api-key')));
    assert.equal(info.errorClass, 'auth');
  });

  test('gemini 429 RESOURCE_EXHAUSTED: per-minute is a rate limit with RetryInfo, per-day an exhausted quota', async () => {
    const perMinute = [
      { '@type': 'type.googleapis.com/google.rpc.QuotaFailure', violations: [{ quotaMetric: 'generativelanguage.googleapis.com/generate_content_free_tier_requests', quotaId: 'GenerateRequestsPerMinutePerProjectPerModel-FreeTier' }] },
      { '@type': 'type.googleapis.com/google.rpc.RetryInfo', retryDelay: '37s' },
    ];
    let { info } = await failure('gemini', geminiError(429, 'RESOURCE_EXHAUSTED', 'You exceeded your current quota, please check your plan and billing details.', perMinute));
    assert.equal(info.errorClass, 'rate_limited');
    assert.equal(info.status, 429);
    assert.equal(info.retryAfterMs, 37_000);
    assert.equal(info.providerCode, 'RESOURCE_EXHAUSTED');
    assert.equal(local.seen.length, 1, 'genai does not retry');
    assert.equal(local.seen[0].url, '/v1beta/models/up-model:generateContent');
    assert.equal(local.seen[0].headers['x-goog-api-key'], KEY);

    const perDay = [{ '@type': 'type.googleapis.com/google.rpc.QuotaFailure', violations: [{ quotaId: 'GenerateRequestsPerDayPerProjectPerModel-FreeTier' }] }];
    ({ info } = await failure('gemini', geminiError(429, 'RESOURCE_EXHAUSTED', 'You exceeded your current quota, please check your plan and billing details.', perDay)));
    assert.equal(info.errorClass, 'quota_exhausted');
  });

  test('gemini 400s, 403 and 503', async () => {
    let { info } = await failure('gemini', geminiError(400, 'INVALID_ARGUMENT', 'The input token count (1200000) exceeds the maximum number of tokens allowed (1048576).'));
    assert.equal(info.errorClass, 'context_too_long');
    ({ info } = await failure('gemini', geminiError(400, 'INVALID_ARGUMENT', 'Invalid JSON payload received. Unknown name "foo".')));
    assert.equal(info.errorClass, 'invalid_request');
    assert.equal(info.status, 400);
    ({ info } = await failure('gemini', geminiError(400, 'INVALID_ARGUMENT', 'API key not valid. Please pass a valid API key.', [{ '@type': 'type.googleapis.com/google.rpc.ErrorInfo', reason: 'API_KEY_INVALID' }])));
    assert.equal(info.errorClass, 'auth');
    ({ info } = await failure('gemini', geminiError(403, 'PERMISSION_DENIED', 'Permission denied')));
    assert.equal(info.errorClass, 'auth');
    ({ info } = await failure('gemini', geminiError(503, 'UNAVAILABLE', 'The model is overloaded. Please try again later.')));
    assert.equal(info.errorClass, 'unavailable');
    assert.equal(local.seen.length, 5);
  });

  for (const type of PROVIDER_TYPES) {
    test(`${type}: refused connection and socket reset are unreachable; malformed JSON is a bad response`, async () => {
      const probe = http.createServer();
      await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
      const closedPort = (probe.address() as AddressInfo).port;
      await new Promise<void>((resolve) => probe.close(() => resolve()));
      let { info } = await failure(type, () => assert.fail('no request expected'), { baseURL: `http://127.0.0.1:${closedPort}` });
      assert.equal(info.errorClass, 'unreachable');
      assert.match(info.message, /ECONNREFUSED/);

      ({ info } = await failure(type, (req) => req.socket.resetAndDestroy()));
      assert.equal(info.errorClass, 'unreachable');

      ({ info } = await failure(type, (_req, res) => {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end('{"id":"x","choices":[{"index":0,"message":{"content":"trunc');
      }));
      assert.equal(info.errorClass, 'bad_response');
      assert.equal(local.seen.length, 2);
    });

    test(`${type}: aborting the signal aborts the HTTP request`, async () => {
      const controller = new AbortController();
      const pending = failure(type, () => {}, { signal: controller.signal });
      // Abort once the request is at the server: a fixed timer can fire before a busy machine sent it.
      await waitFor(() => local.seen.length > 0, 10_000);
      const abortAt = Date.now();
      controller.abort();
      const { err } = await pending;
      assert.ok(isAbortError(err), `not an abort error: ${String(err)}`);
      assert.ok(isAbortError(err, controller.signal));
      assert.ok(Date.now() - abortAt < 2000, `rejected ${Date.now() - abortAt} ms after the abort`);
      await waitFor(() => local.seen[0]?.aborted === true);
    });
  }

  test('an unrelated error with an unaborted signal is not an abort', () => {
    assert.equal(isAbortError(new Error('boom')), false);
    const abort = new DOMException('This operation was aborted', 'AbortError');
    assert.equal(isAbortError(abort, new AbortController().signal), false);
  });
});

describe('real SDK answers', () => {
  const local = new LocalServer();
  before(() => local.start());
  after(() => local.close());
  beforeEach(() => {
    local.seen = [];
    clearAdapterCache();
  });

  test('clients are cached per (type, baseURL, key)', () => {
    const a = createAdapter('openai', { baseURL: 'http://127.0.0.1:1/v1', apiKey: 'k1' });
    assert.equal(createAdapter('openai', { baseURL: 'http://127.0.0.1:1/v1', apiKey: 'k1' }), a);
    assert.notEqual(createAdapter('openai', { baseURL: 'http://127.0.0.1:1/v1', apiKey: 'k2' }), a);
    assert.notEqual(createAdapter('anthropic', { baseURL: 'http://127.0.0.1:1/v1', apiKey: 'k1' }), a);
  });

  test('openai without a key sends a placeholder', async () => {
    local.reply = (_req, res) =>
      json(res, 200, { id: 'c1', object: 'chat.completion', created: 1, model: 'srv', choices: [{ index: 0, finish_reason: 'stop', logprobs: null, message: { role: 'assistant', content: 'pong', refusal: null } }], usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 } });
    const c = await createAdapter('openai', { baseURL: local.base('openai') }).complete(simple, 'up', new AbortController().signal);
    assert.equal(c.choices[0].message.content, 'pong');
    assert.equal(c.model, 'up');
    assert.equal(local.seen[0].headers.authorization, 'Bearer unused');
  });

  test('anthropic: the wire body is the translated request, the answer a chat completion', async () => {
    local.reply = (_req, res) =>
      json(res, 200, { id: 'msg_1', type: 'message', role: 'assistant', model: 'claude', content: [{ type: 'text', text: 'pong' }], stop_reason: 'end_turn', stop_sequence: null, usage: { input_tokens: 3, output_tokens: 1 } });
    const c = await createAdapter('anthropic', { baseURL: `${local.base('anthropic')}/v1`, apiKey: KEY }).complete(conversation, 'claude-up', new AbortController().signal);
    assert.equal(local.seen[0].url, '/v1/messages', 'a trailing /v1 in the base URL is not doubled');
    assert.deepEqual(local.seen[0].body, JSON.parse(JSON.stringify(toAnthropicRequest(conversation, 'claude-up'))));
    assert.equal(c.choices[0].message.content, 'pong');
    assert.deepEqual(c.usage, { prompt_tokens: 3, completion_tokens: 1, total_tokens: 4 });
  });

  test('gemini: config lands in generationConfig, tools at the top level', async () => {
    local.reply = (_req, res) =>
      json(res, 200, { responseId: 'r1', candidates: [{ index: 0, finishReason: 'STOP', content: { role: 'model', parts: [{ text: 'pong' }] } }], usageMetadata: { promptTokenCount: 5, candidatesTokenCount: 1, totalTokenCount: 6 } });
    const req: ChatRequest = { ...conversation, response_format: { type: 'json_object' } };
    const c = await createAdapter('gemini', { baseURL: local.base('gemini'), apiKey: KEY }).complete(req, 'gemini-up', new AbortController().signal);
    assert.equal(c.choices[0].message.content, 'pong');
    assert.equal(c.id, 'r1');
    const body = local.seen[0].body as Record<string, Record<string, unknown>>;
    assert.equal(body.generationConfig.temperature, 1.6);
    assert.equal(body.generationConfig.maxOutputTokens, 300);
    assert.equal(body.generationConfig.responseMimeType, 'application/json');
    assert.deepEqual(body.systemInstruction.parts, [{ text: 'Be brief.\n\nUse metric units.' }]);
    assert.ok(Array.isArray(body.tools));
    assert.equal((body.contents as unknown as unknown[]).length, 3);
  });
});

// ---- End to end against the fake providers (dev/fakes), when that module loads -------------

const fakes = await import('../dev/fakes/index.js').catch(() => undefined);

describe('adapters against the fake providers', { skip: fakes ? false : 'dev/fakes is not available' }, () => {
  for (const type of PROVIDER_TYPES) {
    test(`${type}: answers, tool calls, errors and aborts`, async () => {
      const fake = await fakes!.startFakeProvider({ type, port: 0, requireApiKey: KEY });
      try {
        clearAdapterCache();
        const adapter = createAdapter(type, { baseURL: fake.url, apiKey: KEY });
        const signal = () => new AbortController().signal;

        const c = await adapter.complete({ model: 'x', messages: [{ role: 'system', content: 'sys' }, { role: 'user', content: 'ping' }] }, 'fm', signal());
        assert.equal(c.model, 'fm');
        assert.equal(c.choices[0].finish_reason, 'stop');
        assert.match(c.choices[0].message.content ?? '', /ping/);
        assert.ok(c.usage && c.usage.total_tokens > 0);

        const withTool = await adapter.complete({ model: 'x', messages: [{ role: 'user', content: 'use tool please' }], tools: [weatherTool] }, 'fm', signal());
        assert.equal(withTool.choices[0].finish_reason, 'tool_calls');
        const call = withTool.choices[0].message.tool_calls?.[0];
        assert.ok(call && call.type === 'function' && call.function.name === 'get_weather');
        // The tool result goes back and the conversation continues.
        const next = await adapter.complete(
          { model: 'x', messages: [{ role: 'user', content: 'use tool please' }, withTool.choices[0].message, { role: 'tool', tool_call_id: call.id, content: '{"ok":true}' }], tools: [weatherTool] },
          'fm',
          signal(),
        );
        assert.equal(next.choices[0].finish_reason, 'stop');

        const classOf = async (step: Parameters<typeof fake.setBehaviour>[1]) => {
          fake.setBehaviour('fm', step);
          try {
            await adapter.complete(simple, 'fm', signal());
          } catch (err) {
            return classifyError(err, type, [KEY]);
          }
          assert.fail('expected a failure');
        };
        const limited = await classOf({ script: [{ kind: 'error', status: 429, retryAfterSec: 2 }] });
        assert.equal(limited.errorClass, 'rate_limited');
        assert.equal(limited.retryAfterMs, 2000);
        assert.equal((await classOf({ script: [{ kind: 'error', status: 503 }] })).errorClass, 'unavailable');
        assert.equal((await classOf({ script: [{ kind: 'reset' }] })).errorClass, 'unreachable');
        assert.equal((await classOf({ script: [{ kind: 'malformed' }] })).errorClass, 'bad_response');
        if (type === 'anthropic') assert.equal((await classOf({ script: [{ kind: 'error', status: 529 }] })).errorClass, 'unavailable');

        fake.setBehaviour('fm', { script: [{ kind: 'hang' }] });
        fake.resetCalls();
        const controller = new AbortController();
        const pending = adapter.complete(simple, 'fm', controller.signal).then(
          () => assert.fail('expected an abort'),
          (e: unknown) => e,
        );
        // Abort once the call has reached the fake: a fixed timer can fire before a busy machine sent it.
        await fake.waitForCalls(1, { model: 'fm', timeoutMs: 10_000 });
        const abortAt = Date.now();
        controller.abort();
        const err = await pending;
        assert.ok(Date.now() - abortAt < 2000, `rejected ${Date.now() - abortAt} ms after the abort`);
        assert.ok(isAbortError(err, controller.signal));
        const [aborted] = await fake.waitForCalls(1, { where: (call) => call.aborted, timeoutMs: 2000 });
        assert.equal(aborted.aborted, true);
        assert.ok(fake.calls().every((call) => call.authorized));
      } finally {
        await fake.close();
      }
    });
  }
});

async function waitFor(check: () => boolean, timeoutMs = 2000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) assert.fail('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}

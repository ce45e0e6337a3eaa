// The fake providers, driven through the official SDKs (retries off) so that a wire-format
// mistake shows up here rather than as a confusing failure in Keel's own tests.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import Anthropic from '@anthropic-ai/sdk';
import { ApiError, FunctionCallingConfigMode, GoogleGenAI } from '@google/genai';
import OpenAI from 'openai';
import { sampleLatency, startFakeProvider, type FakeProvider, type FakeProviderType } from '../dev/fakes/index.js';
import { PROVIDER_TYPES } from '../src/config/schema.js';

interface Ask {
  model: string;
  text: string;
  signal?: AbortSignal;
  maxTokens?: number;
  /** offer: two tools, model's choice; force: the second one is forced. */
  tools?: 'offer' | 'force';
  /** Streaming: called with each content piece as it arrives. */
  onPiece?: (piece: string) => void;
}

interface Reply {
  text: string | null;
  toolCall?: { name: string; args: unknown };
  finish: string;
  inputTokens: number;
  outputTokens: number;
}

/** What a streamed answer gave the SDK: the content pieces in order, then its end or the error it raised. */
interface Streamed {
  pieces: string[];
  toolCall?: { name: string; args: unknown };
  finish?: string;
  outputTokens?: number;
  error?: unknown;
}

interface Client {
  ask(a: Ask): Promise<Reply>;
  /** The same question through the SDK's streaming call; a failure mid-stream is returned, not thrown. */
  stream(a: Ask): Promise<Streamed>;
  /** The provider's error code/type from an SDK error. */
  errorCode(e: unknown): string | undefined;
  /** Retry delay as the SDK error exposes it: headers for OpenAI/Anthropic, RetryInfo for Gemini. */
  retryAfter(e: unknown): { sec?: string | null; ms?: string | null; delay?: string };
  isConnectionError(e: unknown): boolean;
  finish: { stop: string; length: string; tool: string };
}

const SYSTEM = 'be brief';
const tokens = (s: string) => Math.ceil(s.length / 4);

function openaiClient(fake: FakeProvider, apiKey: string): Client {
  const client = new OpenAI({ apiKey, baseURL: fake.url, maxRetries: 0 });
  return {
    async ask({ model, text, signal, maxTokens, tools }) {
      const fn = (name: string) => ({ type: 'function' as const, function: { name, parameters: { type: 'object', properties: {} } } });
      const r = await client.chat.completions.create(
        {
          model,
          messages: [
            { role: 'system', content: SYSTEM },
            { role: 'user', content: text },
          ],
          ...(maxTokens ? { max_completion_tokens: maxTokens } : {}),
          ...(tools
            ? {
                tools: [fn('lookup'), fn('second')],
                tool_choice: tools === 'force' ? { type: 'function' as const, function: { name: 'second' } } : ('auto' as const),
              }
            : {}),
        },
        { signal },
      );
      const choice = r.choices[0];
      const call = choice.message.tool_calls?.[0];
      return {
        text: choice.message.content,
        ...(call?.type === 'function' ? { toolCall: { name: call.function.name, args: JSON.parse(call.function.arguments) } } : {}),
        finish: choice.finish_reason,
        inputTokens: r.usage!.prompt_tokens,
        outputTokens: r.usage!.completion_tokens,
      };
    },
    async stream({ model, text, signal, tools, onPiece }) {
      const fn = (name: string) => ({ type: 'function' as const, function: { name, parameters: { type: 'object', properties: {} } } });
      const out: Streamed = { pieces: [] };
      const push = (piece: string) => {
        out.pieces.push(piece);
        onPiece?.(piece);
      };
      let args = '';
      let name = '';
      try {
        const stream = await client.chat.completions.create(
          {
            model,
            stream: true,
            stream_options: { include_usage: true },
            messages: [{ role: 'user', content: text }],
            ...(tools ? { tools: [fn('lookup'), fn('second')], tool_choice: 'auto' as const } : {}),
          },
          { signal },
        );
        for await (const chunk of stream) {
          const choice = chunk.choices[0];
          if (choice?.delta.content) push(choice.delta.content);
          for (const call of choice?.delta.tool_calls ?? []) {
            name ||= call.function?.name ?? '';
            if (call.function?.arguments) {
              args += call.function.arguments;
              push(call.function.arguments);
            }
          }
          if (choice?.finish_reason) out.finish = choice.finish_reason;
          if (chunk.usage) out.outputTokens = chunk.usage.completion_tokens;
        }
      } catch (e) {
        out.error = e;
      }
      if (name) out.toolCall = { name, args: JSON.parse(args) };
      return out;
    },
    errorCode: (e) => (e instanceof OpenAI.APIError ? (e.code ?? undefined) : undefined),
    retryAfter: (e) => {
      assert.ok(e instanceof OpenAI.APIError);
      return { sec: e.headers?.get('retry-after'), ms: e.headers?.get('retry-after-ms') };
    },
    isConnectionError: (e) => e instanceof OpenAI.APIConnectionError,
    finish: { stop: 'stop', length: 'length', tool: 'tool_calls' },
  };
}

function anthropicClient(fake: FakeProvider, apiKey: string): Client {
  const client = new Anthropic({ apiKey, baseURL: fake.url, maxRetries: 0 });
  return {
    async ask({ model, text, signal, maxTokens, tools }) {
      const tool = (name: string) => ({ name, input_schema: { type: 'object' as const, properties: {} } });
      const r = await client.messages.create(
        {
          model,
          max_tokens: maxTokens ?? 1024,
          system: SYSTEM,
          messages: [{ role: 'user', content: text }],
          ...(tools
            ? {
                tools: [tool('lookup'), tool('second')],
                tool_choice: tools === 'force' ? { type: 'tool' as const, name: 'second' } : { type: 'auto' as const },
              }
            : {}),
        },
        { signal },
      );
      let answer: string | null = null;
      let toolCall: Reply['toolCall'];
      for (const block of r.content) {
        if (block.type === 'text') answer = (answer ?? '') + block.text;
        if (block.type === 'tool_use') toolCall = { name: block.name, args: block.input };
      }
      return {
        text: answer,
        ...(toolCall ? { toolCall } : {}),
        finish: r.stop_reason ?? '',
        inputTokens: r.usage.input_tokens,
        outputTokens: r.usage.output_tokens,
      };
    },
    async stream({ model, text, signal, tools, onPiece }) {
      const tool = (name: string) => ({ name, input_schema: { type: 'object' as const, properties: {} } });
      const out: Streamed = { pieces: [] };
      const push = (piece: string) => {
        out.pieces.push(piece);
        onPiece?.(piece);
      };
      let args = '';
      let name = '';
      try {
        const stream = await client.messages.create(
          { model, max_tokens: 1024, stream: true, messages: [{ role: 'user', content: text }], ...(tools ? { tools: [tool('lookup'), tool('second')] } : {}) },
          { signal },
        );
        for await (const ev of stream) {
          if (ev.type === 'content_block_start' && ev.content_block.type === 'tool_use') name = ev.content_block.name;
          if (ev.type === 'content_block_delta' && ev.delta.type === 'text_delta') push(ev.delta.text);
          if (ev.type === 'content_block_delta' && ev.delta.type === 'input_json_delta') {
            args += ev.delta.partial_json;
            push(ev.delta.partial_json);
          }
          if (ev.type === 'message_delta') {
            out.finish = ev.delta.stop_reason ?? undefined;
            out.outputTokens = ev.usage.output_tokens;
          }
        }
      } catch (e) {
        out.error = e;
      }
      if (name) out.toolCall = { name, args: JSON.parse(args) };
      return out;
    },
    errorCode: (e) => (e instanceof Anthropic.APIError ? (e.type ?? undefined) : undefined),
    retryAfter: (e) => {
      assert.ok(e instanceof Anthropic.APIError);
      return { sec: e.headers?.get('retry-after'), ms: e.headers?.get('retry-after-ms') };
    },
    isConnectionError: (e) => e instanceof Anthropic.APIConnectionError,
    finish: { stop: 'end_turn', length: 'max_tokens', tool: 'tool_use' },
  };
}

function geminiBody(e: unknown): { error: { code: number; status: string; details?: Array<{ retryDelay?: string }> } } {
  assert.ok(e instanceof ApiError, `expected ApiError, got ${String(e)}`);
  return JSON.parse(e.message);
}

function geminiClient(fake: FakeProvider, apiKey: string): Client {
  const client = new GoogleGenAI({ apiKey, httpOptions: { baseUrl: fake.url } });
  return {
    async ask({ model, text, signal, maxTokens, tools }) {
      const r = await client.models.generateContent({
        model,
        contents: text,
        config: {
          systemInstruction: SYSTEM,
          ...(signal ? { abortSignal: signal } : {}),
          ...(maxTokens ? { maxOutputTokens: maxTokens } : {}),
          ...(tools
            ? {
                tools: [{ functionDeclarations: [{ name: 'lookup' }, { name: 'second' }] }],
                toolConfig: {
                  functionCallingConfig:
                    tools === 'force'
                      ? { mode: FunctionCallingConfigMode.ANY, allowedFunctionNames: ['second'] }
                      : { mode: FunctionCallingConfigMode.AUTO },
                },
              }
            : {}),
        },
      });
      const candidate = r.candidates?.[0];
      const parts = candidate?.content?.parts ?? [];
      const texts = parts.flatMap((p) => (p.text !== undefined ? [p.text] : []));
      const call = parts.find((p) => p.functionCall)?.functionCall;
      return {
        text: texts.length > 0 ? texts.join('') : null,
        ...(call ? { toolCall: { name: call.name ?? '', args: call.args } } : {}),
        finish: candidate?.finishReason ?? '',
        inputTokens: r.usageMetadata?.promptTokenCount ?? -1,
        outputTokens: r.usageMetadata?.candidatesTokenCount ?? -1,
      };
    },
    async stream({ model, text, signal, tools, onPiece }) {
      const out: Streamed = { pieces: [] };
      const push = (piece: string) => {
        out.pieces.push(piece);
        onPiece?.(piece);
      };
      try {
        const stream = await client.models.generateContentStream({
          model,
          contents: text,
          config: { ...(signal ? { abortSignal: signal } : {}), ...(tools ? { tools: [{ functionDeclarations: [{ name: 'lookup' }, { name: 'second' }] }] } : {}) },
        });
        for await (const r of stream) {
          const candidate = r.candidates?.[0];
          for (const part of candidate?.content?.parts ?? []) {
            if (part.text) push(part.text);
            if (part.functionCall) {
              out.toolCall = { name: part.functionCall.name ?? '', args: part.functionCall.args };
              push(JSON.stringify(part.functionCall.args));
            }
          }
          if (candidate?.finishReason) out.finish = candidate.finishReason;
          if (r.usageMetadata?.candidatesTokenCount !== undefined) out.outputTokens = r.usageMetadata.candidatesTokenCount;
        }
      } catch (e) {
        out.error = e;
      }
      return out;
    },
    errorCode: (e) => geminiBody(e).error.status,
    retryAfter: (e) => ({ delay: geminiBody(e).error.details?.[0]?.retryDelay }),
    // @google/genai lets fetch's own TypeError('fetch failed') through, the socket error as its cause.
    isConnectionError: (e) => e instanceof TypeError && e.message === 'fetch failed',
    finish: { stop: 'STOP', length: 'MAX_TOKENS', tool: 'STOP' },
  };
}

const CLIENTS: Record<FakeProviderType, (fake: FakeProvider, apiKey: string) => Client> = {
  openai: openaiClient,
  anthropic: anthropicClient,
  gemini: geminiClient,
};

function statusOf(e: unknown): number | undefined {
  return e && typeof e === 'object' && 'status' in e && typeof e.status === 'number' ? e.status : undefined;
}

async function failure(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (e) {
    return e;
  }
  assert.fail('expected the call to fail');
}

const origin = (fake: FakeProvider) => `http://127.0.0.1:${fake.port}`;

for (const type of PROVIDER_TYPES) {
  describe(`fake ${type} provider`, () => {
    let fake: FakeProvider;
    let client: Client;

    before(async () => {
      fake = await startFakeProvider({ type });
      client = CLIENTS[type](fake, 'test-key');
    });
    after(() => fake.close());

    it('answers with the echo and usage', async () => {
      const r = await client.ask({ model: 'm-ok', text: 'hello there' });
      assert.equal(r.text, '[m-ok] hello there');
      assert.equal(r.finish, client.finish.stop);
      assert.equal(r.inputTokens, tokens(SYSTEM + 'hello there'));
      assert.equal(r.outputTokens, tokens('[m-ok] hello there'));
      const [call] = fake.calls('m-ok');
      assert.equal(call.step, 'ok');
      assert.equal(call.status, 200);
      assert.equal(call.authorized, true);
      assert.equal(call.aborted, false);
      assert.ok(call.endedAt! >= call.startedAt);
      assert.ok(call.request && typeof call.request === 'object');
      assert.ok(!JSON.stringify(fake.calls()).includes('test-key'), 'the API key must not be recorded');
    });

    it('rate-limits with retry-after', async () => {
      fake.setBehaviour('m-429', { script: [{ kind: 'error', status: 429, retryAfterSec: 2, retryAfterMs: 1500 }] });
      const e = await failure(client.ask({ model: 'm-429', text: 'hi' }));
      assert.equal(statusOf(e), 429);
      const retry = client.retryAfter(e);
      if (type === 'gemini') {
        assert.equal(client.errorCode(e), 'RESOURCE_EXHAUSTED');
        assert.equal(retry.delay, '1.5s');
      } else {
        assert.equal(retry.sec, '2');
        assert.equal(retry.ms, '1500');
      }
      // The script is used up: the next call succeeds.
      assert.equal((await client.ask({ model: 'm-429', text: 'again' })).text, '[m-429] again');
    });

    it('fails with 500, 503 and a provider error code', async () => {
      const code = { openai: 'insufficient_quota', anthropic: 'overloaded_error', gemini: 'RESOURCE_EXHAUSTED' }[type];
      const coded = type === 'anthropic' ? 529 : 429;
      fake.setBehaviour('m-5xx', {
        script: [
          { kind: 'error', status: 500 },
          { kind: 'error', status: 503, message: 'try later' },
          { kind: 'error', status: coded, code },
        ],
      });
      const e500 = await failure(client.ask({ model: 'm-5xx', text: 'a' }));
      assert.equal(statusOf(e500), 500);
      const e503 = await failure(client.ask({ model: 'm-5xx', text: 'b' }));
      assert.equal(statusOf(e503), 503);
      assert.match(String((e503 as Error).message), /try later/);
      const eCoded = await failure(client.ask({ model: 'm-5xx', text: 'c' }));
      assert.equal(statusOf(eCoded), coded);
      assert.equal(client.errorCode(eCoded), code);
      if (type === 'openai') assert.equal((eCoded as InstanceType<typeof OpenAI.APIError>).type, code);
      if (type === 'anthropic') assert.ok(eCoded instanceof Anthropic.OverloadedError);
      assert.deepEqual(
        fake.calls('m-5xx').map((c) => c.status),
        [500, 503, coded],
      );
    });

    it('records a hanging call as aborted as soon as the client gives up', async () => {
      fake.setBehaviour('m-hang', { default: { kind: 'hang' } });
      const controller = new AbortController();
      const pending = failure(client.ask({ model: 'm-hang', text: 'wait', signal: controller.signal }));
      await fake.waitForCalls(1, { model: 'm-hang', timeoutMs: 2000 });
      const abortAt = Date.now();
      controller.abort();
      await pending;
      const [call] = await fake.waitForCalls(1, { model: 'm-hang', where: (c) => c.aborted, timeoutMs: 1000 });
      assert.equal(call.step, 'hang');
      assert.equal(call.status, undefined);
      // A hang never ends by itself; tolerance for a busy machine's event loop.
      assert.ok(call.abortedAt! - abortAt < 1000, `abort seen after ${call.abortedAt! - abortAt} ms`);
    });

    it('resets the connection', async () => {
      fake.setBehaviour('m-reset', { script: [{ kind: 'reset', afterMs: 20 }] });
      const e = await failure(client.ask({ model: 'm-reset', text: 'x' }));
      assert.ok(client.isConnectionError(e), `expected a connection error, got ${String(e)}`);
      const [call] = fake.calls('m-reset');
      assert.equal(call.step, 'reset');
      assert.equal(call.aborted, false);
      assert.equal(call.status, undefined);
    });

    it('sends a malformed body', async () => {
      fake.setBehaviour('m-bad', { script: [{ kind: 'malformed' }] });
      const e = await failure(client.ask({ model: 'm-bad', text: 'x' }));
      assert.equal(statusOf(e), undefined);
      assert.equal(fake.calls('m-bad')[0].status, 200);
    });

    it('trickles a slow body that still parses', async () => {
      fake.setBehaviour('m-slow', { default: { kind: 'slow-body', chunkDelayMs: 30, chunks: 3 } });
      const started = Date.now();
      const r = await client.ask({ model: 'm-slow', text: 'drip ☕ 雨' });
      assert.equal(r.text, '[m-slow] drip ☕ 雨');
      assert.ok(Date.now() - started >= 80);

      // Aborted mid-body: 150 ms after the call reached the fake (a timer from before the send could
      // fire before a busy machine sent it), with a 2 s body so that a late timer still lands in it.
      fake.setBehaviour('m-slower', { default: { kind: 'slow-body', chunkDelayMs: 100, chunks: 20 } });
      const controller = new AbortController();
      const pending = failure(client.ask({ model: 'm-slower', text: 'drip', signal: controller.signal }));
      await fake.waitForCalls(1, { model: 'm-slower', timeoutMs: 10_000 });
      setTimeout(() => controller.abort(), 150);
      await pending;
      const [call] = await fake.waitForCalls(1, { model: 'm-slower', where: (c) => c.aborted, timeoutMs: 5000 });
      assert.equal(call.status, 200, 'headers were out before the abort');
    });

    it('follows scripts, defaults and latency, and counts calls', async () => {
      fake.setBehaviour('m-script', {
        script: [{ kind: 'ok', content: 'first' }, { kind: 'error', status: 503 }],
        default: { kind: 'ok', content: 'later' },
      });
      const outcomes: string[] = [];
      for (let i = 0; i < 4; i++) {
        outcomes.push(await client.ask({ model: 'm-script', text: 'q' }).then((r) => r.text ?? '', (e) => `status ${statusOf(e)}`));
      }
      assert.deepEqual(outcomes, ['first', 'status 503', 'later', 'later']);
      assert.deepEqual(
        fake.calls('m-script').map((c) => c.step),
        ['ok', 'error', 'ok', 'ok'],
      );
      assert.ok(fake.calls().length >= 4);

      fake.resetCalls();
      assert.equal(fake.calls().length, 0);
      assert.equal((await client.ask({ model: 'm-script', text: 'q' })).text, 'first', 'resetCalls restarts scripts');

      // Measured inside the fake (its own start and end of each call), 400 ms apart, so that a busy
      // machine's delays cannot blur a 0 ms step into the model's latency.
      fake.setBehaviour('m-slowish', { latency: { baseMs: 400 }, script: [{ kind: 'ok', latencyMs: 0 }] });
      await client.ask({ model: 'm-slowish', text: 'q' });
      await client.ask({ model: 'm-slowish', text: 'q' });
      const [zero, slow] = fake.calls('m-slowish').map((c) => c.endedAt! - c.startedAt);
      assert.ok(zero < 200, `a step's latencyMs overrides the model's latency: ${zero} ms`);
      assert.ok(slow >= 395, `then the model's latency: ${slow} ms`);

      fake.setBehaviour('m-own', { default: { kind: 'ok', content: 'own' } });
      fake.setBehaviour('*', { script: [{ kind: 'error', status: 500 }] });
      try {
        assert.equal(statusOf(await failure(client.ask({ model: 'm-anything', text: 'q' }))), 500);
        assert.equal((await client.ask({ model: 'm-other', text: 'q' })).text, '[m-other] q', "the '*' script is shared");
        assert.equal((await client.ask({ model: 'm-own', text: 'q' })).text, 'own', "a model's own behaviour beats '*'");
      } finally {
        fake.setBehaviour('*', {});
      }
    });

    it('translates tool calls', async () => {
      const offered = await client.ask({ model: 'm-tool', text: 'use tool please', tools: 'offer' });
      assert.deepEqual(offered.toolCall, { name: 'lookup', args: { echo: 'use tool please' } });
      assert.equal(offered.finish, client.finish.tool);

      const forced = await client.ask({ model: 'm-tool', text: 'what time is it', tools: 'force' });
      assert.deepEqual(forced.toolCall, { name: 'second', args: { echo: 'what time is it' } });
      assert.equal(forced.finish, client.finish.tool);

      const plain = await client.ask({ model: 'm-tool', text: 'just talk', tools: 'offer' });
      assert.equal(plain.toolCall, undefined);
      assert.equal(plain.text, '[m-tool] just talk');
    });

    it('truncates to the token limit', async () => {
      const r = await client.ask({ model: 'm-len', text: 'a rather long question', maxTokens: 2 });
      assert.equal(r.text, '[m-len] a rather long question'.slice(0, 8));
      assert.equal(r.finish, client.finish.length);
    });

    it('streams the answer in chunks at the scripted pace, with usage', async () => {
      fake.setBehaviour('m-stream', { default: { kind: 'ok', content: 'the quick brown fox jumps' }, stream: { chunks: 5, chunkDelayMs: 60 } });
      const r = await client.stream({ model: 'm-stream', text: 'q' });
      assert.equal(r.error, undefined, String(r.error));
      assert.deepEqual(r.pieces, ['the q', 'uick ', 'brown', ' fox ', 'jumps']);
      assert.equal(r.finish, client.finish.stop);
      assert.equal(r.outputTokens, tokens('the quick brown fox jumps'));
      const [call] = fake.calls('m-stream');
      assert.equal(call.stream, true);
      assert.equal(call.chunksSent, 5);
      // Four gaps of 60 ms, measured by the fake itself.
      assert.ok(call.endedAt! - call.startedAt >= 235, `${call.endedAt! - call.startedAt} ms`);

      fake.setBehaviour('m-words', { default: { kind: 'ok', content: 'one two three' } });
      assert.deepEqual((await client.stream({ model: 'm-words', text: 'q' })).pieces, ['one ', 'two ', 'three'], 'one chunk per word by default');
    });

    it('streams a tool call', async () => {
      const r = await client.stream({ model: 'm-stool', text: 'use tool now', tools: 'offer' });
      assert.equal(r.error, undefined, String(r.error));
      assert.deepEqual(r.toolCall, { name: 'lookup', args: { echo: 'use tool now' } });
      assert.equal(r.finish, client.finish.tool);
      if (type !== 'gemini') assert.ok(r.pieces.length > 1, 'the arguments arrive in pieces');
    });

    it('fails a streamed call before its first chunk with an HTTP error', async () => {
      fake.setBehaviour('m-s503', { script: [{ kind: 'error', status: 503 }] });
      const r = await client.stream({ model: 'm-s503', text: 'q' });
      assert.equal(statusOf(r.error), 503);
      assert.deepEqual(r.pieces, []);
    });

    it('breaks a stream after K chunks: an error event, a reset, a stall', async () => {
      const content = 'one two three four five six';
      fake.setBehaviour('m-serr', { default: { kind: 'stream-break', afterChunks: 2, how: 'error', status: 503, content } });
      const errored = await client.stream({ model: 'm-serr', text: 'q' });
      assert.deepEqual(errored.pieces, ['one ', 'two ']);
      if (type === 'gemini') assert.equal(statusOf(errored.error), 503);
      else assert.ok(errored.error instanceof (type === 'openai' ? OpenAI.APIError : Anthropic.APIError), String(errored.error));

      fake.setBehaviour('m-sreset', { default: { kind: 'stream-break', afterChunks: 3, how: 'reset', content } });
      const reset = await client.stream({ model: 'm-sreset', text: 'q' });
      assert.deepEqual(reset.pieces, ['one ', 'two ', 'three ']);
      assert.match(String((reset.error as Error)?.message ?? reset.error), /terminated|other side closed|ECONNRESET|socket/i);

      fake.setBehaviour('m-sstall', { default: { kind: 'stream-break', afterChunks: 1, how: 'stall', content } });
      // The client gives up once it has the one chunk: nothing else comes.
      const controller = new AbortController();
      const stalled = await client.stream({ model: 'm-sstall', text: 'q', signal: controller.signal, onPiece: () => setTimeout(() => controller.abort(), 300) });
      assert.deepEqual(stalled.pieces, ['one ']);
      const [call] = await fake.waitForCalls(1, { model: 'm-sstall', where: (c) => c.aborted, timeoutMs: 5_000 });
      assert.equal(call.chunksSent, 1);
    });

    it('continues an answer it is asked to continue', async () => {
      fake.setBehaviour('m-cont', { default: { kind: 'ok', content: 'alpha beta gamma' } });
      const body = { openai: { model: 'm-cont', messages: [{ role: 'user', content: 'q' }, { role: 'assistant', content: 'alpha ' }] } }[type as 'openai'];
      if (body) {
        const r = await new OpenAI({ apiKey: 'k', baseURL: fake.url, maxRetries: 0 }).chat.completions.create(body as never);
        assert.equal((r as OpenAI.ChatCompletion).choices[0].message.content, 'beta gamma');
      } else if (type === 'anthropic') {
        const r = await new Anthropic({ apiKey: 'k', baseURL: fake.url, maxRetries: 0 }).messages.create({
          model: 'm-cont',
          max_tokens: 100,
          messages: [{ role: 'user', content: 'q' }, { role: 'assistant', content: 'alpha' }],
        });
        assert.equal(r.content[0].type === 'text' && r.content[0].text, ' beta gamma');
      } else {
        const r = await new GoogleGenAI({ apiKey: 'k', httpOptions: { baseUrl: fake.url } }).models.generateContent({
          model: 'm-cont',
          contents: [{ role: 'user', parts: [{ text: 'q' }] }, { role: 'model', parts: [{ text: 'alpha ' }] }, { role: 'user', parts: [{ text: 'go on' }] }],
        });
        assert.equal(r.text, 'beta gamma');
      }
    });

    it('is steered through the control surface', async () => {
      const put = (model: string, body: unknown) =>
        fetch(`${origin(fake)}/__fake/models/${encodeURIComponent(model)}`, { method: 'PUT', body: JSON.stringify(body) });
      assert.equal((await put('m-ctl', { script: [{ kind: 'error', status: 503 }] })).status, 204);
      assert.equal(statusOf(await failure(client.ask({ model: 'm-ctl', text: 'q' }))), 503);

      const listed = await fetch(`${origin(fake)}/__fake/calls?model=m-ctl`);
      assert.equal(listed.status, 200);
      const calls = (await listed.json()) as Array<Record<string, unknown>>;
      assert.equal(calls.length, 1);
      assert.equal(calls[0].model, 'm-ctl');
      assert.equal(calls[0].status, 503);
      assert.equal('request' in calls[0], false);

      const rejected = await put('m-ctl', { script: [{ kind: 'explode' }] });
      assert.equal(rejected.status, 400);
      assert.match(((await rejected.json()) as { error: string }).error, /kind/);
      assert.equal((await put('m-ctl', { latency: { baseMs: 1 }, extra: true })).status, 400);

      assert.equal((await fetch(`${origin(fake)}/__fake/calls`, { method: 'DELETE' })).status, 204);
      assert.equal(fake.calls().length, 0);
      const none = (await (await fetch(`${origin(fake)}/__fake/calls`)).json()) as unknown[];
      assert.deepEqual(none, []);
    });

    it('rejects a body that is not JSON with a provider-shaped 400', async () => {
      const path = { openai: '/v1/chat/completions', anthropic: '/v1/messages', gemini: '/v1beta/models/m-raw:generateContent' }[type];
      const res = await fetch(`${origin(fake)}${path}`, { method: 'POST', body: '{nope', headers: { 'content-type': 'application/json' } });
      assert.equal(res.status, 400);
      const body = (await res.json()) as { error: Record<string, unknown> };
      if (type === 'openai') assert.equal(body.error.type, 'invalid_request_error');
      if (type === 'anthropic') assert.deepEqual(Object.keys(body), ['type', 'error']);
      if (type === 'gemini') assert.equal(body.error.status, 'INVALID_ARGUMENT');
      const call = fake.calls().at(-1)!;
      assert.equal(call.status, 400);
      assert.equal(call.authorized, false);
    });

    it('enforces requireApiKey', async () => {
      const guarded = await startFakeProvider({ type, requireApiKey: 'right-key' });
      try {
        const e = await failure(CLIENTS[type](guarded, 'wrong-key').ask({ model: 'm-auth', text: 'q' }));
        assert.equal(statusOf(e), 401);
        assert.equal((await CLIENTS[type](guarded, 'right-key').ask({ model: 'm-auth', text: 'q' })).text, '[m-auth] q');
        assert.deepEqual(
          guarded.calls().map((c) => [c.authorized, c.status]),
          [
            [false, 401],
            [true, 200],
          ],
        );
      } finally {
        await guarded.close();
      }
    });

    it('closes promptly with a call still hanging', async () => {
      const doomed = await startFakeProvider({ type, behaviours: { '*': { default: { kind: 'hang' } } } });
      const pending = failure(CLIENTS[type](doomed, 'k').ask({ model: 'm-doomed', text: 'q' }));
      await doomed.waitForCalls(1);
      const started = Date.now();
      await doomed.close();
      assert.ok(client.isConnectionError(await pending));
      assert.ok(Date.now() - started < 500);
      assert.equal(doomed.calls()[0].aborted, false, 'our own shutdown is not a client abort');
    });
  });
}

describe('provider-specific wire details', () => {
  it('openai: n choices, stop sequences and the model list', async () => {
    const fake = await startFakeProvider({ type: 'openai', behaviours: { 'gpt-listed': {} } });
    try {
      const client = new OpenAI({ apiKey: 'k', baseURL: fake.url, maxRetries: 0 });
      const r = await client.chat.completions.create({
        model: 'gpt-n',
        n: 2,
        stop: ['world'],
        messages: [{ role: 'user', content: [{ type: 'text', text: 'hello world' }] }],
      });
      assert.deepEqual(
        r.choices.map((c) => [c.index, c.message.content, c.finish_reason]),
        [
          [0, '[gpt-n] hello ', 'stop'],
          [1, '[gpt-n] hello ', 'stop'],
        ],
      );
      assert.equal(r.object, 'chat.completion');
      assert.equal(r.usage?.total_tokens, r.usage!.prompt_tokens + r.usage!.completion_tokens);
      const ids = [];
      for await (const m of client.models.list()) ids.push(m.id);
      assert.deepEqual(ids.sort(), ['gpt-listed', 'gpt-n']);
    } finally {
      await fake.close();
    }
  });

  it('anthropic: max_tokens is required, stop_sequence is reported, x-api-key is accepted', async () => {
    const fake = await startFakeProvider({ type: 'anthropic', requireApiKey: 'k' });
    try {
      const post = (body: unknown) =>
        fetch(`${fake.url}/v1/messages`, {
          method: 'POST',
          headers: { 'x-api-key': 'k', 'anthropic-version': '2023-06-01', 'content-type': 'application/json' },
          body: JSON.stringify(body),
        });
      const missing = await post({ model: 'c', messages: [{ role: 'user', content: 'q' }] });
      assert.equal(missing.status, 400);
      assert.equal(((await missing.json()) as { error: { type: string } }).error.type, 'invalid_request_error');
      const ok = await post({ model: 'c', max_tokens: 50, stop_sequences: ['q'], messages: [{ role: 'user', content: 'a q b' }] });
      const message = (await ok.json()) as { stop_reason: string; stop_sequence: string; content: Array<{ text: string }> };
      assert.equal(message.stop_reason, 'stop_sequence');
      assert.equal(message.stop_sequence, 'q');
      assert.equal(message.content[0].text, '[c] a ');
      assert.ok(ok.headers.get('request-id'));
    } finally {
      await fake.close();
    }
  });

  it('gemini: models/ prefix, key query parameter and candidateCount', async () => {
    const fake = await startFakeProvider({ type: 'gemini', requireApiKey: 'k' });
    try {
      const client = new GoogleGenAI({ apiKey: 'k', httpOptions: { baseUrl: fake.url } });
      const r = await client.models.generateContent({ model: 'models/gem-x', contents: 'hi', config: { candidateCount: 2 } });
      assert.deepEqual(
        r.candidates?.map((c) => c.content?.parts?.[0]?.text),
        ['[gem-x] hi', '[gem-x] hi'],
      );
      assert.equal(r.modelVersion, 'gem-x');
      assert.equal(fake.calls()[0].model, 'gem-x');
      const byQuery = await fetch(`${fake.url}/v1beta/models/gem-y:generateContent?key=k`, {
        method: 'POST',
        body: JSON.stringify({ contents: [{ role: 'user', parts: [{ text: 'yo' }] }] }),
      });
      assert.equal(byQuery.status, 200);
      const stream = await fetch(`${fake.url}/v1beta/models/gem-y:streamGenerateContent?alt=sse&key=k`, {
        method: 'POST',
        body: JSON.stringify({ contents: [{ parts: [{ text: 'yo' }] }] }),
      });
      assert.equal(stream.headers.get('content-type'), 'text/event-stream');
      assert.match(await stream.text(), /^data: \{"candidates".*\r\n\r\n$/s, 'events end in CRLF CRLF, as the real API sends them');
    } finally {
      await fake.close();
    }
  });
});

describe('latency sampling', () => {
  it('adds jitter and multiplies stragglers', () => {
    const latency = { baseMs: 100, jitterMs: 50, stragglerShare: 0.1, stragglerFactor: 5 };
    assert.equal(sampleLatency(latency, () => 0.5), 125);
    const draws = [0.5, 0.05];
    assert.equal(sampleLatency(latency, () => draws.shift()!), 625);
    assert.equal(sampleLatency(undefined), 0);
  });
});

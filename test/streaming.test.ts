// Streamed chat completions (docs/STREAMING.md), with the official `openai` Node SDK as the client
// and fake providers that stream in all three wire formats. What is asserted is what a client sees
// (chunks, errors the SDK raises, headers) and what Keel records (the attempt log, the request's
// history); timings state their tolerance.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import proto from '@temporalio/proto';
import OpenAI from 'openai';
import { Stream } from 'openai/streaming';
import type { ChatCompletionChunk } from 'openai/resources/chat/completions';
import { startFakeProvider, type FakeProvider } from '../dev/fakes/index.js';
import { callJson, settledRequest, until, type Json } from './helpers/http.js';
import { contentOf, readSse, sseEvents } from './helpers/sse.js';
import { startKeel, startTemporal, type KeelUnderTest } from './helpers/temporal.js';

const EventType = proto.temporal.api.enums.v1.EventType;

let env: TestWorkflowEnvironment;
let keel: KeelUnderTest;
let apiOnly: KeelUnderTest;
let a: FakeProvider;
let b: FakeProvider;
let g: FakeProvider;
let client: OpenAI;

const TEXT = 'The quick brown fox jumps over the lazy dog and runs far away';

const yaml = () => `
defaults:
  retry: { maxAttempts: 2, initialIntervalMs: 50, backoffCoefficient: 2, maximumIntervalMs: 100, jitter: 0 }
  timeouts: { attemptMs: 10000, requestMs: 30000 }
  stream: { idleTimeoutMs: 5000 }
streaming: { retentionMs: 60000, bufferBytes: 1048576 }
providers:
  a: { type: openai, baseURL: ${a.url}, models: { m: { pricing: { input: 1, output: 2 } } } }
  b: { type: anthropic, baseURL: ${b.url} }
  g: { type: gemini, baseURL: ${g.url} }
  limited: { type: openai, baseURL: ${a.url}, rateLimitPerSecond: 4 }
models:
  oa: { targets: [a/m] }
  an: { targets: [b/m] }
  ge: { targets: [g/m] }
  paced: { targets: [a/paced] }
  tools: { targets: [a/tools] }
  fallback: { targets: [a/fb, b/fb] }
  reset: { targets: [a/reset, b/reset] }
  stall: { targets: [a/stall, b/stall], stream: { idleTimeoutMs: 700 } }
  errored: { targets: [b/err, a/err] }
  recover: { targets: [a/rec, b/rec], stream: { recovery: continue } }
  recover-oa: { targets: [b/rec2, a/rec2], stream: { recovery: continue } }
  race: { targets: [a/slow, b/quick], mode: race }
  hedge: { targets: [a/hslow, b/hquick], mode: hedge, hedge: { delayMs: 300, maxShare: 1 } }
  long: { targets: [a/long] }
  bad: { targets: [a/bad, b/bad] }
  limited: { targets: [limited/lim] }
`;

before(async () => {
  env = await startTemporal();
  [a, b, g] = await Promise.all([startFakeProvider({ type: 'openai' }), startFakeProvider({ type: 'anthropic' }), startFakeProvider({ type: 'gemini' })]);
  for (const fake of [a, b, g]) fake.setBehaviour('m', { default: { kind: 'ok', content: TEXT }, stream: { chunkDelayMs: 5 } });
  keel = await startKeel(env, yaml());
  apiOnly = await startKeel(env, yaml(), { shared: false });
  client = new OpenAI({ baseURL: `${keel.url}/v1`, apiKey: 'unused', maxRetries: 0 });
});

after(async () => {
  await apiOnly?.stop();
  await keel?.stop();
  await Promise.all([a?.close(), b?.close(), g?.close()]);
  await env?.teardown();
});

const ask = (model: string, extra: Partial<OpenAI.ChatCompletionCreateParamsStreaming> = {}) =>
  client.chat.completions.create({ model, stream: true, stream_options: { include_usage: true }, messages: [{ role: 'user', content: 'Hello' }], ...extra }).withResponse();

interface Collected {
  chunks: ChatCompletionChunk[];
  text: string;
  error?: unknown;
  headers: Headers;
}

async function collect(model: string, extra: Partial<OpenAI.ChatCompletionCreateParamsStreaming> = {}): Promise<Collected> {
  const { data, response } = await ask(model, extra);
  const chunks: ChatCompletionChunk[] = [];
  try {
    for await (const c of data) chunks.push(c);
    return { chunks, text: chunks.map((c) => c.choices[0]?.delta.content ?? '').join(''), headers: response.headers };
  } catch (error) {
    return { chunks, text: chunks.map((c) => c.choices[0]?.delta.content ?? '').join(''), error, headers: response.headers };
  }
}

/** POST /v1/chat/completions with stream: true, read as raw SSE. */
async function rawStream(model: string, body: Record<string, unknown> = {}, signal?: AbortSignal): Promise<Response> {
  return fetch(`${keel.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model, stream: true, messages: [{ role: 'user', content: 'Hello' }], ...body }),
    ...(signal && { signal }),
  });
}

async function history(id: string) {
  const handle = env.client.workflow.getHandle(id);
  await handle.result().catch(() => undefined);
  return (await handle.fetchHistory()).events ?? [];
}

describe("OpenAI's streaming format", () => {
  for (const [model, type] of [
    ['oa', 'openai'],
    ['an', 'anthropic'],
    ['ge', 'gemini'],
  ] as const) {
    test(`a ${type} provider's stream reaches the SDK as chat.completion.chunks`, async () => {
      const r = await collect(model);
      assert.equal(r.error, undefined, String(r.error));
      assert.equal(r.text, TEXT);
      const content = r.chunks.filter((c) => c.choices[0]?.delta.content);
      assert.ok(content.length > 5, `${content.length} content chunks: the answer came in pieces`);
      assert.equal(r.chunks[0].object, 'chat.completion.chunk');
      assert.equal(r.chunks[0].choices[0].delta.role, 'assistant');
      assert.ok(r.chunks.every((c) => c.id === r.chunks[0].id), 'one id for the stream');
      const finish = r.chunks.filter((c) => c.choices[0]?.finish_reason);
      assert.deepEqual(finish.map((c) => c.choices[0].finish_reason), ['stop']);
      const last = r.chunks.at(-1)!;
      assert.deepEqual(last.choices, []);
      assert.ok(last.usage && last.usage.completion_tokens > 0, 'usage in the last chunk');
      if (type === 'openai') assert.equal((last.usage as { cost?: number }).cost, (last.usage.prompt_tokens * 1 + last.usage.completion_tokens * 2) / 1e6);
      const id = r.headers.get('x-request-id')!;
      assert.match(id, /^req-/);
      assert.equal(r.headers.get('x-keel-provider'), model === 'oa' ? 'a' : model === 'an' ? 'b' : 'g');
      assert.ok(r.headers.get('x-keel-ui-url')?.endsWith(id));
      assert.equal(r.headers.get('x-keel-stream'), 'live');
      // The request is a workflow like any other: its record holds the assembled answer.
      const view = await settledRequest(keel.url, id);
      assert.equal(view.status, 'succeeded');
      assert.equal(view.result.choices[0].message.content, TEXT);
      assert.equal(view.attempts.length, 1);
      assert.equal(view.attempts[0].stream.chunks, content.length);
      assert.equal(view.attempts[0].stream.chars, TEXT.length);
    });
  }

  test('tool calls stream as OpenAI tool-call deltas, which the SDK assembles', async () => {
    for (const model of ['oa', 'an', 'ge']) {
      const stream = client.chat.completions.stream({
        model,
        messages: [{ role: 'user', content: 'use tool please' }],
        tools: [{ type: 'function', function: { name: 'lookup', parameters: { type: 'object', properties: { echo: { type: 'string' } } } } }],
      });
      const final = await stream.finalChatCompletion();
      const call = final.choices[0].message.tool_calls?.[0];
      assert.ok(call?.type === 'function', model);
      assert.equal(call.function.name, 'lookup');
      assert.deepEqual(JSON.parse(call.function.arguments), { echo: 'use tool please' });
      assert.equal(final.choices[0].finish_reason, 'tool_calls', model);
    }
  });

  test('on the wire: an id per chunk from 1, then [DONE]; chunks arrive as the provider sends them', async () => {
    a.setBehaviour('paced', { default: { kind: 'ok', content: TEXT }, stream: { chunks: 10, chunkDelayMs: 60 } });
    const res = await rawStream('paced');
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type')!, /^text\/event-stream/);
    const { events, error } = await readSse(res);
    assert.equal(error, undefined);
    assert.equal(events.at(-1)!.data, '[DONE]');
    const chunks = events.slice(0, -1);
    assert.deepEqual(
      chunks.map((e) => e.id),
      chunks.map((_, i) => String(i + 1)),
    );
    assert.equal(contentOf(events), TEXT);
    // Nine gaps of 60 ms at the provider: the content chunks reach the client spread over (nearly) as long.
    const content = chunks.filter((e) => (JSON.parse(e.data) as ChatCompletionChunk).choices[0]?.delta.content);
    const span = content.at(-1)!.at - content[0].at;
    assert.ok(span >= 9 * 60 * 0.6, `content chunks arrived over ${span.toFixed(0)} ms: batched, not streamed`);
  });

  test('a request that fails before its first chunk is an ordinary HTTP error', async () => {
    a.setBehaviour('bad', { default: { kind: 'error', status: 400, message: 'no such thing' } });
    await assert.rejects(ask('bad'), (err: unknown) => {
      assert.ok(err instanceof OpenAI.BadRequestError, String(err));
      assert.match(err.message, /no such thing/);
      return true;
    });
    assert.equal(b.calls('bad').length, 0, 'the client’s own error falls back to no one');
  });

  test('what cannot be streamed yet is refused, not dropped', async () => {
    const { res, json } = await callJson(keel.url, 'POST', '/v1/chat/completions', { model: 'oa', stream: true, logprobs: true, messages: [{ role: 'user', content: 'x' }] });
    assert.equal(res.status, 400);
    assert.equal(json.error.param, 'logprobs');
  });

  test('thousands of tokens are not thousands of history events', async () => {
    const long = Array.from({ length: 300 }, (_, i) => `w${i}`).join(' ');
    a.setBehaviour('long', { default: { kind: 'ok', content: long } });
    const r = await collect('long');
    assert.equal(r.text, long);
    const events = await history(r.headers.get('x-request-id')!);
    assert.ok(events.length < 20, `${events.length} history events for 300 chunks`);
    const result = (await env.client.workflow.getHandle(r.headers.get('x-request-id')!).result()) as Json;
    assert.equal(result.stream.layout.length, 300, 'the chunk boundaries are recorded with the answer');
  });
});

describe('where streamed calls run', () => {
  test("a rate-limited provider keeps its limit: streamed calls wait for the worker's share of the window", async () => {
    a.setBehaviour('lim', { default: { kind: 'ok', content: 'short answer' } });
    // Connections to the provider opened first: a cold connect delays a request's arrival past the window's guard.
    await Promise.all(Array.from({ length: 4 }, () => collect('limited')));
    await new Promise((r) => setTimeout(r, 1100));
    a.resetCalls();
    const answers = await Promise.all(Array.from({ length: 10 }, () => collect('limited')));
    assert.ok(answers.every((r) => r.text === 'short answer'));
    const starts = a.calls('lim').map((c) => c.startedAt).sort((x, y) => x - y);
    assert.equal(starts.length, 10);
    // At most R calls in any second at the provider, and R + 1 at worst (docs/ROUTING.md: the window's guard).
    const most = Math.max(...starts.map((t) => starts.filter((u) => u >= t && u < t + 1000).length));
    assert.ok(most <= 5, `${most} calls within one second (limit 4)`);
    assert.ok(starts.at(-1)! - starts[0] >= 1900, `10 calls at 4 a second took ${starts.at(-1)! - starts[0]} ms`);
  });
});

describe('before the first token, failure is invisible', () => {
  test('retries and a fallback: the client sees one clean stream from the target that answered', async () => {
    a.setBehaviour('fb', { default: { kind: 'error', status: 503 } });
    b.setBehaviour('fb', { default: { kind: 'ok', content: TEXT } });
    const r = await collect('fallback');
    assert.equal(r.error, undefined, String(r.error));
    assert.equal(r.text, TEXT);
    assert.equal(r.headers.get('x-keel-provider'), 'b');
    assert.equal(r.chunks.filter((c) => c.choices[0]?.delta.role).length, 1, 'one role chunk: one answer');
    const view = await settledRequest(keel.url, r.headers.get('x-request-id')!);
    assert.deepEqual(
      view.attempts.map((x: Json) => `${x.target}:${x.outcome}`),
      ['a/fb:error', 'a/fb:error', 'b/fb:success'],
    );
  });

  test("Retry-After is honoured before the first token", async () => {
    a.setBehaviour('m-ra', { script: [{ kind: 'error', status: 429, retryAfterMs: 300 }], default: { kind: 'ok', content: TEXT } });
    const started = Date.now();
    const r = await collect('a/m-ra');
    assert.equal(r.text, TEXT);
    const calls = a.calls('m-ra');
    assert.equal(calls.length, 2);
    assert.ok(calls[1].startedAt - calls[0].startedAt >= 280, `retried after ${calls[1].startedAt - calls[0].startedAt} ms`);
    assert.ok(Date.now() - started >= 280);
  });

  test('race: the first target to produce a token wins; the other is aborted on the wire', async () => {
    a.setBehaviour('slow', { default: { kind: 'ok', content: TEXT, latencyMs: 3000 } });
    b.setBehaviour('quick', { default: { kind: 'ok', content: TEXT }, stream: { chunkDelayMs: 20 } });
    const r = await collect('race');
    assert.equal(r.text, TEXT);
    assert.equal(r.headers.get('x-keel-provider'), 'b');
    const [slow] = await a.waitForCalls(1, { model: 'slow', where: (c) => c.aborted, timeoutMs: 5_000 });
    const [quick] = b.calls('quick');
    assert.ok(slow.abortedAt! - quick.startedAt < 2_500, `the loser was aborted ${slow.abortedAt! - quick.startedAt} ms after the winner started`);
    const view = await settledRequest(keel.url, r.headers.get('x-request-id')!);
    const loser = view.attempts.find((x: Json) => x.target === 'a/slow');
    assert.equal(loser?.outcome, 'cancelled');
  });

  test('hedge: the hedged target streams first and wins; the calls ran on this process’s own queue', async () => {
    a.setBehaviour('hslow', { default: { kind: 'ok', content: TEXT, latencyMs: 4000 } });
    b.setBehaviour('hquick', { default: { kind: 'ok', content: TEXT } });
    const r = await collect('hedge');
    assert.equal(r.text, TEXT);
    assert.equal(r.headers.get('x-keel-provider'), 'b');
    await a.waitForCalls(1, { model: 'hslow', where: (c) => c.aborted, timeoutMs: 5_000 });
    const events = await history(r.headers.get('x-request-id')!);
    const queues = events.filter((e) => e.eventType === EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED).map((e) => e.activityTaskScheduledEventAttributes!.taskQueue!.name);
    assert.deepEqual(queues, [`${keel.config.taskQueue}-process`, `${keel.config.taskQueue}-process`]);
    assert.ok(events.some((e) => e.eventType === EventType.EVENT_TYPE_TIMER_FIRED), 'the hedge timer fired while the first call streamed');
  });
});

describe('after the first token, failure is never silent', () => {
  test('a connection reset mid-stream: an error event the SDK raises, no [DONE], no finish_reason, no fallback', async () => {
    a.setBehaviour('reset', { default: { kind: 'stream-break', afterChunks: 4, how: 'reset', content: TEXT } });
    b.setBehaviour('reset', { default: { kind: 'ok', content: 'never this' } });
    const r = await collect('reset');
    assert.ok(r.error instanceof OpenAI.APIError, `expected APIError, got ${String(r.error)}`);
    assert.equal((r.error as InstanceType<typeof OpenAI.APIError>).code, 'stream_interrupted');
    assert.equal(r.text, 'The quick brown fox ');
    assert.ok(r.chunks.every((c) => !c.choices[0]?.finish_reason), 'no finish_reason');
    assert.equal(b.calls('reset').length, 0, 'no second answer after part of the first');

    const raw = await readSse(await rawStream('reset'));
    assert.ok(!raw.events.some((e) => e.data === '[DONE]'), 'no [DONE]');
    const last = JSON.parse(raw.events.at(-1)!.data) as Json;
    assert.equal(last.error.code, 'stream_interrupted');
    assert.match(last.error.message, /after 4 chunk/);

    const view = await settledRequest(keel.url, r.headers.get('x-request-id')!);
    assert.equal(view.status, 'failed');
    assert.equal(view.error.code, 'stream_interrupted');
    const attempt = view.attempts.at(-1);
    assert.equal(attempt.errorClass, 'stream_interrupted');
    assert.deepEqual(attempt.stream, { chunks: 4, chars: 'The quick brown fox '.length });
    assert.match(attempt.message, /unreachable/);
  });

  test('a stall: nothing for keel.stream_idle_timeout_ms ends the stream with an error event; the provider call is aborted', async () => {
    a.setBehaviour('stall', { default: { kind: 'stream-break', afterChunks: 2, how: 'stall', content: TEXT } });
    const started = Date.now();
    const r = await collect('stall');
    assert.ok(r.error instanceof OpenAI.APIError, String(r.error));
    assert.equal(r.text, 'The quick ');
    assert.ok(Date.now() - started >= 650, 'not before the idle timeout (700 ms)');
    await a.waitForCalls(1, { model: 'stall', where: (c) => c.aborted, timeoutMs: 5_000 });
    const view = await settledRequest(keel.url, r.headers.get('x-request-id')!);
    assert.match(view.attempts.at(-1).message, /\(timeout\).*stalled/);

    // The request's own setting wins over the model's.
    const quick = Date.now();
    const r2 = await collect('stall', { keel: { stream_idle_timeout_ms: 200 } } as never);
    assert.ok(r2.error instanceof OpenAI.APIError);
    assert.ok(Date.now() - quick < 650 + 2_000, 'the request set a shorter limit');
  });

  test("a provider's error event mid-stream ends the stream with an error event", async () => {
    b.setBehaviour('err', { default: { kind: 'stream-break', afterChunks: 3, how: 'error', status: 529, code: 'overloaded_error', content: TEXT } });
    const r = await collect('errored');
    assert.ok(r.error instanceof OpenAI.APIError, String(r.error));
    assert.equal(r.text, 'The quick brown ');
    assert.equal(a.calls('err').length, 0);
    const view = await settledRequest(keel.url, r.headers.get('x-request-id')!);
    assert.match(view.attempts.at(-1).message, /\(unavailable\).*overloaded_error/);
  });

  test('stream_recovery: continue — the next target continues the answer (an Anthropic prefix); the client gets one answer', async () => {
    a.setBehaviour('rec', { default: { kind: 'stream-break', afterChunks: 4, how: 'reset', content: TEXT } });
    b.setBehaviour('rec', { default: { kind: 'ok', content: TEXT } });
    const r = await collect('recover');
    assert.equal(r.error, undefined, String(r.error));
    assert.equal(r.text, TEXT);
    assert.equal(r.chunks.filter((c) => c.choices[0]?.delta.role).length, 1, 'one answer');
    assert.ok(r.chunks.every((c) => c.id === r.chunks[0].id));
    // The partial answer went to Anthropic as the assistant's prefix (without its trailing space).
    const sent = b.calls('rec')[0].request as { messages: { role: string; content: unknown }[] };
    assert.deepEqual(sent.messages.at(-1), { role: 'assistant', content: [{ type: 'text', text: 'The quick brown fox' }] });
    const view = await settledRequest(keel.url, r.headers.get('x-request-id')!);
    assert.equal(view.result.choices[0].message.content, TEXT);
    const [broke, continued] = view.attempts;
    assert.equal(broke.errorClass, 'stream_interrupted');
    assert.deepEqual(continued.stream.continuedAt, { chunks: 4, chars: 'The quick brown fox '.length }, 'the log says where the switch happened');
  });

  test('stream_recovery: continue on an OpenAI target: the partial answer and an instruction to continue it', async () => {
    b.setBehaviour('rec2', { default: { kind: 'stream-break', afterChunks: 3, how: 'error', status: 529, content: TEXT } });
    a.setBehaviour('rec2', { default: { kind: 'ok', content: TEXT } });
    const r = await collect('recover-oa');
    assert.equal(r.error, undefined, String(r.error));
    assert.equal(r.text, TEXT);
    const sent = a.calls('rec2')[0].request as { messages: { role: string; content: string }[] };
    assert.deepEqual(sent.messages.at(-2), { role: 'assistant', content: 'The quick brown ' });
    assert.equal(sent.messages.at(-1)!.role, 'user');
    assert.match(sent.messages.at(-1)!.content, /[Cc]ontinue/);
  });
});

describe('resumable streams', () => {
  test('a client that disconnects does not cancel the request; it resumes from after=N with no chunk lost or repeated', async () => {
    a.setBehaviour('resume', { default: { kind: 'ok', content: TEXT }, stream: { chunkDelayMs: 80 } });
    const controller = new AbortController();
    const res = await rawStream('a/resume', {}, controller.signal);
    const id = res.headers.get('x-request-id')!;
    const first: string[] = [];
    for await (const e of sseEvents(res)) {
      first.push(e.data);
      if (first.length === 4) break;
    }
    controller.abort();
    // Mid-answer, by sequence number, with the SDK's own SSE parser.
    const resumed = await fetch(`${keel.url}/v1/requests/${id}/stream?after=4`);
    assert.equal(resumed.status, 200);
    const rest: string[] = [];
    const ids: string[] = [];
    for await (const e of sseEvents(resumed)) {
      rest.push(e.data);
      if (e.id) ids.push(e.id);
    }
    assert.equal(rest.at(-1), '[DONE]');
    assert.equal(ids[0], '5');
    assert.equal(contentOf([...first, ...rest].map((data) => ({ data, at: 0 }))), TEXT);
    assert.equal((await settledRequest(keel.url, id)).status, 'succeeded', 'the request was not cancelled');

    // After the end: the whole answer, byte for byte the chunks the live stream sent; Last-Event-ID works too.
    const replay = await readSse(await fetch(`${keel.url}/v1/requests/${id}/stream`));
    assert.deepEqual(replay.events.map((e) => e.data).slice(0, 4), first);
    assert.deepEqual(replay.events.map((e) => e.data).slice(4), rest);
    const byHeader = await readSse(await fetch(`${keel.url}/v1/requests/${id}/stream`, { headers: { 'last-event-id': '6' } }));
    assert.deepEqual(byHeader.events.map((e) => e.data), rest.slice(2));
  });

  test('the SDK reads a followed stream, and a stream that failed ends with its error event there too', async () => {
    a.setBehaviour('f-reset', { default: { kind: 'stream-break', afterChunks: 2, how: 'reset', content: TEXT } });
    const failed = await collect('a/f-reset');
    const res = await fetch(`${keel.url}/v1/requests/${failed.headers.get('x-request-id')}/stream`);
    const chunks: ChatCompletionChunk[] = [];
    await assert.rejects(async () => {
      for await (const c of Stream.fromSSEResponse<ChatCompletionChunk>(res, new AbortController())) chunks.push(c);
    }, OpenAI.APIError);
    assert.equal(chunks.map((c) => c.choices[0]?.delta.content ?? '').join(''), 'The quick ');
  });

  test('POST /v1/requests with stream: true answers 202; the client follows the stream by id', async () => {
    a.setBehaviour('job', { default: { kind: 'ok', content: TEXT }, stream: { chunkDelayMs: 20 } });
    const { res, json } = await callJson(keel.url, 'POST', '/v1/requests', { model: 'a/job', stream: true, messages: [{ role: 'user', content: 'Hello' }] });
    assert.equal(res.status, 202);
    assert.equal(json.stream_url, `/v1/requests/${json.id}/stream`);
    const follow = await fetch(`${keel.url}${json.stream_url}`);
    const chunks: ChatCompletionChunk[] = [];
    for await (const c of Stream.fromSSEResponse<ChatCompletionChunk>(follow, new AbortController())) chunks.push(c);
    assert.equal(chunks.map((c) => c.choices[0]?.delta.content ?? '').join(''), TEXT);
    assert.equal(chunks.at(-1)!.choices[0].finish_reason, 'stop');
  });

  test('an API without the call in its process: the recorded answer, as the same stream', async () => {
    a.setBehaviour('elsewhere', { default: { kind: 'ok', content: TEXT } });
    // The stand-alone API (`npm run api`): a stream request runs as an ordinary request; its answer comes as a stream.
    const res = await fetch(`${apiOnly.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'a/elsewhere', stream: true, stream_options: { include_usage: true }, messages: [{ role: 'user', content: 'Hello' }] }),
    });
    assert.equal(res.headers.get('x-keel-stream'), 'recorded');
    const recorded = await readSse(res);
    assert.equal(contentOf(recorded.events), TEXT);
    assert.equal(recorded.events.at(-1)!.data, '[DONE]');
  });

  test('resuming through another API gives the same chunks as the live stream', async () => {
    a.setBehaviour('other-api', { default: { kind: 'ok', content: TEXT } });
    const res = await rawStream('a/other-api');
    const id = res.headers.get('x-request-id')!;
    const live = await readSse(res);
    const there = await readSse(await fetch(`${apiOnly.url}/v1/requests/${id}/stream?after=2`));
    assert.deepEqual(
      there.events.map((e) => e.data),
      live.events.slice(2).map((e) => e.data),
    );
  });

  test('bounds: a full buffer drops the oldest chunks, and a slow reader still gets every chunk, in order', async () => {
    const small = await startKeel(env, yaml().replace('bufferBytes: 1048576', 'bufferBytes: 2048').replace('retentionMs: 60000', 'retentionMs: 500'));
    try {
      const long = Array.from({ length: 200 }, (_, i) => `word${i}`).join(' ');
      a.setBehaviour('big', { default: { kind: 'ok', content: long } });
      const res = await fetch(`${small.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'a/big', stream: true, messages: [{ role: 'user', content: 'Hello' }] }),
      });
      const id = res.headers.get('x-request-id')!;
      // The client does not read until the whole answer has been produced.
      await until('the answer to be produced', async () => ((await callJson(small.url, 'GET', `/v1/requests/${id}`)).json.status === 'succeeded' ? true : undefined));
      assert.ok(small.streams!.heldBytes <= 2048, `${small.streams!.heldBytes} bytes held`);
      const { events } = await readSse(res);
      assert.equal(contentOf(events), long);
      const ids = events.filter((e) => e.id).map((e) => Number(e.id));
      assert.deepEqual(ids, ids.map((_, i) => i + 1));
      // Kept for the retention time after the end, then dropped: a resume then reads the record.
      await until('the stream to be dropped', () => (small.streams!.has(id) ? undefined : true), 15_000);
      assert.equal(contentOf((await readSse(await fetch(`${small.url}/v1/requests/${id}/stream?after=0`))).events), long);
    } finally {
      await small.stop();
    }
  });

  test('bad cursors and unknown requests', async () => {
    assert.equal((await fetch(`${keel.url}/v1/requests/req-nope/stream`)).status, 404);
    const r = await collect('oa');
    const id = r.headers.get('x-request-id');
    const bad = await fetch(`${keel.url}/v1/requests/${id}/stream?after=-1`);
    assert.equal(bad.status, 400);
    assert.equal(((await bad.json()) as Json).error.param, 'after');
  });
});

describe('virtual keys on the live stream', () => {
  test('a stream that breaks after its first token is charged what it streamed: not zero, never past its reservation', async () => {
    const admin = `keel-admin-${randomBytes(16).toString('hex')}`;
    // Input free, output $1 per million tokens: the charge is the streamed text at one token a byte.
    const keyed = await startKeel(
      env,
      `
auth:
  adminKey: \${KEEL_ADMIN_KEY}
defaults:
  retry: { maxAttempts: 1, initialIntervalMs: 50, backoffCoefficient: 2, maximumIntervalMs: 100, jitter: 0 }
providers:
  a: { type: openai, baseURL: ${a.url}, models: { cut: { pricing: { input: 0, output: 1 } } } }
models:
  cut: { targets: [a/cut] }
`,
      { env: { KEEL_ADMIN_KEY: admin } },
    );
    try {
      a.setBehaviour('cut', { default: { kind: 'stream-break', afterChunks: 5, how: 'reset', content: 'word '.repeat(400) } });
      const created = await callJson(keyed.url, 'POST', '/v1/keys', { budget: { usd: 0.01, period: 'total' } }, { authorization: `Bearer ${admin}` });
      assert.equal(created.res.status, 201, JSON.stringify(created.json));
      const sdk = new OpenAI({ baseURL: `${keyed.url}/v1`, apiKey: created.json.secret, maxRetries: 0 });
      const stream = await sdk.chat.completions.create({ model: 'cut', max_tokens: 1_000, stream: true, messages: [{ role: 'user', content: 'Hello' }] });
      let received = '';
      await assert.rejects(
        async () => {
          for await (const chunk of stream) received += chunk.choices[0]?.delta.content ?? '';
        },
        (err: unknown) => err instanceof OpenAI.APIError && (err.error as { code?: string } | undefined)?.code === 'stream_interrupted',
      );
      assert.ok(received.length > 0, 'the client had part of the answer');
      const view = await until('the broken stream to settle', async () => {
        const { json } = await callJson(keyed.url, 'GET', `/v1/keys/${created.json.id}`, undefined, { authorization: `Bearer ${admin}` });
        return json.spend?.requests === 1 && json.budget?.reserved_usd === 0 ? json : undefined;
      });
      assert.equal(view.budget.spent_usd, received.length / 1_000_000);
      assert.ok(view.budget.spent_usd > 0 && view.budget.spent_usd <= 0.001, 'within the $0.001 reserved');
    } finally {
      await keyed.stop();
    }
  });
});

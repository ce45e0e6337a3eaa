// Streamed chat completions with the official `openai` Python SDK as the client (docs/STREAMING.md):
// the same stream the Node SDK reads, and a broken stream raised as openai.APIError.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { startFakeProvider, type FakeProvider } from '../dev/fakes/index.js';
import { settledRequest } from './helpers/http.js';
import { ensurePythonOpenAI, pythonStream } from './helpers/python-openai.js';
import { startKeel, startTemporal, type KeelUnderTest } from './helpers/temporal.js';

let env: TestWorkflowEnvironment;
let keel: KeelUnderTest;
let a: FakeProvider;
let b: FakeProvider;
let g: FakeProvider;

const TEXT = 'The quick brown fox jumps over the lazy dog and runs far away';

before(async () => {
  await ensurePythonOpenAI();
  env = await startTemporal();
  [a, b, g] = await Promise.all([startFakeProvider({ type: 'openai' }), startFakeProvider({ type: 'anthropic' }), startFakeProvider({ type: 'gemini' })]);
  for (const fake of [a, b, g]) fake.setBehaviour('m', { default: { kind: 'ok', content: TEXT }, stream: { chunkDelayMs: 5 } });
  keel = await startKeel(
    env,
    `
defaults:
  retry: { maxAttempts: 2, initialIntervalMs: 50, backoffCoefficient: 2, maximumIntervalMs: 100, jitter: 0 }
providers:
  a: { type: openai, baseURL: ${a.url}, models: { m: { pricing: { input: 1, output: 2 } } } }
  b: { type: anthropic, baseURL: ${b.url} }
  g: { type: gemini, baseURL: ${g.url} }
models:
  oa: { targets: [a/m] }
  an: { targets: [b/m] }
  ge: { targets: [g/m] }
  fallback: { targets: [a/fb, g/fb] }
  reset: { targets: [b/reset, a/reset] }
  stall: { targets: [g/stall], stream: { idleTimeoutMs: 700 } }
  recover: { targets: [g/rec, a/rec], stream: { recovery: continue } }
  race: { targets: [a/slow, g/quick], mode: race }
`,
  );
}, { timeout: 900_000 });

after(async () => {
  await keel?.stop();
  await Promise.all([a?.close(), b?.close(), g?.close()]);
  await env?.teardown();
});

describe('the openai Python SDK', () => {
  for (const model of ['oa', 'an', 'ge']) {
    test(`streams ${model}: content, one role, finish_reason stop, usage last`, async () => {
      const r = await pythonStream({ baseURL: keel.url, model });
      assert.equal(r.error, undefined, JSON.stringify(r.error));
      assert.equal(r.text, TEXT);
      assert.equal(r.roles, 1);
      assert.deepEqual(r.finish, ['stop']);
      assert.ok(r.usage && r.usage.completion_tokens > 0);
      if (model === 'oa') assert.equal(r.usage.cost, (r.usage.prompt_tokens + 2 * r.usage.completion_tokens) / 1e6);
    });
  }

  test('streams a tool call', async () => {
    for (const model of ['oa', 'an', 'ge']) {
      const r = await pythonStream({ baseURL: keel.url, model, content: 'use tool now', tools: true });
      assert.equal(r.error, undefined, JSON.stringify(r.error));
      assert.equal(r.tool_call?.name, 'lookup', model);
      assert.deepEqual(JSON.parse(r.tool_call!.arguments), { echo: 'use tool now' });
      assert.deepEqual(r.finish, ['tool_calls']);
    }
  });

  test('a fallback before the first token: one clean stream', async () => {
    a.setBehaviour('fb', { default: { kind: 'error', status: 503 } });
    g.setBehaviour('fb', { default: { kind: 'ok', content: TEXT } });
    const r = await pythonStream({ baseURL: keel.url, model: 'fallback' });
    assert.equal(r.error, undefined, JSON.stringify(r.error));
    assert.equal(r.text, TEXT);
    assert.equal(r.roles, 1);
  });

  test('a race between two streaming targets: the first token wins', async () => {
    a.setBehaviour('slow', { default: { kind: 'ok', content: 'too late', latencyMs: 3000 } });
    g.setBehaviour('quick', { default: { kind: 'ok', content: TEXT } });
    const r = await pythonStream({ baseURL: keel.url, model: 'race' });
    assert.equal(r.text, TEXT);
    await a.waitForCalls(1, { model: 'slow', where: (c) => c.aborted, timeoutMs: 5_000 });
  });

  test('a reset mid-stream is raised as openai.APIError (not a clean end)', async () => {
    b.setBehaviour('reset', { default: { kind: 'stream-break', afterChunks: 3, how: 'reset', content: TEXT } });
    const r = await pythonStream({ baseURL: keel.url, model: 'reset' });
    assert.equal(r.error?.class, 'APIError');
    assert.equal(r.error?.api_error, true);
    assert.equal(r.error?.code, 'stream_interrupted');
    assert.equal(r.text, 'The quick brown ');
    assert.deepEqual(r.finish, []);
    assert.equal(a.calls('reset').length, 0);
    const view = await settledRequest(keel.url, r.request_id!);
    assert.equal(view.attempts[0].stream.chunks, 3);
  });

  test('a stall is raised as openai.APIError', async () => {
    g.setBehaviour('stall', { default: { kind: 'stream-break', afterChunks: 2, how: 'stall', content: TEXT } });
    const r = await pythonStream({ baseURL: keel.url, model: 'stall' });
    assert.equal(r.error?.api_error, true, JSON.stringify(r.error));
    assert.equal(r.text, 'The quick ');
  });

  test('continue recovery: one answer', async () => {
    g.setBehaviour('rec', { default: { kind: 'stream-break', afterChunks: 4, how: 'error', status: 503, content: TEXT } });
    a.setBehaviour('rec', { default: { kind: 'ok', content: TEXT } });
    const r = await pythonStream({ baseURL: keel.url, model: 'recover' });
    assert.equal(r.error, undefined, JSON.stringify(r.error));
    assert.equal(r.text, TEXT);
    assert.equal(r.roles, 1);
  });
});

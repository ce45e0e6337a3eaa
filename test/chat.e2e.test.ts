// End to end: the official openai client -> Keel's API -> a request workflow on a real Temporal
// dev server -> provider activity -> fake provider (OpenAI, Anthropic, Gemini wire formats).
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import OpenAI from 'openai';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { startFakeProvider, type FakeProvider } from '../dev/fakes/index.js';
import { recordedDescription, startKeel, startTemporal, type KeelUnderTest } from './helpers/temporal.js';
import { WORKFLOW_TYPES } from '../src/core/contract.js';

const KEYS = { ALPHA_KEY: 'alpha-test-secret-7f3a9', BETA_KEY: 'beta-test-secret-91c2', GAMMA_KEY: 'gamma-test-secret-55e1' };

let env: TestWorkflowEnvironment;
let keel: KeelUnderTest;
let alpha: FakeProvider;
let beta: FakeProvider;
let gamma: FakeProvider;
let client: OpenAI;

before(async () => {
  env = await startTemporal();
  alpha = await startFakeProvider({ type: 'openai', requireApiKey: KEYS.ALPHA_KEY });
  beta = await startFakeProvider({ type: 'anthropic', requireApiKey: KEYS.BETA_KEY });
  gamma = await startFakeProvider({ type: 'gemini', requireApiKey: KEYS.GAMMA_KEY });
  keel = await startKeel(
    env,
    `
server: { bodyLimitBytes: 20000 }
defaults:
  retry: { maxAttempts: 2, initialIntervalMs: 50, backoffCoefficient: 2, maximumIntervalMs: 200, jitter: 0 }
  timeouts: { attemptMs: 20000, requestMs: 30000 }
providers:
  alpha: { type: openai, baseURL: ${alpha.url}, apiKey: "\${ALPHA_KEY}" }
  beta: { type: anthropic, baseURL: ${beta.url}, apiKey: "\${BETA_KEY}" }
  gamma: { type: gemini, baseURL: ${gamma.url}, apiKey: "\${GAMMA_KEY}" }
  badkey: { type: openai, baseURL: ${alpha.url}, apiKey: wrong-key }
models:
  chat: { targets: [alpha/model-a, beta/model-b] }
  claude: { targets: [beta/model-b] }
  gem: { targets: [gamma/model-c] }
  slow: { targets: [alpha/slow], timeouts: { attemptMs: 300, requestMs: 1500 } }
`,
    { env: KEYS },
  );
  client = new OpenAI({ baseURL: `${keel.url}/v1`, apiKey: 'client-key', maxRetries: 0 });
});

after(async () => {
  await keel?.stop();
  await Promise.all([alpha?.close(), beta?.close(), gamma?.close()]);
  await env?.teardown();
});

async function post(path: string, body: unknown, headers: Record<string, string> = {}) {
  const res = await fetch(`${keel.url}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  return { res, json: (await res.json()) as { error?: { message: string; type: string; param: string | null; code: string | null }; keel?: { attempts: unknown[] } } };
}

describe('the happy path, for each provider wire format', () => {
  for (const [model, expected, provider, fake] of [
    ['alpha/model-a', '[model-a] Say hi', 'alpha', () => alpha],
    ['claude', '[model-b] Say hi', 'beta', () => beta],
    ['gem', '[model-c] Say hi', 'gamma', () => gamma],
  ] as const) {
    test(`${model} answers through ${provider}, as a completed workflow`, async () => {
      fake().resetCalls();
      const { data, response } = await client.chat.completions
        .create({ model, messages: [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Say hi' }], temperature: 0.2, max_tokens: 50 })
        .withResponse();
      assert.equal(data.object, 'chat.completion');
      assert.equal(data.choices[0].message.content, expected);
      assert.equal(data.choices[0].finish_reason, 'stop');
      assert.ok(data.usage && data.usage.total_tokens > 0 && data.usage.total_tokens === data.usage.prompt_tokens + data.usage.completion_tokens);
      const requestId = response.headers.get('x-request-id')!;
      assert.match(requestId, /^req-/);
      assert.equal(response.headers.get('x-keel-provider'), provider);
      assert.equal(fake().calls().length, 1);
      assert.equal(fake().calls()[0].authorized, true);
      const description = await recordedDescription(env, requestId);
      assert.equal(description.type, WORKFLOW_TYPES.request);
      assert.equal(description.status.name, 'COMPLETED');
    });
  }

  test('tools, tool_choice and multi-part messages are translated both ways (Anthropic)', async () => {
    const completion = await client.chat.completions.create({
      model: 'claude',
      messages: [{ role: 'user', content: [{ type: 'text', text: 'use tool please' }] }],
      tools: [{ type: 'function', function: { name: 'lookup', description: 'Looks up', parameters: { type: 'object', properties: { echo: { type: 'string' } } } } }],
      tool_choice: { type: 'function', function: { name: 'lookup' } },
    });
    const call = completion.choices[0].message.tool_calls?.[0];
    assert.equal(completion.choices[0].finish_reason, 'tool_calls');
    assert.ok(call && call.type === 'function');
    assert.equal(call.function.name, 'lookup');
    assert.deepEqual(JSON.parse(call.function.arguments), { echo: 'use tool please' });
  });

  test('GET /v1/models lists configured models in OpenAI shape', async () => {
    const ids = [];
    for await (const m of client.models.list()) ids.push(m.id);
    assert.ok(ids.includes('chat') && ids.includes('claude') && ids.includes('alpha/model-a'));
  });

  test('GET /healthz: API up, Temporal reachable, a worker polling', async () => {
    const res = await fetch(`${keel.url}/healthz`);
    const body = (await res.json()) as { status: string; workers: number; temporal: string };
    assert.equal(res.status, 200);
    assert.equal(body.temporal, 'ok');
    assert.ok(body.workers >= 1);
    assert.ok(res.headers.get('x-request-id'));
  });
});

describe('errors in OpenAI shape with the right status', () => {
  test('400 for validation, naming the field', async () => {
    const { res, json } = await post('/v1/chat/completions', { model: 'chat' });
    assert.equal(res.status, 400);
    assert.equal(json.error?.type, 'invalid_request_error');
    assert.equal(json.error?.param, 'messages');
    assert.ok(res.headers.get('x-request-id'));
    const bad = await post('/v1/chat/completions', { model: 'chat', messages: [{ role: 'user', content: 'x' }], temperature: 9 });
    assert.equal(bad.res.status, 400);
    assert.equal(bad.json.error?.param, 'temperature');
    const role = await post('/v1/chat/completions', { model: 'chat', messages: [{ role: 'wizard', content: 'x' }] });
    assert.equal(role.res.status, 400);
    assert.equal(role.json.error?.param, 'messages[0].role');
  });

  test('400 for invalid JSON and for a stream flag that is not a boolean, never an HTML page', async () => {
    const broken = await post('/v1/chat/completions', '{"model": "chat", ');
    assert.equal(broken.res.status, 400);
    assert.equal(broken.json.error?.code, 'invalid_json');
    const stream = await post('/v1/chat/completions', { model: 'chat', stream: 'yes', messages: [{ role: 'user', content: 'x' }] });
    assert.equal(stream.res.status, 400);
    assert.equal(stream.json.error?.param, 'stream');
    const route = await fetch(`${keel.url}/v1/nowhere`);
    assert.equal(route.status, 404);
    assert.match(route.headers.get('content-type') ?? '', /json/);
  });

  test('404 for an unknown model, through the official client', async () => {
    await assert.rejects(client.chat.completions.create({ model: 'no-such-model', messages: [{ role: 'user', content: 'x' }] }), (err: unknown) => {
      assert.ok(err instanceof OpenAI.NotFoundError);
      assert.equal((err.error as { code?: string }).code, 'model_not_found');
      return true;
    });
  });

  test('413 for a body over the limit, before any workflow starts or provider is called', async () => {
    alpha.resetCalls();
    const before = await env.client.workflow.count(`WorkflowType = '${WORKFLOW_TYPES.request}' AND TaskQueue = '${keel.config.taskQueue}'`);
    const { res, json } = await post('/v1/chat/completions', { model: 'chat', messages: [{ role: 'user', content: 'x'.repeat(30_000) }] });
    assert.equal(res.status, 413);
    assert.equal(json.error?.code, 'request_too_large');
    const afterCount = await env.client.workflow.count(`WorkflowType = '${WORKFLOW_TYPES.request}' AND TaskQueue = '${keel.config.taskQueue}'`);
    assert.equal(afterCount.count, before.count);
    assert.equal(alpha.calls().length, 0);
  });

  test('503 when every target is unavailable, with the attempt log', async () => {
    alpha.setBehaviour('down-a', { default: { kind: 'error', status: 503 } });
    beta.setBehaviour('down-b', { default: { kind: 'error', status: 529, code: 'overloaded_error' } });
    const { res, json } = await post('/v1/chat/completions', { models: ['alpha/down-a', 'beta/down-b'], messages: [{ role: 'user', content: 'x' }] });
    assert.equal(res.status, 503);
    assert.equal(json.error?.code, 'unavailable');
    assert.equal(json.keel?.attempts.length, 4, 'two attempts on each of the two targets');
    const description = await recordedDescription(env, res.headers.get('x-request-id')!);
    assert.equal(description.status.name, 'FAILED');
  });

  test('502 when the provider rejects Keel\'s key (auth), 504 when it never answers', async () => {
    const auth = await post('/v1/chat/completions', { model: 'badkey/model-a', messages: [{ role: 'user', content: 'x' }] });
    assert.equal(auth.res.status, 502);
    assert.equal(auth.json.error?.code, 'auth');
    assert.ok(!JSON.stringify(auth.json).includes('wrong-key'));
    alpha.setBehaviour('slow', { default: { kind: 'hang' } });
    const started = Date.now();
    const slow = await post('/v1/chat/completions', { model: 'slow', messages: [{ role: 'user', content: 'x' }] });
    assert.equal(slow.res.status, 504);
    assert.ok(Date.now() - started < 10_000);
  });
});

test('no configured API key appears in any workflow history', async () => {
  await client.chat.completions.create({ model: 'chat', messages: [{ role: 'user', content: 'history check' }] });
  const ids: string[] = [];
  for await (const wf of env.client.workflow.list({ query: `TaskQueue = '${keel.config.taskQueue}'` })) ids.push(wf.workflowId);
  assert.ok(ids.length >= 5);
  for (const id of ids) {
    const history = JSON.stringify(await env.client.workflow.getHandle(id).fetchHistory());
    // Payloads are base64 in the history: check both forms.
    for (const key of [...Object.values(KEYS), 'wrong-key']) {
      assert.ok(!history.includes(key), `key found in history of ${id}`);
      assert.ok(!history.includes(Buffer.from(key).toString('base64').slice(0, 16)), `base64 key found in history of ${id}`);
    }
  }
});

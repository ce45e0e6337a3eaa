// Every request is either refused up front (a 400 naming the JSON path of what is wrong, or the
// feature no target can carry) or translated by every adapter that may receive it without a
// throw; and what Keel's own code throws is classed `internal`, never blamed on a provider.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import fc from 'fast-check';
import { MockActivityEnvironment } from '@temporalio/testing';
import { ApplicationFailure } from '@temporalio/common';
import { Client } from '@temporalio/client';
import { checkLineBody } from '../activities/batch/validate.js';
import { createCallProvider } from '../activities/provider-call/call-provider.js';
import { classifyError } from '../activities/provider-call/classify-error.js';
import { translating } from '../activities/providers/common.js';
import { REQUEST_TRANSLATORS } from '../activities/providers/index.js';
import { KeelInternalError, ProviderCallError, type ChatRequest } from '../activities/providers/types.js';
import { fromZodError } from '../src/api/errors.js';
import { parseConfig } from '../src/config/load.js';
import { PROVIDER_TYPES } from '../src/config/schema.js';
import { requestFeatures, unsupportedBy } from '../src/core/capabilities.js';
import { ChatRequestSchema, type ChatRequestBody } from '../src/core/chat-request.js';
import { ERROR_POLICY } from '../src/core/error-classes.js';
import { failureError } from '../src/core/openai-error.js';
import type { ProviderCallInput } from '../src/core/request-types.js';
import { PlanError, planRequest } from '../src/core/routing.js';
import { HealthAgent } from '../src/worker/health-agent.js';
import { startFakeProvider, type FakeProvider } from '../dev/fakes/index.js';
import { anyRequest, pathExists, SEED, validRequest, type Json } from './helpers/request-arbitraries.js';

const config = parseConfig(
  `
providers:
  alpha: { type: openai, baseURL: "http://127.0.0.1:9/v1" }
  beta: { type: anthropic, baseURL: "http://127.0.0.1:9" }
  gamma: { type: gemini, baseURL: "http://127.0.0.1:9" }
models:
  chat: { targets: [alpha/model-a, beta/model-b, gamma/model-c] }
  listen: { targets: [beta/model-b, gamma/model-c, alpha/model-a] }
  claude: { targets: [beta/model-b] }
  gem: { targets: [gamma/model-c] }
`,
  {},
  'test config',
);
const routing = config.routing;
const MODELS = ['chat', 'listen', 'claude', 'gem', 'alpha/model-a'];

function refusal(body: unknown): { param: string | null; message: string; status: number } | undefined {
  const parsed = ChatRequestSchema.safeParse(body);
  if (parsed.success) return undefined;
  const err = fromZodError(parsed.error);
  return { param: err.param, message: err.message, status: err.status };
}

const user = (content: unknown) => ({ model: 'chat', messages: [{ role: 'user', content }] });

/** What the provider-call activity hands an adapter: the request as the workflow carried it (JSON), routing fields removed. */
function asActivityGetsIt(body: ChatRequestBody, model: string): ChatRequest {
  const { models: _m, provider: _p, keel: _k, stream: _s, ...rest } = JSON.parse(JSON.stringify(body)) as ChatRequestBody;
  return { ...(rest as unknown as ChatRequest), model };
}

describe("the issue's examples are 400s naming the path, before any adapter", () => {
  for (const [content, param] of [
    [[{ type: 'text', text: 'see' }, { type: 'image_url' }], 'messages[0].content[1].image_url'],
    [[{ type: 'image_url', image_url: null }], 'messages[0].content[0].image_url'],
    [[{ type: 'text', text: ['a', 'b'] }], 'messages[0].content[0].text'],
    [[{ type: 'image_url', image_url: { url: 'data:image/png,%E0%A4%A' } }], 'messages[0].content[0].image_url.url'],
    [[{ type: 'image_url', image_url: { url: 'data:text/plain;base64,aGk=' } }], 'messages[0].content[0].image_url.url'],
    [[{ type: 'input_audio', input_audio: { data: 'not base64!', format: 'wav' } }], 'messages[0].content[0].input_audio.data'],
    [[{ type: 'file', file: {} }], 'messages[0].content[0].file'],
    [[{ type: 'video', video: {} }], 'messages[0].content[0].type'],
  ] as const) {
    test(`${JSON.stringify(content)} -> ${param}`, () => {
      const r = refusal(user(content));
      assert.ok(r, 'refused');
      assert.equal(r.status, 400);
      assert.equal(r.param, param);
      assert.ok(r.message.includes(param), r.message);
    });
  }

  test('one that reaches an adapter anyway (an execution started under the old schema) is the 400, not a crash', () => {
    const req = { model: 'x', messages: [{ role: 'user', content: [{ type: 'image_url' }] }] } as unknown as ChatRequest;
    for (const type of PROVIDER_TYPES) {
      assert.throws(
        () => REQUEST_TRANSLATORS[type](req, 'm'),
        (err: unknown) => {
          const info = classifyError(err, type);
          assert.equal(info.errorClass, 'invalid_request');
          assert.match(info.message, /^Invalid request: messages\[0\]\.content\[0\]\.image_url: Required/);
          return true;
        },
      );
    }
  });

  test("whatever else Keel's translation throws is `internal`, never the provider's bad_response", () => {
    const req = { model: 'x', messages: [{ role: 'user', content: 'hi' }] } as ChatRequest;
    assert.throws(
      () => translating('anthropic', req, () => (undefined as unknown as { url: string }).url),
      (err: unknown) => {
        assert.ok(err instanceof KeelInternalError);
        const info = classifyError(err, 'anthropic');
        assert.equal(info.errorClass, 'internal');
        assert.match(info.message, /^Keel failed to translate the request for anthropic \(TypeError: Cannot read properties of undefined \(reading 'url'\)\)$/);
        assert.ok((err.cause as Error).stack?.includes('request-validation.test.ts'), 'the cause keeps the stack of what threw');
        return true;
      },
    );
  });
});

describe("OpenAI's request shape, strictly", () => {
  const ok = { model: 'chat', messages: [{ role: 'user', content: 'hi' }] };
  const cases: [string, unknown, string][] = [
    ['an unknown field in a message', { ...ok, messages: [{ role: 'user', content: 'hi', colour: 'red' }] }, 'messages[0].colour'],
    ['an image in a system message', { ...ok, messages: [{ role: 'system', content: [{ type: 'image_url', image_url: { url: 'https://x.io/a.png' } }] }] }, 'messages[0].content[0].type'],
    ['an assistant message with nothing in it', { ...ok, messages: [{ role: 'assistant' }] }, 'messages[0].content'],
    ['a tool result for no earlier call', { ...ok, messages: [...ok.messages, { role: 'tool', tool_call_id: 'call_9', content: '1' }] }, 'messages[1].tool_call_id'],
    ['a tool call without arguments', { ...ok, messages: [{ role: 'assistant', tool_calls: [{ id: 'c', type: 'function', function: { name: 'f' } }] }] }, 'messages[0].tool_calls[0].function.arguments'],
    ['a tool name OpenAI refuses', { ...ok, tools: [{ type: 'function', function: { name: 'get weather' } }] }, 'tools[0].function.name'],
    ['tool_choice naming no tool', { ...ok, tools: [{ type: 'function', function: { name: 'f' } }], tool_choice: { type: 'function', function: { name: 'g' } } }, 'tool_choice.function.name'],
    ['tool_choice required without tools', { ...ok, tool_choice: 'required' }, 'tool_choice'],
    ['json_schema without its schema object', { ...ok, response_format: { type: 'json_schema' } }, 'response_format.json_schema'],
    ['json_schema with a bad name', { ...ok, response_format: { type: 'json_schema', json_schema: { name: 'a b' } } }, 'response_format.json_schema.name'],
    ['an unknown response format', { ...ok, response_format: { type: 'yaml' } }, 'response_format.type'],
    ['five stop sequences', { ...ok, stop: ['a', 'b', 'c', 'd', 'e'] }, 'stop'],
    ['a stop that is a number', { ...ok, stop: 3 }, 'stop'],
    ['logit_bias over 100', { ...ok, logit_bias: { '50256': 101 } }, 'logit_bias["50256"]'],
    ['logit_bias keyed by a word', { ...ok, logit_bias: { hello: 1 } }, 'logit_bias.hello'],
    ['temperature above 2', { ...ok, temperature: 2.5 }, 'temperature'],
    ['presence_penalty below -2', { ...ok, presence_penalty: -3 }, 'presence_penalty'],
    ['top_logprobs without logprobs', { ...ok, top_logprobs: 3 }, 'top_logprobs'],
    ['n of 0', { ...ok, n: 0 }, 'n'],
    ['audio output without its settings', { ...ok, modalities: ['text', 'audio'] }, 'audio'],
  ];
  for (const [what, body, param] of cases) {
    test(`${what}: 400 at ${param}`, () => assert.equal(refusal(body)?.param, param));
  }

  test('unknown top-level fields pass through (to OpenAI-compatible providers only)', () => {
    const parsed = ChatRequestSchema.parse({ ...ok, prompt_cache_key: 'k', brand_new_option: { x: 1 } });
    const req = asActivityGetsIt(parsed, 'model-a');
    assert.deepEqual((REQUEST_TRANSLATORS.openai(req, 'model-a') as Record<string, unknown>).brand_new_option, { x: 1 });
    assert.equal(JSON.stringify(REQUEST_TRANSLATORS.anthropic(req, 'model-b')).includes('brand_new_option'), false);
    assert.equal(JSON.stringify(REQUEST_TRANSLATORS.gemini(req, 'model-c')).includes('brand_new_option'), false);
  });

  test('a response message sent back as it came is accepted', () => {
    const echoed = { role: 'assistant', content: 'Paris.', refusal: null, annotations: [] };
    assert.equal(refusal({ ...ok, messages: [...ok.messages, echoed, { role: 'user', content: 'And Rome?' }] }), undefined);
  });
});

describe('a feature a target cannot carry is decided before the call', () => {
  const audio = { role: 'user', content: [{ type: 'text', text: 'What is said?' }, { type: 'input_audio', input_audio: { data: 'UklGRg==', format: 'wav' } }] };
  const plan = (body: unknown) => {
    const parsed = ChatRequestSchema.parse(body);
    return planRequest(parsed, routing, undefined, { features: requestFeatures(parsed) });
  };

  test('targets that cannot take it are left out, in order', () => {
    const p = plan({ model: 'listen', messages: [audio] });
    assert.deepEqual(p.targets.map((t) => t.provider), ['gamma', 'alpha']);
    assert.deepEqual(p.unsupported, [{ target: 'beta/model-b', feature: 'input_audio', param: 'messages[0].content[1]' }]);
    // Without the features (executions planned before capability routing) every target stays.
    assert.equal(planRequest({ model: 'listen' }, routing).targets.length, 3);
  });

  test('none can: a 400 naming the feature, the target and where the request uses it', () => {
    assert.throws(
      () => plan({ model: 'claude', messages: [audio] }),
      (err: unknown) => {
        assert.ok(err instanceof PlanError);
        assert.equal(err.status, 400);
        assert.equal(err.code, 'unsupported_feature');
        assert.equal(err.param, 'messages[0].content[1]');
        assert.match(err.message, /beta\/model-b \(anthropic\) cannot take audio input/);
        return true;
      },
    );
    assert.throws(() => plan({ model: 'gem', messages: [{ role: 'system', content: 'Only a system prompt.' }] }), /gamma\/model-c \(gemini\) cannot take a conversation without user or assistant content/);
    assert.equal(plan({ model: 'chat', messages: [{ role: 'system', content: 'Only a system prompt.' }] }).targets[0].provider, 'alpha');
    assert.throws(() => plan({ model: 'gem', messages: [{ role: 'user', content: 'x' }], logprobs: true }), /log probabilities/);
  });

  test('a batch line gets the same answer, its param under body.', () => {
    const line = checkLineBody({ model: 'claude', messages: [audio] }, routing);
    assert.equal(line.ok, false);
    assert.ok(!line.ok && line.code === 'unsupported_feature' && line.param === 'body.messages[0].content[1]');
    const bad = checkLineBody(user([{ type: 'image_url' }]), routing);
    assert.ok(!bad.ok && bad.code === 'invalid_body' && bad.param === 'body.messages[0].content[0].image_url', JSON.stringify(bad));
    assert.match(!bad.ok ? bad.message : '', /^body\.messages\[0\]\.content\[0\]\.image_url: /);
  });
});

describe('property: refused with a path, or translated without a throw', () => {
  /** Checks one candidate; returns what happened, for the counts that keep the property honest. */
  function check(request: Json): 'refused' | 'unplannable' | 'translated' {
    const parsed = ChatRequestSchema.safeParse(request);
    const line = checkLineBody(request, routing);
    if (!parsed.success) {
      const err = fromZodError(parsed.error);
      assert.equal(err.status, 400);
      assert.ok(err.param, `a refusal names a path: ${err.message}`);
      assert.ok(pathExists(request, err.param), `${err.param} names a place in the request`);
      assert.ok(err.message.includes(err.param), err.message);
      // A batch line is held to the same schema and names the same path under body.
      assert.ok(!line.ok && line.code === 'invalid_body' && line.param === `body.${err.param}`, JSON.stringify(line));
      return 'refused';
    }
    const body = parsed.data;
    if (body.stream === true) return 'refused';
    const features = requestFeatures(body);
    // Each wire format: translated without any throw, unless the capability facts rule it out
    // (then its adapter may refuse it, as unsupported, and routing never sends it there).
    for (const type of PROVIDER_TYPES) {
      const blocked = unsupportedBy(type, features);
      try {
        REQUEST_TRANSLATORS[type](asActivityGetsIt(body, 'upstream'), 'upstream');
      } catch (err) {
        assert.ok(blocked, `${type} threw on a request the capability facts say it can carry: ${String(err)}`);
        assert.ok(err instanceof ProviderCallError && err.errorClass === 'model_not_found' && err.providerCode === 'unsupported_feature', `${type}: ${String(err)}`);
      }
    }
    let plan;
    try {
      plan = planRequest(body, routing, undefined, { features });
    } catch (err) {
      // No target can carry it (400), or the mutation named a model that does not exist (404).
      assert.ok(err instanceof PlanError && err.param, String(err));
      assert.equal(err.status, err.code === 'model_not_found' ? 404 : 400, err.message);
      assert.ok(pathExists(request, err.param), `${err.param} names a place in the request`);
      assert.ok(!line.ok && line.code === err.code && line.param === `body.${err.param}`, JSON.stringify(line));
      return 'unplannable';
    }
    for (const t of plan.targets) assert.equal(unsupportedBy(t.providerType, features), undefined, `${t.provider} planned though it cannot carry the request`);
    assert.ok(line.ok, JSON.stringify(line));
    return 'translated';
  }

  test('every valid request is accepted and every adapter that may get it translates it', () => {
    let count = 0;
    fc.assert(
      fc.property(validRequest(MODELS), (request) => {
        const parsed = ChatRequestSchema.safeParse(request);
        assert.ok(parsed.success, `a valid request was refused: ${parsed.success ? '' : fromZodError(parsed.error).message}`);
        check(request as Json);
        count += 1;
      }),
      { seed: SEED, numRuns: 1_000 },
    );
    assert.equal(count, 1_000);
  });

  test('valid and mutated requests (3,000): each refused with a path, or translated', () => {
    const seen = { refused: 0, unplannable: 0, translated: 0 };
    const started = Date.now();
    const cpuBefore = process.cpuUsage().user;
    fc.assert(
      fc.property(anyRequest(MODELS), ({ request, mutation }) => {
        try {
          seen[check(request)] += 1;
        } catch (err) {
          throw new Error(`mutation: ${mutation}\n${(err as Error).message}`, { cause: err });
        }
      }),
      { seed: SEED + 1, numRuns: 3_000 },
    );
    // The property means something only if both outcomes are common.
    assert.ok(seen.refused > 1_000, JSON.stringify(seen));
    assert.ok(seen.translated > 500, JSON.stringify(seen));
    console.log(`  3,000 cases in ${Date.now() - started} ms (${Math.round((process.cpuUsage().user - cpuBefore) / 1000)} ms CPU): ${JSON.stringify(seen)}`);
  });
});

describe('internal errors: not retried, not against the provider, 500 with the request id', () => {
  test('the class and its policy', () => {
    assert.deepEqual(ERROR_POLICY.internal, { retrySameTarget: false, fallback: 'no', clientStatus: 500, openaiType: 'server_error', code: 'internal_error' });
    const { error } = failureError(ApplicationFailure.create({ type: 'internal', message: 'boom', nonRetryable: true, details: [{ errorClass: 'internal', status: 500, message: 'boom', attempts: [] }] }));
    assert.equal(error.status, 500);
    assert.deepEqual(error.toObject(), { message: 'boom', type: 'server_error', param: null, code: 'internal_error' });
  });

  let beta: FakeProvider;
  before(async () => {
    beta = await startFakeProvider({ type: 'anthropic' });
  });
  after(async () => {
    await beta?.close();
  });

  /** The real provider-call activity (Temporal's activity test environment gives it a context), with a real health agent. */
  async function callOnce(request: unknown, logs: { message: string; meta?: Record<string, unknown> }[]) {
    const cfg = parseConfig(`providers:\n  beta: { type: anthropic, baseURL: "${beta.url}" }\nmodels:\n  claude: { targets: [beta/model-b] }\n`, {}, 'test');
    const health = new HealthAgent({ client: new Client(), workflowId: 'health-unused', taskQueue: 'unused', settings: cfg.health });
    const callProvider = createCallProvider(cfg, health);
    const log = (level: string) => (message: string, meta?: Record<string, unknown>) => void logs.push({ message: `${level} ${message}`, ...(meta && { meta }) });
    const logger = { log: (level: string, message: string, meta?: Record<string, unknown>) => log(level)(message, meta), trace: log('TRACE'), debug: log('DEBUG'), info: log('INFO'), warn: log('WARN'), error: log('ERROR') };
    const env = new MockActivityEnvironment({ attempt: 1 }, { logger });
    const input: ProviderCallInput = {
      requestId: 'req-internal-test',
      provider: 'beta',
      model: 'model-b',
      request: request as ChatRequestBody,
      retry: { maxAttempts: 3, initialIntervalMs: 10, backoffCoefficient: 2, maximumIntervalMs: 100, jitter: 0 },
      deadline: Date.now() + 10_000,
    };
    const failure = await env.run(callProvider, input).then(
      () => assert.fail('expected a failure'),
      (err: unknown) => err,
    );
    assert.ok(failure instanceof ApplicationFailure, String(failure));
    return { failure, recorded: health.recorder.drain() };
  }

  test("a throw in Keel's translation: nonRetryable `internal`, no provider call, no health record, a log line with the stack", async () => {
    beta.resetCalls();
    const logs: { message: string; meta?: Record<string, unknown> }[] = [];
    // No request that passes the schema makes a translation throw (the property above), so the
    // bug is simulated: a field that reads fine for the schema check and throws when translated.
    let reads = 0;
    const message = {
      role: 'user',
      get content(): string {
        if (++reads > 1) throw new TypeError("Cannot read properties of undefined (reading 'url')");
        return 'hi';
      },
    };
    const request = { model: 'claude', messages: [message] };
    const { failure, recorded } = await callOnce(request, logs);
    assert.equal(failure.type, 'internal');
    assert.equal(failure.nonRetryable, true);
    assert.equal(beta.calls().length, 0, 'the provider was never called');
    assert.deepEqual(recorded, [], 'nothing counts against the provider');
    const line = logs.find((l) => l.message.startsWith('ERROR') && l.message.includes('internal error in Keel'));
    assert.ok(line, JSON.stringify(logs));
    assert.equal(line.meta?.requestId, 'req-internal-test');
    assert.match(String(line.meta?.stack), /TypeError: Cannot read properties of undefined \(reading 'url'\)\n\s+at /);
    assert.match(String(line.meta?.stack), /anthropic\/adapter\.ts/);
  });

  test('a malformed request reaching the activity (an execution from before this schema): the client\'s 400, not retried, no provider call', async () => {
    beta.resetCalls();
    const { failure, recorded } = await callOnce({ model: 'claude', messages: [{ role: 'user', content: [{ type: 'image_url' }] }] }, []);
    assert.equal(failure.type, 'invalid_request');
    assert.equal(failure.nonRetryable, true);
    assert.match(failure.message, /messages\[0\]\.content\[0\]\.image_url/);
    assert.equal(beta.calls().length, 0);
    assert.deepEqual(recorded.map((r) => r.errors), [{ invalid_request: 1 }], 'recorded, as any invalid request is, which never counts against a target');
  });

  test('what the provider really sent stays bad_response: retried, and it counts', async () => {
    beta.setBehaviour('model-b', { default: { kind: 'malformed' } });
    const { failure, recorded } = await callOnce({ model: 'claude', messages: [{ role: 'user', content: 'hi' }] }, []);
    assert.equal(failure.type, 'bad_response');
    assert.equal(failure.nonRetryable, false);
    assert.equal(recorded.length, 1);
    assert.deepEqual(recorded[0].errors, { bad_response: 1 });
  });
});

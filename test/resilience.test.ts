// Retries, fallback, racing, hedging and cancellation as Temporal mechanisms, checked where a
// user would check them: provider call counts and timings at the fake providers.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import OpenAI from 'openai';
import { ApplicationFailure, WorkflowFailedError } from '@temporalio/client';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { startFakeProvider, type FakeProvider } from '../dev/fakes/index.js';
import { optionalTsToMs } from '@temporalio/common/lib/time.js';
import { requestIdForKey } from '../src/services/request-service.js';
import { providerTaskQueue } from '../src/core/task-queues.js';
import type { AttemptRecord, RequestFailureDetails } from '../src/core/request-types.js';
import { startKeel, startTemporal, type KeelUnderTest } from './helpers/temporal.js';
import { settledRequest } from './helpers/http.js';

let env: TestWorkflowEnvironment;
let keel: KeelUnderTest;
let a: FakeProvider;
let b: FakeProvider;
let client: OpenAI;

before(async () => {
  env = await startTemporal();
  a = await startFakeProvider({ type: 'openai' });
  b = await startFakeProvider({ type: 'anthropic' });
  keel = await startKeel(
    env,
    `
defaults:
  retry: { maxAttempts: 3, initialIntervalMs: 100, backoffCoefficient: 2, maximumIntervalMs: 400, jitter: 0.2 }
  timeouts: { attemptMs: 10000, requestMs: 20000 }
  hedge: { delayMs: 300, maxShare: 1 }
providers:
  a: { type: openai, baseURL: ${a.url}, models: { small: { contextWindow: 8000 } } }
  b: { type: anthropic, baseURL: ${b.url}, models: { big: { contextWindow: 200000 } } }
models:
  chain: { targets: [a/m, b/m] }
  short-budget: { targets: [a/m, b/m], timeouts: { requestMs: 5000 } }
  ctx: { targets: [a/small, b/m, b/big] }
  raced: { targets: [a/m, b/m], mode: race }
  hedged: { targets: [a/m, b/m], mode: hedge, hedge: { delayMs: 300 } }
`,
  );
  client = new OpenAI({ baseURL: `${keel.url}/v1`, apiKey: 'unused', maxRetries: 0 });
});

after(async () => {
  await keel?.stop();
  await Promise.all([a?.close(), b?.close()]);
  await env?.teardown();
});

function fresh(): void {
  for (const fake of [a, b]) {
    fake.resetCalls();
    fake.setBehaviour('m', { default: { kind: 'ok' } });
  }
}

type KeelInfo = { provider: string; attempts: AttemptRecord[] };
async function ask(model: string, extra: Record<string, unknown> = {}) {
  const { data, response } = await client.chat.completions
    .create({ model, messages: [{ role: 'user', content: 'ping' }], ...extra } as OpenAI.ChatCompletionCreateParamsNonStreaming)
    .withResponse();
  return { data, keel: (data as unknown as { keel: KeelInfo }).keel, response };
}

describe('retries on one target', () => {
  test('503, 503, 200 -> exactly 3 calls on one target, all in the attempt log', async () => {
    fresh();
    a.setBehaviour('m', { script: [{ kind: 'error', status: 503 }, { kind: 'error', status: 503 }], default: { kind: 'ok' } });
    const { keel: info, response } = await ask('chain');
    assert.equal(a.calls('m').length, 3);
    assert.equal(b.calls().length, 0);
    assert.equal(info.provider, 'a');
    assert.deepEqual(info.attempts.map((x) => [x.attempt, x.outcome, x.errorClass ?? null, x.status ?? null]), [
      [1, 'error', 'unavailable', 503],
      [2, 'error', 'unavailable', 503],
      [3, 'success', null, null],
    ]);
    assert.equal(response.headers.get('x-keel-attempts'), '3');
    assert.equal(response.headers.get('x-keel-provider'), 'a');
  });

  test('429 with Retry-After: 2 -> the next attempt comes at least 2 s later', async () => {
    fresh();
    a.setBehaviour('m', { script: [{ kind: 'error', status: 429, retryAfterSec: 2 }], default: { kind: 'ok' } });
    const { keel: info } = await ask('chain');
    const [first, second] = a.calls('m');
    assert.ok(second, 'a second attempt on the same target');
    assert.equal(info.attempts[0].retryInMs, 2000, 'the attempt log shows the delay Keel asked Temporal for');
    // From the 429's answer to the retry's arrival: Temporal's retry timer starts after the failure
    // reached it, so the gap is never below the delay; load can only add to it (tolerance 2 s).
    const gap = second.startedAt - first.endedAt!;
    assert.ok(gap >= 2000, `gap ${gap} ms`);
    assert.ok(gap < 4000, `gap ${gap} ms: Retry-After honoured, not much more`);
  });

  test('a Retry-After longer than the remaining budget -> immediate fallback', async () => {
    fresh();
    a.setBehaviour('m', { default: { kind: 'error', status: 429, retryAfterSec: 30 } });
    const { keel: info } = await ask('short-budget');
    assert.equal(info.provider, 'b');
    assert.equal(a.calls('m').length, 1);
    assert.equal(info.attempts[0].retryInMs, undefined, 'no retry planned on a: the 30 s wait would pass the 5 s budget');
    // Waiting out Retry-After would take 30 s and the budget 5 s: a few seconds of tolerance for a
    // busy machine still tell an immediate fallback apart.
    const gap = b.calls('m')[0].startedAt - a.calls('m')[0].endedAt!;
    assert.ok(gap < 3000, `fell back ${gap} ms after the 429`);
  });

  test('400 invalid request -> exactly 1 call, no fallback, the client gets 400', async () => {
    fresh();
    a.setBehaviour('m', { default: { kind: 'error', status: 400, code: 'invalid_value', message: 'messages[0].content is bad' } });
    await assert.rejects(ask('chain'), (err: unknown) => err instanceof OpenAI.BadRequestError);
    assert.equal(a.calls('m').length, 1);
    assert.equal(b.calls().length, 0);
  });

  test('OpenAI 429 insufficient_quota is not retried but falls back', async () => {
    fresh();
    a.setBehaviour('m', { default: { kind: 'error', status: 429, code: 'insufficient_quota', message: 'You exceeded your current quota' } });
    const { keel: info } = await ask('chain');
    assert.equal(info.provider, 'b');
    assert.equal(a.calls('m').length, 1);
    assert.equal(info.attempts[0].errorClass, 'quota_exhausted');
  });

  test('a context-length error falls back only to a target with a larger context window', async () => {
    fresh();
    a.setBehaviour('small', { default: { kind: 'error', status: 400, code: 'context_length_exceeded', message: "This model's maximum context length is 8000 tokens" } });
    const { keel: info } = await ask('ctx');
    assert.equal(info.provider, 'b');
    assert.deepEqual(b.calls().map((c) => c.model), ['big'], 'b/m (unknown window) skipped, b/big tried');
  });
});

describe('fallback chains', () => {
  test('A down, B up -> answered by B', async () => {
    fresh();
    a.setBehaviour('m', { default: { kind: 'error', status: 500 } });
    const { keel: info } = await ask('chain');
    assert.equal(info.provider, 'b');
    assert.equal(a.calls('m').length, 3);
    assert.equal(b.calls('m').length, 1);
  });

  test('A connection reset and B always failing -> exactly budget(A) + budget(B) calls, then a Failed workflow with the log', async () => {
    fresh();
    a.setBehaviour('m', { default: { kind: 'reset' } });
    b.setBehaviour('m', { default: { kind: 'error', status: 529, code: 'overloaded_error' } });
    const key = `fail-${Date.now()}`;
    await assert.rejects(
      client.chat.completions.create({ model: 'chain', messages: [{ role: 'user', content: 'x' }] }, { headers: { 'Idempotency-Key': key } }),
      (err: unknown) => err instanceof OpenAI.APIError && err.status === 503,
    );
    assert.equal(a.calls('m').length, 3);
    assert.equal(b.calls('m').length, 3);
    // The answer may come before the failure is recorded (the early answer path); it is recorded right after.
    const handle = env.client.workflow.getHandle(requestIdForKey(key));
    await assert.rejects(handle.result(), (err: unknown) => {
      assert.ok(err instanceof WorkflowFailedError && err.cause instanceof ApplicationFailure);
      const details = err.cause.details?.[0] as RequestFailureDetails;
      assert.equal(details.attempts.length, 6);
      assert.deepEqual([...new Set(details.attempts.map((x) => x.target))], ['a/m', 'b/m']);
      assert.equal(details.attempts[0].errorClass, 'unreachable');
      return true;
    });
    assert.equal((await handle.describe()).status.name, 'FAILED');
  });

  test("per-request OpenRouter routing: models[] and provider.order", async () => {
    fresh();
    a.setBehaviour('m', { default: { kind: 'ok' } });
    const ordered = await ask('chain', { provider: { order: ['b'] } });
    assert.equal(ordered.keel.provider, 'b');
    const listed = await ask('b/other', { models: ['a/m'] });
    assert.equal(listed.keel.provider, 'b');
  });
});

describe('racing and hedging', () => {
  test('race: the first success wins and the loser HTTP request is aborted', async () => {
    fresh();
    a.setBehaviour('m', { default: { kind: 'ok', latencyMs: 8000 } });
    b.setBehaviour('m', { default: { kind: 'ok', latencyMs: 100 } });
    const started = Date.now();
    const { keel: info } = await ask('raced');
    assert.equal(info.provider, 'b');
    assert.ok(Date.now() - started < 6000, 'answered well before the slow target could (8 s)');
    // The loser's call is aborted, not left to finish: the cancellation reaches the activity at its
    // next heartbeat (sent at most every 1.2 s: 80 % of the 1.5 s heartbeat timeout), then the
    // HTTP request is aborted. 5 s of tolerance for a busy machine, well before a's 8 s answer.
    const [lost] = await a.waitForCalls(1, { model: 'm', where: (c) => c.aborted, timeoutMs: 10_000 });
    const winnerEnd = b.calls('m')[0].endedAt!;
    assert.ok(lost.abortedAt! - winnerEnd < 5000, `loser aborted ${lost.abortedAt! - winnerEnd} ms after the win`);
  });

  test('hedge: the second target is called only after the delay', async () => {
    fresh();
    a.setBehaviour('m', { default: { kind: 'ok', latencyMs: 5000 } });
    b.setBehaviour('m', { default: { kind: 'ok', latencyMs: 50 } });
    const { keel: info, response } = await ask('hedged');
    assert.equal(info.provider, 'b');
    // The delay is the workflow's timer. A gap measured between the two calls' arrivals at the
    // providers is not: the first call's dispatch can lag, shrinking it below the delay on a busy
    // machine. What holds on any machine: the timer had the configured duration, it fired before
    // b was scheduled, and b's call reached b after it fired (one clock: server and fake).
    const history = await env.client.workflow.getHandle(response.headers.get('x-request-id')!).fetchHistory();
    const events = history.events ?? [];
    const started = events.filter((e) => e.timerStartedEventAttributes);
    assert.equal(started.length, 1);
    assert.equal(optionalTsToMs(started[0].timerStartedEventAttributes!.startToFireTimeout), 300);
    const fired = events.find((e) => e.timerFiredEventAttributes);
    assert.ok(fired, 'the hedge timer fired');
    const scheduledB = events.find((e) => e.activityTaskScheduledEventAttributes?.taskQueue?.name === providerTaskQueue('b'));
    assert.ok(scheduledB && Number(scheduledB.eventId) > Number(fired.eventId), 'b scheduled after the timer fired');
    const firedAt = optionalTsToMs(fired.eventTime)!;
    assert.ok(firedAt - optionalTsToMs(started[0].eventTime)! >= 300, 'the timer waited the delay');
    assert.ok(b.calls('m')[0].startedAt >= firedAt, `b called ${b.calls('m')[0].startedAt - firedAt} ms after the timer fired`);
    await a.waitForCalls(1, { model: 'm', where: (c) => c.aborted, timeoutMs: 10_000 });
  });

  test('hedge: a fast primary means no second call', async () => {
    fresh();
    a.setBehaviour('m', { default: { kind: 'ok', latencyMs: 20 } });
    const { keel: info } = await ask('hedged');
    assert.equal(info.provider, 'a');
    await new Promise((r) => setTimeout(r, 500));
    assert.equal(b.calls().length, 0);
  });
});

describe('a live handle on each request', () => {
  test('status while running, then cancel: the provider call is aborted and the workflow cancelled', async () => {
    fresh();
    a.setBehaviour('m', { default: { kind: 'hang' } });
    const key = `cancel-${Date.now()}`;
    const id = requestIdForKey(key);
    const pending = fetch(`${keel.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'idempotency-key': key },
      body: JSON.stringify({ model: 'chain', messages: [{ role: 'user', content: 'x' }] }),
    });
    await a.waitForCalls(1, { model: 'm', timeoutMs: 10_000 });
    const status = (await (await fetch(`${keel.url}/v1/requests/${id}`)).json()) as { status: string; active_targets: string[] };
    assert.equal(status.status, 'running');
    assert.deepEqual(status.active_targets, ['a/m']);
    const cancelAt = Date.now();
    const cancel = await fetch(`${keel.url}/v1/requests/${id}/cancel`, { method: 'POST' });
    assert.equal(cancel.status, 202);
    const res = await pending;
    assert.equal(res.status, 409);
    assert.equal(((await res.json()) as { error: { code: string } }).error.code, 'cancelled');
    // Through the next heartbeat (at most 1.2 s apart), with tolerance for a busy machine.
    const [aborted] = await a.waitForCalls(1, { model: 'm', where: (c) => c.aborted, timeoutMs: 10_000 });
    assert.ok(aborted.abortedAt! - cancelAt < 5000, `provider call aborted ${aborted.abortedAt! - cancelAt} ms after the cancel`);
    assert.equal((await env.client.workflow.getHandle(id).describe()).status.name, 'CANCELLED');
    assert.equal(b.calls().length, 0, 'a cancelled request does not fall back');
    const after = (await (await fetch(`${keel.url}/v1/requests/${id}`)).json()) as { status: string };
    assert.equal(after.status, 'cancelled');
  });

  test('GET /v1/requests/:id of a finished request returns its result; an unknown id is 404', async () => {
    fresh();
    a.setBehaviour('m', { default: { kind: 'ok' } });
    const { response } = await ask('chain');
    const id = response.headers.get('x-request-id')!;
    // Answered early: the outcome is recorded a few milliseconds later (docs/REQUESTS.md).
    const body = (await settledRequest(keel.url, id)) as { status: string; result: { choices: unknown[] }; ui_url: string };
    assert.equal(body.status, 'succeeded');
    assert.equal(body.result.choices.length, 1);
    assert.match(body.ui_url, new RegExp(`/workflows/${id}$`));
    assert.equal((await fetch(`${keel.url}/v1/requests/req-nope`)).status, 404);
  });
});

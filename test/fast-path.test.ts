// The fast paths (docs/ROUTING.md "Call paths", docs/REQUESTS.md "When you get your answer"):
// which path a request takes is asserted on what Keel controls — the request's history (a
// local-activity marker or an activity task on the provider's queue), its input, the answer
// header — not on wall-clock gaps.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import proto from '@temporalio/proto';
import type { temporal } from '@temporalio/proto';
import { startFakeProvider, type FakeProvider } from '../dev/fakes/index.js';
import { callJson } from './helpers/http.js';
import { startKeel, startTemporal, type KeelUnderTest } from './helpers/temporal.js';
import { CODEC_UNDER_TEST, codecEnv, codecYaml, payloadEncoding } from './helpers/codec.js';
import { decodeFromPayloadsAtIndex } from '@temporalio/common/lib/internal-non-workflow/index.js';

const EventType = proto.temporal.api.enums.v1.EventType;

let env: TestWorkflowEnvironment;
let keel: KeelUnderTest;
let split: KeelUnderTest;
let fast: FakeProvider;
let limited: FakeProvider;

const yaml = (fakeUrl: string, limitedUrl: string) => `
defaults:
  retry: { maxAttempts: 3, initialIntervalMs: 50, backoffCoefficient: 2, maximumIntervalMs: 200, jitter: 0 }
providers:
  fast: { type: openai, baseURL: ${fakeUrl}, concurrency: 2 }
  limited: { type: openai, baseURL: ${limitedUrl}, rateLimitPerSecond: 50 }
  queued: { type: openai, baseURL: ${fakeUrl}, callPath: queue }
models:
  chat: { targets: [fast/m] }
  chain: { targets: [fast/bad, queued/m] }
  limited: { targets: [limited/m] }
  queued: { targets: [queued/m] }
  hedged: { targets: [fast/m, queued/m], mode: hedge, hedge: { delayMs: 5000 } }
  late: { targets: [fast/m], answer: recorded }
${codecYaml}`;

before(async () => {
  env = await startTemporal();
  fast = await startFakeProvider({ type: 'openai' });
  limited = await startFakeProvider({ type: 'openai' });
  keel = await startKeel(env, yaml(fast.url, limited.url), { env: codecEnv() });
  split = await startKeel(env, yaml(fast.url, limited.url), { shared: false, env: codecEnv() });
});

after(async () => {
  await split?.stop();
  await keel?.stop();
  await Promise.all([fast?.close(), limited?.close()]);
  await env?.teardown();
});

async function ask(base: string, model: string, extra: Record<string, unknown> = {}) {
  return callJson(base, 'POST', '/v1/chat/completions', { model, messages: [{ role: 'user', content: 'Hello' }], ...extra });
}

async function history(id: string) {
  // The API's client: it has the codec when the file runs with it (fast-path.codec.test.ts).
  const handle = keel.api.client.workflow.getHandle(id);
  await handle.result().catch(() => undefined);
  return (await handle.fetchHistory()).events ?? [];
}

function scheduledOn(events: temporal.api.history.v1.IHistoryEvent[]): string[] {
  return events.filter((e) => e.eventType === EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED).map((e) => e.activityTaskScheduledEventAttributes!.taskQueue!.name!);
}

/** Local activities (a patch is a marker too, named otherwise). */
function localMarkers(events: temporal.api.history.v1.IHistoryEvent[]): number {
  return events.filter((e) => e.eventType === EventType.EVENT_TYPE_MARKER_RECORDED && e.markerRecordedEventAttributes?.markerName === 'core_local_activity').length;
}

describe('call paths', () => {
  test('a provider without a rate limit is called locally: one local-activity marker, no activity task', async () => {
    const { res, json } = await ask(keel.url, 'chat');
    assert.equal(res.status, 200, JSON.stringify(json));
    const events = await history(res.headers.get('x-request-id')!);
    assert.deepEqual(scheduledOn(events), []);
    // The health read was folded into the input: the provider call is the only marker.
    assert.equal(localMarkers(events), 1);
    assert.equal(json.keel.attempts.length, 1);
  });

  test('a rate-limited provider, an explicit `queue` and a hedged request use the provider task queue', async () => {
    for (const [model, queue] of [
      ['limited', 'keel-provider-limited'],
      ['queued', 'keel-provider-queued'],
      ['hedged', 'keel-provider-fast'],
    ] as const) {
      const { res, json } = await ask(keel.url, model);
      assert.equal(res.status, 200, JSON.stringify(json));
      const events = await history(res.headers.get('x-request-id')!);
      assert.deepEqual(scheduledOn(events), [queue], model);
    }
  });

  test('a local call retried by Temporal keeps its attempt log, then falls back to a queued target', async () => {
    fast.setBehaviour('bad', { default: { kind: 'error', status: 503 } });
    const { res, json } = await ask(keel.url, 'chain');
    assert.equal(res.status, 200, JSON.stringify(json));
    const attempts = json.keel.attempts as { target: string; attempt: number; outcome: string }[];
    assert.deepEqual(
      attempts.map((a) => `${a.target}#${a.attempt}:${a.outcome}`),
      ['fast/bad#1:error', 'fast/bad#2:error', 'fast/bad#3:error', 'queued/m#1:success'],
    );
    assert.equal(fast.calls('bad').length, 3);
  });

  test('the workflow input carries only the routing the request can touch', async () => {
    const { res } = await ask(keel.url, 'chat');
    const events = await history(res.headers.get('x-request-id')!);
    const payload = events[0].workflowExecutionStartedEventAttributes!.input!.payloads![0];
    assert.equal(payloadEncoding(payload), CODEC_UNDER_TEST ? 'binary/encrypted' : 'json/plain');
    const input = (await decodeFromPayloadsAtIndex(keel.api.client.options.loadedDataConverter, 0, [payload])) as { routing: { providers: object; models: object } };
    assert.deepEqual(Object.keys(input.routing.providers), ['fast']);
    assert.deepEqual(Object.keys(input.routing.models), ['chat']);
    assert.ok(payload.data!.length < 2_000, `input is ${payload.data!.length} bytes`);
  });

  test("a provider's concurrency cap holds on the local path", async () => {
    fast.setBehaviour('m', { default: { kind: 'ok', latencyMs: 300 } });
    fast.resetCalls();
    try {
      const answers = await Promise.all(Array.from({ length: 6 }, () => ask(keel.url, 'chat')));
      assert.ok(answers.every((a) => a.res.status === 200));
      const calls = fast.calls('m');
      assert.equal(calls.length, 6);
      // Most calls in flight at once, from the fake's own record of when each started and ended.
      const peak = Math.max(...calls.map((c) => calls.filter((o) => o.startedAt <= c.startedAt && (o.endedAt ?? Infinity) > c.startedAt).length));
      assert.ok(peak <= 2, `${peak} calls in flight at once (cap 2)`);
    } finally {
      fast.setBehaviour('m', { default: { kind: 'ok' } });
    }
  });
});

describe('answer points', () => {
  test('an API sharing the worker answers early; a model set to `recorded` and a request asking for it wait for the record', async () => {
    assert.equal((await ask(keel.url, 'chat')).res.headers.get('x-keel-answer'), 'early');
    assert.equal((await ask(keel.url, 'late')).res.headers.get('x-keel-answer'), 'recorded');
    assert.equal((await ask(keel.url, 'chat', { keel: { answer: 'recorded' } })).res.headers.get('x-keel-answer'), 'recorded');
  });

  test('an early answer is the outcome that is then recorded', async () => {
    const { res, json } = await ask(keel.url, 'chat');
    assert.equal(res.headers.get('x-keel-answer'), 'early');
    const recorded = await keel.api.client.workflow.getHandle(res.headers.get('x-request-id')!).result();
    assert.equal(recorded.completion.id, json.id);
    assert.deepEqual(recorded.completion.choices, json.choices);
  });

  test('an early failure carries the same error and attempt log as the recorded one', async () => {
    fast.setBehaviour('bad', { default: { kind: 'error', status: 400, message: 'no such thing' } });
    const { res, json } = await ask(keel.url, 'fast/bad');
    assert.equal(res.status, 400);
    assert.equal(res.headers.get('x-keel-answer'), 'early');
    // The record follows the early answer by a few milliseconds (docs/REQUESTS.md).
    const id = res.headers.get('x-request-id')!;
    await keel.api.client.workflow.getHandle(id).result().catch(() => undefined);
    const view = await callJson(keel.url, 'GET', `/v1/requests/${id}`);
    assert.equal(view.json.status, 'failed');
    assert.equal(view.json.error.code, json.error.code);
    assert.equal(view.json.attempts.length, json.keel.attempts.length);
  });

  test('an API without a worker in its process answers from the record', async () => {
    const { res, json } = await ask(split.url, 'chat');
    assert.equal(res.status, 200, JSON.stringify(json));
    assert.equal(res.headers.get('x-keel-answer'), 'recorded');
  });
});

// The head start (docs/ROUTING.md, "Head start"): a gateway's API sends a request's first call as
// the request becomes durable, and the first attempt adopts it. Checked at the fake provider (how
// many calls it got, which were aborted) and through a gateway, where every request's first call
// is a head start: one call per request, never two, on success, failure and streaming alike.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { HeadStarts } from '../activities/provider-call/head-start.js';
import { tryAcquirePermit } from '../activities/provider-call/local-gate.js';
import { parseConfig } from '../src/config/load.js';
import { startFakeProvider, type FakeProvider } from '../dev/fakes/index.js';
import { callJson, until } from './helpers/http.js';
import { readSse, contentOf } from './helpers/sse.js';
import { startKeel, startTemporal, type KeelUnderTest } from './helpers/temporal.js';

let fake: FakeProvider;

before(async () => {
  fake = await startFakeProvider({ type: 'openai' });
});

after(async () => {
  await fake?.close();
});

const body = (content: string) => ({ model: 'chat', messages: [{ role: 'user' as const, content }] });

describe('HeadStarts against a provider', () => {
  const config = () =>
    parseConfig(`providers:\n  p: { type: openai, baseURL: ${fake.url}, concurrency: 1 }\n  limited: { type: openai, baseURL: ${fake.url}, rateLimitPerSecond: 5 }\nmodels:\n  chat: { targets: [p/m] }\n`, {}, 'test');

  test('adopted: the answer of the one call sent, and the permit handed to the attempt', async () => {
    fake.resetCalls();
    const heads = new HeadStarts(config());
    const ticket = heads.begin({ requestId: 'r1', runId: 'run', provider: 'p', model: 'm', request: body('adopt me') });
    assert.ok(ticket?.answered);
    const head = heads.take('r1', 'p', 'm', false);
    assert.ok(head && head.call.kind === 'complete');
    const answer = await head.call.answer;
    assert.equal(answer.choices[0].message.content, '[m] adopt me');
    // What the API may answer with: the same completion, and the record the attempt keeps (its
    // duration is the call's, ending when the answer came, not when the attempt adopted it).
    const answered = await ticket.answered;
    assert.equal(answered?.completion, answer);
    assert.deepEqual(answered?.attempt, {
      target: 'p/m',
      provider: 'p',
      model: 'm',
      attempt: 1,
      startedAt: head.startedAt,
      durationMs: head.call.finishedAt()! - head.startedAt,
      outcome: 'success',
    });
    assert.equal(fake.calls('m').length, 1);
    assert.equal(heads.take('r1', 'p', 'm', false), undefined, 'adopted once');
    // concurrency 1: the attempt holds the one permit until it releases it.
    assert.equal(tryAcquirePermit('p', 1), undefined);
    head.release();
    const again = tryAcquirePermit('p', 1);
    assert.ok(again);
    again();
    assert.deepEqual(heads.counts, { begun: 1, adopted: 1, abandoned: 0 });
  });

  test('another target asked for: the call is aborted on the wire and its permit freed', async () => {
    fake.resetCalls();
    fake.setBehaviour('slow', { default: { kind: 'ok', latencyMs: 5_000 } });
    const heads = new HeadStarts(config());
    assert.ok(heads.begin({ requestId: 'r2', runId: 'run', provider: 'p', model: 'slow', request: body('wrong target') }));
    await fake.waitForCalls(1, { model: 'slow', timeoutMs: 5_000 });
    assert.equal(heads.take('r2', 'p', 'other', false), undefined);
    await until('the call aborted at the provider', () => (fake.calls('slow')[0]?.aborted ? true : undefined), 5_000);
    const permit = tryAcquirePermit('p', 1);
    assert.ok(permit, 'the permit is free again');
    permit();
    assert.deepEqual(heads.counts, { begun: 1, adopted: 0, abandoned: 1 });
  });

  test('never adopted: aborted after its wait; a full cap or a rate-limited provider gets no head start', async () => {
    fake.resetCalls();
    fake.setBehaviour('slow', { default: { kind: 'ok', latencyMs: 5_000 } });
    const heads = new HeadStarts(config(), { adoptWithinMs: 300 });
    assert.ok(heads.begin({ requestId: 'r3', runId: 'run', provider: 'p', model: 'slow', request: body('nobody comes') }));
    // concurrency 1, taken by the pending head start: the next request's call waits for its attempt.
    assert.equal(heads.begin({ requestId: 'r4', runId: 'run', provider: 'p', model: 'slow', request: body('no permit') }), undefined);
    assert.equal(heads.begin({ requestId: 'r5', runId: 'run', provider: 'limited', model: 'm', request: body('rate limited') }), undefined);
    await until('the unadopted call aborted', () => (fake.calls('slow')[0]?.aborted ? true : undefined), 5_000);
    assert.equal(fake.calls('slow').length, 1);
    assert.equal(heads.waiting, 0);
    assert.deepEqual(heads.counts, { begun: 1, adopted: 0, abandoned: 1 });
    const permit = tryAcquirePermit('p', 1);
    assert.ok(permit);
    permit();
  });

  test('an attempt that came before its head start: the head start is refused, nothing is sent twice', async () => {
    fake.resetCalls();
    const heads = new HeadStarts(config());
    // The workflow's first attempt ran before the API began the call (it makes its own).
    assert.equal(heads.take('r7', 'p', 'm', false), undefined);
    assert.equal(heads.begin({ requestId: 'r7', runId: 'run', provider: 'p', model: 'm', request: body('too late') }), undefined);
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(fake.calls('m').length, 0);
    assert.ok(heads.begin({ requestId: 'r8', runId: 'run', provider: 'p', model: 'm', request: body('in time') }), 'another request still gets one');
    const head = heads.take('r8', 'p', 'm', false);
    assert.ok(head && head.call.kind === 'complete');
    await head.call.answer;
    head.release();
    assert.equal(fake.calls('m').length, 1);
  });

  test('a target whose breaker is open gets no head start: nothing is sent', async () => {
    fake.resetCalls();
    const asked: string[] = [];
    const heads = new HeadStarts(config(), { admits: (target) => (asked.push(target), false) });
    assert.equal(heads.begin({ requestId: 'r6', runId: 'run', provider: 'p', model: 'm', request: body('breaker open') }), undefined);
    assert.deepEqual(asked, ['p/m']);
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(fake.calls('m').length, 0);
    assert.deepEqual(heads.counts, { begun: 0, adopted: 0, abandoned: 0 });
    const permit = tryAcquirePermit('p', 1);
    assert.ok(permit, 'no permit taken');
    permit();
  });
});

describe('through a gateway: one call per request', () => {
  let env: TestWorkflowEnvironment;
  let keel: KeelUnderTest;

  before(async () => {
    env = await startTemporal();
    keel = await startKeel(
      env,
      `
defaults:
  retry: { maxAttempts: 3, initialIntervalMs: 100, backoffCoefficient: 1, maximumIntervalMs: 100, jitter: 0 }
providers:
  h: { type: openai, baseURL: ${fake.url} }
models:
  chat: { targets: [h/hm] }
`,
    );
  });

  after(async () => {
    await keel?.stop();
    await env?.teardown();
  });

  test('an answer, a retried failure and a stream: each first call is the head start, adopted; none is sent twice', async () => {
    const heads = keel.headStarts!;
    const before = { ...heads.counts };
    fake.resetCalls();
    fake.setBehaviour('hm', { default: { kind: 'ok', content: 'one two three four five six' }, stream: { chunkDelayMs: 5 } });

    const plain = await callJson(keel.url, 'POST', '/v1/chat/completions', body('plain'));
    assert.equal(plain.res.status, 200, JSON.stringify(plain.json));
    assert.equal(plain.json.keel.attempts.length, 1);
    assert.equal(fake.calls('hm').length, 1);

    // The adopted first call fails; the retry is the attempt's own call.
    fake.setBehaviour('hm', { script: [{ kind: 'error', status: 503 }], default: { kind: 'ok', content: 'one two three four five six' }, stream: { chunkDelayMs: 5 } });
    const retried = await callJson(keel.url, 'POST', '/v1/chat/completions', body('retried'));
    assert.equal(retried.res.status, 200, JSON.stringify(retried.json));
    assert.deepEqual(
      retried.json.keel.attempts.map((a: { attempt: number; outcome: string }) => [a.attempt, a.outcome]),
      [
        [1, 'error'],
        [2, 'success'],
      ],
    );
    assert.equal(fake.calls('hm').length, 3);

    const res = await fetch(`${keel.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ ...body('streamed'), stream: true }),
    });
    assert.equal(res.headers.get('x-keel-stream'), 'live');
    const { events } = await readSse(res);
    assert.equal(contentOf(events), 'one two three four five six');
    assert.equal(events.at(-1)!.data, '[DONE]');
    assert.equal(fake.calls('hm').length, 4);

    assert.deepEqual(
      { begun: heads.counts.begun - before.begun, adopted: heads.counts.adopted - before.adopted, abandoned: heads.counts.abandoned - before.abandoned },
      { begun: 3, adopted: 3, abandoned: 0 },
    );
    assert.equal(heads.waiting, 0);
  });
});

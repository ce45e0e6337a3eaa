// The `call` answer point (docs/REQUESTS.md, "When you get your answer"): a gateway answers a
// waiting client from the request's head-started first call, once the request is durable, and the
// workflow records the same result right after. Checked as a client would: the answer header, what
// GET /v1/requests/:id and the history hold afterwards, how many calls the provider got.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { startFakeProvider, type FakeProvider } from '../dev/fakes/index.js';
import { callJson, until, type Json } from './helpers/http.js';
import { readSse, contentOf } from './helpers/sse.js';
import { startKeel, startTemporal, type KeelUnderTest } from './helpers/temporal.js';
import { AnswerBoard } from '../src/channels/answer-board.js';

const ADMIN = 'answer-call-admin-secret';
let env: TestWorkflowEnvironment;
let fake: FakeProvider;
let keel: KeelUnderTest;
let split: KeelUnderTest;

const yaml = (fakeUrl: string) => `
auth:
  adminKey: \${KEEL_ADMIN_KEY}
defaults:
  retry: { maxAttempts: 3, initialIntervalMs: 50, backoffCoefficient: 1, maximumIntervalMs: 50, jitter: 0 }
providers:
  p:
    type: openai
    baseURL: ${fakeUrl}
    models:
      m: { pricing: { input: 1, output: 2 } }
  q: { type: openai, baseURL: ${fakeUrl}, models: { n: { pricing: { input: 1, output: 2 } } } }
models:
  quick: { targets: [p/m, q/n], answer: call }
  chat: { targets: [p/m] }
  raced: { targets: [p/m, q/n], mode: race, answer: call }
`;

before(async () => {
  env = await startTemporal();
  fake = await startFakeProvider({ type: 'openai' });
  keel = await startKeel(env, yaml(fake.url), { env: { KEEL_ADMIN_KEY: ADMIN } });
  split = await startKeel(env, yaml(fake.url), { shared: false, env: { KEEL_ADMIN_KEY: ADMIN } });
});

after(async () => {
  await split?.stop();
  await keel?.stop();
  await fake?.close();
  await env?.teardown();
});

const admin = { authorization: `Bearer ${ADMIN}` };

function ask(base: string, model: string, extra: Record<string, unknown> = {}, headers: Record<string, string> = admin) {
  return callJson(base, 'POST', '/v1/chat/completions', { model, messages: [{ role: 'user', content: `Hello ${Math.random()}` }], ...extra }, headers);
}

/** The request's record once the workflow has written it: what GET /v1/requests/:id shows. */
async function recorded(id: string) {
  await keel.api.client.workflow.getHandle(id).result().catch(() => undefined);
  const view = await callJson(keel.url, 'GET', `/v1/requests/${id}`, undefined, admin);
  assert.equal(view.res.status, 200, JSON.stringify(view.json));
  return view.json;
}

/** The answer's body without the UI link (a view of the request, not part of its record). */
function withoutLink(json: Json) {
  const { ui_url: _u, ...keel } = json.keel;
  return { ...json, keel };
}

describe('the `call` answer point', () => {
  test('a model set to `call` is answered from its first call; the record then holds the same result, and the provider was called once', async () => {
    fake.setBehaviour('m', { default: { kind: 'ok', content: 'from the first call' } });
    fake.resetCalls();
    const heads = keel.headStarts!;
    const before = { ...heads.counts };
    const { res, json } = await ask(keel.url, 'quick');
    assert.equal(res.status, 200, JSON.stringify(json));
    assert.equal(res.headers.get('x-keel-answer'), 'call');
    assert.equal(json.choices[0].message.content, 'from the first call');
    assert.equal(json.keel.provider, 'p');
    assert.ok(json.keel.cost > 0, 'priced as the workflow prices it');
    assert.equal(json.usage.cost, json.keel.cost);
    const view = await recorded(res.headers.get('x-request-id')!);
    assert.equal(view.status, 'succeeded');
    // Everything the client got is what the record holds: completion, cost, attempt log.
    assert.deepEqual(view.result, withoutLink(json));
    assert.deepEqual(view.attempts, json.keel.attempts);
    assert.equal(fake.calls('m').length, 1, 'one call: the answer came from the call the workflow adopted');
    // The call went out once the request was durable: after the server recorded its start.
    const events = (await keel.api.client.workflow.getHandle(res.headers.get('x-request-id')!).fetchHistory()).events ?? [];
    const startedAt = Number(events[0].eventTime!.seconds) * 1000 + Math.floor(events[0].eventTime!.nanos! / 1e6);
    assert.ok(json.keel.attempts[0].startedAt >= startedAt, `call sent at ${json.keel.attempts[0].startedAt}, start recorded at ${startedAt}`);
    assert.deepEqual({ adopted: heads.counts.adopted - before.adopted, abandoned: heads.counts.abandoned - before.abandoned }, { adopted: 1, abandoned: 0 });
  });

  test('with an Idempotency-Key: answered from the call, and a retried POST gets the recorded answer without another call', async () => {
    fake.setBehaviour('m', { default: { kind: 'ok', content: 'once' } });
    fake.resetCalls();
    const headers = { ...admin, 'idempotency-key': `call-${Math.random()}` };
    const first = await ask(keel.url, 'quick', { messages: [{ role: 'user', content: 'same body' }] }, headers);
    assert.equal(first.res.status, 200, JSON.stringify(first.json));
    assert.equal(first.res.headers.get('x-keel-answer'), 'call');
    const events = (await keel.api.client.workflow.getHandle(first.res.headers.get('x-request-id')!).fetchHistory()).events ?? [];
    const startedAt = Number(events[0].eventTime!.seconds) * 1000 + Math.floor(events[0].eventTime!.nanos! / 1e6);
    assert.ok(first.json.keel.attempts[0].startedAt >= startedAt, 'sent once the start was durable');
    await recorded(first.res.headers.get('x-request-id')!);
    const again = await ask(keel.url, 'quick', { messages: [{ role: 'user', content: 'same body' }] }, headers);
    assert.equal(again.res.status, 200);
    assert.equal(again.res.headers.get('x-keel-answer'), 'recorded');
    assert.deepEqual(withoutLink(again.json), withoutLink(first.json));
    assert.equal(fake.calls('m').length, 1, 'the retried POST joined the request: no second call');
  });

  test('per request: `call` asked for on another model, and `recorded` asked for on a `call` model', async () => {
    fake.setBehaviour('m', { default: { kind: 'ok' } });
    assert.equal((await ask(keel.url, 'chat', { keel: { answer: 'call' } })).res.headers.get('x-keel-answer'), 'call');
    assert.equal((await ask(keel.url, 'chat')).res.headers.get('x-keel-answer'), 'early');
    assert.equal((await ask(keel.url, 'quick', { keel: { answer: 'recorded' } })).res.headers.get('x-keel-answer'), 'recorded');
  });

  test('a first call that fails leaves the answer to the workflow: its retry answers, early, with both attempts', async () => {
    fake.setBehaviour('m', { script: [{ kind: 'error', status: 503 }], default: { kind: 'ok', content: 'second time' } });
    fake.resetCalls();
    const { res, json } = await ask(keel.url, 'quick');
    assert.equal(res.status, 200, JSON.stringify(json));
    assert.equal(res.headers.get('x-keel-answer'), 'early');
    assert.equal(json.choices[0].message.content, 'second time');
    assert.deepEqual(
      json.keel.attempts.map((a: { attempt: number; outcome: string; status?: number }) => [a.attempt, a.outcome, a.status]),
      [
        [1, 'error', 503],
        [2, 'success', undefined],
      ],
    );
    assert.deepEqual((await recorded(res.headers.get('x-request-id')!)).result, withoutLink(json));
    assert.equal(fake.calls('m').length, 2);
  });

  test('a failure that falls back is the workflow\'s too: the second target answers', async () => {
    fake.setBehaviour('m', { default: { kind: 'error', status: 503 } });
    fake.setBehaviour('n', { default: { kind: 'ok', content: 'the fallback' } });
    try {
      const { res, json } = await ask(keel.url, 'quick');
      assert.equal(res.status, 200, JSON.stringify(json));
      assert.notEqual(res.headers.get('x-keel-answer'), 'call');
      assert.equal(json.keel.provider, 'q');
      assert.deepEqual((await recorded(res.headers.get('x-request-id')!)).result, withoutLink(json));
    } finally {
      fake.setBehaviour('m', { default: { kind: 'ok' } });
    }
  });

  test('a key with a budget: the answer carries the charge the workflow records', async () => {
    fake.setBehaviour('m', { default: { kind: 'ok', content: 'charged' } });
    const created = await callJson(keel.url, 'POST', '/v1/keys', { name: 'caller', budget: { usd: 5, period: 'total' } }, admin);
    assert.equal(created.res.status, 201, JSON.stringify(created.json));
    const { res, json } = await ask(keel.url, 'quick', { max_tokens: 100 }, { authorization: `Bearer ${created.json.secret}` });
    assert.equal(res.status, 200, JSON.stringify(json));
    assert.equal(res.headers.get('x-keel-answer'), 'call');
    assert.ok(json.keel.key.charged_usd > 0);
    assert.deepEqual((await recorded(res.headers.get('x-request-id')!)).result, withoutLink(json));
    // The key's spend is settled by the workflow, as for any other answer point.
    const spent = await until('the key\'s settled spend', async () => {
      const key = (await callJson(keel.url, 'GET', `/v1/keys/${created.json.id}`, undefined, admin)).json;
      return key.budget.spent_usd > 0 ? key.budget.spent_usd : undefined;
    });
    assert.equal(spent, json.keel.key.charged_usd);
  });

  test('never where the first call is not the answer, or nobody waits: race, streams, async jobs, an API without a worker', async () => {
    fake.setBehaviour('m', { default: { kind: 'ok', content: 'a b c' }, stream: { chunkDelayMs: 2 } });
    fake.setBehaviour('n', { default: { kind: 'ok', content: 'a b c' } });
    // A race starts two calls: no head start, so the workflow's outcome answers.
    assert.equal((await ask(keel.url, 'raced')).res.headers.get('x-keel-answer'), 'early');
    // A stream's content goes out live already; it ends when the workflow settles.
    const streamed = await fetch(`${keel.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...admin },
      body: JSON.stringify({ model: 'quick', stream: true, messages: [{ role: 'user', content: 'stream it' }] }),
    });
    assert.equal(streamed.headers.get('x-keel-stream'), 'live');
    const { events } = await readSse(streamed);
    assert.equal(contentOf(events), 'a b c');
    // An async job: 202 at once, its result read from the record.
    fake.resetCalls();
    const job = await callJson(keel.url, 'POST', '/v1/requests', { model: 'quick', messages: [{ role: 'user', content: 'later' }] }, admin);
    assert.equal(job.res.status, 202, JSON.stringify(job.json));
    assert.equal((await recorded(job.json.id)).status, 'succeeded');
    assert.equal(fake.calls('m').length, 1);
    // An API alone answers from the record, whatever is asked for.
    assert.equal((await ask(split.url, 'quick')).res.headers.get('x-keel-answer'), 'recorded');
  });
});

describe('answers ahead of their workflow are bounded', () => {
  test('past the bound an answer waits for its workflow; a settled workflow frees its place', async () => {
    const board = new AnswerBoard(2);
    assert.equal(board.answerAhead('a'), true);
    assert.equal(board.answerAhead('b'), true);
    assert.equal(board.answerAhead('a'), true, 'the same request keeps its place');
    assert.equal(board.answerAhead('c'), false);
    const waiting = board.wait('c');
    assert.equal(board.settle('a', { ok: false, failure: { errorClass: 'timeout', status: 504, message: 'x', attempts: [] } }), false, 'nobody waits for a');
    assert.equal(board.answeredAhead, 1);
    assert.equal(board.answerAhead('d'), true);
    waiting.cancel();
  });

  test('in a gateway every request answered from its call is counted until its workflow settles', async () => {
    fake.setBehaviour('m', { default: { kind: 'ok' } });
    const answers = await Promise.all(Array.from({ length: 6 }, () => ask(keel.url, 'quick')));
    assert.ok(answers.every((a) => a.res.status === 200));
    await until('every workflow settled', () => (keel.answers!.answeredAhead === 0 ? true : undefined), 10_000);
  });
});

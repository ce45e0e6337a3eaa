// Gateway keys and virtual keys end to end (docs/KEYS.md), in the production layout: a dev server
// with its SQLite file, a worker process and two API processes (`npm run api` each, no worker in
// them: every reservation is a round trip to the key's workflow), the fake provider in this
// process. What a user would check: the status codes and bodies, the provider calls that happened
// (or did not), the key's spend after a restart, and every history and log for secrets.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Client, Connection } from '@temporalio/client';
import OpenAI, { toFile } from 'openai';
import { startFakeProvider, type FakeProvider } from '../dev/fakes/index.js';
import { WORKFLOW_TYPES } from '../src/core/contract.js';
import { startDevServer, type DevServer } from '../src/temporal/dev-server.js';
import { callJson, until, type Json } from './helpers/http.js';
import { freePort, startRole, type RoleProcess } from './helpers/processes.js';

const ADMIN = `keel-admin-${randomBytes(16).toString('hex')}`;
/** Every secret this test creates: none may appear in a history or a log. */
const secrets: string[] = [ADMIN];
const dir = mkdtempSync(join(tmpdir(), 'keel-keys-'));
const configPath = join(dir, 'keel.yaml');
let server: DevServer;
let temporalPort: number;
let client: Client;
let fake: FakeProvider;
let worker: RoleProcess;
let apis: RoleProcess[] = [];
const apiUrls: string[] = [];
/** Output of every process that has run, kept when a process is restarted. */
const logs: string[] = [];

// $1 per million output tokens and nothing for input: a request with max_tokens 1000 reserves
// exactly $0.001, and the fake answers with exactly 1,000 tokens (its text is cut at max_tokens),
// so each request costs what it reserved and the arithmetic below is exact.
const yaml = (fakeUrl: string) => `
auth:
  adminKey: \${KEEL_ADMIN_KEY}
defaults:
  retry: { maxAttempts: 1, initialIntervalMs: 100, backoffCoefficient: 2, maximumIntervalMs: 200, jitter: 0 }
providers:
  p:
    type: openai
    baseURL: ${fakeUrl}
    models:
      m: { pricing: { input: 0, output: 1 } }
      o: { pricing: { input: 0, output: 1 } }
      bad: { pricing: { input: 0, output: 1 } }
      hang: { pricing: { input: 0, output: 1 } }
      free: {}
models:
  chat: { targets: [p/m] }
  other: { targets: [p/o] }
  broken: { targets: [p/bad] }
  stuck: { targets: [p/hang] }
  unpriced: { targets: [p/free] }
`;

async function startApis(): Promise<void> {
  apis = [];
  for (let i = 0; i < 2; i++) {
    const port = apiUrls[i] ? Number(new URL(apiUrls[i]).port) : await freePort();
    apis.push(await startRole('api', { configPath, temporalAddress: `127.0.0.1:${temporalPort}`, dataDir: dir, port, env: { KEEL_ADMIN_KEY: ADMIN } }));
    apiUrls[i] = `http://127.0.0.1:${port}`;
  }
}

async function startAll(): Promise<void> {
  server = await startDevServer({ dataDir: dir, port: temporalPort, headless: true });
  client = new Client({ connection: await Connection.connect({ address: server.address }) });
  worker = await startRole('worker', { configPath, temporalAddress: server.address, dataDir: dir, env: { KEEL_ADMIN_KEY: ADMIN } });
  await startApis();
}

async function stopAll(): Promise<void> {
  for (const p of [...apis, worker]) {
    if (!p) continue;
    logs.push(p.output());
    await p.kill();
  }
  await client?.connection.close().catch(() => undefined);
  await server?.stop();
}

before(async () => {
  temporalPort = await freePort();
  fake = await startFakeProvider({ type: 'openai' });
  for (const model of ['m', 'o']) fake.setBehaviour(model, { default: { kind: 'ok', content: 'x'.repeat(8_000) }, latency: { baseMs: 400 } });
  fake.setBehaviour('bad', { default: { kind: 'error', status: 400, message: 'the provider refuses this' } });
  fake.setBehaviour('hang', { default: { kind: 'hang' } });
  writeFileSync(configPath, yaml(fake.url));
  await startAll();
});

after(async () => {
  await stopAll();
  await fake?.close();
  rmSync(dir, { recursive: true, force: true });
});

const bearer = (token: string | undefined): Record<string, string> => (token === undefined ? {} : { authorization: `Bearer ${token}` });
const call = (api: number, method: string, path: string, token?: string, body?: unknown) => callJson(apiUrls[api], method, path, body, bearer(token));
const ask = (api: number, token: string | undefined, model = 'chat', extra: Record<string, unknown> = {}) =>
  call(api, 'POST', '/v1/chat/completions', token, { model, max_tokens: 1_000, messages: [{ role: 'user', content: 'Hello' }], ...extra });

async function createKey(settings: Record<string, unknown>): Promise<{ id: string; secret: string; json: Json }> {
  const { res, json } = await call(0, 'POST', '/v1/keys', ADMIN, settings);
  assert.equal(res.status, 201, JSON.stringify(json));
  secrets.push(json.secret);
  return { id: json.id, secret: json.secret, json };
}

function assertInvalidKey({ res, json }: { res: Response; json: Json }): void {
  assert.equal(res.status, 401, JSON.stringify(json));
  assert.equal(json.error.code, 'invalid_api_key');
  assert.equal(json.error.type, 'invalid_request_error');
  assert.equal(res.headers.get('www-authenticate'), 'Bearer');
}

describe('gateway auth', () => {
  test('401 for a missing, malformed or wrong key on every /v1 route; /healthz and /status stay open', async () => {
    for (const path of ['/v1/models', '/v1/requests', '/v1/keys', '/v1/batches', '/v1/providers']) {
      assertInvalidKey(await call(0, 'GET', path));
    }
    assertInvalidKey(await ask(1, undefined));
    assertInvalidKey(await ask(1, 'not-a-key'));
    assertInvalidKey(await ask(1, `${ADMIN}x`));
    // Shaped like a Keel key, for a key that does not exist.
    assertInvalidKey(await ask(1, `sk-keel-${'0'.repeat(24)}-${'A'.repeat(43)}`));
    const basic = await callJson(apiUrls[0], 'GET', '/v1/models', undefined, { authorization: `Basic ${Buffer.from(`x:${ADMIN}`).toString('base64')}` });
    assertInvalidKey(basic);
    // Nothing reached the provider.
    assert.equal(fake.calls().length, 0);
    assert.equal((await call(0, 'GET', '/healthz')).res.status, 200);
    assert.equal((await fetch(`${apiUrls[0]}/status`)).status, 200);
    // The admin key works, as the OpenAI SDK sends it.
    const sdk = new OpenAI({ baseURL: `${apiUrls[1]}/v1`, apiKey: ADMIN, maxRetries: 0 });
    const completion = await sdk.chat.completions.create({ model: 'chat', max_tokens: 10, messages: [{ role: 'user', content: 'Hi' }] });
    assert.equal(completion.object, 'chat.completion');
  });

  test('the admin API: the secret is shown once, kept as a hash; a virtual key reads itself and administers nothing', async () => {
    const { id, secret, json } = await createKey({ name: 'team-a', budget: { usd: 5, period: 'month' }, rpm: 100, metadata: { team: 'a' } });
    assert.match(id, /^vk_[0-9a-f]{24}$/);
    assert.match(secret, new RegExp(`^sk-keel-${id.slice(3)}-`));
    assert.deepEqual(json.budget.usd, 5);
    const read = await call(1, 'GET', `/v1/keys/${id}`, ADMIN);
    assert.equal(read.res.status, 200);
    assert.ok(!JSON.stringify(read.json).includes(secret), 'never shown again');
    assert.equal(read.json.secret, undefined);
    assert.deepEqual(read.json.metadata, { team: 'a' });
    assert.equal((await call(1, 'GET', `/v1/keys/${id}`, secret)).res.status, 200, 'a key reads itself');
    assert.equal((await call(1, 'GET', '/v1/keys', secret)).res.status, 403);
    assert.equal((await call(1, 'POST', '/v1/keys', secret, { name: 'mine' })).res.status, 403);
    assert.equal((await call(1, 'DELETE', `/v1/keys/${id}`, secret)).res.status, 403);
    const patched = await call(0, 'PATCH', `/v1/keys/${id}`, ADMIN, { rpm: null, tpm: 50_000, name: 'team-a2' });
    assert.equal(patched.res.status, 200, JSON.stringify(patched.json));
    assert.equal(patched.json.limits.rpm, null);
    assert.equal(patched.json.limits.tpm, 50_000);
    const bad = await call(0, 'PATCH', `/v1/keys/${id}`, ADMIN, { budget: { usd: -1 } });
    assert.equal(bad.res.status, 400);
    assert.equal(bad.json.error.param, 'budget.usd');
    const listed = await call(0, 'GET', '/v1/keys?limit=100', ADMIN);
    assert.ok(listed.json.data.some((k: Json) => k.id === id && k.name === 'team-a2' && k.status === 'active'));
    assert.equal((await call(0, 'GET', '/v1/keys/vk_000000000000000000000000', ADMIN)).res.status, 404);
  });

  test('a key limited to one model: the others are 403 before any provider call, and /v1/models lists only it', async () => {
    const { secret } = await createKey({ models: ['chat'] });
    const ok = await ask(0, secret, 'chat');
    assert.equal(ok.res.status, 200, JSON.stringify(ok.json));
    const before = fake.calls('o').length;
    for (const model of ['other', 'p/o', 'p/m']) {
      const { res, json } = await ask(1, secret, model);
      assert.equal(res.status, 403, `${model}: ${JSON.stringify(json)}`);
      assert.equal(json.error.code, 'model_not_allowed');
    }
    assert.equal((await ask(1, secret, 'chat', { models: ['other'] })).res.status, 403, 'a fallback model counts too');
    assert.equal(fake.calls('o').length, before);
    const models = await call(1, 'GET', '/v1/models', secret);
    assert.deepEqual(models.json.data.map((m: Json) => m.id), ['chat']);
  });
});

describe('exact budgets across two API processes', () => {
  test('50 concurrent requests against a budget for 10: exactly 10 reach the provider and succeed, spend = budget', { timeout: 120_000 }, async () => {
    const { id, secret } = await createKey({ budget: { usd: 0.01, period: 'total' } });
    const before = fake.calls('m').length;
    const results = await Promise.all(Array.from({ length: 50 }, (_, i) => ask(i % 2, secret)));
    const ok = results.filter((r) => r.res.status === 200);
    const refused = results.filter((r) => r.res.status === 429);
    assert.equal(ok.length, 10, results.map((r) => r.res.status).join(','));
    assert.equal(refused.length, 40);
    // Each API alone would have admitted 10 of its 25; together they admitted 10 (whichever API's
    // reservations reached the key's workflow first took them).
    for (const r of ok) {
      assert.equal(r.json.keel.key.id, id);
      assert.equal(r.json.keel.key.reserved_usd, 0.001);
      assert.equal(r.json.keel.key.charged_usd, 0.001);
      assert.equal(r.json.usage.cost, 0.001);
    }
    for (const r of refused) {
      assert.equal(r.json.error.code, 'budget_exceeded');
      assert.equal(r.json.error.type, 'insufficient_quota');
      assert.equal(r.json.keel.budget.usd, 0.01);
      assert.ok(r.json.keel.budget.remaining_usd < 0.001, 'refused only when the worst case did not fit');
      assert.equal(r.json.keel.requested_usd, 0.001);
    }
    // Refused before any provider call.
    assert.equal(fake.calls('m').length - before, 10);
    const view = await until('the last settlement', async () => {
      const { json } = await call(1, 'GET', `/v1/keys/${id}`, ADMIN);
      return json.budget.reserved_usd === 0 ? json : undefined;
    });
    assert.equal(view.budget.spent_usd, 0.01);
    assert.equal(view.budget.remaining_usd, 0);
    assert.equal(view.spend.requests, 10);
    assert.deepEqual(view.reservations, []);
    const after = await ask(0, secret);
    assert.equal(after.res.status, 429);
    assert.equal(after.json.keel.budget.remaining_usd, 0);
  });

  test('a budgeted key refuses what it cannot price or bound (400), before any provider call', async () => {
    const { secret } = await createKey({ budget: { usd: 1, period: 'day' } });
    const unpriced = await ask(0, secret, 'unpriced');
    assert.equal(unpriced.res.status, 400);
    assert.equal(unpriced.json.error.code, 'model_not_priced');
    const unbounded = await call(1, 'POST', '/v1/chat/completions', secret, { model: 'chat', messages: [{ role: 'user', content: 'Hello' }] });
    assert.equal(unbounded.res.status, 400);
    assert.equal(unbounded.json.error.code, 'max_tokens_required');
    assert.equal(fake.calls('free').length, 0);
  });

  test('a failed request is charged nothing; the key finds its failed requests through KeelKey', async () => {
    const { id, secret } = await createKey({ budget: { usd: 1, period: 'total' } });
    const failed = await ask(0, secret, 'broken');
    assert.equal(failed.res.status, 400, JSON.stringify(failed.json));
    const requestId = failed.res.headers.get('x-request-id')!;
    const view = await until('the failed request to settle', async () => {
      const { json } = await call(1, 'GET', `/v1/keys/${id}`, secret);
      return json.spend.requests === 1 ? json : undefined;
    });
    assert.equal(view.budget.spent_usd, 0);
    assert.equal(view.budget.reserved_usd, 0);
    // What the UI's filter does: a visibility query on the key's search attribute.
    const listed = await until('visibility', async () => {
      const { json } = await call(0, 'GET', `/v1/requests?status=failed`, secret);
      return json.data.length === 1 ? json : undefined;
    });
    assert.equal(listed.data[0].id, requestId);
    assert.equal(listed.data[0].key_id, id);
    const ui = await client.workflow.list({ query: `ExecutionStatus = 'Failed' AND KeelKey = '${id}'` });
    const ids: string[] = [];
    for await (const e of ui) ids.push(e.workflowId);
    assert.deepEqual(ids, [requestId]);
  });

  test('a cancelled request gives its reservation back and is charged nothing', async () => {
    const { id, secret } = await createKey({ budget: { usd: 0.0015, period: 'total' } });
    const job = await call(0, 'POST', '/v1/requests', secret, { model: 'stuck', max_tokens: 1_000, messages: [{ role: 'user', content: 'Hello' }] });
    assert.equal(job.res.status, 202, JSON.stringify(job.json));
    assert.equal(job.res.headers.get('x-keel-budget-remaining'), '0.0005');
    await fake.waitForCalls(1, { model: 'hang', timeoutMs: 30_000 });
    assert.equal((await ask(1, secret)).res.status, 429, 'the reservation holds while the request runs');
    assert.equal((await call(1, 'POST', `/v1/requests/${job.json.id}/cancel`, secret)).res.status, 202);
    const view = await until('the cancelled request to settle', async () => {
      const { json } = await call(0, 'GET', `/v1/keys/${id}`, ADMIN);
      return json.spend.requests === 1 ? json : undefined;
    }, 30_000);
    assert.equal(view.budget.reserved_usd, 0);
    assert.equal(view.budget.spent_usd, 0);
    assert.equal((await ask(1, secret)).res.status, 200, 'the budget is free again');
  });

  test('TPM: the worst case counts at admission, across both APIs', async () => {
    // One request's worst case is max_tokens 1000 plus the prompt bound (~1,100): two do not fit 3,000.
    const { secret } = await createKey({ tpm: 3_000 });
    const [a, b] = await Promise.all([ask(0, secret), ask(1, secret)]);
    const statuses = [a.res.status, b.res.status].sort();
    assert.deepEqual(statuses, [200, 429]);
    const refused = a.res.status === 429 ? a : b;
    assert.equal(refused.json.error.type, 'tokens');
    assert.equal(refused.json.error.code, 'rate_limit_exceeded');
    assert.ok(Number(refused.res.headers.get('retry-after')) > 0);
  });
});

describe('limits and revocation across API processes', () => {
  test('RPM across two APIs: at most L admitted in any minute', { timeout: 150_000 }, async () => {
    const L = 5;
    const { secret } = await createKey({ rpm: L });
    const burst = async () => {
      const results = await Promise.all(Array.from({ length: 12 }, (_, i) => ask(i % 2, secret)));
      return { admitted: results.filter((r) => r.res.status === 200), refused: results.filter((r) => r.res.status === 429), done: Date.now() };
    };
    const first = await burst();
    assert.equal(first.admitted.length, L);
    assert.equal(first.refused.length, 12 - L);
    for (const r of first.refused) {
      assert.equal(r.json.error.type, 'requests');
      assert.equal(r.json.error.code, 'rate_limit_exceeded');
    }
    await new Promise((r) => setTimeout(r, 15_000));
    const second = await burst();
    assert.equal(second.admitted.length, 0, 'still within the minute of the first burst');
    const wait = Math.max(...second.refused.map((r) => Number(r.res.headers.get('retry-after'))));
    assert.ok(wait > 0 && wait <= 60, `retry-after ${wait}`);
    // Every first-burst admission has left the window once the longest retry-after has passed.
    await new Promise((r) => setTimeout(r, Math.max(wait * 1000, first.done + 60_000 - Date.now()) + 1_000));
    const third = await burst();
    assert.equal(third.admitted.length, L, 'a new minute admits L again');
  });

  test('revocation reaches every API process within 1 s; a key with a limit is refused at once', async (t) => {
    const plain = await createKey({ name: 'plain' });
    const limited = await createKey({ name: 'limited', rpm: 1_000 });
    // Both APIs have read (and cached) both keys.
    for (const k of [plain, limited]) for (const api of [0, 1]) assert.equal((await ask(api, k.secret)).res.status, 200);
    const revoked = await call(0, 'DELETE', `/v1/keys/${limited.id}`, ADMIN);
    assert.equal(revoked.json.status, 'revoked');
    assert.equal(revoked.json.deleted, true);
    assertInvalidKey(await ask(1, limited.secret));
    await call(0, 'DELETE', `/v1/keys/${plain.id}`, ADMIN);
    const revokedAt = Date.now();
    let refusedAfter = -1;
    while (Date.now() - revokedAt < 5_000) {
      const { res } = await call(1, 'GET', '/v1/models', plain.secret);
      if (res.status === 401) {
        refusedAfter = Date.now() - revokedAt;
        break;
      }
      await new Promise((r) => setTimeout(r, 25));
    }
    t.diagnostic(`the other API refused the revoked key ${refusedAfter} ms after DELETE answered`);
    assert.ok(refusedAfter >= 0 && refusedAfter <= 1_000, `refused ${refusedAfter} ms after the revocation`);
    for (const api of [0, 1]) assertInvalidKey(await ask(api, plain.secret));
    // Its spend stays readable.
    const view = await call(1, 'GET', `/v1/keys/${plain.id}`, ADMIN);
    assert.equal(view.json.status, 'revoked');
    assert.equal(view.json.spend.requests, 2);
  });
});

describe('batches and ownership', () => {
  test('a keyed batch reserves per line: 3 of 6 lines fit the budget, the rest fail budget_exceeded; another key sees none of it', { timeout: 120_000 }, async () => {
    const { id, secret } = await createKey({ budget: { usd: 0.003, period: 'total' } });
    const other = await createKey({});
    const sdk = new OpenAI({ baseURL: `${apiUrls[0]}/v1`, apiKey: secret, maxRetries: 0 });
    const lines = Array.from({ length: 6 }, (_, i) => JSON.stringify({ custom_id: `line-${i}`, method: 'POST', url: '/v1/chat/completions', body: { model: 'chat', max_tokens: 1_000, messages: [{ role: 'user', content: `line ${i}` }] } }));
    const file = await sdk.files.create({ file: await toFile(Buffer.from(`${lines.join('\n')}\n`), 'in.jsonl'), purpose: 'batch' });
    const otherSdk = new OpenAI({ baseURL: `${apiUrls[1]}/v1`, apiKey: other.secret, maxRetries: 0 });
    await assert.rejects(otherSdk.files.retrieve(file.id), OpenAI.NotFoundError);
    await assert.rejects(otherSdk.batches.create({ input_file_id: file.id, endpoint: '/v1/chat/completions', completion_window: '24h' }), OpenAI.NotFoundError);
    const batch = await sdk.batches.create({ input_file_id: file.id, endpoint: '/v1/chat/completions', completion_window: '24h' });
    const done = await until('the batch', async () => {
      const b = await sdk.batches.retrieve(batch.id);
      return ['completed', 'failed', 'expired'].includes(b.status) ? b : undefined;
    }, 90_000);
    assert.equal(done.status, 'completed');
    assert.deepEqual(done.request_counts, { total: 6, completed: 3, failed: 3 });
    const errors = (await (await sdk.files.content(done.error_file_id!)).text()).split('\n').filter(Boolean).map((l) => JSON.parse(l) as Json);
    assert.equal(errors.length, 3);
    for (const e of errors) assert.equal(e.error.code, 'budget_exceeded');
    const view = (await call(1, 'GET', `/v1/keys/${id}`, secret)).json;
    assert.equal(view.budget.spent_usd, 0.003);
    assert.equal(view.budget.reserved_usd, 0);
    await assert.rejects(otherSdk.batches.retrieve(batch.id), OpenAI.NotFoundError);
    assert.equal((await otherSdk.batches.list()).data.length, 0);
    await assert.rejects(otherSdk.files.content(done.output_file_id!), OpenAI.NotFoundError);
  });

  test("a key's requests are its own: another key gets 404, may not replay, and lists none of them", async () => {
    const a = await createKey({});
    const b = await createKey({});
    const asked = await ask(0, a.secret);
    const requestId = asked.res.headers.get('x-request-id')!;
    assert.equal((await call(1, 'GET', `/v1/requests/${requestId}`, a.secret)).res.status, 200);
    assert.equal((await call(1, 'GET', `/v1/requests/${requestId}`, b.secret)).res.status, 404);
    assert.equal((await call(1, 'POST', `/v1/requests/${requestId}/cancel`, b.secret)).res.status, 404);
    assert.equal((await call(1, 'POST', `/v1/requests/${requestId}/replay`, a.secret)).res.status, 403);
    const listed = await call(0, 'GET', '/v1/requests?limit=100', b.secret);
    assert.ok(!listed.json.data.some((r: Json) => r.id === requestId));
    // The same Idempotency-Key under two keys is two requests.
    const idem = { 'idempotency-key': `same-${randomBytes(4).toString('hex')}` };
    const body = { model: 'chat', max_tokens: 10, messages: [{ role: 'user', content: 'Hi' }] };
    const ra = await callJson(apiUrls[0], 'POST', '/v1/chat/completions', body, { ...bearer(a.secret), ...idem });
    const rb = await callJson(apiUrls[0], 'POST', '/v1/chat/completions', body, { ...bearer(b.secret), ...idem });
    assert.notEqual(ra.res.headers.get('x-request-id'), rb.res.headers.get('x-request-id'));
  });
});

describe('durability and secrets', () => {
  test("a key's spend survives a restart of Temporal, the worker and both APIs", { timeout: 180_000 }, async () => {
    const { id, secret } = await createKey({ budget: { usd: 0.002, period: 'month' } });
    assert.equal((await ask(0, secret)).res.status, 200);
    assert.equal((await ask(1, secret)).res.status, 200);
    const before = await until('settlements', async () => {
      const { json } = await call(0, 'GET', `/v1/keys/${id}`, ADMIN);
      return json.budget.reserved_usd === 0 ? json : undefined;
    });
    assert.equal(before.budget.spent_usd, 0.002);
    await stopAll();
    await startAll();
    const after = (await call(1, 'GET', `/v1/keys/${id}`, ADMIN)).json;
    assert.deepEqual(after.budget, before.budget);
    assert.deepEqual(after.spend, before.spend);
    const refused = await ask(0, secret);
    assert.equal(refused.res.status, 429, 'the spent budget still refuses');
    assert.equal(refused.json.error.code, 'budget_exceeded');
  });

  test('no key secret in any history (requests, batches, keys) or in any process log', async () => {
    const histories: string[] = [];
    for await (const e of client.workflow.list()) {
      const h = await client.workflow.getHandle(e.workflowId, e.runId).fetchHistory();
      histories.push(JSON.stringify(h));
    }
    assert.ok(histories.length > 50, `${histories.length} executions`);
    assert.ok(histories.some((h) => h.includes(WORKFLOW_TYPES.virtualKey)));
    logs.push(...apis.map((p) => p.output()), worker.output());
    for (const secret of secrets) {
      // The part after the key id is what must never leak (the id itself is a public label).
      const hidden = secret.slice(-43);
      for (const text of [...histories, ...logs]) assert.ok(!text.includes(hidden), 'a secret leaked');
    }
    assert.equal(secrets.length > 10, true);
  });
});

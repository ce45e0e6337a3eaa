// Async jobs: POST /v1/requests (202 + Location), polling by id, Idempotency-Key (one run, one
// provider call), and signed webhooks delivered by an activity that Temporal retries — against a
// real Temporal dev server, a fake provider and a real HTTP receiver on loopback.
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import proto from '@temporalio/proto';
const { temporal } = proto;
import { startFakeProvider, type FakeProvider } from '../dev/fakes/index.js';
import type { WebhookEvent } from '../src/core/request-types.js';
import { resolveWebhookDestination, type DestinationPolicy } from '../src/webhooks/destination.js';
import { verifyWebhookSignature } from '../src/webhooks/signature.js';
import { startKeel, startTemporal, type KeelUnderTest } from './helpers/temporal.js';
import { callJson, settledRequest, until, type Json } from './helpers/http.js';
import { WORKFLOW_TYPES } from '../src/core/contract.js';

const SECRET = 'whsec-test-0123456789abcdef';

let env: TestWorkflowEnvironment;
let keel: KeelUnderTest;
let a: FakeProvider;
let receiver: Receiver;

interface Delivery {
  path: string;
  headers: http.IncomingHttpHeaders;
  body: string;
  status: number;
}
interface Receiver {
  url: string;
  deliveries: Delivery[];
  /** Status codes answered in turn (then 200). */
  script: number[];
  close(): Promise<void>;
}

async function startReceiver(): Promise<Receiver> {
  const server = http.createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (c: string) => (body += c));
    req.on('end', () => {
      const status = r.script.shift() ?? 200;
      r.deliveries.push({ path: req.url ?? '', headers: req.headers, body, status });
      res.writeHead(status).end();
    });
  });
  const r: Receiver = {
    url: '',
    deliveries: [],
    script: [],
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  r.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return r;
}

before(async () => {
  env = await startTemporal();
  a = await startFakeProvider({ type: 'openai' });
  receiver = await startReceiver();
  keel = await startKeel(
    env,
    `
defaults:
  retry: { maxAttempts: 2, initialIntervalMs: 100, backoffCoefficient: 2, maximumIntervalMs: 200, jitter: 0 }
  timeouts: { attemptMs: 10000, requestMs: 20000 }
providers:
  a: { type: openai, baseURL: ${a.url} }
models:
  m: { targets: [a/m] }
  bad: { targets: [a/bad] }
webhooks:
  secret: "\${KEEL_WEBHOOK_SECRET}"
  allowedHosts: ['127.0.0.1']
  timeoutMs: 3000
  retry: { maxAttempts: 5, initialIntervalMs: 200, backoffCoefficient: 2, maximumIntervalMs: 1000 }
`,
    { env: { KEEL_WEBHOOK_SECRET: SECRET, TEMPORAL_ADDRESS: env.address } },
  );
});

after(async () => {
  await keel?.stop();
  await Promise.all([a?.close(), receiver?.close()]);
  await env?.teardown();
});

function fresh(): void {
  a.resetCalls();
  a.setBehaviour('m', { default: { kind: 'ok' } });
  receiver.deliveries.length = 0;
  receiver.script = [];
}

const call = (method: string, path: string, body?: unknown, headers: Record<string, string> = {}) => callJson(keel.url, method, path, body, headers);

const chat = (content = 'ping', model = 'm') => ({ model, messages: [{ role: 'user' as const, content }] });

const settled = (id: string) => settledRequest(keel.url, id);

describe('async jobs', () => {
  test('POST /v1/requests -> 202 with Location and ui_url; GET gives status, attempts and result', async () => {
    fresh();
    a.setBehaviour('m', { default: { kind: 'ok', latencyMs: 400 } });
    const { res, json } = await call('POST', '/v1/requests', chat());
    assert.equal(res.status, 202);
    assert.equal(json.object, 'keel.request');
    assert.match(json.id, /^req-/);
    assert.ok(['queued', 'running'].includes(json.status), json.status);
    assert.equal(res.headers.get('location'), `/v1/requests/${json.id}`);
    assert.equal(res.headers.get('x-request-id'), json.id);
    assert.ok(json.ui_url.endsWith(`/workflows/${json.id}`));
    assert.equal(res.headers.get('x-keel-ui-url'), json.ui_url);
    assert.equal(json.webhook, null);
    const done = await settled(json.id);
    assert.equal(done.status, 'succeeded');
    assert.equal(done.attempts.length, 1);
    assert.equal(done.result.object, 'chat.completion');
    assert.equal(done.result.keel.provider, 'a');
    assert.equal(done.ui_url, json.ui_url);
  });

  test('invalid bodies are refused before anything starts', async () => {
    assert.equal((await call('POST', '/v1/requests', { messages: [] })).res.status, 400);
    const unknown = await call('POST', '/v1/requests', chat('x', 'no-such-model'));
    assert.equal(unknown.res.status, 404);
    const badHook = await call('POST', '/v1/requests', { ...chat(), webhook: 'http://127.0.0.1/' });
    assert.equal(badHook.res.status, 400);
    assert.equal(badHook.json.error.param, 'webhook');
  });
});

describe('idempotency', () => {
  test('POST /v1/requests with one Idempotency-Key: same id, one provider call, even after it finished', async () => {
    fresh();
    a.setBehaviour('m', { default: { kind: 'ok', latencyMs: 500 } });
    const key = `async-${Date.now()}`;
    const headers = { 'Idempotency-Key': key };
    const [first, second] = await Promise.all([call('POST', '/v1/requests', chat('same'), headers), call('POST', '/v1/requests', chat('same'), headers)]);
    assert.equal(first.res.status, 202);
    assert.equal(second.res.status, 202);
    assert.equal(first.json.id, second.json.id);
    await settled(first.json.id);
    const third = await call('POST', '/v1/requests', chat('same'), headers);
    assert.equal(third.res.status, 202);
    assert.equal(third.json.id, first.json.id);
    assert.equal(third.json.status, 'succeeded');
    assert.equal(a.calls('m').length, 1, 'the provider was called once');
    const other = await call('POST', '/v1/requests', chat('another body'), headers);
    assert.equal(other.res.status, 422);
    assert.equal(other.res.headers.get('x-keel-ui-url'), first.json.ui_url);
    assert.equal(a.calls('m').length, 1);
  });

  test('POST /v1/chat/completions with one Idempotency-Key: the same completion, one provider call', async () => {
    fresh();
    a.setBehaviour('m', { default: { kind: 'ok', latencyMs: 300 } });
    const headers = { 'Idempotency-Key': `sync-${Date.now()}` };
    const [one, two] = await Promise.all([call('POST', '/v1/chat/completions', chat('s'), headers), call('POST', '/v1/chat/completions', chat('s'), headers)]);
    const three = await call('POST', '/v1/chat/completions', chat('s'), headers);
    for (const r of [one, two, three]) assert.equal(r.res.status, 200);
    assert.equal(one.json.id, two.json.id);
    assert.equal(one.json.id, three.json.id);
    assert.equal(one.res.headers.get('x-request-id'), three.res.headers.get('x-request-id'));
    assert.ok(one.json.keel.ui_url);
    assert.equal(a.calls('m').length, 1);
  });
});

describe('webhooks', () => {
  test('the receiver fails twice with 500, then gets the signed event (same event id each time)', async () => {
    fresh();
    receiver.script = [500, 500];
    const { res, json } = await call('POST', '/v1/requests', { ...chat('hook me'), webhook: { url: `${receiver.url}/hooks/keel?x=1` } });
    assert.equal(res.status, 202);
    assert.deepEqual(json.webhook, { url: `${receiver.url}/hooks/keel?x=1` });
    await until('3 webhook deliveries', () => (receiver.deliveries.length >= 3 ? true : undefined), 20_000);
    const deliveries = receiver.deliveries;
    assert.deepEqual(deliveries.map((d) => d.status), [500, 500, 200]);
    assert.deepEqual(deliveries.map((d) => d.headers['x-keel-delivery-attempt']), ['1', '2', '3']);
    assert.equal(new Set(deliveries.map((d) => d.headers['x-keel-event-id'])).size, 1);
    for (const d of deliveries) {
      assert.equal(d.path, '/hooks/keel?x=1');
      assert.ok(verifyWebhookSignature(SECRET, d.body, d.headers['x-keel-signature'] as string), 'valid signature');
      assert.ok(!verifyWebhookSignature('another-secret-0123456789', d.body, d.headers['x-keel-signature'] as string));
      assert.ok(!verifyWebhookSignature(SECRET, d.body + ' ', d.headers['x-keel-signature'] as string), 'a changed body fails');
    }
    const event = JSON.parse(deliveries[2].body) as WebhookEvent;
    assert.equal(event.type, 'request.succeeded');
    assert.equal(event.data.id, json.id);
    assert.equal(event.data.status, 'succeeded');
    assert.equal(event.data.result?.object, 'chat.completion');
    assert.equal(event.data.ui_url, json.ui_url);
    // The webhook is Keel's field: the provider never sees it.
    const sent = a.calls('m')[0].request as Json;
    assert.equal(sent.webhook, undefined);
    await settled(json.id);
    // The signing secret is nowhere in the history (inputs, results, failures); the delivery is.
    const history = await env.client.workflow.getHandle(json.id).fetchHistory();
    const text = JSON.stringify(history);
    assert.ok(!text.includes(SECRET), 'secret not in history');
    const scheduled = (history.events ?? []).filter((e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'deliverWebhook');
    assert.equal(scheduled.length, 1, 'one deliverWebhook activity');
  });

  test('a receiver that never accepts: bounded retries, the outcome is readable meanwhile and unchanged after', async () => {
    fresh();
    receiver.script = [503, 503, 503, 503, 503];
    const { json } = await call('POST', '/v1/requests', { ...chat('never'), webhook: { url: `${receiver.url}/down` } });
    await until('the first delivery', () => (receiver.deliveries.length >= 1 ? true : undefined));
    // Retries pending (about 2 s of backoff left): the request is settled, its webhook still going.
    const during = (await call('GET', `/v1/requests/${json.id}`)).json;
    assert.equal(during.status, 'succeeded');
    assert.equal(during.webhook_status, 'delivering');
    assert.equal(during.result.object, 'chat.completion');
    const done = await until('the workflow to close', async () => {
      const d = await env.client.workflow.getHandle(json.id).describe();
      return d.status.name === 'RUNNING' ? undefined : d;
    });
    assert.equal(done.status.name, 'COMPLETED');
    assert.equal(receiver.deliveries.length, 5, 'webhooks.retry.maxAttempts, no more');
    assert.equal((await call('GET', `/v1/requests/${json.id}`)).json.status, 'succeeded');
  });

  test('a failed async request sends request.failed with the error and attempts', async () => {
    fresh();
    a.setBehaviour('bad', { default: { kind: 'error', status: 400, code: 'invalid_value', message: 'bad input' } });
    const { json } = await call('POST', '/v1/requests', { ...chat('x', 'bad'), webhook: { url: `${receiver.url}/failed` } });
    await until('a webhook delivery', () => (receiver.deliveries.length >= 1 ? true : undefined));
    const event = JSON.parse(receiver.deliveries[0].body) as WebhookEvent;
    assert.equal(event.type, 'request.failed');
    assert.equal(event.data.status, 'failed');
    assert.equal(event.data.error?.code, 'invalid_request');
    assert.equal(event.data.attempts.length, 1);
    const done = await settled(json.id);
    assert.equal(done.status, 'failed');
    assert.equal(done.error.code, 'invalid_request');
  });

  test('destinations are checked at submit time: private ranges, metadata, the Temporal frontend -> 400', async () => {
    const refused = [
      'http://10.0.0.8/hook',
      'http://172.16.4.4/hook',
      'http://192.168.1.1/hook',
      'http://100.64.0.1/hook',
      'http://169.254.169.254/latest/meta-data/',
      'http://metadata.google.internal/computeMetadata/v1/',
      'http://[fd00:ec2::254]/',
      'http://[::1]:9000/',
      'http://[fe80::1]/',
      'http://[::ffff:10.0.0.1]/',
      'http://0.0.0.0:8080/',
      'http://localhost:9000/',
      'http://127.0.0.2:9000/',
      // 127.0.0.1 is allow-listed, but not the Temporal frontend on it.
      `http://${env.address}/`,
      'ftp://example.com/x',
      'http://user:pw@example.com/x',
      'not a url',
    ];
    for (const url of refused) {
      const { res, json } = await call('POST', '/v1/requests', { ...chat(), webhook: { url } });
      assert.equal(res.status, 400, url);
      assert.equal(json.error.param, 'webhook.url', url);
    }
    assert.equal(a.calls('m').length, 0, 'nothing started');
  });

  test('the activity checks again after DNS resolution: a refused address fails at once, not retried', async () => {
    fresh();
    // Past the API (as a workflow started by other code would be): the worker still refuses.
    const id = `req-direct-${Date.now()}`;
    const handle = await keel.api.client.workflow.start(WORKFLOW_TYPES.request, {
      taskQueue: keel.config.taskQueue,
      workflowId: id,
      args: [{ request: chat('direct'), routing: keel.config.routing, webhook: { url: 'http://169.254.169.254/latest', timeoutMs: 2000, retry: { maxAttempts: 5, initialIntervalMs: 200, backoffCoefficient: 2, maximumIntervalMs: 1000 } } }],
    });
    await handle.result();
    const history = await handle.fetchHistory();
    const failed = (history.events ?? []).filter((e) => e.eventType === temporal.api.enums.v1.EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED);
    const hook = failed.map((e) => e.activityTaskFailedEventAttributes?.failure?.cause ?? e.activityTaskFailedEventAttributes?.failure).find((f) => f?.applicationFailureInfo?.type === 'webhook_destination_refused');
    assert.ok(hook, 'the webhook activity failed as refused');
    assert.equal(hook.applicationFailureInfo?.nonRetryable, true);
    const started = (history.events ?? []).filter((e) => e.eventType === temporal.api.enums.v1.EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED);
    assert.equal(started.filter((e) => (e.activityTaskStartedEventAttributes?.attempt ?? 1) > 1).length, 0, 'no retry');
  });

  test('delivery-time resolution: every resolved address is checked; allow-lists keep metadata and the frontend out', async () => {
    const policy: DestinationPolicy = { allowPrivate: false, allowedHosts: [], temporalAddress: 'temporal.internal:7233' };
    const resolveTo = (...addrs: string[]) => async () => addrs;
    await assert.rejects(resolveWebhookDestination(new URL('https://hooks.example.com/x'), policy, resolveTo('93.184.216.34', '10.1.2.3')), /refused/);
    await assert.rejects(resolveWebhookDestination(new URL('https://rebind.example.com/x'), policy, resolveTo('169.254.169.254')), /metadata/);
    assert.equal(await resolveWebhookDestination(new URL('https://hooks.example.com/x'), policy, resolveTo('93.184.216.34')), '93.184.216.34');
    const permissive: DestinationPolicy = { allowPrivate: true, allowedHosts: [], temporalAddress: 'temporal.internal:7233' };
    assert.equal(await resolveWebhookDestination(new URL('http://svc.internal/x'), permissive, resolveTo('10.1.2.3')), '10.1.2.3');
    await assert.rejects(resolveWebhookDestination(new URL('http://svc.internal/x'), permissive, resolveTo('fd00:ec2::254')), /metadata/);
    // A name that resolves to the frontend's address, on the frontend's port.
    const resolver = async (host: string) => (host === 'temporal.internal' ? ['10.9.9.9'] : ['10.9.9.9']);
    await assert.rejects(resolveWebhookDestination(new URL('http://alias.internal:7233/'), permissive, resolver), /Temporal frontend/);
    const listed: DestinationPolicy = { ...permissive, allowedHosts: ['169.254.169.254', 'alias.internal:7233'] };
    assert.equal(await resolveWebhookDestination(new URL('http://169.254.169.254/'), listed), '169.254.169.254');
    assert.equal(await resolveWebhookDestination(new URL('http://alias.internal:7233/'), listed, resolver), '10.9.9.9');
  });
});

// Traces (docs/OPERATIONS.md): a request's spans reach an OTLP/HTTP receiver running in this test
// (JSON, as Keel exports them) as one trace that continues the caller's `traceparent`: the API's
// server span, the workflow start, the workflow run, the provider-call activity — as a local
// activity and on a provider's task queue — and the provider call itself, each the child of the one
// before. Authentication is on and every request is made with a virtual key. Then the secrets: a
// provider key (configured, and echoed back by a provider in an error the way OpenAI does), the
// admin key, the virtual key's secret and the metrics scrape token appear in no history (decoded,
// when the codec is on), log line, metric or span. `tracing.codec.test.ts` runs this file with
// the payload codec on (test/helpers/codec.ts): the trace context travels in Temporal's headers
// beside encrypted payloads.
import assert from 'node:assert/strict';
import { WORKFLOW_TYPES } from '../src/core/contract.js';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { startFakeProvider, type FakeProvider } from '../dev/fakes/index.js';
import { KeelTracing } from '../src/observability/tracing.js';
import { historyToJSON } from './helpers/history-json.js';
import { callJson, until, type Json } from './helpers/http.js';
import { startKeel, startTemporal, type KeelUnderTest } from './helpers/temporal.js';
import { CODEC_UNDER_TEST, codecEnv, codecYaml, historyText, payloadEncoding } from './helpers/codec.js';
import { keelDataConverter } from '../src/codec/data-converter.js';
import { keyWorkflowId } from '../src/core/keys.js';

/** One span as OTLP/HTTP JSON carries it (ids in hex). */
interface OtlpSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  kind: number;
  attributes?: { key: string; value: Record<string, unknown> }[];
}

const START_WORKFLOW = `StartWorkflow:${WORKFLOW_TYPES.request}`;
const RUN_WORKFLOW = `RunWorkflow:${WORKFLOW_TYPES.request}`;
const SPAN_KIND_SERVER = 2;
const SPAN_KIND_CLIENT = 3;

/** An OTLP/HTTP receiver: POST /v1/traces with `application/json`, spans kept in arrival order. */
class OtlpReceiver {
  readonly spans: (OtlpSpan & { service: string })[] = [];
  readonly bodies: string[] = [];
  private server: Server | undefined;
  url = '';

  async start(): Promise<void> {
    this.server = createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        if (req.method !== 'POST' || req.url !== '/v1/traces' || !String(req.headers['content-type']).startsWith('application/json')) {
          res.writeHead(415).end();
          return;
        }
        this.bodies.push(body);
        const json = JSON.parse(body) as { resourceSpans: { resource: { attributes: { key: string; value: { stringValue?: string } }[] }; scopeSpans: { spans: OtlpSpan[] }[] }[] };
        for (const rs of json.resourceSpans) {
          const service = rs.resource.attributes.find((a) => a.key === 'service.name')?.value.stringValue ?? '';
          for (const ss of rs.scopeSpans) for (const s of ss.spans) this.spans.push({ ...s, service });
        }
        res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
      });
    });
    await new Promise<void>((r) => this.server!.listen(0, '127.0.0.1', r));
    this.url = `http://127.0.0.1:${(this.server!.address() as AddressInfo).port}`;
  }

  close(): Promise<void> {
    return new Promise((r) => this.server?.close(() => r()) ?? r());
  }

  trace(traceId: string) {
    return this.spans.filter((s) => s.traceId === traceId);
  }
}

function attr(span: OtlpSpan, key: string): unknown {
  const v = span.attributes?.find((a) => a.key === key)?.value;
  return v ? Object.values(v)[0] : undefined;
}

const PROVIDER_SECRET = `sk-provider-secret-${process.pid}-f3a9c1`;
const ADMIN_KEY = `keel-admin-secret-${process.pid}-7d2e4b9a`;
const METRICS_TOKEN = `keel-metrics-secret-${process.pid}-0c8e51f2`;
/** The virtual key every request is made with (made in `before`): its secret is shown once. */
let virtualKey: { id: string; secret: string };

let env: TestWorkflowEnvironment;
let keel: KeelUnderTest;
let tracing: KeelTracing;
let fake: FakeProvider;
let leaky: FakeProvider;
const receiver = new OtlpReceiver();
/** Everything this process wrote to stdout and stderr while Keel ran: its logs. */
let logs = '';
const writes = { out: process.stdout.write.bind(process.stdout), err: process.stderr.write.bind(process.stderr) };

before(async () => {
  const tee = (write: typeof writes.out) =>
    ((chunk: string | Uint8Array, ...rest: unknown[]) => {
      logs += typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString();
      return (write as (...a: unknown[]) => boolean)(chunk, ...rest);
    }) as typeof process.stdout.write;
  process.stdout.write = tee(writes.out);
  process.stderr.write = tee(writes.err);
  await receiver.start();
  env = await startTemporal();
  fake = await startFakeProvider({ type: 'openai' });
  // A provider that refuses the key and quotes it back, as OpenAI's 401 does.
  leaky = await startFakeProvider({ type: 'openai', behaviours: { '*': { default: { kind: 'error', status: 401, code: 'invalid_api_key', message: `Incorrect API key provided: ${PROVIDER_SECRET}` } } } });
  tracing = KeelTracing.start({ tracesUrl: `${receiver.url}/v1/traces`, serviceName: 'keel-test' }, 'gateway')!;
  keel = await startKeel(
    env,
    `
auth: { adminKey: "\${KEEL_ADMIN_KEY}" }
telemetry: { metrics: { token: "\${KEEL_METRICS_TOKEN}" } }
providers:
  local: { type: openai, baseURL: ${fake.url}, apiKey: ${PROVIDER_SECRET} }
  queued: { type: openai, baseURL: ${fake.url}, apiKey: ${PROVIDER_SECRET}, callPath: queue }
  leaky: { type: openai, baseURL: ${leaky.url}, apiKey: ${PROVIDER_SECRET} }
models:
  chat: { targets: [local/m] }
  queued: { targets: [queued/m] }
  guarded: { targets: [leaky/m, local/m] }
${codecYaml}`,
    { tracing, env: { KEEL_ADMIN_KEY: ADMIN_KEY, KEEL_METRICS_TOKEN: METRICS_TOKEN, ...codecEnv() } },
  );
  const created = await callJson(keel.url, 'POST', '/v1/keys', { name: 'traced' }, { authorization: `Bearer ${ADMIN_KEY}` });
  assert.equal(created.res.status, 201, JSON.stringify(created.json));
  virtualKey = { id: created.json.id, secret: created.json.secret };
});

after(async () => {
  await keel?.stop();
  await tracing?.shutdown();
  await Promise.all([fake?.close(), leaky?.close()]);
  await env?.teardown();
  await receiver.close();
  process.stdout.write = writes.out;
  process.stderr.write = writes.err;
});

/** A W3C traceparent from a caller whose own span is `parent`. */
function traceparent(): { header: string; traceId: string; parent: string } {
  const hex = (n: number) => Array.from({ length: n }, () => Math.floor(Math.random() * 16).toString(16)).join('');
  const traceId = hex(32);
  const parent = hex(16);
  return { header: `00-${traceId}-${parent}-01`, traceId, parent };
}

const responses: Json[] = [];
const requestIds: string[] = [];

async function ask(model: string, header: string) {
  const r = await callJson(keel.url, 'POST', '/v1/chat/completions', { model, messages: [{ role: 'user', content: 'Hello' }] }, { traceparent: header, authorization: `Bearer ${virtualKey.secret}` });
  responses.push(r.json);
  requestIds.push(r.res.headers.get('x-request-id')!);
  return r;
}

/** The trace's spans once every one of `names` has arrived (workflow spans leave when the workflow ends). */
async function spansOf(traceId: string, names: string[]) {
  return until(`spans ${names.join(', ')}`, async () => {
    await tracing.flush();
    const spans = receiver.trace(traceId);
    return names.every((n) => spans.some((s) => s.name === n)) ? spans : undefined;
  });
}

/** Walks from the provider call up to the caller's span: each span's parent is the one named next. */
function assertChain(spans: OtlpSpan[], chain: string[], callerSpanId: string): void {
  const byName = (name: string) => {
    const found = spans.filter((s) => s.name === name);
    assert.ok(found.length >= 1, `no span ${name} in ${spans.map((s) => s.name).join(', ')}`);
    return found;
  };
  // Every span named in the chain has the next one in the chain as its parent.
  for (let i = 0; i < chain.length; i++) {
    const parents = i + 1 < chain.length ? byName(chain[i + 1]).map((s) => s.spanId) : [callerSpanId];
    const child = byName(chain[i]).find((s) => s.parentSpanId !== undefined && parents.includes(s.parentSpanId));
    assert.ok(child, `${chain[i]}'s parent is not ${chain[i + 1] ?? 'the caller'}`);
  }
}

describe('one trace per request, from the caller through the workflow to the provider', () => {
  test('the local call path: the provider call is a local activity inside the workflow task', async () => {
    const tp = traceparent();
    const { res, json } = await ask('chat', tp.header);
    assert.equal(res.status, 200, JSON.stringify(json));
    const chain = ['chat m', 'RunActivity:callProvider', 'StartActivity:callProvider', RUN_WORKFLOW, START_WORKFLOW, 'POST /v1/chat/completions'];
    const spans = await spansOf(tp.traceId, chain);
    assert.ok(spans.every((s) => s.traceId === tp.traceId));
    assertChain(spans, chain, tp.parent);
    const server = spans.find((s) => s.name === 'POST /v1/chat/completions')!;
    assert.equal(server.kind, SPAN_KIND_SERVER);
    assert.equal(attr(server, 'http.response.status_code'), 200);
    assert.equal(attr(server, 'keel.request_id'), res.headers.get('x-request-id'));
    const call = spans.find((s) => s.name === 'chat m')!;
    assert.equal(call.kind, SPAN_KIND_CLIENT);
    assert.equal(attr(call, 'gen_ai.provider.name'), 'openai');
    assert.equal(attr(call, 'gen_ai.request.model'), 'm');
    assert.equal(attr(call, 'keel.call_path'), 'local');
    assert.equal(Number(attr(call, 'gen_ai.usage.output_tokens')), json.usage.completion_tokens);
    assert.equal(new Set(spans.map((s) => s.service)).size, 1);
  });

  test("the task-queue call path: the activity runs on the provider's queue and still joins the trace", async () => {
    const tp = traceparent();
    const { res, json } = await ask('queued', tp.header);
    assert.equal(res.status, 200, JSON.stringify(json));
    const chain = ['chat m', 'RunActivity:callProvider', 'StartActivity:callProvider', RUN_WORKFLOW, START_WORKFLOW, 'POST /v1/chat/completions'];
    const spans = await spansOf(tp.traceId, chain);
    assertChain(spans, chain, tp.parent);
    assert.equal(attr(spans.find((s) => s.name === 'chat m')!, 'keel.call_path'), 'queue');
  });

  test('a request without a traceparent starts a trace of its own, rooted at the API', async () => {
    const before = new Set(receiver.spans.map((s) => s.traceId));
    const res = await fetch(`${keel.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${virtualKey.secret}` },
      body: JSON.stringify({ model: 'chat', messages: [{ role: 'user', content: 'Hi' }] }),
    });
    assert.equal(res.status, 200);
    const id = res.headers.get('x-request-id');
    const server = await until('the server span', async () => {
      await tracing.flush();
      return receiver.spans.find((s) => s.name === 'POST /v1/chat/completions' && attr(s, 'keel.request_id') === id);
    });
    assert.equal(server.parentSpanId ?? '', '');
    assert.ok(!before.has(server.traceId));
    await spansOf(server.traceId, [RUN_WORKFLOW, 'chat m']);
  });
});

describe('no secret in histories, logs, metrics or traces', () => {
  test("a provider key quoted back by a provider, the admin key, a virtual key's secret and the scrape token appear nowhere", async () => {
    const tp = traceparent();
    const { res, json } = await ask('guarded', tp.header);
    // The leaky provider refused the key (auth): the request fell back and was answered.
    assert.equal(res.status, 200, JSON.stringify(json));
    assert.equal(json.keel.attempts[0].errorClass, 'auth');
    await spansOf(tp.traceId, [RUN_WORKFLOW, 'chat m']);
    await tracing.flush();

    const metrics = await fetch(`${keel.url}/metrics`, { headers: { authorization: `Bearer ${METRICS_TOKEN}` } });
    assert.equal(metrics.status, 200);
    const places: Record<string, string> = {
      'responses': JSON.stringify(responses),
      'traces (OTLP bodies)': receiver.bodies.join('\n'),
      'metrics': await metrics.text(),
      'logs': logs,
    };
    // Histories as stored, and decoded: with the codec on, what is stored is ciphertext.
    const codec = keelDataConverter(keel.config.codec)?.payloadCodecs?.[0];
    for (const id of [...requestIds, keyWorkflowId(virtualKey.id)]) {
      const history = await env.client.workflow.getHandle(id).fetchHistory();
      places[`history of ${id}`] = await historyText(history, codec, historyToJSON(history));
      if (CODEC_UNDER_TEST) assert.equal(payloadEncoding(history.events![0].workflowExecutionStartedEventAttributes!.input!.payloads![0]), 'binary/encrypted');
    }
    assert.ok(receiver.bodies.length > 0 && Object.keys(places).length >= 5 + requestIds.length);
    // The scan sees what it scans: the provider's error reached the history (with the key cut
    // out), the request carries its key's id, the logs were captured, the spans and the metrics are there.
    assert.match(places['history of ' + requestIds.at(-1)], /leaky\/m attempt 1: .*Incorrect API key provided/);
    assert.ok(places['history of ' + requestIds.at(-1)].includes(virtualKey.id));
    assert.match(places.logs, /Worker state changed/);
    assert.match(places['traces (OTLP bodies)'], /RunActivity:callProvider/);
    assert.match(places.metrics, /keel_provider_attempts_total\{provider="leaky",model="m",call_path="local",outcome="error",error_class="auth"\} 1/);
    assert.ok(places.metrics.includes(`key="${virtualKey.id}"`), 'the metrics carry the key id');
    const secrets = { 'the provider key': PROVIDER_SECRET, 'the admin key': ADMIN_KEY, "the virtual key's secret": virtualKey.secret, 'the metrics token': METRICS_TOKEN };
    for (const [where, text] of Object.entries(places)) {
      for (const [what, secret] of Object.entries(secrets)) {
        assert.ok(!text.includes(secret), `${what} is in ${where}`);
        // Nor a recognisable part of one (a key cut short still leaks).
        assert.ok(!text.includes(secret.slice(0, 24)) && !text.includes(secret.slice(-24)), `part of ${what} is in ${where}`);
      }
    }
  });
});

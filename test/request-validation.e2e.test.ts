// The request generator of test/request-validation.test.ts over HTTP, against Keel on a real
// Temporal dev server with the three fake providers: POST /v1/chat/completions, POST /v1/requests
// and a batch file. Nothing answers a 5xx, every refusal names a path, and Keel stays healthy.
// Also: a feature one target cannot carry goes straight to one that can, and executions planned
// before capability routing still replay.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import fc from 'fast-check';
import proto from '@temporalio/proto';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import { startFakeProvider, type FakeProvider } from '../dev/fakes/index.js';
import { callJson, settledRequest, until, type Json } from './helpers/http.js';
import { anyRequest, pathExists, SEED } from './helpers/request-arbitraries.js';
import { startKeel, startTemporal, workflowBundle, type KeelUnderTest } from './helpers/temporal.js';

const dataDir = mkdtempSync(join(tmpdir(), 'keel-validation-'));
process.env.KEEL_DATA_DIR = dataDir;

const MODELS = ['chat', 'listen', 'claude', 'gem', 'alpha/model-a'];
/** Bounds: requests per endpoint, in flight at once, and the whole run. */
const CHAT_REQUESTS = 240;
const ASYNC_REQUESTS = 40;
const BATCH_LINES = 60;
const IN_FLIGHT = 6;
const RUN_BUDGET_MS = 150_000;

let env: TestWorkflowEnvironment;
let keel: KeelUnderTest;
const fakes: Record<'alpha' | 'beta' | 'gamma', FakeProvider> = {} as never;

before(async () => {
  env = await startTemporal();
  fakes.alpha = await startFakeProvider({ type: 'openai' });
  fakes.beta = await startFakeProvider({ type: 'anthropic' });
  fakes.gamma = await startFakeProvider({ type: 'gemini' });
  keel = await startKeel(
    env,
    `
defaults:
  retry: { maxAttempts: 2, initialIntervalMs: 50, backoffCoefficient: 2, maximumIntervalMs: 100, jitter: 0 }
  timeouts: { attemptMs: 20000, requestMs: 30000 }
batches: { window: 20, childrenPerRun: 100, flushSize: 20 }
providers:
  alpha: { type: openai, baseURL: ${fakes.alpha.url}, apiKey: demo-alpha-key }
  beta: { type: anthropic, baseURL: ${fakes.beta.url}, apiKey: demo-beta-key }
  gamma: { type: gemini, baseURL: ${fakes.gamma.url}, apiKey: demo-gamma-key }
models:
  chat: { targets: [alpha/model-a, beta/model-b, gamma/model-c] }
  listen: { targets: [beta/model-b, gamma/model-c, alpha/model-a] }
  claude: { targets: [beta/model-b] }
  gem: { targets: [gamma/model-c] }
`,
  );
});

after(async () => {
  await keel?.stop();
  await Promise.all(Object.values(fakes).map((f) => f?.close()));
  await env?.teardown();
  rmSync(dataDir, { recursive: true, force: true });
});

const call = (method: string, path: string, body?: unknown) => callJson(keel.url, method, path, body);

/** Runs `fn` over `items`, IN_FLIGHT at a time, within the run's budget. */
async function pool<T>(items: T[], deadline: number, fn: (item: T, i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: IN_FLIGHT }, async () => {
      while (next < items.length) {
        assert.ok(Date.now() < deadline, 'the run went over its time budget');
        const i = next++;
        await fn(items[i], i);
      }
    }),
  );
}

/** A refusal before anything started: 400 (or 404, unknown model) naming a place in the request. */
function assertRefusal(status: number, json: Json, request: unknown, what: string): void {
  assert.ok(status === 400 || status === 404, `${what}: ${status} ${JSON.stringify(json)}`);
  const param = json.error?.param as string | null;
  assert.ok(param, `${what}: the refusal names a path: ${JSON.stringify(json)}`);
  assert.ok(pathExists(request, param), `${what}: ${param} is a place in the request`);
  assert.equal(json.keel?.attempts, undefined, `${what}: refused before any provider call`);
}

describe('the property over HTTP: no 5xx, refusals name a path, Keel stays healthy', () => {
  const deadline = Date.now() + RUN_BUDGET_MS;
  const counts = { chat: { ok: 0, refused: 0 }, async: { ok: 0, refused: 0 }, batch: { ok: 0, refused: 0 } };

  test(`POST /v1/chat/completions: ${CHAT_REQUESTS} generated requests`, async () => {
    const samples = fc.sample(anyRequest(MODELS), { seed: SEED + 2, numRuns: CHAT_REQUESTS });
    await pool(samples, deadline, async ({ request, mutation }, i) => {
      const what = `request #${i} (mutation: ${mutation})`;
      const { res, json } = await call('POST', '/v1/chat/completions', request);
      if (res.status === 200) {
        assert.equal(json.object, 'chat.completion', what);
        assert.ok(Array.isArray(json.choices) && json.choices.length > 0, what);
        counts.chat.ok += 1;
      } else {
        assertRefusal(res.status, json, request, `${what}: ${JSON.stringify(request).slice(0, 400)}`);
        counts.chat.refused += 1;
      }
    });
    assert.ok(counts.chat.ok > 30 && counts.chat.refused > 30, JSON.stringify(counts.chat));
  });

  test(`POST /v1/requests: ${ASYNC_REQUESTS} generated requests, each accepted or refused, none failing`, async () => {
    const samples = fc.sample(anyRequest(MODELS), { seed: SEED + 3, numRuns: ASYNC_REQUESTS });
    await pool(samples, deadline, async ({ request, mutation }, i) => {
      const what = `async request #${i} (mutation: ${mutation})`;
      const { res, json } = await call('POST', '/v1/requests', request);
      if (res.status !== 202) {
        assertRefusal(res.status, json, request, what);
        counts.async.refused += 1;
        return;
      }
      const done = await settledRequest(keel.url, json.id as string);
      assert.equal(done.status, 'succeeded', `${what}: ${JSON.stringify(done.error)}`);
      counts.async.ok += 1;
    });
    assert.ok(counts.async.ok > 3 && counts.async.refused > 3, JSON.stringify(counts.async));
  });

  test(`a batch of ${BATCH_LINES} generated lines: bad lines get a per-line error naming the path, the rest answer`, async () => {
    const samples = fc.sample(anyRequest(MODELS), { seed: SEED + 4, numRuns: BATCH_LINES });
    const text = samples.map(({ request }, i) => JSON.stringify({ custom_id: `line-${i}`, method: 'POST', url: '/v1/chat/completions', body: request })).join('\n') + '\n';
    const form = new FormData();
    form.append('purpose', 'batch');
    form.append('file', new Blob([text]), 'input.jsonl');
    const file = (await (await fetch(`${keel.url}/v1/files`, { method: 'POST', body: form })).json()) as Json;
    const { res, json: created } = await call('POST', '/v1/batches', { input_file_id: file.id, endpoint: '/v1/chat/completions', completion_window: '24h' });
    assert.equal(res.status, 200, JSON.stringify(created));
    const done = await until('the batch to finish', async () => {
      const { json } = await call('GET', `/v1/batches/${created.id}`);
      return ['completed', 'failed'].includes(json.status) ? json : undefined;
    }, Math.max(10_000, deadline - Date.now()));
    const lines = async (id: string | null) => (id ? (await (await fetch(`${keel.url}/v1/files/${id}/content`)).text()).split('\n').filter(Boolean).map((l) => JSON.parse(l) as Json) : []);
    const out = [...(await lines(done.output_file_id)), ...(await lines(done.error_file_id))];
    assert.equal(out.length, BATCH_LINES, JSON.stringify(done.errors));
    for (const line of out) {
      const i = Number(String(line.custom_id).slice('line-'.length));
      const what = `batch line ${i} (mutation: ${samples[i].mutation})`;
      if (line.response) {
        assert.equal(line.response.status_code, 200, `${what}: ${JSON.stringify(line.response.body)}`);
        counts.batch.ok += 1;
        continue;
      }
      const m = /^Line \d+: (body(?:[.[]\S*)?): /.exec(line.error.message) ?? /used at (\S+)$/.exec(line.error.message);
      if (line.error.code === 'model_not_found') assert.match(line.error.message, /does not exist/, what);
      else {
        assert.ok(m, `${what}: the error names a path: ${line.error.message}`);
        assert.ok(pathExists({ body: samples[i].request }, m[1].startsWith('body') ? m[1] : `body.${m[1]}`), `${what}: ${m[1]} is a place in the line`);
      }
      counts.batch.refused += 1;
    }
    assert.ok(counts.batch.ok > 3 && counts.batch.refused > 3, JSON.stringify(counts.batch));
  });

  test('Keel stays healthy: /healthz answers, no breaker opened, no failure counted against a provider', async () => {
    console.log(`  outcomes: ${JSON.stringify(counts)}`);
    const health = await call('GET', '/healthz');
    assert.equal(health.res.status, 200, JSON.stringify(health.json));
    // Health reports reach the health workflow every few seconds; wait until the calls made are in.
    const providers = await until('the calls to be reported', async () => {
      const { json } = await call('GET', '/v1/providers');
      const calls = (json.data as Json[]).reduce((n, p) => n + (p.stats?.['30m'].calls ?? 0), 0);
      return calls > 0 ? (json.data as Json[]) : undefined;
    }, 30_000);
    for (const p of providers) {
      for (const t of p.targets as Json[]) assert.equal(t.breaker.state, 'closed', `${t.id}: ${JSON.stringify(t.breaker)}`);
      assert.equal(p.stats?.['30m'].failures ?? 0, 0, `${p.id}: ${JSON.stringify(p.stats?.['30m'])}`);
    }
    for (const [name, fake] of Object.entries(fakes)) assert.ok(fake.calls().length > 0, `${name} answered some of them`);
  });
});

describe('capability routing', () => {
  const audio = [{ role: 'user', content: [{ type: 'text', text: 'What is said here?' }, { type: 'input_audio', input_audio: { data: 'UklGRg==', format: 'wav' } }] }];

  test('audio input goes straight to the first target that takes audio: the one that cannot is never called', async () => {
    for (const f of Object.values(fakes)) f.resetCalls();
    const { res, json } = await call('POST', '/v1/chat/completions', { model: 'listen', messages: audio });
    assert.equal(res.status, 200, JSON.stringify(json));
    assert.equal(res.headers.get('x-keel-provider'), 'gamma');
    assert.deepEqual(json.keel.attempts.map((a: Json) => a.target), ['gamma/model-c']);
    assert.equal(fakes.beta.calls().length, 0);
  });

  test('no target can take it: 400 naming the feature and the target, and no workflow starts', async () => {
    const { res, json } = await call('POST', '/v1/chat/completions', { model: 'claude', messages: audio });
    assert.equal(res.status, 400);
    assert.equal(json.error.code, 'unsupported_feature');
    assert.equal(json.error.param, 'messages[0].content[1]');
    assert.match(json.error.message, /beta\/model-b \(anthropic\) cannot take audio input/);
    const id = res.headers.get('x-request-id')!;
    await assert.rejects(env.client.workflow.getHandle(id).describe(), /not found/i);
  });

  test('the workflow bundle loads no zod (capability routing reads the request without it)', async () => {
    // Measured: with zod in the bundle, a request cost ~15 ms more worker CPU (docs/ARCHITECTURE.md).
    const { code } = await workflowBundle();
    assert.ok(code.includes('src/core/capabilities.ts'), 'the bundle holds the routing core');
    assert.ok(!code.includes('node_modules/zod'), 'zod is in the workflow bundle');
  });

  test('an execution planned before capability routing replays (patched)', async () => {
    // Recorded with the code before this change: model [beta, alpha] with audio input; beta's
    // adapter refused it (model_not_found), alpha answered. Planning it now would skip beta.
    const history = proto.temporal.api.history.v1.History.decode(readFileSync(new URL('./histories/request-unsupported-feature-fallback.binpb', import.meta.url)));
    const scheduled = history.events.filter((e) => e.activityTaskScheduledEventAttributes).map((e) => e.activityTaskScheduledEventAttributes!.activityType!.name);
    assert.deepEqual(scheduled, ['callProvider', 'callProvider'], 'beta, then alpha');
    await Worker.runReplayHistory({ workflowBundle: await workflowBundle() }, history, 'pre-capability-routing');
  });
});

// Prometheus metrics (docs/OPERATIONS.md), as an operator's Prometheus reads them: /metrics is
// scraped over HTTP and parsed with a Prometheus text-format parser, and each value is checked
// against the requests this test sent and what Keel answered them (attempt logs, costs, usage):
// Keel on a real dev server with fake providers that answer, fail, hang and are rate limited, and
// the worker role as its own process (`src/bin/worker.ts`) with its own /metrics.
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { randomBytes } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { WORKFLOW_TYPES } from '../src/core/contract.js';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { startFakeProvider, type FakeProvider } from '../dev/fakes/index.js';
import { startApi } from '../src/api/server.js';
import { parseConfig } from '../src/config/load.js';
import { KeelMetrics } from '../src/observability/metrics.js';
import { installRuntime } from '../src/worker/temporal-runtime.js';
import { callJson, until, type Json } from './helpers/http.js';
import { freePort, startRole } from './helpers/processes.js';
import { declaredFamilies, scrape, type Scrape } from './helpers/prometheus.js';
import { parse as parseYaml } from 'yaml';
import { startKeel, startTemporal, type KeelUnderTest } from './helpers/temporal.js';

let env: TestWorkflowEnvironment;
let keel: KeelUnderTest;
let good: FakeProvider;
let down: FakeProvider;
let slow: FakeProvider;

const yaml = () => `
defaults:
  retry: { maxAttempts: 2, initialIntervalMs: 50, backoffCoefficient: 1, maximumIntervalMs: 50, jitter: 0 }
health:
  publishIntervalMs: 200
  refreshIntervalMs: 200
  breaker: { failureCount: 4, minCalls: 1000, cooldownMs: 600000 }
providers:
  good: { type: openai, baseURL: ${good.url}, models: { m: { pricing: { input: 1.5, output: 2 } } } }
  down: { type: openai, baseURL: ${down.url} }
  slow: { type: anthropic, baseURL: ${slow.url} }
  queued: { type: openai, baseURL: ${good.url}, callPath: queue }
  limited: { type: openai, baseURL: ${good.url}, rateLimitPerSecond: 2 }
models:
  chat: { targets: [good/m] }
  chain: { targets: [down/m, good/m] }
  broken: { targets: [down/x] }
  hedged: { targets: [slow/m, queued/m], mode: hedge, hedge: { delayMs: 200, maxShare: 1 } }
  limited: { targets: [limited/m] }
`;

before(async () => {
  // The Temporal SDK's metrics come from this process's Runtime: installed before anything uses it.
  const runtime = await installRuntime({ metrics: true });
  env = await startTemporal();
  good = await startFakeProvider({ type: 'openai' });
  down = await startFakeProvider({ type: 'openai', behaviours: { '*': { default: { kind: 'error', status: 503, message: 'overloaded' } } } });
  slow = await startFakeProvider({ type: 'anthropic', behaviours: { '*': { latency: { baseMs: 5_000 } } } });
  keel = await startKeel(env, yaml(), { temporalMetricsUrl: runtime.temporalMetricsUrl! });
});

after(async () => {
  await keel?.stop();
  await Promise.all([good?.close(), down?.close(), slow?.close()]);
  await env?.teardown();
});

const metricsUrl = () => `${keel.url}/metrics`;

function ask(model: string, base = keel.url) {
  return callJson(base, 'POST', '/v1/chat/completions', { model, messages: [{ role: 'user', content: 'Hello' }] });
}

type Attempt = { provider: string; model: string; outcome: string; errorClass?: string; retryInMs?: number };

/** The attempt log Keel answered with (a completion's `keel.attempts`, or the error body's). */
function attemptsOf(json: Json): Attempt[] {
  return json.keel.attempts as Attempt[];
}

/** `after - before` for a counter or gauge. */
function delta(before: Scrape, after: Scrape, name: string, labels: Record<string, string>): number {
  return +(after.value(name, labels) - before.value(name, labels)).toFixed(9);
}

describe('GET /metrics on the API (a gateway: the API and its workers share the metrics)', () => {
  test('successful requests: counts, durations, tokens and cost match what the client was answered', async () => {
    const before = await scrape(metricsUrl());
    const answers: Json[] = [];
    for (let i = 0; i < 3; i++) {
      const { res, json } = await ask('chat');
      assert.equal(res.status, 200, JSON.stringify(json));
      assert.equal(res.headers.get('x-keel-answer'), 'early');
      answers.push(json);
    }
    const input = answers.reduce((n, a) => n + a.usage.prompt_tokens, 0);
    const output = answers.reduce((n, a) => n + a.usage.completion_tokens, 0);
    const cost = answers.reduce((n, a) => n + a.usage.cost, 0);
    assert.ok(input > 0 && output > 0 && cost > 0);
    // The workflow's sink runs as its answer is handed over: read until it has counted all three.
    const after = await until('three requests counted', async () => {
      const s = await scrape(metricsUrl());
      return delta(before, s, 'keel_requests_total', { model: 'chat' }) >= 3 ? s : undefined;
    });

    assert.equal(delta(before, after, 'keel_chat_completions_total', { model: 'chat', provider: 'good', outcome: 'succeeded', error_class: '', answered_at: 'early', key: 'none' }), 3);
    assert.equal(after.histogram('keel_chat_completion_duration_seconds', { model: 'chat' }).count - before.histogram('keel_chat_completion_duration_seconds', { model: 'chat' }).count, 3);
    assert.equal(delta(before, after, 'keel_requests_total', { model: 'chat', provider: 'good', outcome: 'succeeded', error_class: '', mode: 'fallback', source: 'api', key: 'none' }), 3);
    assert.equal(delta(before, after, 'keel_provider_attempts_total', { provider: 'good', model: 'm', call_path: 'local', outcome: 'success', error_class: '' }), 3);
    const genai = { gen_ai_operation_name: 'chat', gen_ai_provider_name: 'openai', gen_ai_request_model: 'm', provider: 'good' };
    assert.equal(after.histogram('gen_ai_client_operation_duration_seconds', genai).count - before.histogram('gen_ai_client_operation_duration_seconds', genai).count, 3);
    // Tokens: per provider call (the GenAI histogram) and per answer (keel_request_tokens_total).
    const tokens = (s: Scrape, type: string) => s.histogram('gen_ai_client_token_usage', { ...genai, gen_ai_token_type: type }).sum;
    assert.equal(tokens(after, 'input') - tokens(before, 'input'), input);
    assert.equal(tokens(after, 'output') - tokens(before, 'output'), output);
    assert.equal(delta(before, after, 'keel_request_tokens_total', { model: 'chat', provider: 'good', type: 'input' }), input);
    assert.equal(delta(before, after, 'keel_request_tokens_total', { model: 'chat', provider: 'good', type: 'output' }), output);
    // Cost: usage.cost of the answers, to the micro-dollar.
    assert.ok(Math.abs(delta(before, after, 'keel_request_cost_usd_total', { model: 'chat', provider: 'good', key: 'none' }) - cost) < 1e-9);
    assert.ok(Math.abs(delta(before, after, 'keel_provider_cost_usd_total', { provider: 'good', model: 'm' }) - cost) < 1e-9);
    // The HTTP view: by route pattern and status.
    assert.equal(after.histogram('keel_http_request_duration_seconds', { method: 'POST', route: '/v1/chat/completions', status: '200' }).count - before.histogram('keel_http_request_duration_seconds', { method: 'POST', route: '/v1/chat/completions', status: '200' }).count, 3);
  });

  test('streamed requests: time to first chunk per call, and their tokens and cost like any other answer', async () => {
    good.setBehaviour('m', { default: { kind: 'ok' }, stream: { chunkDelayMs: 30 } });
    const client = new OpenAI({ baseURL: `${keel.url}/v1`, apiKey: 'unused', maxRetries: 0 });
    const genai = { gen_ai_operation_name: 'chat', gen_ai_provider_name: 'openai', gen_ai_request_model: 'm', provider: 'good' };
    const before = await scrape(metricsUrl());
    let output = 0;
    let cost = 0;
    try {
      for (let i = 0; i < 2; i++) {
        const stream = await client.chat.completions.create({ model: 'chat', stream: true, stream_options: { include_usage: true }, messages: [{ role: 'user', content: 'Hello there' }] });
        for await (const chunk of stream) {
          if (chunk.usage) {
            output += chunk.usage.completion_tokens;
            cost += (chunk.usage as { cost?: number }).cost ?? 0;
          }
        }
      }
    } finally {
      good.setBehaviour('m', { default: { kind: 'ok' } });
    }
    assert.ok(output > 0 && cost > 0);
    const after = await until('two streamed requests counted', async () => {
      const s = await scrape(metricsUrl());
      return delta(before, s, 'keel_requests_total', { model: 'chat' }) >= 2 ? s : undefined;
    });
    const ttft = (s: Scrape) => s.histogram('gen_ai_client_operation_time_to_first_chunk_seconds', genai);
    assert.equal(ttft(after).count - ttft(before).count, 2, 'one first chunk per streamed call');
    // The first chunk is timed when it comes, not when the call ends: the fake pauses 30 ms between chunks.
    const meanTtft = (ttft(after).sum - ttft(before).sum) / 2;
    const duration = (s: Scrape) => s.histogram('gen_ai_client_operation_duration_seconds', genai);
    const meanDuration = (duration(after).sum - duration(before).sum) / 2;
    assert.ok(meanTtft > 0 && meanTtft <= meanDuration - 0.03, `time to first chunk ${meanTtft} s, call ${meanDuration} s`);
    const tokens = (s: Scrape) => s.histogram('gen_ai_client_token_usage', { ...genai, gen_ai_token_type: 'output' }).sum;
    assert.equal(tokens(after) - tokens(before), output);
    assert.ok(Math.abs(delta(before, after, 'keel_request_cost_usd_total', { model: 'chat', provider: 'good', key: 'none' }) - cost) < 1e-9);
  });

  test('retries, fallbacks, a failed request and an open breaker match the attempt logs', async () => {
    const before = await scrape(metricsUrl());
    const chain: Json[] = [];
    for (let i = 0; i < 2; i++) {
      const { res, json } = await ask('chain');
      assert.equal(res.status, 200, JSON.stringify(json));
      chain.push(json);
    }
    const broken = await ask('broken');
    assert.equal(broken.res.status, 503, JSON.stringify(broken.json));
    const logs = [...chain, broken.json].flatMap(attemptsOf);
    const downErrors = (model: string) => logs.filter((a) => a.provider === 'down' && a.model === model && a.outcome === 'error');
    assert.equal(downErrors('m').length, 4, JSON.stringify(logs));
    assert.equal(downErrors('x').length, 2);

    const after = await until('three requests counted', async () => {
      const s = await scrape(metricsUrl());
      return delta(before, s, 'keel_requests_total', {}) >= 3 ? s : undefined;
    });
    for (const model of ['m', 'x']) {
      const errors = downErrors(model);
      assert.equal(delta(before, after, 'keel_provider_attempts_total', { provider: 'down', model, outcome: 'error', error_class: 'unavailable' }), errors.length);
      assert.equal(delta(before, after, 'keel_provider_retries_total', { provider: 'down', model, error_class: 'unavailable' }), errors.filter((a) => a.retryInMs !== undefined).length);
    }
    // Each chain request gave down/m up and was answered by good/m.
    assert.equal(delta(before, after, 'keel_fallbacks_total', { model: 'chain', provider: 'down', target_model: 'm', error_class: 'unavailable' }), 2);
    assert.equal(delta(before, after, 'keel_requests_total', { model: 'chain', provider: 'good', outcome: 'succeeded' }), 2);
    // The failed request: its last target and error class, as the client was told.
    assert.equal(broken.json.error.code, 'unavailable');
    assert.equal(delta(before, after, 'keel_requests_total', { model: 'broken', provider: 'down', outcome: 'failed', error_class: 'unavailable' }), 1);
    assert.equal(delta(before, after, 'keel_fallbacks_total', { model: 'broken' }), 0);
    assert.equal(delta(before, after, 'keel_chat_completions_total', { model: 'broken', provider: 'down', outcome: 'failed', error_class: 'unavailable' }), 1);
    assert.equal(after.histogram('gen_ai_client_operation_duration_seconds', { provider: 'down', error_type: 'unavailable' }).count - before.histogram('gen_ai_client_operation_duration_seconds', { provider: 'down', error_type: 'unavailable' }).count, 6);

    // Four failures of down/m open its breaker (failureCount: 4); down/x had two and stays closed.
    // Health is published and read back every 200 ms: wait until this worker's snapshot has both targets.
    const open = await until('down/m breaker open and down/x known in /metrics', async () => {
      const s = await scrape(metricsUrl());
      const known = s.labelSets('keel_circuit_breaker_state').some((l) => l.provider === 'down' && l.model === 'x');
      return known && s.value('keel_circuit_breaker_state', { provider: 'down', model: 'm', state: 'open' }) === 1 ? s : undefined;
    });
    assert.equal(open.value('keel_circuit_breaker_state', { provider: 'down', model: 'm', state: 'closed' }), 0);
    assert.equal(open.value('keel_circuit_breaker_opened', { provider: 'down', model: 'm' }), 1);
    assert.equal(open.value('keel_circuit_breaker_state', { provider: 'down', model: 'x', state: 'closed' }), 1);
  });

  test('a hedge fired and won; the hedged call is counted as cancelled', async () => {
    const before = await scrape(metricsUrl());
    const { res, json } = await ask('hedged');
    assert.equal(res.status, 200, JSON.stringify(json));
    assert.equal(json.keel.provider, 'queued');
    const after = await until('the hedge counted and the slow call cancelled', async () => {
      const s = await scrape(metricsUrl());
      return delta(before, s, 'keel_hedges_won_total', {}) >= 1 && delta(before, s, 'keel_provider_attempts_total', { provider: 'slow', outcome: 'cancelled' }) >= 1 ? s : undefined;
    });
    assert.equal(delta(before, after, 'keel_hedges_fired_total', { model: 'hedged' }), 1);
    assert.equal(delta(before, after, 'keel_hedges_won_total', { model: 'hedged', provider: 'queued' }), 1);
    assert.equal(delta(before, after, 'keel_requests_total', { model: 'hedged', provider: 'queued', outcome: 'succeeded', mode: 'hedge' }), 1);
    assert.equal(delta(before, after, 'keel_provider_attempts_total', { provider: 'queued', model: 'm', call_path: 'queue', outcome: 'success' }), 1);
    assert.equal(delta(before, after, 'keel_provider_attempts_total', { provider: 'slow', model: 'm', call_path: 'queue', outcome: 'cancelled' }), 1);
  });

  test('rate-limit waits: every call on a limited provider is timed, and 5 calls at 2/s wait seconds in all', async () => {
    const before = await scrape(metricsUrl());
    const answers = await Promise.all(Array.from({ length: 5 }, () => ask('limited')));
    for (const { res, json } of answers) assert.equal(res.status, 200, JSON.stringify(json));
    const after = await scrape(metricsUrl());
    const wait = (s: Scrape) => s.histogram('keel_rate_limit_wait_seconds', { provider: 'limited' });
    assert.equal(wait(after).count - wait(before).count, 5);
    // At most 2 calls a second: the third and fourth wait about a second, the fifth about two.
    const waited = wait(after).sum - wait(before).sum;
    assert.ok(waited >= 2.5, `waited ${waited} s in all`);
    assert.equal(after.value('keel_rate_limit_waiting', { provider: 'limited' }), 0);
  });

  test("the Temporal SDK's metrics are in the same scrape (the Runtime's Prometheus exporter)", async () => {
    // The SDK counts a completion when its worker reports the workflow task, which can come after the
    // client has the result: wait for every count to arrive, then check none arrived twice.
    const labels = { task_queue: keel.config.taskQueue, workflow_type: WORKFLOW_TYPES.request };
    const s = await until('workflow completions counted by the SDK', async () => {
      const now = await scrape(metricsUrl());
      return now.value('temporal_workflow_completed', labels) >= 13 && now.value('temporal_workflow_failed', labels) >= 1 ? now : undefined;
    });
    assert.equal(s.value('keel_temporal_metrics_up'), 1);
    // 3 chat + 2 streamed + 2 chain + 1 hedged + 5 limited succeeded; the broken one failed.
    assert.equal(s.value('temporal_workflow_completed', labels), 13);
    assert.equal(s.value('temporal_workflow_failed', labels), 1);
    assert.ok(s.families.has('temporal_activity_schedule_to_start_latency'), 'activity schedule-to-start latency');
    // No family is declared twice across Keel's and the SDK's parts.
    const declared = [...s.text.matchAll(/^# TYPE (\S+) /gm)].map((m) => m[1]);
    assert.equal(new Set(declared).size, declared.length);
  });

  test('labels: no request id, no free client text, and budget gauges appear once the key work sets them', async () => {
    // A client may name any upstream model of a configured provider: such a name is no label.
    const free = `free-text-model-${process.pid}`;
    const direct = await ask(`good/${free}`);
    assert.equal(direct.res.status, 200, JSON.stringify(direct.json));
    const s = await until('the direct request counted', async () => {
      const now = await scrape(metricsUrl());
      return now.value('keel_requests_total', { model: 'other', provider: 'good' }) >= 1 ? now : undefined;
    });
    assert.ok(!s.text.includes(free), 'the free-text model name is in /metrics');
    assert.equal(s.value('keel_provider_attempts_total', { provider: 'good', model: 'other', outcome: 'success' }), 1);
    assert.equal(s.value('keel_chat_completions_total', { model: 'other', provider: 'good' }), 1);
    for (const [name, family] of s.families) {
      for (const labels of family.metrics.map((m) => m.labels ?? {})) {
        for (const v of Object.values(labels)) assert.doesNotMatch(v, /^req-/, `${name} carries a request id`);
      }
    }
    // Authentication is off here: every request is made without a virtual key.
    for (const name of ['keel_requests_total', 'keel_chat_completions_total', 'keel_request_cost_usd_total']) {
      assert.ok(s.labelSets(name).length > 0 && s.labelSets(name).every((l) => l.key === 'none'), `${name}: key 'none'`);
    }
    // Auth off and no metrics token: /metrics is open, like /healthz.
    assert.equal((await fetch(metricsUrl())).status, 200);
  });
});

describe('the Grafana dashboard and the alert rules (deploy/)', () => {
  /** Metric names in a PromQL expression (Keel's, the GenAI ones, the SDK's, the process's): label matchers and grouping clauses, which name labels, left out. */
  function metricNames(expr: string): string[] {
    const selectors = expr.replace(/\{[^}]*\}/g, '').replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, '');
    return [...selectors.matchAll(/\b(?:keel|gen_ai|temporal|process|nodejs)_[a-z0-9_]+/g)].map((m) => m[0]);
  }
  /** The family a series name belongs to (a histogram's _bucket, _sum and _count). */
  function family(name: string, declared: Set<string>): string | undefined {
    if (declared.has(name)) return name;
    const base = name.replace(/_(bucket|sum|count)$/, '');
    return declared.has(base) ? base : undefined;
  }

  test('every metric the dashboard and the alerts query is one /metrics declares, after the requests above', async () => {
    // The families the scrape declares; Temporal's appear once the SDK has observed them (the
    // requests of the tests above ran every kind: local and queue activities, a failed workflow).
    const text = (await scrape(metricsUrl())).text;
    const declared = declaredFamilies(text);
    const dashboard = JSON.parse(readFileSync(new URL('../deploy/grafana/keel-dashboard.json', import.meta.url), 'utf8')) as { panels: { type: string; title: string; targets?: { expr: string }[] }[] };
    const exprs = dashboard.panels.flatMap((p) => (p.targets ?? []).map((t) => ({ where: `dashboard panel '${p.title}'`, expr: t.expr })));
    assert.ok(exprs.length >= 20, 'the dashboard has its panels');
    const rules = parseYaml(readFileSync(new URL('../deploy/prometheus/keel-alerts.yml', import.meta.url), 'utf8')) as { groups: { rules: { alert: string; expr: string }[] }[] };
    const alerts = rules.groups.flatMap((g) => g.rules.map((r) => ({ where: `alert ${r.alert}`, expr: r.expr })));
    assert.ok(['KeelCircuitBreakerOpen', 'KeelKeyBudgetNearLimit', 'KeelModelErrorRateHigh'].every((a) => alerts.some((r) => r.where === `alert ${a}`)));
    const unknown: string[] = [];
    for (const { where, expr } of [...exprs, ...alerts]) {
      const names = metricNames(expr);
      assert.ok(names.length > 0, `${where} queries no metric: ${expr}`);
      for (const n of names) if (!family(n, declared)) unknown.push(`${where}: ${n}`);
    }
    assert.deepEqual(unknown, []);
    // A misspelt name is caught (the check is not vacuous).
    assert.equal(family('keel_request_total', declared), undefined);
  });
  // Prometheus's own rule tests (deploy/prometheus/keel-alerts.test.yml): the alerts fire on the
  // series they are meant for — a key's latest budget report across two workers among them.
  const promtool = spawnSync('promtool', ['--version']).status === 0;
  test('the alert rules pass their promtool unit tests', { skip: promtool ? false : 'promtool is not installed (Debian: apt-get install prometheus)' }, () => {
    const run = spawnSync('promtool', ['test', 'rules', 'keel-alerts.test.yml'], { cwd: fileURLToPath(new URL('../deploy/prometheus/', import.meta.url)), encoding: 'utf8', timeout: 60_000 });
    assert.equal(run.status, 0, `${run.stdout}\n${run.stderr}`);
    assert.match(run.stdout, /SUCCESS/);
  });
});

describe('the worker role: its own /metrics port (npm run worker), the API alone', () => {
  test("requests run by a worker process are counted on the worker's /metrics, with the SDK's metrics", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'keel-metrics-'));
    const taskQueue = `keel-metrics-worker-${process.pid}`;
    // With a scrape token: the worker's /metrics and the API's take it (docs/OPERATIONS.md).
    const token = `keel-metrics-${randomBytes(16).toString('hex')}`;
    const workerYaml = `telemetry: { metrics: { token: "\${KEEL_METRICS_TOKEN}" } }\nproviders:\n  good: { type: openai, baseURL: ${good.url} }\nmodels:\n  chat: { targets: [good/m] }\n`;
    writeFileSync(join(dir, 'keel.yaml'), workerYaml);
    const metricsPort = await freePort();
    const worker = await startRole('worker', { configPath: join(dir, 'keel.yaml'), temporalAddress: env.address, dataDir: dir, env: { KEEL_METRICS_PORT: String(metricsPort), KEEL_TASK_QUEUE: taskQueue, KEEL_METRICS_TOKEN: token } });
    const config = parseConfig(workerYaml, { KEEL_TASK_QUEUE: taskQueue, PORT: '0', KEEL_METRICS_TOKEN: token }, 'test config');
    const api = await startApi(config, { address: env.address, port: 0, metrics: new KeelMetrics({ processMetrics: false }) });
    try {
      assert.match(worker.output(), new RegExp(`metrics on http://127\\.0\\.0\\.1:${metricsPort}/metrics`));
      const workerMetrics = `http://127.0.0.1:${metricsPort}/metrics`;
      for (const url of [workerMetrics, `${api.url}/metrics`]) {
        for (const headers of [{}, { authorization: `Bearer ${token}x` }] as Record<string, string>[]) {
          const res = await fetch(url, { headers });
          assert.equal(res.status, 401, url);
          assert.equal(((await res.json()) as Json).error.code, 'invalid_api_key');
        }
      }
      for (let i = 0; i < 2; i++) {
        const { res, json } = await ask('chat', api.url);
        assert.equal(res.status, 200, JSON.stringify(json));
        // The API alone waits for the recorded outcome (docs/REQUESTS.md).
        assert.equal(res.headers.get('x-keel-answer'), 'recorded');
      }
      const s = await until('the worker counted both requests', async () => {
        const now = await scrape(workerMetrics, token);
        return now.value('keel_requests_total', { model: 'chat' }) >= 2 ? now : undefined;
      });
      assert.equal(s.value('keel_requests_total', { model: 'chat', provider: 'good', outcome: 'succeeded' }), 2);
      assert.equal(s.value('keel_provider_attempts_total', { provider: 'good', model: 'm', call_path: 'local', outcome: 'success' }), 2);
      assert.equal(s.value('keel_temporal_metrics_up'), 1);
      assert.equal(s.value('temporal_workflow_completed', { task_queue: taskQueue, workflow_type: WORKFLOW_TYPES.request }), 2);
      assert.ok(s.families.has('process_resident_memory_bytes'), "the process's own metrics");
      // The API alone: its own view, nothing of a worker's.
      const a = await scrape(`${api.url}/metrics`, token);
      assert.ok(!a.text.includes(token) && !worker.output().includes(token), 'the token is in /metrics or the log');
      assert.equal(a.value('keel_chat_completions_total', { model: 'chat', provider: 'good', outcome: 'succeeded', answered_at: 'recorded' }), 2);
      assert.equal(a.value('keel_requests_total'), 0);
      assert.ok(![...a.families.keys()].some((n) => n.startsWith('temporal_')));
    } finally {
      await api.close();
      await worker.kill();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('virtual keys: the key label, each key\'s budget, and who may scrape (auth on)', () => {
  const ADMIN = `keel-admin-${randomBytes(16).toString('hex')}`;
  const TOKEN = `keel-metrics-${randomBytes(16).toString('hex')}`;
  let keyed: KeelUnderTest;
  /** Every secret here: none may appear in /metrics. */
  const secrets = [ADMIN, TOKEN];
  const keyedUrl = () => `${keyed.url}/metrics`;
  const bearer = (token: string) => ({ authorization: `Bearer ${token}` });
  // $1 per million output tokens, nothing for input: max_tokens 1000 reserves exactly $0.001, and
  // the fake answers with exactly 1,000 tokens (its text is cut at max_tokens), so each request is
  // charged what it reserved and the budget arithmetic is exact.
  const askWith = (token: string, model = 'priced') =>
    callJson(keyed.url, 'POST', '/v1/chat/completions', { model, max_tokens: 1_000, messages: [{ role: 'user', content: 'Hello' }] }, bearer(token));
  async function createKey(settings: Record<string, unknown>): Promise<{ id: string; secret: string }> {
    const { res, json } = await callJson(keyed.url, 'POST', '/v1/keys', settings, bearer(ADMIN));
    assert.equal(res.status, 201, JSON.stringify(json));
    secrets.push(json.secret);
    return { id: json.id, secret: json.secret };
  }

  before(async () => {
    good.setBehaviour('k', { default: { kind: 'ok', content: 'x'.repeat(8_000) } });
    keyed = await startKeel(
      env,
      `
auth: { adminKey: "\${KEEL_ADMIN_KEY}" }
telemetry: { metrics: { token: "\${KEEL_METRICS_TOKEN}" } }
providers:
  good: { type: openai, baseURL: ${good.url}, models: { k: { pricing: { input: 0, output: 1 } } } }
models:
  priced: { targets: [good/k] }
`,
      { env: { KEEL_ADMIN_KEY: ADMIN, KEEL_METRICS_TOKEN: TOKEN } },
    );
  });
  after(async () => {
    await keyed?.stop();
  });

  test('/metrics takes the metrics token or the admin key; nothing else, and the token opens nothing else', async () => {
    const refused = async (headers: Record<string, string>) => {
      const res = await fetch(keyedUrl(), { headers });
      assert.equal(res.status, 401);
      assert.equal(res.headers.get('www-authenticate'), 'Bearer');
      assert.equal(((await res.json()) as Json).error.code, 'invalid_api_key');
    };
    await refused({});
    await refused(bearer(`${TOKEN}x`));
    await refused({ authorization: `Basic ${Buffer.from(`x:${TOKEN}`).toString('base64')}` });
    const { secret } = await createKey({ name: 'scraper?' });
    await refused(bearer(secret));
    await scrape(keyedUrl(), TOKEN);
    await scrape(keyedUrl(), ADMIN);
    // The scrape token is no gateway key.
    assert.equal((await callJson(keyed.url, 'GET', '/v1/models', undefined, bearer(TOKEN))).res.status, 401);
    assert.equal((await fetch(`${keyed.url}/healthz`)).status, 200);
  });

  test('`/metrics` in auth.openPaths: open, like /healthz', async () => {
    const config = parseConfig(
      `auth: { adminKey: "${ADMIN}", openPaths: [/healthz, /metrics] }\nproviders:\n  good: { type: openai, baseURL: ${good.url} }\nmodels:\n  chat: { targets: [good/m] }\n`,
      { KEEL_TASK_QUEUE: keyed.config.taskQueue, PORT: '0' },
      'test config',
    );
    const api = await startApi(config, { address: env.address, port: 0, metrics: new KeelMetrics({ processMetrics: false }) });
    try {
      assert.equal((await fetch(`${api.url}/metrics`)).status, 200);
      assert.equal((await callJson(api.url, 'GET', '/v1/models')).res.status, 401);
    } finally {
      await api.close();
    }
  });

  test("requests by key; each key's budget, as its workflow holds it, after every reservation, settlement and change", async () => {
    const started = Date.now();
    const budgeted = await createKey({ name: 'team-a', budget: { usd: 0.0035, period: 'month' } });
    const open = await createKey({ name: 'team-b' });
    const before = await scrape(keyedUrl(), TOKEN);
    const answers: Json[] = [];
    for (let i = 0; i < 3; i++) {
      const { res, json } = await askWith(budgeted.secret);
      assert.equal(res.status, 200, JSON.stringify(json));
      answers.push(json);
    }
    // The fourth's worst case ($0.001) does not fit what is left ($0.0005): refused before it starts.
    const refused = await askWith(budgeted.secret);
    assert.equal(refused.res.status, 429, JSON.stringify(refused.json));
    assert.equal(refused.json.error.code, 'budget_exceeded');
    for (let i = 0; i < 2; i++) assert.equal((await askWith(ADMIN)).res.status, 200);
    assert.equal((await askWith(open.secret)).res.status, 200);

    const charged = answers.reduce((n, a) => n + a.keel.key.charged_usd, 0);
    assert.ok(Math.abs(charged - 0.003) < 1e-12, `charged ${charged}`);
    assert.ok(Math.abs(answers.reduce((n, a) => n + a.usage.cost, 0) - charged) < 1e-12);
    // Settlement reaches the key's workflow once each request ends: wait for the last one, then
    // the gauge must say what GET /v1/keys/:id says.
    const after = await until('the three settlements reported', async () => {
      const s = await scrape(keyedUrl(), TOKEN);
      const left = s.value('keel_key_budget_remaining_usd', { key: budgeted.id });
      return delta(before, s, 'keel_requests_total', {}) >= 6 && Math.abs(left - 0.0005) < 1e-12 ? s : undefined;
    });
    // The API reads a key through a cache of up to 500 ms (KEY_CACHE_MS): read until it has the last settlement.
    const view = await until('GET /v1/keys/:id with every request settled', async () => {
      const v = (await callJson(keyed.url, 'GET', `/v1/keys/${budgeted.id}`, undefined, bearer(ADMIN))).json;
      return v.spend.requests === 3 ? v : undefined;
    });
    assert.equal(view.budget.reserved_usd, 0);
    assert.ok(Math.abs(after.value('keel_key_budget_remaining_usd', { key: budgeted.id }) - view.budget.remaining_usd) < 1e-12, `${view.budget.remaining_usd}`);
    assert.ok(Math.abs(refused.json.keel.budget.remaining_usd - 0.0005) < 1e-12);
    assert.equal(after.value('keel_key_budget_limit_usd', { key: budgeted.id }), 0.0035);
    const reportedAt = after.value('keel_key_budget_updated_timestamp_seconds', { key: budgeted.id });
    assert.ok(reportedAt * 1000 >= started - 1_000 && reportedAt * 1000 <= Date.now() + 1_000, `reported at ${reportedAt}`);
    // A key without a budget has no budget series.
    assert.equal(after.labelSets('keel_key_budget_remaining_usd').filter((l) => l.key === open.id).length, 0);

    // The key label: the key's id, or 'none' for the admin key; on the API's and the workflow's metrics.
    const sync = (key: string) => delta(before, after, 'keel_chat_completions_total', { model: 'priced', provider: 'good', outcome: 'succeeded', key });
    assert.deepEqual([sync(budgeted.id), sync(open.id), sync('none')], [3, 1, 2]);
    const ended = (key: string) => delta(before, after, 'keel_requests_total', { model: 'priced', provider: 'good', outcome: 'succeeded', key });
    assert.deepEqual([ended(budgeted.id), ended(open.id), ended('none')], [3, 1, 2]);
    const waits = (s: Scrape, key: string) => s.histogram('keel_chat_completion_duration_seconds', { key }).count;
    assert.equal(waits(after, budgeted.id) - waits(before, budgeted.id), 3);
    const runs = (s: Scrape, key: string) => s.histogram('keel_request_duration_seconds', { key }).count;
    assert.equal(runs(after, budgeted.id) - runs(before, budgeted.id), 3);
    assert.ok(Math.abs(delta(before, after, 'keel_request_cost_usd_total', { key: budgeted.id }) - charged) < 1e-12);
    assert.equal(delta(before, after, 'keel_request_tokens_total', { key: budgeted.id, type: 'output' }), 3_000);
    // The refusal: counted by key and reason; it started nothing.
    assert.equal(delta(before, after, 'keel_key_refusals_total', { key: budgeted.id, reason: 'budget_exceeded' }), 1);
    assert.equal(delta(before, after, 'keel_requests_total', { key: budgeted.id, outcome: 'failed' }), 0);

    // A bigger budget: reported by the key's workflow as it takes the change.
    const patched = await callJson(keyed.url, 'PATCH', `/v1/keys/${budgeted.id}`, { budget: { usd: 0.01, period: 'month' } }, bearer(ADMIN));
    assert.equal(patched.res.status, 200, JSON.stringify(patched.json));
    const raised = await scrape(keyedUrl(), TOKEN);
    assert.equal(raised.value('keel_key_budget_limit_usd', { key: budgeted.id }), 0.01);
    assert.ok(Math.abs(raised.value('keel_key_budget_remaining_usd', { key: budgeted.id }) - 0.007) < 1e-12);

    // Labels carry key ids, never a secret.
    const text = raised.text;
    assert.ok(text.includes(`key="${budgeted.id}"`));
    for (const secret of secrets) assert.ok(!text.includes(secret) && !text.includes(secret.slice(0, 24)), 'a secret is in /metrics');

    // Revoked with nothing in flight: the key's workflow ends, and its budget series go.
    assert.equal((await callJson(keyed.url, 'DELETE', `/v1/keys/${budgeted.id}`, undefined, bearer(ADMIN))).res.status, 200);
    await until("the revoked key's series gone", async () => {
      const s = await scrape(keyedUrl(), TOKEN);
      return s.labelSets('keel_key_budget_remaining_usd').some((l) => l.key === budgeted.id) ? undefined : s;
    });
  });
});

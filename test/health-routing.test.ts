// Health-aware routing as pure functions: sort orders, breaker skipping and probes in the planner,
// the breaker state machine, window statistics and per-request cost.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { acquireProbe, applyReport, breakerView, newBreaker } from '../src/core/breaker.js';
import { DEFAULT_BREAKER } from '../src/config/schema.js';
import { parseConfig } from '../src/config/load.js';
import { usageCost, withUsageCost } from '../src/core/cost.js';
import { addReport, minuteSeries, windowStats, type StatsBucket } from '../src/core/health-stats.js';
import { histogramQuantile, latencyBin, type RoutingHealth, type TargetReport, type TargetRoutingHealth } from '../src/core/health-types.js';
import { healthCandidates, planRequest } from '../src/core/routing.js';

const { routing } = parseConfig(
  `
providers:
  a: { type: openai, baseURL: http://127.0.0.1:1/v1, models: { m: { pricing: { input: 3, output: 15 } } } }
  b: { type: anthropic, baseURL: http://127.0.0.1:2, models: { m: { pricing: { input: 0.5, output: 1.5 } } } }
  c: { type: gemini, baseURL: http://127.0.0.1:3, models: { m: { pricing: { input: 1, output: 2 } } } }
  d: { type: openai, baseURL: http://127.0.0.1:4 }
models:
  chat: { targets: [a/m, b/m, c/m, d/m] }
`,
  {},
);

const keys = (p: ReturnType<typeof planRequest>) => p.targets.map((t) => `${t.provider}/${t.model}`);

function healthOf(targets: Record<string, Partial<TargetRoutingHealth>>): RoutingHealth {
  const out: RoutingHealth['targets'] = {};
  for (const [k, v] of Object.entries(targets)) out[k] = { breaker: 'closed', calls: 0, successRate: null, p50Ms: null, tokensPerSec: null, ...v };
  return { targets: out, degradedBelow: 0.5, minCalls: 20 };
}

describe('provider.sort (OpenRouter meaning)', () => {
  test('price: cheapest input+output first; targets without pricing last, in configured order', () => {
    assert.deepEqual(keys(planRequest({ model: 'chat', provider: { sort: 'price' } }, routing)), ['b/m', 'c/m', 'a/m', 'd/m']);
  });

  test('latency: lowest live p50 first; targets with no figures keep their order at the end', () => {
    const health = healthOf({ 'a/m': { p50Ms: 900 }, 'b/m': { p50Ms: 120 }, 'c/m': { p50Ms: 400 } });
    assert.deepEqual(keys(planRequest({ model: 'chat', provider: { sort: 'latency' } }, routing, health)), ['b/m', 'c/m', 'a/m', 'd/m']);
    assert.deepEqual(keys(planRequest({ model: 'chat', provider: { sort: 'latency' } }, routing)), ['a/m', 'b/m', 'c/m', 'd/m'], 'no stats: configured order');
  });

  test('throughput: highest tokens/s first', () => {
    const health = healthOf({ 'a/m': { tokensPerSec: 40 }, 'c/m': { tokensPerSec: 180 }, 'd/m': { tokensPerSec: 90 } });
    assert.deepEqual(keys(planRequest({ model: 'chat', provider: { sort: 'throughput' } }, routing, health)), ['c/m', 'd/m', 'a/m', 'b/m']);
  });

  test('provider.order wins over sort for the providers it names; allow_fallbacks:false keeps the sorted first', () => {
    assert.deepEqual(keys(planRequest({ model: 'chat', provider: { sort: 'price', order: ['a'] } }, routing)), ['a/m', 'b/m', 'c/m', 'd/m']);
    assert.deepEqual(keys(planRequest({ model: 'chat', provider: { sort: 'price', allow_fallbacks: false } }, routing)), ['b/m']);
  });
});

describe('availability-aware default order', () => {
  test('open breakers are skipped, the configured order is kept otherwise', () => {
    const plan = planRequest({ model: 'chat' }, routing, healthOf({ 'a/m': { breaker: 'open' }, 'c/m': { breaker: 'open' } }));
    assert.deepEqual(keys(plan), ['b/m', 'd/m']);
    assert.deepEqual(plan.skipped, [
      { target: 'a/m', reason: 'breaker_open' },
      { target: 'c/m', reason: 'breaker_open' },
    ]);
  });

  test('a degraded target goes behind healthy ones (not with an explicit order); a sort breaks ties by health', () => {
    const health = healthOf({ 'a/m': { calls: 40, successRate: 0.3 }, 'b/m': { calls: 40, successRate: 0.99 } });
    assert.deepEqual(keys(planRequest({ model: 'chat' }, routing, health)), ['b/m', 'c/m', 'd/m', 'a/m']);
    assert.deepEqual(keys(planRequest({ model: 'chat', provider: { order: ['a', 'b', 'c', 'd'] } }, routing, health)), ['a/m', 'b/m', 'c/m', 'd/m']);
    const few = healthOf({ 'a/m': { calls: 3, successRate: 0 } });
    assert.deepEqual(keys(planRequest({ model: 'chat' }, routing, few)), ['a/m', 'b/m', 'c/m', 'd/m'], 'too few calls to judge');
  });

  test('half-open: skipped and offered as a probe candidate; the probe holder tries it first', () => {
    const half = healthOf({ 'b/m': { breaker: 'half_open' } });
    const plan = planRequest({ model: 'chat' }, routing, half);
    assert.deepEqual(keys(plan), ['a/m', 'c/m', 'd/m']);
    assert.equal(plan.probeCandidate, 'b/m');
    const holder = healthOf({ 'b/m': { breaker: 'half_open', probe: true } });
    const probing = planRequest({ model: 'chat' }, routing, holder);
    assert.deepEqual(keys(probing), ['b/m', 'a/m', 'c/m', 'd/m']);
    assert.equal(probing.probe, 'b/m');
    assert.equal(probing.probeCandidate, undefined);
  });

  test('every target open: an empty plan listing what was skipped (the workflow answers 503)', () => {
    const all = healthOf(Object.fromEntries(['a/m', 'b/m', 'c/m', 'd/m'].map((k) => [k, { breaker: 'open' as const }])));
    const plan = planRequest({ model: 'chat' }, routing, all);
    assert.deepEqual(plan.targets, []);
    assert.equal(plan.skipped?.length, 4);
  });

  test('health candidates: every target the request may use, before ordering and limits', () => {
    assert.deepEqual(healthCandidates({ model: 'chat', provider: { ignore: ['c'], allow_fallbacks: false } }, routing), ['a/m', 'b/m', 'd/m']);
  });
});

function report(ok: number, errors: TargetReport['errors'], extra: Partial<TargetReport> = {}): TargetReport {
  return { target: 'a/m', provider: 'a', at: 0, ok, errors, latency: {}, outputTokens: 0, okMs: 0, ...extra };
}

describe('circuit breaker', () => {
  const settings = { ...DEFAULT_BREAKER, minCalls: 4, failureRatio: 0.5, windowMs: 10_000, cooldownMs: 5_000, probeTimeoutMs: 3_000 };

  test('opens at the ratio threshold over at least minCalls; throttling and client errors do not count', () => {
    const b = newBreaker(0);
    applyReport(b, report(1, { unavailable: 2 }), settings, 1000);
    assert.equal(b.state, 'closed', '3 calls < minCalls');
    applyReport(b, report(0, { rate_limited: 5, invalid_request: 5 }), settings, 1500);
    assert.equal(b.state, 'closed');
    applyReport(b, report(0, { unreachable: 1 }), settings, 2000);
    assert.equal(b.state, 'open');
    assert.equal(b.retryAt, 7000);
    assert.match(b.reason!, /3 of 4 calls failed/);
  });

  test('failures outside the window are forgotten; failureCount opens on a count alone', () => {
    const b = newBreaker(0);
    applyReport(b, report(0, { unavailable: 3 }), settings, 0);
    applyReport(b, report(2, { unavailable: 1 }), settings, 20_000);
    assert.equal(b.state, 'closed');
    const counted = newBreaker(0);
    applyReport(counted, report(100, { timeout: 3 }), { ...settings, failureCount: 3 }, 0);
    assert.equal(counted.state, 'open');
  });

  test('cooldown, then exactly one probe; its success closes, its failure re-opens', () => {
    const b = newBreaker(0);
    applyReport(b, report(0, { unavailable: 4 }), settings, 1000);
    assert.equal(acquireProbe(b, 'r1', settings, 3000), false, 'still cooling down');
    assert.equal(breakerView(b, settings, 5999).state, 'open');
    assert.equal(breakerView(b, settings, 6001).state, 'half_open');
    assert.equal(acquireProbe(b, 'r1', settings, 6001), true);
    assert.equal(acquireProbe(b, 'r2', settings, 6002), false, 'one probe at a time');
    applyReport(b, report(5, {}), settings, 6100);
    assert.equal(b.state, 'half_open', 'late non-probe reports do not decide');
    applyReport(b, report(0, { unavailable: 1 }, { probeFailed: 1 }), settings, 6200);
    assert.equal(b.state, 'open');
    assert.equal(b.opened, 2);
    assert.equal(acquireProbe(b, 'r3', settings, 11_300), true);
    assert.equal(acquireProbe(b, 'r4', settings, 14_400), true, 'a probe that never reported is given up after probeTimeoutMs');
    applyReport(b, report(1, {}, { probeOk: 1 }), settings, 14_500);
    assert.equal(b.state, 'closed');
  });
});

describe('window statistics', () => {
  test('histogram quantiles land inside the right bin', () => {
    const hist: Record<number, number> = {};
    for (let i = 0; i < 90; i++) hist[latencyBin(100)] = (hist[latencyBin(100)] ?? 0) + 1;
    for (let i = 0; i < 10; i++) hist[latencyBin(2000)] = (hist[latencyBin(2000)] ?? 0) + 1;
    const p50 = histogramQuantile(hist, 0.5)!;
    const p95 = histogramQuantile(hist, 0.95)!;
    assert.ok(p50 > 75 && p50 <= 100, `p50 ${p50}`);
    assert.ok(p95 > 1500 && p95 <= 2000, `p95 ${p95}`);
    assert.equal(histogramQuantile({}, 0.5), null);
  });

  test('1-minute and 30-minute windows, success rate, throughput and a per-minute series', () => {
    const now = 30 * 60_000 + 30_000;
    let buckets: StatsBucket[] = [];
    // 20 minutes ago: 10 failures; just now: 9 ok (100 ms, 50 tokens each), 1 failure, 2 client errors.
    buckets = addReport(buckets, report(0, { unavailable: 10 }, { at: now - 20 * 60_000 }), now);
    buckets = addReport(buckets, report(9, { timeout: 1, invalid_request: 2 }, { at: now - 5_000, latency: { [latencyBin(100)]: 9 }, outputTokens: 450, okMs: 900 }), now);
    const m1 = windowStats(buckets, now, 60_000);
    assert.equal(m1.calls, 12);
    assert.equal(m1.failures, 1);
    assert.equal(m1.successRate, 0.9);
    assert.equal(m1.tokensPerSec, 500);
    const m30 = windowStats(buckets, now, 30 * 60_000);
    assert.equal(m30.failures, 11);
    assert.equal(m30.successRate, 9 / 20);
    const series = minuteSeries(buckets, now);
    assert.equal(series.length, 30);
    assert.equal(series.filter((p) => p.uptime !== null).length, 2);
    assert.equal(series[series.length - 1].uptime, 0.9);
    buckets = addReport(buckets, report(1, {}, { at: now + 40 * 60_000 }), now + 40 * 60_000);
    assert.equal(buckets.length, 1, 'buckets past the 30-minute retention are dropped');
  });
});

test('usage cost from configured prices (USD per 1M tokens), as usage.cost', () => {
  assert.equal(usageCost({ prompt_tokens: 1000, completion_tokens: 500 }, 'a', 'm', routing), 0.0105);
  assert.equal(usageCost({ prompt_tokens: 1000, completion_tokens: 500 }, 'd', 'm', routing), undefined);
  const completion = { id: 'x', usage: { prompt_tokens: 1000, completion_tokens: 500, total_tokens: 1500 } };
  assert.deepEqual(withUsageCost(completion, 0.0105).usage, { prompt_tokens: 1000, completion_tokens: 500, total_tokens: 1500, cost: 0.0105 });
});

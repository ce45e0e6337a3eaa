// The planner: which targets a request goes to, in which order and mode.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseConfig } from '../src/config/load.js';
import { PlanError, planRequest } from '../src/core/routing.js';

const { routing } = parseConfig(`
providers:
  a: { type: openai, baseURL: http://127.0.0.1:1/v1, models: { m1: { contextWindow: 8000 } } }
  b: { type: anthropic, baseURL: http://127.0.0.1:2 }
  c: { type: gemini, baseURL: http://127.0.0.1:3, models: { m3: { contextWindow: 1000000 } } }
models:
  chat: { targets: [a/m1, b/m2, c/m3] }
  quick: { targets: [c/m3, a/m1], mode: race, race: { width: 2 } }
`, {});

const keys = (p: ReturnType<typeof planRequest>) => p.targets.map((t) => `${t.provider}/${t.model}`);

test('a public model resolves to its ordered targets; provider/model addresses one target', () => {
  assert.deepEqual(keys(planRequest({ model: 'chat' }, routing)), ['a/m1', 'b/m2', 'c/m3']);
  assert.deepEqual(keys(planRequest({ model: 'b/anything' }, routing)), ['b/anything']);
  assert.equal(planRequest({ model: 'chat' }, routing).targets[2].contextWindow, 1_000_000);
});

test('unknown models and providers are 404 / 400 with the param named', () => {
  assert.throws(() => planRequest({ model: 'nope' }, routing), (e: unknown) => e instanceof PlanError && e.status === 404 && e.param === 'model');
  assert.throws(() => planRequest({ model: 'zz/m' }, routing), (e: unknown) => e instanceof PlanError && e.status === 404);
  assert.throws(() => planRequest({ model: 'chat', provider: { only: ['zz'] } }, routing), (e: unknown) => e instanceof PlanError && e.status === 400 && e.param === 'provider.only');
});

test('models[] chains fallbacks without repeating a target', () => {
  assert.deepEqual(keys(planRequest({ model: 'quick', models: ['chat', 'a/m1'] }, routing)), ['c/m3', 'a/m1', 'b/m2']);
});

test("provider preferences: only, ignore, order, allow_fallbacks (OpenRouter's meaning)", () => {
  assert.deepEqual(keys(planRequest({ model: 'chat', provider: { only: ['b', 'c'] } }, routing)), ['b/m2', 'c/m3']);
  assert.deepEqual(keys(planRequest({ model: 'chat', provider: { ignore: ['a'] } }, routing)), ['b/m2', 'c/m3']);
  assert.deepEqual(keys(planRequest({ model: 'chat', provider: { order: ['c'] } }, routing)), ['c/m3', 'a/m1', 'b/m2']);
  assert.deepEqual(keys(planRequest({ model: 'chat', provider: { order: ['c', 'b'], allow_fallbacks: false } }, routing)), ['c/m3', 'b/m2']);
  assert.deepEqual(keys(planRequest({ model: 'chat', provider: { allow_fallbacks: false } }, routing)), ['a/m1']);
  assert.throws(() => planRequest({ model: 'chat', provider: { only: ['a'], ignore: ['a'] } }, routing), /No target is left/);
});

test('mode and limits: per model, per request, bounded by the configured limits', () => {
  const quick = planRequest({ model: 'quick' }, routing);
  assert.equal(quick.mode, 'race');
  assert.equal(quick.raceWidth, 2);
  const hedged = planRequest({ model: 'chat', keel: { mode: 'hedge', hedge_delay_ms: 250, max_attempts: 5, timeout_ms: 1000 } }, routing);
  assert.equal(hedged.mode, 'hedge');
  assert.equal(hedged.hedge.delayMs, 250);
  assert.equal(hedged.retry.maxAttempts, 5);
  assert.equal(hedged.timeouts.requestMs, 1000);
  assert.equal(hedged.timeouts.attemptMs, 1000, 'an attempt never outlives the request');
  assert.throws(() => planRequest({ model: 'chat', keel: { max_attempts: 50 } }, routing), (e: unknown) => e instanceof PlanError && e.param === 'keel.max_attempts');
});

test("hedge delay as a percentile of the first target's observed latency, the fixed delay until there are stats", () => {
  const { routing: r } = parseConfig(`
providers:
  a: { type: openai, baseURL: http://127.0.0.1:1/v1 }
  b: { type: openai, baseURL: http://127.0.0.1:2/v1 }
models:
  h: { targets: [a/m, b/m], mode: hedge, hedge: { delayMs: 700, percentile: 95 } }
`, {});
  const stats = (p50Ms: number | null, p95Ms: number | null) => ({
    targets: { 'a/m': { breaker: 'closed' as const, calls: 100, successRate: 1, p50Ms, p95Ms, tokensPerSec: null } },
    degradedBelow: 0.5,
    minCalls: 20,
  });
  assert.equal(planRequest({ model: 'h' }, r).hedge.delayMs, 700);
  assert.equal(planRequest({ model: 'h' }, r, stats(80, 240.4)).hedge.delayMs, 240);
  assert.equal(planRequest({ model: 'h' }, r, stats(null, null)).hedge.delayMs, 700);
  assert.equal(planRequest({ model: 'h', keel: { hedge_delay_ms: 50 } }, r, stats(80, 240)).hedge.delayMs, 50, 'a request that names a delay gets it');
  assert.throws(() => parseConfig('providers: {}\ndefaults: { hedge: { percentile: 90 } }', {}), /defaults\.hedge\.percentile/);
});

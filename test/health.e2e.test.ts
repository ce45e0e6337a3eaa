// Health-aware routing end to end: circuit breakers seen at the fake providers (no call reaches an
// open target, one probe after the cooldown, recovery), live stats and the status page, cost in
// usage, the provider rate limit across two workers, and stats kept across a worker restart.
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import OpenAI from 'openai';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { NativeConnection } from '@temporalio/worker';
import { startFakeProvider, type FakeProvider } from '../dev/fakes/index.js';
import type { ProvidersView, TargetView } from '../src/services/health-view.js';
import { createKeelWorkers } from '../src/worker/workers.js';
import { startKeel, startTemporal, workflowBundle, type KeelUnderTest } from './helpers/temporal.js';
import { launchChromium } from './helpers/chromium.js';

const COOLDOWN_MS = 6000;
/** Time left in the cooldown when the last open-breaker request may start. */
const COOLDOWN_MARGIN_MS = 2500;
const RATE = 4;

let env: TestWorkflowEnvironment;
let keel: KeelUnderTest;
let a: FakeProvider;
let b: FakeProvider;
let lim: FakeProvider;
let client: OpenAI;

before(async () => {
  env = await startTemporal();
  a = await startFakeProvider({ type: 'openai' });
  b = await startFakeProvider({ type: 'anthropic' });
  lim = await startFakeProvider({ type: 'openai' });
  keel = await startKeel(
    env,
    `
defaults:
  retry: { maxAttempts: 1, initialIntervalMs: 100, backoffCoefficient: 2, maximumIntervalMs: 400, jitter: 0 }
  timeouts: { attemptMs: 10000, requestMs: 20000 }
health:
  publishIntervalMs: 200
  refreshIntervalMs: 200
  breaker: { minCalls: 3, failureRatio: 0.5, windowMs: 20000, cooldownMs: ${COOLDOWN_MS}, probeTimeoutMs: 5000 }
providers:
  a: { type: openai, baseURL: ${a.url}, models: { m: { pricing: { input: 2, output: 8 } } } }
  b: { type: anthropic, baseURL: ${b.url}, models: { m: { pricing: { input: 1, output: 4 } } } }
  lim: { type: openai, baseURL: ${lim.url}, rateLimitPerSecond: ${RATE}, rateLimitWorkers: 2, concurrency: 50 }
models:
  chain: { targets: [a/m, b/m] }
`,
  );
  client = new OpenAI({ baseURL: `${keel.url}/v1`, apiKey: 'unused', maxRetries: 0 });
});

after(async () => {
  await keel?.stop();
  await Promise.all([a?.close(), b?.close(), lim?.close()]);
  await env?.teardown();
});

type KeelInfo = { provider: string; cost?: number };
async function ask(model: string, extra: Record<string, unknown> = {}) {
  const data = await client.chat.completions.create({ model, messages: [{ role: 'user', content: 'ping' }], ...extra } as OpenAI.ChatCompletionCreateParamsNonStreaming);
  return { data, keel: (data as unknown as { keel: KeelInfo }).keel };
}

async function providers(): Promise<ProvidersView> {
  return (await (await fetch(`${keel.url}/v1/providers`)).json()) as ProvidersView;
}

async function target(id: string): Promise<TargetView | undefined> {
  return (await providers()).data.flatMap((p) => p.targets).find((t) => t.id === id);
}

async function waitFor<T>(what: string, fn: () => Promise<T | undefined | false>, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('circuit breaker', () => {
  test('opens after the threshold; no call reaches the open target; one probe after the cooldown; closed again', async () => {
    a.setBehaviour('m', { default: { kind: 'error', status: 503 } });
    b.setBehaviour('m', { default: { kind: 'ok', latencyMs: 20 } });
    // Sequential requests until the breaker opens: each one fails on a, is answered by b.
    let opened: TargetView | undefined;
    for (let i = 0; i < 12 && !opened; i++) {
      assert.equal((await ask('chain')).keel.provider, 'b');
      await sleep(250);
      const t = await target('a/m');
      if (t?.breaker.state === 'open') opened = t;
    }
    assert.ok(opened, 'the breaker opened');
    assert.ok(a.calls('m').length >= 3, `${a.calls('m').length} calls before it opened (minCalls 3)`);
    assert.equal(opened.health, 'down');
    assert.match(opened.breaker.reason ?? '', /calls failed/);
    // Workers refresh their snapshot every 200 ms.
    await sleep(500);

    // Requests while the breaker is open, each started with time to finish inside the cooldown
    // (a request takes over a second on a busy machine): one that ran into the half-open state
    // could rightly be the probe, and a probe of the still-failing provider would reopen it.
    const retryAt = opened.breaker.retry_at!;
    const before = a.calls('m').length;
    let sent = 0;
    while (sent < 6 && Date.now() < retryAt - COOLDOWN_MARGIN_MS) {
      assert.equal((await ask('chain')).keel.provider, 'b');
      sent++;
    }
    assert.ok(sent >= 1, 'at least one request within the cooldown');
    assert.ok(Date.now() < retryAt, 'still within the cooldown');
    assert.equal(a.calls('m').length, before, `no call reached the open target (${sent} requests)`);

    // The provider recovers; after the cooldown exactly one request probes it. The workers see the
    // half-open state at their next snapshot refresh (200 ms, later on a busy machine): bursts of
    // concurrent requests until one has probed.
    a.setBehaviour('m', { default: { kind: 'ok', latencyMs: 20 } });
    await sleep(Math.max(0, retryAt - Date.now()) + 300);
    const answered: { keel: KeelInfo }[] = [];
    for (let round = 0; round < 10 && a.calls('m').length === before; round++) {
      if (round > 0) await sleep(200);
      answered.push(...(await Promise.all(Array.from({ length: 5 }, () => ask('chain')))));
    }
    assert.equal(a.calls('m').length, before + 1, 'exactly one probe');
    assert.equal(answered.filter((r) => r.keel.provider === 'a').length, 1, 'the probe answered its request');
    const closed = await waitFor('breaker closed', async () => {
      const t = await target('a/m');
      return t?.breaker.state === 'closed' && t;
    });
    assert.equal(closed.breaker.opened, 1);
    await sleep(500);
    assert.equal((await ask('chain')).keel.provider, 'a', 'traffic is back on the first target');
  });

  test('/v1/providers: per provider and target, breaker state and live stats', async () => {
    await sleep(500);
    const view = await providers();
    const pa = view.data.find((p) => p.id === 'a')!;
    assert.equal(pa.type, 'openai');
    const am = pa.targets.find((t) => t.id === 'a/m')!;
    assert.deepEqual(am.pricing, { input: 2, output: 8 });
    const m30 = am.stats!['30m'];
    assert.ok(m30.failures >= 3 && (m30.errors.unavailable ?? 0) >= 3, JSON.stringify(m30));
    assert.ok(m30.ok >= 2);
    assert.ok(m30.success_rate! > 0 && m30.success_rate! < 1);
    const bm = view.data.find((p) => p.id === 'b')!.targets.find((t) => t.id === 'b/m')!;
    assert.equal(bm.stats!['1m'].success_rate, 1);
    assert.ok(bm.stats!['1m'].p50_ms! > 0 && bm.stats!['1m'].p50_ms! <= bm.stats!['1m'].p95_ms!);
    assert.ok(bm.stats!['1m'].tokens_per_sec! > 0);
  });
});

describe('routing policies and cost', () => {
  test('provider.sort=price goes to the cheapest target; usage.cost and keel.cost from config prices', async () => {
    a.setBehaviour('m', { default: { kind: 'ok' } });
    b.setBehaviour('m', { default: { kind: 'ok' } });
    const { data, keel: info } = await ask('chain', { provider: { sort: 'price' } });
    assert.equal(info.provider, 'b');
    const usage = data.usage as OpenAI.CompletionUsage & { cost?: number };
    const expected = (usage.prompt_tokens * 1 + usage.completion_tokens * 4) / 1_000_000;
    assert.ok(Math.abs(usage.cost! - expected) < 1e-9, `${usage.cost} vs ${expected}`);
    assert.equal(info.cost, usage.cost);
  });
});

describe('per-provider rate limit (Temporal task-queue rate limiting)', () => {
  // Two worker sets share the limit (`rateLimitWorkers: 2`): the server holds the average across
  // all workers, each worker's slot supplier its strict share (docs/ROUTING.md).
  test(`${3 * RATE} requests at once, two worker sets: at most ${RATE} calls in any 1-s window, about ${RATE}/s, all complete`, async (t) => {
    const connection = await NativeConnection.connect({ address: env.address });
    const { workers: second } = await createKeelWorkers({ connection, config: keel.config, workflowBundle: await workflowBundle(), identity: 'second-worker' });
    const running = Promise.all(second.map((w) => w.run()));
    try {
      lim.setBehaviour('m', { default: { kind: 'ok', latencyMs: 20 } });
      lim.resetCalls();
      const results = await Promise.all(Array.from({ length: 3 * RATE }, () => ask('lim/m')));
      assert.equal(results.length, 3 * RATE);
      assert.ok(results.every((r) => r.keel.provider === 'lim'));
      const starts = lim.calls('m').map((c) => c.startedAt).sort((x, y) => x - y);
      assert.equal(starts.length, 3 * RATE, 'one call per request');
      // Every rolling window [s, s + 1000 ms) at the provider: its count is largest when it opens
      // at a call start. Each worker lets at most R/2 requests out in any 1.025 s (1 s +
      // RATE_WINDOW_GUARD_MS), timed when the request is sent. The fake stamps a call when its
      // handler runs, on the event loop this test shares with both worker sets and the API: that
      // is the +1 tolerance, for a delay spike longer than the guard (measured: 0-25 ms, spikes ~50 ms).
      const windowMax = Math.max(...starts.map((s) => starts.filter((x) => x >= s && x < s + 1000).length));
      // How close the run came to R + 1 in a second: the shortest span over R + 1 consecutive calls.
      const tightest = Math.min(...starts.slice(RATE).map((s, i) => s - starts[i]));
      // At the full rate the first R calls start at once and the rest come R per window (1.025 s
      // with the guard): (n - R) / R windows from first to last.
      const spanMs = starts[starts.length - 1] - starts[0];
      const fullRateSpanMs = ((starts.length - RATE) / RATE) * 1025;
      const shown = starts.map((s) => s - starts[0]).join(',');
      t.diagnostic(`starts at ms: ${shown}; max calls in any 1-s window: ${windowMax}; shortest span of ${RATE + 1} calls: ${tightest} ms; span ${spanMs} ms (${fullRateSpanMs} ms at the full rate)`);
      assert.ok(windowMax <= RATE + 1, `${windowMax} calls within one rolling second (limit ${RATE}/s); starts at ms: ${shown}`);
      // The limiter does not throttle below the limit. Tolerance: 1.5 s for a busy machine, where
      // dispatch lags (measured under two CPU hogs: the second worker set's first calls ~650 ms
      // late, span 2.9 s for 2.05 s). A limiter at half the rate would need 5 s here.
      // (Keeping the server's limiter alone within R in every second would take a limit below R/2:
      // it lets a second's worth through at once.)
      assert.ok(spanMs <= fullRateSpanMs + 1500, `${spanMs} ms from the first call to the last (${fullRateSpanMs} ms at ${RATE}/s); starts at ms: ${shown}`);
    } finally {
      for (const w of second) if (w.getState() === 'RUNNING') w.shutdown();
      await running;
      await connection.close();
    }
  });
});

describe('visible', () => {
  test('GET /status renders uptime and latency charts in headless Chromium; screenshot saved', async (t) => {
    const browser = await launchChromium();
    if (!browser) return t.skip('chromium is not installed (npm test installs it)');
    try {
      const page = await browser.newPage({ viewport: { width: 760, height: 1400 } });
      const res = await page.goto(`${keel.url}/status`);
      assert.equal(res?.status(), 200);
      assert.equal(await page.locator('section.provider').count(), 3);
      const bars = page.locator('section[data-provider="a"] svg.uptime-chart rect.bar:not(.empty)');
      assert.ok((await bars.count()) >= 1, 'uptime bars for provider a');
      const uptimes = await bars.evaluateAll((els) => els.map((e) => Number(e.getAttribute('data-uptime'))));
      assert.ok(uptimes.some((u) => u < 1), `a's failures show as less than 100%: ${uptimes}`);
      const latencyPoints = Number(await page.locator('section[data-provider="b"] svg.latency-chart').getAttribute('data-points'));
      assert.ok(latencyPoints >= 1, 'latency points for provider b');
      assert.ok((await page.locator('section[data-provider="b"] svg.latency-chart .p50').count()) >= 1);
      assert.equal(await page.locator('tr.target[data-target="a/m"]').getAttribute('data-breaker'), 'closed');
      mkdirSync('test-artifacts', { recursive: true });
      await page.screenshot({ path: 'test-artifacts/status.png', fullPage: true });
    } finally {
      await browser.close();
    }
  });
});

describe('durability', () => {
  test('stats survive a restart of the workers (they live in the health workflow)', async () => {
    const beforeRestart = (await target('a/m'))!.stats!['30m'];
    for (const w of keel.workers) w.shutdown();
    await Promise.all(keel.workers.map((w) => waitFor('worker stopped', async () => w.getState() === 'STOPPED')));
    const connection = await NativeConnection.connect({ address: env.address });
    const { workers: fresh } = await createKeelWorkers({ connection, config: keel.config, workflowBundle: await workflowBundle() });
    const running = Promise.all(fresh.map((w) => w.run()));
    try {
      const afterRestart = (await target('a/m'))!.stats!['30m'];
      assert.equal(afterRestart.calls, beforeRestart.calls);
      assert.equal(afterRestart.failures, beforeRestart.failures);
      assert.equal((await ask('chain')).keel.provider, 'a', 'requests route with the restored health');
    } finally {
      for (const w of fresh) w.shutdown();
      await running;
      await connection.close();
    }
  });
});

// Breaker cost: one of three providers hard down (connection refused), measured after its
// breaker opened, vs three healthy providers, in one run. Requests to the two models alternate,
// so both see the same machine noise. Loopback only; bounded loops.
//   npx tsx bench/breaker.ts        (N=300 requests per model; N=... to change)
import OpenAI from 'openai';
import { startFakeProvider } from '../dev/fakes/index.js';
import type { ProvidersView } from '../src/services/health-view.js';
import { startKeel, startTemporal } from '../test/helpers/temporal.js';
import { closedPort, summarize, timed, writeResults } from './stats.js';

const N = Number(process.env.N ?? 300);
const WARMUP = 30;
const MAX_REQUESTS_TO_OPEN = 100;


const env = await startTemporal();
const fakes = await Promise.all([1, 2, 3].map(() => startFakeProvider({ type: 'openai' })));
const deadPort = await closedPort();
const keel = await startKeel(
  env,
  `
defaults:
  retry: { maxAttempts: 3, initialIntervalMs: 100, backoffCoefficient: 2, maximumIntervalMs: 1000, jitter: 0.2 }
health:
  publishIntervalMs: 500
  refreshIntervalMs: 500
  # Stays open for the whole measurement.
  breaker: { minCalls: 5, failureRatio: 0.5, windowMs: 30000, cooldownMs: 600000 }
providers:
  dead: { type: openai, baseURL: http://127.0.0.1:${deadPort}/v1 }
  p1: { type: openai, baseURL: ${fakes[0].url} }
  p2: { type: openai, baseURL: ${fakes[1].url} }
  p3: { type: openai, baseURL: ${fakes[2].url} }
models:
  three-healthy: { targets: [p1/m, p2/m, p3/m] }
  one-down: { targets: [dead/m, p2/m, p3/m] }
`,
);
const client = new OpenAI({ baseURL: `${keel.url}/v1`, apiKey: 'x', maxRetries: 0 });
const ask = (model: string) => timed(() => client.chat.completions.create({ model, messages: [{ role: 'user', content: 'hi' }] }));

async function dead() {
  const view = (await (await fetch(`${keel.url}/v1/providers`)).json()) as ProvidersView;
  return view.data.find((p) => p.id === 'dead')?.targets.find((t) => t.id === 'dead/m');
}

try {
  for (let i = 0; i < WARMUP; i++) await ask('three-healthy');
  // Until the breaker opens, every request pays for the dead provider (refused connections, retries).
  const beforeOpen: number[] = [];
  while ((await dead())?.breaker.state !== 'open') {
    if (beforeOpen.length >= MAX_REQUESTS_TO_OPEN) throw new Error('the breaker did not open');
    beforeOpen.push((await ask('one-down')).ms);
  }
  // Let every worker's cached snapshot see it.
  await new Promise((r) => setTimeout(r, 1500));
  for (let i = 0; i < WARMUP; i++) await ask('one-down');
  const deadCallsAtOpen = (await dead())?.stats?.['30m'].calls ?? 0;

  const healthy: number[] = [];
  const oneDown: number[] = [];
  for (let i = 0; i < N; i++) {
    // Alternate which goes first, so neither always follows the other.
    const order = i % 2 === 0 ? (['three-healthy', 'one-down'] as const) : (['one-down', 'three-healthy'] as const);
    for (const model of order) (model === 'three-healthy' ? healthy : oneDown).push((await ask(model)).ms);
  }
  await new Promise((r) => setTimeout(r, 1500));
  const deadCallsAfterOpen = ((await dead())?.stats?.['30m'].calls ?? 0) - deadCallsAtOpen;
  const h = summarize(healthy);
  const d = summarize(oneDown);
  const results = {
    command: 'npx tsx bench/breaker.ts',
    requestsEach: N,
    threeHealthy: h,
    oneDownBreakerOpen: d,
    addedMs: { p50: +(d.p50 - h.p50).toFixed(2), p99: +(d.p99 - h.p99).toFixed(2) },
    goalP50Ms: 2,
    beforeBreakerOpened: summarize(beforeOpen),
    deadCallsAfterOpen,
  };
  console.log(JSON.stringify(results, null, 2));
  console.log(`written to ${writeResults('breaker', results)}`);
} finally {
  await keel.stop();
  await Promise.all(fakes.map((f) => f.close()));
  await env.teardown();
}

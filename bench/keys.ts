// What virtual keys cost a request (docs/KEYS.md, "What it costs"): sequential requests through
// one Keel with the admin key, a virtual key without limits (authenticated from the API's cache)
// and a virtual key with a budget and an RPM limit (a reservation Update before the start, a
// settlement signal before the workflow completes), interleaved in rounds so machine noise hits
// all alike. Two layouts: the gateway role (API and worker in one process: eager start, early
// answer) and an API alone (`npm run api`: the answer is the recorded one). Then the throughput
// of one budgeted key under concurrency, against the admin key.
//   npx tsx bench/keys.ts          (N=200 per kind and layout; CONCURRENT=200)
//   GAP=60 npx tsx bench/keys.ts   (a 60 ms pause after each request: the latency of one request
//                                   alone, without the previous request's tail on the CPU; no
//                                   concurrency part; results in keys-gap.json)
import OpenAI from 'openai';
import { startFakeProvider } from '../dev/fakes/index.js';
import { startKeel, startTemporal, type KeelUnderTest } from '../test/helpers/temporal.js';
import { machine, pool, summarize, timed, writeResults } from './stats.js';

const N = Number(process.env.N ?? 200);
const CONCURRENT = Number(process.env.CONCURRENT ?? 200);
const ROUNDS = 4;
const ADMIN = 'bench-admin-key-0123456789';
const GAP = Number(process.env.GAP ?? 0);

const env = await startTemporal();
const fake = await startFakeProvider({ type: 'openai' });
const yaml = `
auth:
  adminKey: ${ADMIN}
providers:
  a: { type: openai, baseURL: ${fake.url}, models: { m: { pricing: { input: 0.15, output: 0.6 } } } }
models:
  chat: { targets: [a/m] }
`;
const layouts: Record<string, KeelUnderTest> = {
  gateway: await startKeel(env, yaml),
  'api alone': await startKeel(env, yaml, { shared: false }),
};

async function createKey(keel: KeelUnderTest, settings: object): Promise<string> {
  const res = await fetch(`${keel.url}/v1/keys`, { method: 'POST', headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' }, body: JSON.stringify(settings) });
  return ((await res.json()) as { secret: string }).secret;
}

try {
  const body = { model: 'chat', max_tokens: 50, messages: [{ role: 'user' as const, content: 'Hello' }] };
  const results: Record<string, unknown> = { machine: machine(), requestsPerKind: N, gapMs: GAP };
  for (const [layout, keel] of Object.entries(layouts)) {
    const tokens = {
      'admin key': ADMIN,
      'virtual key, no limits': await createKey(keel, { name: 'plain' }),
      'virtual key, budget + rpm': await createKey(keel, { name: 'budgeted', budget: { usd: 1_000, period: 'month' }, rpm: 1_000_000 }),
    };
    const clients = Object.fromEntries(Object.entries(tokens).map(([k, t]) => [k, new OpenAI({ baseURL: `${keel.url}/v1`, apiKey: t, maxRetries: 0 })]));
    const samples: Record<string, number[]> = Object.fromEntries(Object.keys(tokens).map((k) => [k, []]));
    for (const c of Object.values(clients)) for (let i = 0; i < 20; i++) await c.chat.completions.create(body);
    for (let round = 0; round < ROUNDS; round++) {
      for (const [kind, c] of Object.entries(clients)) {
        for (let i = 0; i < N / ROUNDS; i++) {
          samples[kind].push((await timed(() => c.chat.completions.create(body))).ms);
          if (GAP > 0) await new Promise((r) => setTimeout(r, GAP));
        }
      }
    }
    const summary = Object.fromEntries(Object.entries(samples).map(([k, s]) => [k, summarize(s)]));
    const base = summary['admin key'].p50;
    results[layout] = { ...summary, addedP50Ms: Object.fromEntries(Object.entries(summary).map(([k, s]) => [k, +(s.p50 - base).toFixed(2)])) };
    console.log(layout, JSON.stringify(results[layout], null, 2));
  }

  if (GAP === 0) {
    // One hot key: CONCURRENT requests at once, all reserving through the same key workflow.
    const keel = layouts.gateway;
    const throughput: Record<string, unknown> = {};
    for (const [kind, token] of [
      ['admin key', ADMIN],
      ['one budgeted key', await createKey(keel, { budget: { usd: 1_000, period: 'total' }, rpm: 1_000_000 })],
    ] as const) {
      const c = new OpenAI({ baseURL: `${keel.url}/v1`, apiKey: token, maxRetries: 0, timeout: 120_000 });
      const lat: number[] = [];
      const t0 = performance.now();
      await pool(CONCURRENT, CONCURRENT, async () => {
        lat.push((await timed(() => c.chat.completions.create(body))).ms);
      });
      const seconds = (performance.now() - t0) / 1000;
      throughput[kind] = { requests: CONCURRENT, seconds: +seconds.toFixed(2), perSecond: +(CONCURRENT / seconds).toFixed(1), latency: summarize(lat) };
      console.log(kind, JSON.stringify(throughput[kind]));
    }
    results.concurrent = throughput;
  }
  console.log(`written to ${writeResults(GAP > 0 ? 'keys-gap' : 'keys', results)}`);
} finally {
  for (const k of Object.values(layouts)) await k.stop();
  await fake.close();
  await env.teardown();
}

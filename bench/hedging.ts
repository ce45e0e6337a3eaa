// Hedging against stragglers: a primary whose calls are 5 % stragglers at 10x its normal
// latency, 1,000 requests without and with hedging, in one run. Reports p50/p99 and the extra
// provider calls hedging cost.
import OpenAI from 'openai';
import { startFakeProvider } from '../dev/fakes/index.js';
import { startKeel, startTemporal } from '../test/helpers/temporal.js';
import { pool, summarize, timed, writeResults } from './stats.js';

const N = Number(process.env.N ?? 1000);
const CONCURRENCY = Number(process.env.CONCURRENCY ?? 16);
const BASE_MS = 100;
const HEDGE_DELAY_MS = Number(process.env.HEDGE_DELAY_MS ?? 150);

const env = await startTemporal();
const primary = await startFakeProvider({ type: 'openai' });
const secondary = await startFakeProvider({ type: 'openai' });
const latency = { baseMs: BASE_MS, jitterMs: 20, stragglerShare: 0.05, stragglerFactor: 10 };
primary.setBehaviour('*', { latency });
secondary.setBehaviour('*', { latency: { baseMs: BASE_MS, jitterMs: 20 } });
const keel = await startKeel(
  env,
  `
providers:
  p: { type: openai, baseURL: ${primary.url} }
  s: { type: openai, baseURL: ${secondary.url} }
models:
  plain: { targets: [p/m, s/m] }
  hedged: { targets: [p/m, s/m], mode: hedge, hedge: { delayMs: ${HEDGE_DELAY_MS}, maxShare: 0.1 } }
`,
);

async function run(model: string) {
  primary.resetCalls();
  secondary.resetCalls();
  const client = new OpenAI({ baseURL: `${keel.url}/v1`, apiKey: 'x', maxRetries: 0 });
  const samples: number[] = [];
  await pool(N, CONCURRENCY, async () => {
    samples.push((await timed(() => client.chat.completions.create({ model, messages: [{ role: 'user', content: 'hi' }] }))).ms);
  });
  const calls = primary.calls().length + secondary.calls().length;
  return { latencyMs: summarize(samples), providerCalls: calls, extraCallsPct: +((100 * (calls - N)) / N).toFixed(2) };
}

try {
  const without = await run('plain');
  const withHedge = await run('hedged');
  const results = {
    requests: N,
    concurrency: CONCURRENCY,
    primary: latency,
    hedgeDelayMs: HEDGE_DELAY_MS,
    withoutHedging: without,
    withHedging: withHedge,
    p99Ratio: +(without.latencyMs.p99 / withHedge.latencyMs.p99).toFixed(2),
    goal: 'p99 divided by >= 5 with <= 6 % extra calls',
  };
  console.log(JSON.stringify(results, null, 2));
  console.log(`written to ${writeResults('hedging', results)}`);
} finally {
  await keel.stop();
  await Promise.all([primary.close(), secondary.close()]);
  await env.teardown();
}

// Failover cost: provider A hard down (connection refused) in front of a healthy B, vs B alone,
// in one run, circuit breakers off: what a dead first target costs each request on the fallback path.
import OpenAI from 'openai';
import { startFakeProvider } from '../dev/fakes/index.js';
import { startKeel, startTemporal } from '../test/helpers/temporal.js';
import { closedPort, summarize, timed, writeResults } from './stats.js';

const N = Number(process.env.N ?? 100);


const env = await startTemporal();
const healthy = await startFakeProvider({ type: 'openai' });
const deadPort = await closedPort();
const keel = await startKeel(
  env,
  `
defaults:
  retry: { maxAttempts: 3, initialIntervalMs: 100, backoffCoefficient: 2, maximumIntervalMs: 1000, jitter: 0.2 }
# Without breakers every request meets the dead target: this measures the fallback path itself
# (bench/breaker.ts measures what the breaker saves).
health: { breaker: { enabled: false } }
providers:
  dead: { type: openai, baseURL: http://127.0.0.1:${deadPort}/v1 }
  ok: { type: openai, baseURL: ${healthy.url} }
models:
  healthy-only: { targets: [ok/m] }
  failover: { targets: [dead/m, ok/m] }
  failover-no-retry: { targets: [dead/m, ok/m], retry: { maxAttempts: 1 } }
`,
);
const client = new OpenAI({ baseURL: `${keel.url}/v1`, apiKey: 'x', maxRetries: 0 });
const run = async (model: string) => {
  const samples: number[] = [];
  for (let i = 0; i < N; i++) samples.push((await timed(() => client.chat.completions.create({ model, messages: [{ role: 'user', content: 'hi' }] }))).ms);
  return summarize(samples);
};
try {
  await run('healthy-only');
  const healthyOnly = await run('healthy-only');
  const failover = await run('failover');
  const failoverNoRetry = await run('failover-no-retry');
  const results = {
    requestsEach: N,
    healthyOnly,
    failoverWithRetries: failover,
    failoverOneAttempt: failoverNoRetry,
    addedP50Ms: { withRetries: +(failover.p50 - healthyOnly.p50).toFixed(2), oneAttempt: +(failoverNoRetry.p50 - healthyOnly.p50).toFixed(2) },
  };
  console.log(JSON.stringify(results, null, 2));
  console.log(`written to ${writeResults('failover', results)}`);
} finally {
  await keel.stop();
  await healthy.close();
  await env.teardown();
}

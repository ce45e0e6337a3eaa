// Keel's added latency: 200 sequential requests through Keel (API -> workflow -> activity ->
// fake provider) vs the same requests sent directly to the fake provider (0 ms), in one run.
import OpenAI from 'openai';
import { startFakeProvider } from '../dev/fakes/index.js';
import { startKeel, startTemporal } from '../test/helpers/temporal.js';
import { summarize, timed, writeResults } from './stats.js';

const N = Number(process.env.N ?? 200);
const WARMUP = 20;

const env = await startTemporal();
const fake = await startFakeProvider({ type: 'openai' });
const keel = await startKeel(env, `providers:\n  a: { type: openai, baseURL: ${fake.url} }\nmodels:\n  chat: { targets: [a/m] }\n`);
try {
  const direct = new OpenAI({ baseURL: fake.url, apiKey: 'x', maxRetries: 0 });
  const viaKeel = new OpenAI({ baseURL: `${keel.url}/v1`, apiKey: 'x', maxRetries: 0 });
  const body = { messages: [{ role: 'user' as const, content: 'Hello' }] };
  const run = async (client: OpenAI, model: string, n: number) => {
    const samples: number[] = [];
    for (let i = 0; i < n; i++) samples.push((await timed(() => client.chat.completions.create({ model, ...body }))).ms);
    return samples;
  };
  await run(direct, 'm', WARMUP);
  await run(viaKeel, 'chat', WARMUP);
  // Interleaved halves, so drift in machine load hits both sides alike.
  const d1 = await run(direct, 'm', N / 2);
  const k1 = await run(viaKeel, 'chat', N / 2);
  const d2 = await run(direct, 'm', N / 2);
  const k2 = await run(viaKeel, 'chat', N / 2);
  const d = summarize([...d1, ...d2]);
  const k = summarize([...k1, ...k2]);
  const results = { requests: N, direct: d, keel: k, addedMs: { p50: +(k.p50 - d.p50).toFixed(2), p99: +(k.p99 - d.p99).toFixed(2) }, goal: 'added p50 <= 8 ms' };
  console.log(JSON.stringify(results, null, 2));
  console.log(`written to ${writeResults('overhead', results)}`);
} finally {
  await keel.stop();
  await fake.close();
  await env.teardown();
}

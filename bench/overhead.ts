// Keel's added latency: 200 sequential requests through Keel (API -> workflow -> activity ->
// fake provider) vs the same requests sent directly to the fake provider (0 ms), in one run; and
// the same through a second Keel with the payload codec on (docs/ENCRYPTION.md), interleaved.
import OpenAI from 'openai';
import { startFakeProvider } from '../dev/fakes/index.js';
import { startKeel, startTemporal } from '../test/helpers/temporal.js';
import { randomBytes } from 'node:crypto';
import type { Payload } from '@temporalio/common';
import { EncryptionCodec } from '../src/codec/payload-codec.js';
import { summarize, timed, writeResults } from './stats.js';

// The codec's own time, whatever the machine's noise: every encode and decode of the codec-on
// Keel (API, workers and their clients all run in this process) is timed and counted.
const codecWork = { ms: 0, calls: 0, payloads: 0 };
for (const op of ['encode', 'decode'] as const) {
  const original = EncryptionCodec.prototype[op];
  EncryptionCodec.prototype[op] = async function (this: EncryptionCodec, payloads: Payload[]) {
    const t0 = performance.now();
    try {
      return await original.call(this, payloads);
    } finally {
      codecWork.ms += performance.now() - t0;
      codecWork.calls += 1;
      codecWork.payloads += payloads.length;
    }
  };
}

const N = Number(process.env.N ?? 200);
const WARMUP = 20;

const env = await startTemporal();
const fake = await startFakeProvider({ type: 'openai' });
const yaml = `providers:\n  a: { type: openai, baseURL: ${fake.url} }\nmodels:\n  chat: { targets: [a/m] }\n`;
const keel = await startKeel(env, yaml);
const codecKeel = await startKeel(env, `${yaml}codec:\n  enabled: true\n  keys: [{ id: k1, key: "\${K1}" }]\n  server: { tokens: ["\${TOKEN}"] }\n`, {
  env: { K1: randomBytes(32).toString('base64'), TOKEN: randomBytes(24).toString('base64url') },
});
try {
  const direct = new OpenAI({ baseURL: fake.url, apiKey: 'x', maxRetries: 0 });
  const viaKeel = new OpenAI({ baseURL: `${keel.url}/v1`, apiKey: 'x', maxRetries: 0 });
  const viaCodec = new OpenAI({ baseURL: `${codecKeel.url}/v1`, apiKey: 'x', maxRetries: 0 });
  const body = { messages: [{ role: 'user' as const, content: 'Hello' }] };
  const run = async (client: OpenAI, model: string, n: number) => {
    const samples: number[] = [];
    for (let i = 0; i < n; i++) samples.push((await timed(() => client.chat.completions.create({ model, ...body }))).ms);
    return samples;
  };
  await run(direct, 'm', WARMUP);
  await run(viaKeel, 'chat', WARMUP);
  await run(viaCodec, 'chat', WARMUP);
  Object.assign(codecWork, { ms: 0, calls: 0, payloads: 0 });
  // Interleaved halves, so drift in machine load hits every side alike.
  const d1 = await run(direct, 'm', N / 2);
  const k1 = await run(viaKeel, 'chat', N / 2);
  const c1 = await run(viaCodec, 'chat', N / 2);
  // The second half in the other order, so neither Keel always runs right after the other.
  const d2 = await run(direct, 'm', N / 2);
  const c2 = await run(viaCodec, 'chat', N / 2);
  const k2 = await run(viaKeel, 'chat', N / 2);
  const d = summarize([...d1, ...d2]);
  const k = summarize([...k1, ...k2]);
  const c = summarize([...c1, ...c2]);
  const results = {
    requests: N,
    direct: d,
    keel: k,
    addedMs: { p50: +(k.p50 - d.p50).toFixed(2), p99: +(k.p99 - d.p99).toFixed(2) },
    goal: 'added p50 <= 8 ms',
    keelWithCodec: c,
    codecAddedMs: { p50: +(c.p50 - k.p50).toFixed(2), p95: +(c.p95 - k.p95).toFixed(2), p99: +(c.p99 - k.p99).toFixed(2) },
    // Per request through the codec-on Keel (health signals and queries included).
    codecPerRequest: { ms: +(codecWork.ms / N).toFixed(3), calls: +(codecWork.calls / N).toFixed(1), payloads: +(codecWork.payloads / N).toFixed(1) },
  };
  console.log(JSON.stringify(results, null, 2));
  console.log(`written to ${writeResults('overhead', results)}`);
} finally {
  await codecKeel.stop();
  await keel.stop();
  await fake.close();
  await env.teardown();
}

// Streaming through Keel vs straight to the provider (docs/STREAMING.md): a fake OpenAI provider that
// streams 200 chunks 10 ms apart; sequential streamed requests with the official `openai` SDK, in
// interleaved rounds, through Keel (API and worker in one process, as `npm start` and `npm run
// gateway` run it) and directly. Per request: time to first token (TTFT), total time, and each
// chunk's lateness — when the client read it minus when the fake wrote it (the fake records every
// write; everything runs in this process, on one clock). Goals (issue #10): added TTFT ≤ 15 ms at
// p50, added total ≤ 20 ms, and no chunk held back (batched) by more than 20 ms.
//
// LiteLLM and Portkey join the same run, installed on first use by the gateway benchmark's
// installers (bench/gateways) and pointed at the same fake; one that cannot be installed or started
// is named in the results as not measured.
//
//   npx tsx bench/streaming.ts [N=40] [CHUNKS=200] [CHUNK_MS=10] [ONLY=keel,litellm,portkey]
// Writes bench/results/streaming.json.
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import OpenAI from 'openai';
import { startFakeProvider, type FakeProvider } from '../dev/fakes/index.js';
import { startKeel, startTemporal } from '../test/helpers/temporal.js';
import { machine, percentile, summarize, writeResults } from './stats.js';
import { ensureLiteLLM, startLiteLLM, type RunningPeer } from './gateways/litellm.js';
import { ensurePortkey, startPortkey } from './gateways/portkey.js';

const N = Number(process.env.N ?? 40);
const WARMUP = Number(process.env.WARMUP ?? 3);
const CHUNKS = Number(process.env.CHUNKS ?? 200);
const CHUNK_MS = Number(process.env.CHUNK_MS ?? 10);
const ONLY = (process.env.ONLY ?? 'keel,litellm,portkey').split(',');
const ROUNDS = 4;
const now = () => performance.timeOrigin + performance.now();

interface Target {
  id: string;
  label: string;
  client: OpenAI;
  model: string;
  headers?: Record<string, string>;
}

interface Sample {
  ttft: number;
  total: number;
  /** Per content chunk: read by the client minus written by the fake. */
  lateness: number[];
}

interface PeerInstaller {
  id: string;
  label: (version: string) => string;
  ensure(log: (line: string) => void): Promise<string>;
  start(fakeUrl: string, workDir: string): Promise<RunningPeer>;
}

const log = (line: string) => console.error(`bench: ${line}`);

// The gateway benchmark's installers (bench/gateways): the same peers, pinned, in the same folder.
const PEERS: PeerInstaller[] = [
  { id: 'litellm', label: (v) => `LiteLLM proxy ${v}`, ensure: ensureLiteLLM, start: startLiteLLM },
  { id: 'portkey', label: (v) => `Portkey gateway ${v}`, ensure: ensurePortkey, start: (fakeUrl) => startPortkey(fakeUrl) },
];

async function once(fake: FakeProvider, t: Target): Promise<Sample> {
  const before = fake.calls().length;
  const started = now();
  const arrivals: number[] = [];
  const stream = await t.client.chat.completions.create(
    { model: t.model, stream: true, messages: [{ role: 'user', content: 'Hello' }] },
    t.headers ? { headers: t.headers } : undefined,
  );
  for await (const chunk of stream) if (chunk.choices[0]?.delta.content) arrivals.push(now());
  const total = now() - started;
  const call = fake.calls()[before];
  if (!call || call.chunkTimes.length !== CHUNKS || arrivals.length !== CHUNKS) {
    throw new Error(`${t.id}: expected ${CHUNKS} chunks, the fake wrote ${call?.chunkTimes.length} and the client read ${arrivals.length}`);
  }
  return { ttft: arrivals[0] - started, total, lateness: arrivals.map((at, i) => at - call.chunkTimes[i]) };
}

function report(samples: Sample[]) {
  const lateness = samples.flatMap((s) => s.lateness).sort((a, b) => a - b);
  const round = (x: number) => Math.round(x * 100) / 100;
  return {
    ttft: summarize(samples.map((s) => s.ttft)),
    total: summarize(samples.map((s) => s.total)),
    chunkLatenessMs: { p50: round(percentile(lateness, 50)), p99: round(percentile(lateness, 99)), max: round(lateness.at(-1)!) },
  };
}

const env = await startTemporal();
const fake = await startFakeProvider({ type: 'openai' });
const text = Array.from({ length: CHUNKS }, (_, i) => `tok${i}`).join(' ');
fake.setBehaviour('*', { default: { kind: 'ok', content: text }, stream: { chunks: CHUNKS, chunkDelayMs: CHUNK_MS } });
const keel = await startKeel(env, `providers:\n  a: { type: openai, baseURL: ${fake.url} }\nmodels:\n  chat: { targets: [a/m] }\n`);
const work = mkdtempSync(join(tmpdir(), 'keel-bench-streaming-'));
const peers: RunningPeer[] = [];
const unavailable: Record<string, string> = {};
try {
  const targets: Target[] = [{ id: 'direct', label: 'direct (openai SDK → fake)', client: new OpenAI({ baseURL: fake.url, apiKey: 'x', maxRetries: 0 }), model: 'm' }];
  if (ONLY.includes('keel')) targets.push({ id: 'keel', label: 'Keel (API + worker in one process)', client: new OpenAI({ baseURL: `${keel.url}/v1`, apiKey: 'x', maxRetries: 0 }), model: 'chat' });
  for (const p of PEERS.filter((p) => ONLY.includes(p.id))) {
    try {
      const version = await p.ensure(log);
      const peer = await p.start(fake.url, work);
      peers.push(peer);
      targets.push({ id: p.id, label: p.label(version), client: new OpenAI({ baseURL: peer.baseURL, apiKey: peer.apiKey, maxRetries: 0 }), model: peer.model, headers: peer.headers });
    } catch (err) {
      unavailable[p.id] = (err as Error).message.slice(0, 500);
    }
  }
  for (const [id, why] of Object.entries(unavailable)) log(`${id}: ${why}`);

  // A peer that cannot stream this answer at all is reported, not measured (Portkey 1.15.2's Node
  // server fails every streamed request here: "TypeError: immutable" as it appends to a fetch
  // Response's headers).
  for (const t of [...targets]) {
    try {
      for (let i = 0; i < WARMUP; i++) await once(fake, t);
    } catch (err) {
      if (t.id === 'direct' || t.id === 'keel') throw err;
      unavailable[t.id] = `${t.label}: ${(err as Error).message.slice(0, 300)}`;
      targets.splice(targets.indexOf(t), 1);
    }
  }
  const samples = new Map<string, Sample[]>(targets.map((t) => [t.id, []]));
  // Interleaved rounds: drift in machine load hits every target alike.
  for (let round = 0; round < ROUNDS; round++) {
    for (const t of targets) for (let i = 0; i < Math.ceil(N / ROUNDS); i++) samples.get(t.id)!.push(await once(fake, t));
    log(`round ${round + 1}/${ROUNDS} done`);
  }
  const direct = report(samples.get('direct')!);
  const results: Record<string, unknown> = {
    machine: machine(),
    loadAverageAtEnd: loadavg().map((x) => +x.toFixed(2)),
    requestsPerTarget: N,
    stream: { chunks: CHUNKS, chunkDelayMs: CHUNK_MS },
    goals: 'added TTFT p50 <= 15 ms, added total p50 <= 20 ms, chunk lateness (p99 over direct) <= 20 ms',
    unavailable,
    targets: Object.fromEntries(
      targets.map((t) => {
        const r = report(samples.get(t.id)!);
        const added =
          t.id === 'direct'
            ? undefined
            : {
                ttftP50: +(r.ttft.p50 - direct.ttft.p50).toFixed(2),
                totalP50: +(r.total.p50 - direct.total.p50).toFixed(2),
                chunkLatenessP99: +(r.chunkLatenessMs.p99 - direct.chunkLatenessMs.p99).toFixed(2),
              };
        return [t.id, { label: t.label, ...r, ...(added && { addedMs: added }) }];
      }),
    ),
  };
  console.log(JSON.stringify(results, null, 2));
  console.log(`written to ${writeResults('streaming', results)}`);
} finally {
  for (const p of peers) await p.child.stop().catch(() => undefined);
  await keel.stop();
  await fake.close();
  await env.teardown();
  rmSync(work, { recursive: true, force: true });
}

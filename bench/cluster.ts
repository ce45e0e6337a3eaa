// Keel on the production engine vs the dev server, in one run, with the same process layout:
// 2 API and 2 worker processes (`npm run gateway` / `npm run worker`, src/temporal/cluster.ts) against
//   - the Temporal CLI dev server (SQLite in WAL mode), and
//   - PostgreSQL 15 + the Temporal server 1.30.4 with deploy/temporal/ (`npm run cluster`).
// Per backend: the overhead benchmark (N sequential requests through API 1 vs straight to the
// fake, interleaved halves), throughput at C concurrent requests over both APIs, and a batch of
// L lines (uploaded through API 1). A fake OpenAI provider with 0 ms latency in this process.
// Usage: npx tsx bench/cluster.ts [--n 200] [--concurrent 8] [--requests 400] [--lines 2000] [--only dev-server,postgres]
// Writes bench/results/cluster.json.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import OpenAI, { toFile } from 'openai';
import { startFakeProvider } from '../dev/fakes/index.js';
import { startCluster } from '../src/temporal/cluster.js';
import { pool, summarize, timed, writeResults } from './stats.js';

const arg = (name: string, fallback: string) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : fallback;
};
const N = Number(arg('n', '200'));
const CONCURRENT = Number(arg('concurrent', '8'));
const REQUESTS = Number(arg('requests', '400'));
const LINES = Number(arg('lines', '2000'));
const ONLY = arg('only', 'dev-server,postgres').split(',') as ('dev-server' | 'postgres')[];
const WARMUP = 20;

const fake = await startFakeProvider({ type: 'openai' });
const body = { messages: [{ role: 'user' as const, content: 'Hello' }] };

async function runBackend(backend: 'dev-server' | 'postgres') {
  const dir = mkdtempSync(join(tmpdir(), `keel-bench-cluster-${backend}-`));
  const configPath = join(dir, 'keel.yaml');
  // The provider is named as in deploy/keel.production.yaml, so the shared dynamic config's partitions apply.
  writeFileSync(configPath, `providers:\n  openai: { type: openai, baseURL: ${fake.url}, apiKey: bench }\nmodels:\n  chat: { targets: [openai/m] }\n`);
  const started = Date.now();
  const cluster = await startCluster({ dataDir: dir, keelConfig: configPath, backend, log: (l) => console.error(l) });
  const startS = (Date.now() - started) / 1000;
  try {
    const clients = cluster.apis.map((a) => new OpenAI({ baseURL: `${a.url}/v1`, apiKey: 'x', maxRetries: 0 }));
    const direct = new OpenAI({ baseURL: fake.url, apiKey: 'x', maxRetries: 0 });
    const run = async (client: OpenAI, model: string, n: number) => {
      const samples: number[] = [];
      for (let i = 0; i < n; i++) samples.push((await timed(() => client.chat.completions.create({ model, ...body }))).ms);
      return samples;
    };
    await run(direct, 'm', WARMUP);
    await run(clients[0], 'chat', WARMUP);
    await run(clients[1], 'chat', WARMUP);
    const d1 = await run(direct, 'm', N / 2);
    const k1 = await run(clients[0], 'chat', N / 2);
    const d2 = await run(direct, 'm', N / 2);
    const k2 = await run(clients[0], 'chat', N / 2);
    const d = summarize([...d1, ...d2]);
    const k = summarize([...k1, ...k2]);

    const concurrentStart = Date.now();
    const latencies: number[] = [];
    await pool(REQUESTS, CONCURRENT, async (i) => {
      latencies.push((await timed(() => clients[i % clients.length].chat.completions.create({ model: 'chat', ...body }))).ms);
    });
    const concurrentS = (Date.now() - concurrentStart) / 1000;

    const openai = clients[0];
    const text = Array.from({ length: LINES }, (_, i) =>
      JSON.stringify({ custom_id: `r${i}`, method: 'POST', url: '/v1/chat/completions', body: { model: 'chat', messages: [{ role: 'user', content: `bench ${i}` }] } }),
    ).join('\n');
    const file = await openai.files.create({ file: await toFile(Buffer.from(text), 'bench.jsonl'), purpose: 'batch' });
    const batchStart = Date.now();
    let b = await openai.batches.create({ input_file_id: file.id, endpoint: '/v1/chat/completions', completion_window: '24h' });
    while (!['completed', 'failed', 'expired', 'cancelled'].includes(b.status)) {
      if (Date.now() - batchStart > 30 * 60_000) throw new Error(`batch not finished in 30 min: ${JSON.stringify(b.request_counts)}`);
      await new Promise((r) => setTimeout(r, 500));
      b = await clients[1].batches.retrieve(b.id);
    }
    const batchS = (Date.now() - batchStart) / 1000;
    const result = {
      backend,
      layout: `${cluster.apis.length} API + ${cluster.workers.length} worker processes (npm run gateway / npm run worker)${backend === 'postgres' ? ', Temporal server + PostgreSQL 15' : ', Temporal CLI dev server (SQLite, WAL)'}`,
      start_s: Number(startS.toFixed(1)),
      overhead: { requests: N, direct: d, keel: k, addedMs: { p50: +(k.p50 - d.p50).toFixed(2), p99: +(k.p99 - d.p99).toFixed(2) } },
      concurrent: { concurrency: CONCURRENT, requests: REQUESTS, requests_per_s: Number((REQUESTS / concurrentS).toFixed(1)), latency: summarize(latencies) },
      batch: { lines: LINES, status: b.status, request_counts: b.request_counts, wall_s: Number(batchS.toFixed(1)), requests_per_s: Number((LINES / batchS).toFixed(1)) },
      load_average_after: loadavg().map((x) => Number(x.toFixed(1))),
    };
    console.log(JSON.stringify(result));
    return result;
  } finally {
    await cluster.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

const results = [];
const loadBefore = loadavg().map((x) => Number(x.toFixed(1)));
try {
  for (const backend of ONLY) results.push(await runBackend(backend));
} finally {
  await fake.close();
}
console.log(`written to ${writeResults('cluster', { cpus: cpus().length, load_average_before: loadBefore, results })}`);

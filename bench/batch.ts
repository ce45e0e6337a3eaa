// Batch throughput: a 10,000-line batch through the real roles (dev server, worker and API as
// child processes) against a 0 ms fake, and against a fake behind a provider rate limit of R/s.
// Baseline in the same run: the same number of bare workflows (one activity calling the same
// fake) on the same kind of server, at the same concurrency as the batch window: what Temporal
// itself manages on this machine, so Keel's figure reads as a share of it.
// Usage: npx tsx bench/batch.ts [--lines 10000] [--rate 200] [--only baseline,fast,limited]
//   [--max-seconds S]: stop a scenario after S seconds and report the progress rate (50,000 lines).
// Writes bench/results/batch.json.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import OpenAI, { toFile } from 'openai';
import { Client, Connection } from '@temporalio/client';
import { bundleWorkflowCode, NativeConnection, Worker } from '@temporalio/worker';
import { fileURLToPath } from 'node:url';
import { startDevServer } from '../src/temporal/dev-server.js';
import { DEFAULT_BATCHES } from '../src/config/schema.js';
import { pool } from './stats.js';
import { startFakeProvider } from '../dev/fakes/index.js';
import { freePort, startRole, type RoleProcess } from '../test/helpers/processes.js';
import { cpuMs } from './gateways/cpu.js';
import { ms as eventMs } from './gateways/histories.js';

const arg = (name: string, fallback: string) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : fallback;
};
const LINES = Number(arg('lines', '10000'));
const RATE = Number(arg('rate', '200'));
const ONLY = arg('only', 'baseline,fast,limited').split(',');
const runs = (name: string) => ONLY.includes(name) || ONLY.includes('all');
const MAX_SECONDS = Number(arg('max-seconds', '0'));
const TIMEOUT_MS = 20 * 60_000;

interface Scenario {
  name: string;
  rateLimitPerSecond?: number;
}

async function runScenario(s: Scenario) {
  const dir = mkdtempSync(join(tmpdir(), 'keel-bench-batch-'));
  const fake = await startFakeProvider({ type: 'openai', behaviours: { '*': { latency: { baseMs: 0 } } } });
  const temporalPort = await freePort();
  const server = await startDevServer({ dataDir: dir, port: temporalPort, headless: true });
  const configPath = join(dir, 'keel.yaml');
  writeFileSync(
    configPath,
    `
defaults:
  retry: { maxAttempts: 3, initialIntervalMs: 200, backoffCoefficient: 2, maximumIntervalMs: 2000, jitter: 0.5 }
providers:
  alpha: { type: openai, baseURL: ${fake.url}, apiKey: bench${s.rateLimitPerSecond ? `, rateLimitPerSecond: ${s.rateLimitPerSecond}` : ''} }
models:
  chat: { targets: [alpha/model-a] }
`,
  );
  const roleEnv = { configPath, temporalAddress: server.address, dataDir: dir };
  const apiPort = await freePort();
  let worker: RoleProcess | undefined;
  let api: RoleProcess | undefined;
  try {
    worker = await startRole('worker', roleEnv);
    api = await startRole('api', { ...roleEnv, port: apiPort });
    const client = new OpenAI({ baseURL: `http://127.0.0.1:${apiPort}/v1`, apiKey: 'bench', maxRetries: 2 });
    const text = Array.from({ length: LINES }, (_, i) =>
      JSON.stringify({ custom_id: `r${i}`, method: 'POST', url: '/v1/chat/completions', body: { model: 'chat', messages: [{ role: 'user', content: `bench prompt ${i}` }] } }),
    ).join('\n');
    const file = await client.files.create({ file: await toFile(Buffer.from(text), 'bench.jsonl'), purpose: 'batch' });
    const cpu0 = { server: cpuMs(server.process.pid!), worker: cpuMs(worker.pid), api: cpuMs(api.pid) };
    const started = Date.now();
    const batch = await client.batches.create({ input_file_id: file.id, endpoint: '/v1/chat/completions', completion_window: '24h' });
    let b = batch;
    let peakWorker = 0;
    let peakApi = 0;
    let inProgressAt: number | undefined;
    const progress: { s: number; done: number; worker_rss_mb?: number }[] = [];
    while (!['completed', 'failed', 'expired', 'cancelled'].includes(b.status)) {
      if (MAX_SECONDS > 0 && Date.now() - started > MAX_SECONDS * 1000) break;
      if (Date.now() - started > TIMEOUT_MS) throw new Error(`batch not finished within ${TIMEOUT_MS} ms: ${JSON.stringify(b.request_counts)}`);
      await new Promise((r) => setTimeout(r, 500));
      for (const role of [worker, api]) {
        if (role.child.exitCode !== null || role.child.signalCode !== null) throw new Error(`a role exited (${role.child.exitCode ?? role.child.signalCode}):\n${role.output()}`);
      }
      b = await client.batches.retrieve(batch.id);
      if (b.status === 'in_progress' && !inProgressAt) inProgressAt = Date.now();
      const doneNow = (b.request_counts?.completed ?? 0) + (b.request_counts?.failed ?? 0);
      const at = (Date.now() - started) / 1000;
      if (progress.length === 0 || at - progress[progress.length - 1].s >= 30) progress.push({ s: Math.round(at), done: doneNow, worker_rss_mb: Math.round(worker.rssMb() ?? 0) });
      peakWorker = Math.max(peakWorker, worker.peakRssMb() ?? 0);
      peakApi = Math.max(peakApi, api.peakRssMb() ?? 0);
      if (process.stderr.isTTY) process.stderr.write(`\r${s.name}: ${b.status} ${JSON.stringify(b.request_counts)}   `);
    }
    const wallS = (Date.now() - started) / 1000;
    const finished = (b.request_counts?.completed ?? 0) + (b.request_counts?.failed ?? 0);
    const perLine = (ms: number) => Number((ms / Math.max(1, finished)).toFixed(2));
    const cpu = { server: perLine(cpuMs(server.process.pid!) - cpu0.server), worker: perLine(cpuMs(worker.pid) - cpu0.worker), api: perLine(cpuMs(api.pid) - cpu0.api) };
    const calls = fake.calls().length;
    const tasks = await batchTaskProblems(server.address, batch.id);
    const idealS = s.rateLimitPerSecond ? LINES / s.rateLimitPerSecond : undefined;
    const result = {
      scenario: s.name,
      lines: LINES,
      status: b.status,
      request_counts: b.request_counts,
      provider_calls: calls,
      wall_s: Number(wallS.toFixed(2)),
      requests_per_s: Number((finished / wallS).toFixed(1)),
      ...(b.status !== 'completed' && { stopped_after_s: MAX_SECONDS, finished }),
      progress,
      validating_s: inProgressAt ? Number(((inProgressAt - started) / 1000).toFixed(2)) : null,
      peak_rss_mb: { worker: Math.round(peakWorker), api: Math.round(peakApi) },
      cpu_ms_per_line: cpu,
      batch_workflow: tasks,
      ...(s.rateLimitPerSecond && { rate_limit_per_s: s.rateLimitPerSecond, ideal_s: idealS, over_ideal_pct: Number((((wallS - idealS!) / idealS!) * 100).toFixed(1)) }),
    };
    if (process.stderr.isTTY) process.stderr.write('\n');
    console.log(JSON.stringify(result));
    return result;
  } finally {
    await api?.kill();
    await worker?.kill();
    await server.stop();
    await fake.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * What the batch's own workflow went through: its runs, the workflow tasks that timed out or
 * failed, and its longest task. A task held too long (as the loop's spin before 'batch-tick' did:
 * BENCHMARKS.md, "Batches") shows as a stall and a jump in the worker's memory, and the retried
 * task replays that run's whole history.
 */
async function batchTaskProblems(address: string, batchId: string) {
  const connection = await Connection.connect({ address });
  try {
    const client = new Client({ connection });
    const out = { runs: 0, task_timeouts: [] as { run: number; at_event: number; type: string }[], task_failures: 0, longest_task_ms: 0 };
    const runs = [];
    for await (const w of client.workflow.list({ query: `WorkflowId = '${batchId}'` })) runs.push(w);
    runs.sort((a, b) => a.startTime.getTime() - b.startTime.getTime());
    for (const [i, w] of runs.entries()) {
      out.runs += 1;
      const history = await client.workflow.getHandle(batchId, w.runId).fetchHistory();
      const at = new Map<string, number>();
      for (const e of history.events ?? []) {
        const id = String(e.eventId);
        const ms = eventMs(e.eventTime);
        at.set(id, ms);
        if (e.workflowTaskTimedOutEventAttributes) out.task_timeouts.push({ run: i, at_event: Number(e.eventId), type: String(e.workflowTaskTimedOutEventAttributes.timeoutType) });
        if (e.workflowTaskFailedEventAttributes) out.task_failures += 1;
        const done = e.workflowTaskCompletedEventAttributes;
        if (done?.startedEventId) out.longest_task_ms = Math.max(out.longest_task_ms, ms - (at.get(String(done.startedEventId)) ?? ms));
      }
    }
    return { ...out, longest_task_ms: Math.round(out.longest_task_ms) };
  } finally {
    await connection.close();
  }
}

async function runBaseline() {
  const dir = mkdtempSync(join(tmpdir(), 'keel-bench-baseline-'));
  const fake = await startFakeProvider({ type: 'openai', behaviours: { '*': { latency: { baseMs: 0 } } } });
  const server = await startDevServer({ dataDir: dir, port: await freePort(), headless: true });
  const connection = await NativeConnection.connect({ address: server.address });
  const quiet = { log: () => undefined, trace: () => undefined, debug: () => undefined, info: () => undefined, warn: () => undefined, error: console.error };
  const workflowBundle = await bundleWorkflowCode({ workflowsPath: fileURLToPath(new URL('./baseline-workflow.ts', import.meta.url)), logger: quiet });
  const openai = new OpenAI({ baseURL: fake.url, apiKey: 'bench', maxRetries: 0 });
  const workers = [
    await Worker.create({ connection, taskQueue: 'baseline', workflowBundle }),
    await Worker.create({ connection, taskQueue: 'baseline-provider', activities: { callFake: (body: unknown) => openai.chat.completions.create(body as never) } }),
  ];
  const running = Promise.all(workers.map((w) => w.run()));
  const client = new Client({ connection: await Connection.connect({ address: server.address }) });
  try {
    const cpu0 = { server: cpuMs(server.process.pid!), bench: cpuMs(process.pid) };
    const started = Date.now();
    const deadline = started + (MAX_SECONDS > 0 ? MAX_SECONDS * 1000 : TIMEOUT_MS);
    let finished = 0;
    await pool(LINES, DEFAULT_BATCHES.window, async (i) => {
      if (Date.now() > deadline) return;
      await client.workflow.execute('baselineLineWorkflow', { taskQueue: 'baseline', workflowId: `baseline-${i}`, args: [{ model: 'model-a', messages: [{ role: 'user', content: `bench prompt ${i}` }] }] });
      finished += 1;
    });
    const wallS = (Date.now() - started) / 1000;
    const perLine = (ms: number) => Number((ms / Math.max(1, finished)).toFixed(2));
    // The bench process is the baseline's client, worker and activity worker at once.
    const cpu = { server: perLine(cpuMs(server.process.pid!) - cpu0.server), worker_and_client: perLine(cpuMs(process.pid) - cpu0.bench) };
    const result = { scenario: 'baseline-bare-workflows', lines: LINES, finished, concurrency: DEFAULT_BATCHES.window, wall_s: Number(wallS.toFixed(2)), requests_per_s: Number((finished / wallS).toFixed(1)), cpu_ms_per_line: cpu };
    console.log(JSON.stringify(result));
    return result;
  } finally {
    for (const w of workers) w.shutdown();
    await running;
    await connection.close();
    await server.stop();
    await fake.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

const scenarios: Scenario[] = [];
// A time-boxed run (a 50,000-line batch's steady progress) is kept apart from the full run.
if (runs('fast')) scenarios.push({ name: MAX_SECONDS > 0 ? `fast-0ms-${LINES}-first-${MAX_SECONDS}s` : 'fast-0ms' });
if (runs('limited')) scenarios.push({ name: `rate-limited-${RATE}`, rateLimitPerSecond: RATE });
const results: { scenario: string; requests_per_s: number }[] = [];
if (runs('baseline')) results.push(await runBaseline());
for (const s of scenarios) results.push(await runScenario(s));
mkdirSync(new URL('./results/', import.meta.url), { recursive: true });
// Scenarios run separately merge into one file (a later run of a scenario replaces its entry).
const resultsUrl = new URL('./results/batch.json', import.meta.url);
let previous: { results?: { scenario: string }[] } = {};
try {
  previous = JSON.parse(readFileSync(resultsUrl, 'utf8')) as typeof previous;
} catch {
  // first run
}
const merged = [...(previous.results ?? []).filter((r) => !results.some((n) => n.scenario === r.scenario)), ...results];
const base = merged.find((r) => r.scenario === 'baseline-bare-workflows') as { requests_per_s: number } | undefined;
const fast = merged.find((r) => r.scenario === 'fast-0ms') as { requests_per_s: number } | undefined;
const out = {
  bench: 'batch',
  date: new Date().toISOString(),
  node: process.version,
  cpus: (await import('node:os')).cpus().length,
  results: merged,
  ...(base && fast && { keel_vs_baseline: Number((fast.requests_per_s / base.requests_per_s).toFixed(2)) }),
};
writeFileSync(resultsUrl, `${JSON.stringify(out, null, 2)}\n`);
console.log(JSON.stringify(out, null, 2));

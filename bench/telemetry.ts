// What metrics and traces cost on the request path: sequential requests through Keel with tracing
// off and with tracing on (spans exported over OTLP/HTTP to a loopback receiver that accepts and
// drops them), interleaved in one run, against the fake provider (0 ms). Metrics are always
// recorded: their own time is measured directly — every KeelMetrics recording call is timed — and
// reported per request. CPU per request is this process's CPU over each phase (API, workers and
// their clients all run here).
//
//   npx tsx bench/telemetry.ts          (N=200 by default)
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import OpenAI from 'openai';
import { startFakeProvider } from '../dev/fakes/index.js';
import { KeelMetrics } from '../src/observability/metrics.js';
import { KeelTracing } from '../src/observability/tracing.js';
import { startKeel, startTemporal } from '../test/helpers/temporal.js';
import { machine, summarize, timed, writeResults } from './stats.js';

// Every recording method of KeelMetrics, timed: their total is what metrics add to requests.
const metricsWork = { ms: 0, calls: 0 };
for (const method of ['httpStarted', 'httpServed', 'chatCompletion', 'requestEnded', 'providerCall', 'rateLimitWait'] as const) {
  const original = KeelMetrics.prototype[method] as (...args: unknown[]) => unknown;
  (KeelMetrics.prototype as unknown as Record<string, unknown>)[method] = function (this: KeelMetrics, ...args: unknown[]) {
    const t0 = performance.now();
    try {
      return original.apply(this, args);
    } finally {
      metricsWork.ms += performance.now() - t0;
      metricsWork.calls += 1;
    }
  };
}

const N = Number(process.env.N ?? 200);
const WARMUP = 20;

// The OTLP endpoint: takes every batch, keeps a count.
let spansReceived = 0;
const receiver = createServer((req, res) => {
  let body = '';
  req.on('data', (c: Buffer) => (body += c.toString()));
  req.on('end', () => {
    spansReceived += (body.match(/"spanId"/g) ?? []).length;
    res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
  });
});
await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
const tracing = KeelTracing.start({ tracesUrl: `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/v1/traces`, serviceName: 'keel-bench' }, 'gateway')!;

const env = await startTemporal();
const fake = await startFakeProvider({ type: 'openai' });
const yaml = `providers:\n  a: { type: openai, baseURL: ${fake.url} }\nmodels:\n  chat: { targets: [a/m] }\n`;
const plain = await startKeel(env, yaml);
const traced = await startKeel(env, yaml, { tracing });
try {
  const direct = new OpenAI({ baseURL: fake.url, apiKey: 'x', maxRetries: 0 });
  const viaPlain = new OpenAI({ baseURL: `${plain.url}/v1`, apiKey: 'x', maxRetries: 0 });
  const viaTraced = new OpenAI({ baseURL: `${traced.url}/v1`, apiKey: 'x', maxRetries: 0 });
  const body = { messages: [{ role: 'user' as const, content: 'Hello' }] };
  const cpu = { plain: 0, traced: 0 };
  const run = async (client: OpenAI, model: string, n: number, side?: keyof typeof cpu) => {
    const samples: number[] = [];
    const c0 = process.cpuUsage();
    for (let i = 0; i < n; i++) samples.push((await timed(() => client.chat.completions.create({ model, ...body }))).ms);
    const used = process.cpuUsage(c0);
    if (side) cpu[side] += (used.user + used.system) / 1000;
    return samples;
  };
  await run(direct, 'm', WARMUP);
  await run(viaPlain, 'chat', WARMUP);
  await run(viaTraced, 'chat', WARMUP);
  Object.assign(metricsWork, { ms: 0, calls: 0 });
  // Interleaved halves, the second in the other order, so drift in machine load hits both alike.
  const d1 = await run(direct, 'm', N / 2);
  const p1 = await run(viaPlain, 'chat', N / 2, 'plain');
  const t1 = await run(viaTraced, 'chat', N / 2, 'traced');
  const d2 = await run(direct, 'm', N / 2);
  const t2 = await run(viaTraced, 'chat', N / 2, 'traced');
  const p2 = await run(viaPlain, 'chat', N / 2, 'plain');
  await tracing.flush();
  const d = summarize([...d1, ...d2]);
  const p = summarize([...p1, ...p2]);
  const t = summarize([...t1, ...t2]);
  const results = {
    requests: N,
    machine: machine(),
    direct: d,
    tracingOff: p,
    tracingOn: t,
    tracingAddedMs: { p50: +(t.p50 - p.p50).toFixed(2), p95: +(t.p95 - p.p95).toFixed(2), p99: +(t.p99 - p.p99).toFixed(2) },
    ratioOnToOff: { p50: +(t.p50 / p.p50).toFixed(3), p95: +(t.p95 / p.p95).toFixed(3) },
    cpuMsPerRequest: { tracingOff: +(cpu.plain / N).toFixed(2), tracingOn: +(cpu.traced / N).toFixed(2) },
    spansPerRequest: +(spansReceived / (N + WARMUP)).toFixed(1),
    // Both Keels record metrics; this is all of their recording, over 2N requests.
    metricsMsPerRequest: +(metricsWork.ms / (2 * N)).toFixed(4),
    metricsCallsPerRequest: +(metricsWork.calls / (2 * N)).toFixed(1),
  };
  console.log(JSON.stringify(results, null, 2));
  console.log(`written to ${writeResults('telemetry', results)}`);
} finally {
  await traced.stop();
  await plain.stop();
  await tracing.shutdown();
  await fake.close();
  await env.teardown();
  receiver.close();
}

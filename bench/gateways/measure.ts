// Measuring targets that answer one chat completion per call: sequential latency interleaved in
// rounds, and throughput at a number of concurrent clients, bounded in count and time.
import OpenAI from 'openai';
import { percentile, summarize } from '../stats.js';
import { CpuMeter } from './cpu.js';

export interface Target {
  id: string;
  call(): Promise<void>;
  /** After a throughput slot: waits for work the calls left running (workflows started, not awaited). */
  drain?(): Promise<void>;
  /** Every process whose CPU a request of this target costs (the client's and the fake's included). */
  cpuPids?: () => number[];
  /** The Temporal server's processes among those, to show its share apart. */
  serverPids?: () => number[];
  /** A Keel target: how many answers came at each answer point (`x-keel-answer`). */
  answeredAt?: Record<string, number>;
}

export interface MeasureOptions {
  /** Measured requests per target. */
  n: number;
  warmup: number;
  /** Sequential requests per target per round. */
  batch: number;
  concurrency: number[];
  seconds: number;
  maxRequests: number;
  rounds: number;
}

export const REQUEST_TIMEOUT_MS = 30_000;
/** Bound on the latency phase whatever the options: past it, the phase stops and says so. */
const LATENCY_BUDGET_MS = 20 * 60_000;

export const log = (line: string) => console.error(`[bench] ${line}`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms);
    }),
  ]);
}

export const MESSAGES = [{ role: 'user' as const, content: 'Hello' }];
/** The fake answers `[model] prompt`: a request that did not reach it fails the check. */
export function checkAnswer(id: string, completion: unknown): void {
  const content = (completion as OpenAI.ChatCompletion | undefined)?.choices?.[0]?.message?.content;
  if (content !== '[m] Hello') throw new Error(`${id}: unexpected answer ${JSON.stringify(completion).slice(0, 300)}`);
}

/**
 * `answeredAt`: the answer points (`x-keel-answer`) a Keel target may answer at; each answer's is
 * counted in the target's `answeredAt` (a `call` model answers `early` past its bound on answers
 * ahead of their workflows, docs/REQUESTS.md).
 */
export function httpTarget(id: string, baseURL: string, model: string, opts: { apiKey?: string; headers?: Record<string, string>; cpuPids?: () => number[]; serverPids?: () => number[]; answeredAt?: readonly string[] } = {}): Target {
  const client = new OpenAI({ baseURL, apiKey: opts.apiKey ?? 'bench', maxRetries: 0, timeout: REQUEST_TIMEOUT_MS, defaultHeaders: opts.headers ?? {} });
  const tally: Record<string, number> = {};
  return {
    id,
    ...(opts.cpuPids && { cpuPids: opts.cpuPids }),
    ...(opts.serverPids && { serverPids: opts.serverPids }),
    ...(opts.answeredAt && { answeredAt: tally }),
    async call() {
      if (!opts.answeredAt) return checkAnswer(id, await client.chat.completions.create({ model, messages: MESSAGES }));
      const { data, response } = await client.chat.completions.create({ model, messages: MESSAGES }).withResponse();
      checkAnswer(id, data);
      const at = response.headers.get('x-keel-answer') ?? 'none';
      if (!opts.answeredAt.includes(at)) throw new Error(`${id}: answered at ${at}, not ${opts.answeredAt.join(' or ')}`);
      tally[at] = (tally[at] ?? 0) + 1;
    },
  };
}

// ---- latency: sequential, interleaved in rounds ---------------------------------------------

export interface LatencyResult {
  samples: number[];
  errors: number;
  firstError?: string;
  /** CPU ms used by the target's processes while its measured requests ran. */
  cpuMs?: number;
  /** Of which the Temporal server's. */
  serverCpuMs?: number;
}

const meters = new Map<Target, { all?: CpuMeter; server?: CpuMeter }>();
function metersOf(t: Target) {
  let m = meters.get(t);
  if (!m) meters.set(t, (m = { ...(t.cpuPids && { all: new CpuMeter(t.cpuPids) }), ...(t.serverPids && { server: new CpuMeter(t.serverPids) }) }));
  return m;
}
/** CPU ms so far: everything the target involves, and the server's part. */
function cpuNow(t: Target): { all?: number; server?: number } {
  const m = metersOf(t);
  return { all: m.all?.sample(), server: m.server?.sample() };
}

export async function measureLatency(targets: Target[], opts: MeasureOptions): Promise<Map<string, LatencyResult>> {
  const results = new Map<string, LatencyResult>(targets.map((t) => [t.id, { samples: [], errors: 0 }]));
  const once = async (t: Target, record: boolean) => {
    const r = results.get(t.id)!;
    const t0 = performance.now();
    try {
      await t.call();
      if (record) r.samples.push(performance.now() - t0);
    } catch (err) {
      r.errors += 1;
      r.firstError ??= (err as Error).message;
    }
  };
  for (const t of targets) {
    for (let i = 0; i < opts.warmup; i++) await once(t, false);
    await t.drain?.();
  }
  for (const r of results.values()) {
    r.errors = 0;
    delete r.firstError;
  }
  const started = Date.now();
  const rounds = Math.ceil(opts.n / opts.batch);
  for (let round = 0; round < rounds; round++) {
    if (Date.now() - started > LATENCY_BUDGET_MS) {
      log(`latency: time budget spent after ${round} of ${rounds} rounds`);
      break;
    }
    // A to Z, then B to A, ...: no target always runs right after the same other one.
    for (let k = 0; k < targets.length; k++) {
      const t = targets[(round + k) % targets.length];
      const count = Math.min(opts.batch, opts.n - round * opts.batch);
      const cpu0 = cpuNow(t);
      for (let i = 0; i < count; i++) await once(t, true);
      await t.drain?.();
      const cpu1 = cpuNow(t);
      const r = results.get(t.id)!;
      if (cpu0.all !== undefined) r.cpuMs = (r.cpuMs ?? 0) + cpu1.all! - cpu0.all;
      if (cpu0.server !== undefined) r.serverCpuMs = (r.serverCpuMs ?? 0) + cpu1.server! - cpu0.server;
    }
    if (process.stderr.isTTY) process.stderr.write(`\r[bench] latency round ${round + 1}/${rounds}   `);
  }
  if (process.stderr.isTTY) process.stderr.write('\n');
  return results;
}

// ---- throughput: c concurrent clients, bounded in count and time ----------------------------

export interface LoadResult {
  ok: number;
  errors: number;
  ms: number;
  latencies: number[];
  firstError?: string;
  cpuMs?: number;
  serverCpuMs?: number;
}

async function loadSlot(t: Target, concurrency: number, opts: MeasureOptions): Promise<LoadResult> {
  const r: LoadResult = { ok: 0, errors: 0, ms: 0, latencies: [] };
  const cpu0 = cpuNow(t);
  const t0 = performance.now();
  const until = t0 + opts.seconds * 1000;
  let issued = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (issued < opts.maxRequests && performance.now() < until) {
        issued += 1;
        const s = performance.now();
        try {
          await t.call();
          r.ok += 1;
          r.latencies.push(performance.now() - s);
        } catch (err) {
          r.errors += 1;
          r.firstError ??= (err as Error).message;
        }
      }
    }),
  );
  await t.drain?.();
  r.ms = performance.now() - t0;
  const cpu1 = cpuNow(t);
  if (cpu0.all !== undefined) r.cpuMs = cpu1.all! - cpu0.all;
  if (cpu0.server !== undefined) r.serverCpuMs = cpu1.server! - cpu0.server;
  return r;
}

export async function measureThroughput(targets: Target[], opts: MeasureOptions): Promise<Record<string, Record<string, LoadResult>>> {
  const out: Record<string, Record<string, LoadResult>> = {};
  for (const c of opts.concurrency) {
    const acc: Record<string, LoadResult> = Object.fromEntries(targets.map((t) => [t.id, { ok: 0, errors: 0, ms: 0, latencies: [] }]));
    for (let round = 0; round < opts.rounds; round++) {
      for (let k = 0; k < targets.length; k++) {
        const t = targets[(round + k) % targets.length];
        // Let the previous target's leftovers (workflows finishing, health publishing) settle.
        await sleep(1_000);
        const r = await loadSlot(t, c, opts);
        const a = acc[t.id];
        a.ok += r.ok;
        a.errors += r.errors;
        a.ms += r.ms;
        a.latencies.push(...r.latencies);
        a.firstError ??= r.firstError;
        if (r.cpuMs !== undefined) a.cpuMs = (a.cpuMs ?? 0) + r.cpuMs;
        if (r.serverCpuMs !== undefined) a.serverCpuMs = (a.serverCpuMs ?? 0) + r.serverCpuMs;
        log(`throughput c=${c} round ${round + 1}/${opts.rounds} ${t.id}: ${((r.ok / r.ms) * 1000).toFixed(1)}/s (${r.ok} ok, ${r.errors} errors)`);
      }
    }
    out[String(c)] = acc;
  }
  return out;
}


/** Percentiles per target, and each one's added latency over `baseline` (the direct call). */
export function latencySummary(results: Map<string, LatencyResult>, labels: Record<string, string>, baseline = 'direct') {
  const base = summarize(results.get(baseline)!.samples);
  return Object.fromEntries(
    [...results].map(([id, r]) => {
      const s = summarize(r.samples);
      const added = id === baseline ? undefined : { p50: +(s.p50 - base.p50).toFixed(2), p95: +(s.p95 - base.p95).toFixed(2), p99: +(s.p99 - base.p99).toFixed(2) };
      const per = (ms: number | undefined) => (ms === undefined ? undefined : +(ms / Math.max(1, r.samples.length + r.errors)).toFixed(2));
      const cpu = { ...(r.cpuMs !== undefined && { cpuMsPerRequest: per(r.cpuMs) }), ...(r.serverCpuMs !== undefined && { serverCpuMsPerRequest: per(r.serverCpuMs) }) };
      return [id, { label: labels[id] ?? id, ...s, ...(added && { addedMs: added }), ...cpu, errors: r.errors, ...(r.firstError && { firstError: r.firstError }) }];
    }),
  );
}

export function throughputSummary(throughput: Record<string, Record<string, LoadResult>>) {
  return Object.fromEntries(
    Object.entries(throughput).map(([c, byTarget]) => [
      c,
      Object.fromEntries(
        Object.entries(byTarget).map(([id, r]) => {
          const sorted = [...r.latencies].sort((a, b) => a - b);
          return [
            id,
            {
              requestsPerS: +((r.ok / r.ms) * 1000).toFixed(1),
              ok: r.ok,
              errors: r.errors,
              seconds: +(r.ms / 1000).toFixed(1),
              p50: +percentile(sorted, 50).toFixed(2),
              p99: +percentile(sorted, 99).toFixed(2),
              ...(r.cpuMs !== undefined && { cpuMsPerRequest: +(r.cpuMs / Math.max(1, r.ok + r.errors)).toFixed(2) }),
              ...(r.serverCpuMs !== undefined && { serverCpuMsPerRequest: +(r.serverCpuMs / Math.max(1, r.ok + r.errors)).toFixed(2) }),
              ...(r.firstError && { firstError: r.firstError }),
            },
          ];
        }),
      ),
    ]),
  );
}

const fmt = (x: number | undefined) => (x === undefined || Number.isNaN(x) ? '—' : x.toFixed(2));

/** Markdown tables for BENCHMARKS.md. */
export function markdownTables(
  ids: string[],
  labels: Record<string, string>,
  latency: ReturnType<typeof latencySummary> | undefined,
  throughput: ReturnType<typeof throughputSummary> | undefined,
): string {
  const lines: string[] = [];
  if (latency) {
    lines.push('| target | p50 | p95 | p99 | added p50 | added p99 | CPU ms / request (Temporal server) |', '| --- | --- | --- | --- | --- | --- | --- |');
    for (const id of ids) {
      const r = latency[id] as (typeof latency)[string] & { cpuMsPerRequest?: number; serverCpuMsPerRequest?: number };
      const server = r.serverCpuMsPerRequest === undefined ? '' : ` (${fmt(r.serverCpuMsPerRequest)})`;
      lines.push(
        `| ${labels[id] ?? id} | ${fmt(r.p50)} ms | ${fmt(r.p95)} ms | ${fmt(r.p99)} ms | ${r.addedMs ? `${fmt(r.addedMs.p50)} ms` : '—'} | ${r.addedMs ? `${fmt(r.addedMs.p99)} ms` : '—'} | ${fmt(r.cpuMsPerRequest)}${server} |`,
      );
    }
  }
  if (throughput) {
    const cs = Object.keys(throughput);
    lines.push(
      '',
      `| target | ${cs.map((c) => `req/s at ${c}`).join(' | ')} | ${cs.map((c) => `p50 / p99 at ${c}`).join(' | ')} | ${cs.map((c) => `CPU ms / req at ${c}`).join(' | ')} |`,
      `| --- |${cs.map(() => ' --- | --- | --- |').join('')}`,
    );
    for (const id of ids) {
      const at = (c: string) => throughput[c][id] as (typeof throughput)[string][string] & { cpuMsPerRequest?: number };
      lines.push(
        `| ${labels[id] ?? id} | ${cs.map((c) => String(at(c).requestsPerS)).join(' | ')} | ${cs.map((c) => `${fmt(at(c).p50)} / ${fmt(at(c).p99)} ms`).join(' | ')} | ${cs.map((c) => fmt(at(c).cpuMsPerRequest)).join(' | ')} |`,
      );
    }
  }
  return lines.join('\n');
}

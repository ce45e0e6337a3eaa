// Sliding-window provider statistics from time buckets of aggregated reports. Pure: the health
// workflow keeps the buckets, and computes windows on query for the caller's clock.
import type { ErrorClass } from './error-classes.js';
import {
  countsAgainstTarget,
  histogramQuantile,
  type LatencyHistogram,
  type SeriesPoint,
  type TargetReport,
  type WindowStats,
} from './health-types.js';

export const BUCKET_MS = 10_000;
export const RETENTION_MS = 30 * 60_000;
export const WINDOWS_MS = { '1m': 60_000, '30m': RETENTION_MS } as const;

export interface StatsBucket {
  start: number;
  ok: number;
  errors: Partial<Record<ErrorClass, number>>;
  latency: LatencyHistogram;
  outputTokens: number;
  okMs: number;
}

function emptyBucket(start: number): StatsBucket {
  return { start, ok: 0, errors: {}, latency: {}, outputTokens: 0, okMs: 0 };
}

function addInto(into: StatsBucket, from: Pick<StatsBucket, 'ok' | 'errors' | 'latency' | 'outputTokens' | 'okMs'>): void {
  into.ok += from.ok;
  for (const [cls, n] of Object.entries(from.errors)) into.errors[cls as ErrorClass] = (into.errors[cls as ErrorClass] ?? 0) + (n ?? 0);
  for (const [bin, n] of Object.entries(from.latency)) into.latency[Number(bin)] = (into.latency[Number(bin)] ?? 0) + n;
  into.outputTokens += from.outputTokens;
  into.okMs += from.okMs;
}

/** Adds one report to a target's buckets (kept sorted by start) and drops what is past retention. */
export function addReport(buckets: StatsBucket[], report: TargetReport, now: number): StatsBucket[] {
  const start = Math.floor(report.at / BUCKET_MS) * BUCKET_MS;
  let bucket = buckets.find((b) => b.start === start);
  if (!bucket) {
    bucket = emptyBucket(start);
    buckets.push(bucket);
    buckets.sort((a, b) => a.start - b.start);
  }
  addInto(bucket, report);
  return buckets.filter((b) => b.start + BUCKET_MS > now - RETENTION_MS);
}

function failuresOf(errors: StatsBucket['errors']): { failures: number; errored: number } {
  let failures = 0;
  let errored = 0;
  for (const [cls, n] of Object.entries(errors)) {
    errored += n ?? 0;
    if (countsAgainstTarget(cls as ErrorClass)) failures += n ?? 0;
  }
  return { failures, errored };
}

function sum(buckets: StatsBucket[]): StatsBucket {
  const total = emptyBucket(0);
  for (const b of buckets) addInto(total, b);
  return total;
}

/** Statistics over the buckets that overlap [now - windowMs, now] (any mix of targets). */
export function windowStats(buckets: StatsBucket[], now: number, windowMs: number): WindowStats {
  const total = sum(buckets.filter((b) => b.start + BUCKET_MS > now - windowMs && b.start <= now));
  const { failures, errored } = failuresOf(total.errors);
  const rated = total.ok + failures;
  const calls = total.ok + errored;
  return {
    calls,
    ok: total.ok,
    failures,
    errors: total.errors,
    successRate: rated === 0 ? null : total.ok / rated,
    p50Ms: histogramQuantile(total.latency, 0.5),
    p95Ms: histogramQuantile(total.latency, 0.95),
    requestsPerMin: calls / (windowMs / 60_000),
    tokensPerSec: total.okMs > 0 ? Math.round((total.outputTokens / (total.okMs / 1000)) * 10) / 10 : null,
  };
}

/** One point per minute over the retention, oldest first: what the status page charts. */
export function minuteSeries(buckets: StatsBucket[], now: number, minutes = RETENTION_MS / 60_000): SeriesPoint[] {
  const lastMinute = Math.floor(now / 60_000) * 60_000;
  const points: SeriesPoint[] = [];
  for (let i = minutes - 1; i >= 0; i--) {
    const t = lastMinute - i * 60_000;
    const total = sum(buckets.filter((b) => b.start >= t && b.start < t + 60_000));
    const { failures, errored } = failuresOf(total.errors);
    const rated = total.ok + failures;
    points.push({
      t,
      calls: total.ok + errored,
      ok: total.ok,
      failures,
      uptime: rated === 0 ? null : total.ok / rated,
      p50Ms: histogramQuantile(total.latency, 0.5),
      p95Ms: histogramQuantile(total.latency, 0.95),
    });
  }
  return points;
}

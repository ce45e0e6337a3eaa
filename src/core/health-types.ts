// Shapes of provider health: what workers report, what the health workflow answers, and what
// the planner is given. Pure and type-only where possible, so workflows may import it.
import type { BreakerSettings } from '../config/schema.js';
import type { ErrorClass } from './error-classes.js';

export type { BreakerSettings };

/** Upper bounds (ms) of the latency histogram's bins; the last bin is open-ended. Log-spaced so
 * p50/p95 stay within ~25% whether a provider answers in 20 ms or 20 s. */
export const LATENCY_BINS_MS = [
  5, 10, 20, 35, 50, 75, 100, 150, 200, 300, 500, 750, 1_000, 1_500, 2_000, 3_000, 5_000, 7_500, 10_000, 15_000, 20_000, 30_000, 60_000,
] as const;

export function latencyBin(ms: number): number {
  for (let i = 0; i < LATENCY_BINS_MS.length; i++) if (ms <= LATENCY_BINS_MS[i]) return i;
  return LATENCY_BINS_MS.length;
}

/** Sparse histogram: bin index -> count. Sparse because most targets use a handful of bins. */
export type LatencyHistogram = Record<number, number>;

/** The p-quantile (0..1) of a histogram, interpolated linearly inside its bin; null without samples. */
export function histogramQuantile(hist: LatencyHistogram, p: number): number | null {
  let total = 0;
  for (const n of Object.values(hist)) total += n;
  if (total === 0) return null;
  const rank = p * total;
  let seen = 0;
  const bins = Object.keys(hist).map(Number).sort((a, b) => a - b);
  for (const bin of bins) {
    const n = hist[bin];
    if (seen + n >= rank) {
      const lo = bin === 0 ? 0 : LATENCY_BINS_MS[bin - 1];
      const hi = LATENCY_BINS_MS[bin] ?? lo * 2;
      return Math.round(lo + (hi - lo) * ((rank - seen) / n));
    }
    seen += n;
  }
  return LATENCY_BINS_MS[LATENCY_BINS_MS.length - 1];
}

/** Errors that say something about the target. The client's own bad input, and Keel's own bug, say nothing about it. */
export function countsAgainstTarget(errorClass: ErrorClass): boolean {
  return errorClass !== 'invalid_request' && errorClass !== 'content_filtered' && errorClass !== 'context_too_long' && errorClass !== 'internal';
}

/** Errors that trip a breaker. Throttling is back-pressure, not an outage: Retry-After and the
 * task-queue rate limit handle it, and an open breaker would turn a slow batch into a failed one. */
export function tripsBreaker(errorClass: ErrorClass): boolean {
  return countsAgainstTarget(errorClass) && errorClass !== 'rate_limited';
}

/** One target's calls seen by one worker since its last report. */
export interface TargetReport {
  target: string;
  provider: string;
  /** Epoch ms of the first call in this report (decides the time bucket). */
  at: number;
  ok: number;
  errors: Partial<Record<ErrorClass, number>>;
  /** Latency of successful calls. */
  latency: LatencyHistogram;
  /** Completion tokens and generation time of successful calls: throughput. */
  outputTokens: number;
  okMs: number;
  /** Half-open probes: their outcome decides the breaker at once. */
  probeOk?: number;
  probeFailed?: number;
}

export interface HealthReport {
  worker: string;
  sentAt: number;
  targets: TargetReport[];
}

export type BreakerStateName = 'closed' | 'open' | 'half_open';

export interface BreakerView {
  state: BreakerStateName;
  /** Epoch ms the breaker entered this state. */
  since: number;
  /** Open: when a probe may be let through. */
  retryAt?: number;
  probeInFlight: boolean;
  /** How many times it has opened (over the workflow's life). */
  opened: number;
  reason?: string;
}

export interface WindowStats {
  calls: number;
  ok: number;
  /** Calls that failed for a reason that counts against the target. */
  failures: number;
  errors: Partial<Record<ErrorClass, number>>;
  /** ok / (ok + failures); null without calls. */
  successRate: number | null;
  p50Ms: number | null;
  p95Ms: number | null;
  requestsPerMin: number;
  /** Completion tokens per second of generation; null without successful calls. */
  tokensPerSec: number | null;
}

export interface SeriesPoint {
  /** Epoch ms of the minute's start. */
  t: number;
  calls: number;
  ok: number;
  failures: number;
  /** null: no calls that minute. */
  uptime: number | null;
  p50Ms: number | null;
  p95Ms: number | null;
}

export type WindowName = '1m' | '30m';

export interface TargetHealth {
  target: string;
  provider: string;
  model: string;
  breaker: BreakerView;
  windows: Record<WindowName, WindowStats>;
  series?: SeriesPoint[];
}

export interface ProviderHealth {
  provider: string;
  windows: Record<WindowName, WindowStats>;
  series?: SeriesPoint[];
}

export interface HealthSnapshot {
  /** Epoch ms the snapshot was computed for. */
  at: number;
  settings: BreakerSettings;
  targets: Record<string, TargetHealth>;
  providers: Record<string, ProviderHealth>;
}

/** What the planner is given about each candidate target: data, so routing stays pure. */
export interface TargetRoutingHealth {
  breaker: BreakerStateName;
  /** This request holds the half-open probe of this target. */
  probe?: boolean;
  calls: number;
  successRate: number | null;
  p50Ms: number | null;
  /** For hedge delays set as a percentile of observed latency. */
  p95Ms?: number | null;
  tokensPerSec: number | null;
}

export interface RoutingHealth {
  targets: Record<string, TargetRoutingHealth>;
  /** Below this success rate (over at least `minCalls` calls in the last minute) a target is degraded. */
  degradedBelow: number;
  minCalls: number;
}

/** One provider call as a worker reports it to the health workflow (aggregated per interval). */
export interface CallOutcome {
  provider: string;
  model: string;
  at: number;
  durationMs: number;
  /** Absent: success. */
  errorClass?: ErrorClass;
  outputTokens?: number;
  probe?: boolean;
}

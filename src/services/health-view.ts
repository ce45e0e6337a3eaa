// The operator's view of provider health: the health workflow's snapshot joined with the
// configuration, in the API's snake_case. Shared by GET /v1/providers and the /status page.
import { WorkflowNotFoundError, type Client } from '@temporalio/client';
import type { KeelConfig } from '../config/schema.js';
import { healthSnapshotQuery } from '../core/contract.js';
import type { BreakerView, HealthSnapshot, SeriesPoint, WindowStats } from '../core/health-types.js';
import { providerHealthWorkflowId } from '../core/task-queues.js';

const QUERY_TIMEOUT_MS = 3_000;

export type HealthLabel = 'healthy' | 'degraded' | 'down' | 'unknown';

export interface StatsView {
  calls: number;
  ok: number;
  failures: number;
  errors: Record<string, number>;
  success_rate: number | null;
  p50_ms: number | null;
  p95_ms: number | null;
  requests_per_min: number;
  tokens_per_sec: number | null;
}

export interface TargetView {
  id: string;
  model: string;
  health: HealthLabel;
  breaker: { state: BreakerView['state']; since: number | null; retry_at: number | null; probe_in_flight: boolean; opened: number; reason: string | null };
  pricing: { input: number; output: number } | null;
  stats: { '1m': StatsView; '30m': StatsView } | null;
  series?: SeriesPoint[];
}

export interface ProviderView {
  id: string;
  type: string;
  health: HealthLabel;
  rate_limit_per_second: number | null;
  concurrency: number | null;
  stats: { '1m': StatsView; '30m': StatsView } | null;
  series?: SeriesPoint[];
  targets: TargetView[];
}

export interface ProvidersView {
  object: 'list';
  updated_at: number;
  data: ProviderView[];
}

export async function readSnapshot(client: Client, config: KeelConfig, series: boolean): Promise<HealthSnapshot | null> {
  const handle = client.workflow.getHandle(providerHealthWorkflowId(config.taskQueue));
  try {
    return await client.withDeadline(Date.now() + QUERY_TIMEOUT_MS, () =>
      handle.query(healthSnapshotQuery, { now: Date.now(), series }),
    );
  } catch (err) {
    // No worker has reported yet: nothing is known, which is not an error.
    if (err instanceof WorkflowNotFoundError) return null;
    throw err;
  }
}

function stats(w: WindowStats): StatsView {
  return {
    calls: w.calls,
    ok: w.ok,
    failures: w.failures,
    errors: w.errors as Record<string, number>,
    success_rate: w.successRate === null ? null : Math.round(w.successRate * 10_000) / 10_000,
    p50_ms: w.p50Ms,
    p95_ms: w.p95Ms,
    requests_per_min: Math.round(w.requestsPerMin * 100) / 100,
    tokens_per_sec: w.tokensPerSec,
  };
}

// What an operator calls degraded is stricter than what demotes a target in routing (which waits
// for degradedMinCalls calls so a few failed retries cannot reorder traffic).
const DISPLAY_DEGRADED_BELOW = 0.9;

function label(state: BreakerView['state'] | undefined, w: WindowStats | undefined, config: KeelConfig): HealthLabel {
  if (state === 'open' || state === 'half_open') return 'down';
  if (!w || w.calls === 0 || w.successRate === null) return 'unknown';
  const routingDegraded = w.calls >= config.health.degradedMinCalls && w.successRate < config.health.degradedBelow;
  return routingDegraded || w.successRate < DISPLAY_DEGRADED_BELOW ? 'degraded' : 'healthy';
}

/** Every target the configuration names for a provider, then any others that reported. */
function configuredTargets(config: KeelConfig, provider: string): string[] {
  const out = new Set<string>();
  for (const m of Object.values(config.routing.models)) for (const t of m.targets) if (t.startsWith(`${provider}/`)) out.add(t);
  for (const model of Object.keys(config.providers[provider]?.models ?? {})) out.add(`${provider}/${model}`);
  return [...out];
}

export function providersView(config: KeelConfig, snapshot: HealthSnapshot | null, now = Date.now()): ProvidersView {
  const data: ProviderView[] = Object.entries(config.providers).map(([id, p]) => {
    const known = Object.values(snapshot?.targets ?? {}).filter((t) => t.provider === id).map((t) => t.target);
    const targets: TargetView[] = [...new Set([...configuredTargets(config, id), ...known])].map((key) => {
      const t = snapshot?.targets[key];
      const model = key.slice(id.length + 1);
      const b = t?.breaker;
      return {
        id: key,
        model,
        health: label(b?.state, t?.windows['1m'].calls ? t.windows['1m'] : t?.windows['30m'], config),
        breaker: {
          state: b?.state ?? 'closed',
          since: b?.since ?? null,
          retry_at: b?.retryAt ?? null,
          probe_in_flight: b?.probeInFlight ?? false,
          opened: b?.opened ?? 0,
          reason: b?.reason ?? null,
        },
        pricing: p.models?.[model]?.pricing ?? null,
        stats: t ? { '1m': stats(t.windows['1m']), '30m': stats(t.windows['30m']) } : null,
        ...(t?.series && { series: t.series }),
      };
    });
    const ph = snapshot?.providers[id];
    const allDown = targets.length > 0 && targets.every((t) => t.health === 'down');
    const anyDown = targets.some((t) => t.health === 'down');
    const w = ph ? (ph.windows['1m'].calls ? ph.windows['1m'] : ph.windows['30m']) : undefined;
    let health = label(allDown ? 'open' : undefined, w, config);
    if (anyDown && health === 'healthy') health = 'degraded';
    return {
      id,
      type: p.type,
      health,
      rate_limit_per_second: p.rateLimitPerSecond ?? null,
      concurrency: p.concurrency ?? null,
      stats: ph ? { '1m': stats(ph.windows['1m']), '30m': stats(ph.windows['30m']) } : null,
      ...(ph?.series && { series: ph.series }),
      targets,
    };
  });
  return { object: 'list', updated_at: snapshot?.at ?? now, data };
}

// The state the provider-health workflow keeps (buckets and breakers per target), how a report
// changes it, and the snapshot it answers with. Pure, so it runs in the workflow sandbox.
import { acquireProbe, applyReport, breakerView, newBreaker, type BreakerRecord } from './breaker.js';
import { BUCKET_MS, RETENTION_MS, WINDOWS_MS, addReport as addReportBucket, minuteSeries, windowStats, type StatsBucket } from './health-stats.js';
import type { BreakerSettings, HealthReport, HealthSnapshot, ProviderHealth, TargetHealth } from './health-types.js';

export interface TargetState {
  provider: string;
  model: string;
  buckets: StatsBucket[];
  breaker: BreakerRecord;
}

export interface HealthState {
  settings: BreakerSettings;
  targets: Record<string, TargetState>;
}

export function applyHealthReport(state: HealthState, report: HealthReport, now: number): void {
  for (const t of report.targets) {
    let rec = state.targets[t.target];
    if (!rec) {
      rec = { provider: t.provider, model: t.target.slice(t.provider.length + 1), buckets: [], breaker: newBreaker(now) };
      state.targets[t.target] = rec;
    }
    rec.buckets = addReportBucket(rec.buckets, t, now);
    applyReport(rec.breaker, t, state.settings, now);
  }
}

export function grantProbe(state: HealthState, target: string, requestId: string, now: number): boolean {
  const rec = state.targets[target];
  return rec ? acquireProbe(rec.breaker, requestId, state.settings, now) : false;
}

/** Drops buckets past retention, so the state carried across continue-as-new stays small. */
export function pruneState(state: HealthState, now: number): HealthState {
  for (const rec of Object.values(state.targets)) rec.buckets = rec.buckets.filter((b) => b.start + BUCKET_MS > now - RETENTION_MS);
  return state;
}

export function buildSnapshot(state: HealthState, now: number, withSeries = false): HealthSnapshot {
  const targets: Record<string, TargetHealth> = {};
  const byProvider = new Map<string, StatsBucket[]>();
  for (const [key, rec] of Object.entries(state.targets)) {
    targets[key] = {
      target: key,
      provider: rec.provider,
      model: rec.model,
      breaker: breakerView(rec.breaker, state.settings, now),
      windows: { '1m': windowStats(rec.buckets, now, WINDOWS_MS['1m']), '30m': windowStats(rec.buckets, now, WINDOWS_MS['30m']) },
      ...(withSeries && { series: minuteSeries(rec.buckets, now) }),
    };
    byProvider.set(rec.provider, [...(byProvider.get(rec.provider) ?? []), ...rec.buckets]);
  }
  const providers: Record<string, ProviderHealth> = {};
  for (const [provider, buckets] of byProvider) {
    providers[provider] = {
      provider,
      windows: { '1m': windowStats(buckets, now, WINDOWS_MS['1m']), '30m': windowStats(buckets, now, WINDOWS_MS['30m']) },
      ...(withSeries && { series: minuteSeries(buckets, now) }),
    };
  }
  return { at: now, settings: state.settings, targets, providers };
}

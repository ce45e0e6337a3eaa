// A circuit breaker per target, driven by aggregated reports. Pure: the health workflow owns the
// records and its clock; this module only decides transitions.
import type { ErrorClass } from './error-classes.js';
import { tripsBreaker, type BreakerSettings, type BreakerStateName, type BreakerView, type TargetReport } from './health-types.js';

export interface BreakerRecord {
  state: BreakerStateName;
  since: number;
  retryAt?: number;
  probe?: { requestId: string; grantedAt: number };
  /** Closed: per-report call and failure counts inside the window. */
  recent: { at: number; calls: number; failures: number }[];
  opened: number;
  reason?: string;
}

export function newBreaker(now: number): BreakerRecord {
  return { state: 'closed', since: now, recent: [], opened: 0 };
}

function open(b: BreakerRecord, settings: BreakerSettings, now: number, reason: string): void {
  b.state = 'open';
  b.since = now;
  b.retryAt = now + settings.cooldownMs;
  b.opened += 1;
  b.reason = reason;
  b.recent = [];
  delete b.probe;
}

function close(b: BreakerRecord, now: number): void {
  b.state = 'closed';
  b.since = now;
  b.recent = [];
  delete b.retryAt;
  delete b.probe;
  delete b.reason;
}

export function applyReport(b: BreakerRecord, report: TargetReport, settings: BreakerSettings, now: number): void {
  if (!settings.enabled) {
    if (b.state !== 'closed') close(b, now);
    return;
  }
  if (b.state !== 'closed') {
    // Only the probe speaks for a target that is not closed: other calls in a report were made
    // before it opened (reports lag by up to one publish interval).
    if ((report.probeOk ?? 0) > 0) close(b, now);
    else if ((report.probeFailed ?? 0) > 0) open(b, settings, now, 'the half-open probe failed');
    return;
  }
  let failures = 0;
  for (const [cls, n] of Object.entries(report.errors)) if (tripsBreaker(cls as ErrorClass)) failures += n ?? 0;
  b.recent.push({ at: now, calls: report.ok + failures, failures });
  b.recent = b.recent.filter((r) => r.at > now - settings.windowMs);
  const calls = b.recent.reduce((s, r) => s + r.calls, 0);
  const failed = b.recent.reduce((s, r) => s + r.failures, 0);
  const windowS = Math.round(settings.windowMs / 1000);
  if (settings.failureCount !== undefined && failed >= settings.failureCount) {
    open(b, settings, now, `${failed} failures in ${windowS} s`);
  } else if (calls >= settings.minCalls && failed / calls >= settings.failureRatio) {
    open(b, settings, now, `${failed} of ${calls} calls failed in ${windowS} s`);
  }
}

/** Grants the one probe of a target whose cooldown has passed; false for every other caller. */
export function acquireProbe(b: BreakerRecord, requestId: string, settings: BreakerSettings, now: number): boolean {
  if (b.state === 'closed') return false;
  if (b.state === 'open' && now < (b.retryAt ?? 0)) return false;
  if (b.probe && now - b.probe.grantedAt < settings.probeTimeoutMs) return false;
  b.state = 'half_open';
  if (!b.probe) b.since = now;
  b.probe = { requestId, grantedAt: now };
  return true;
}

export function breakerView(b: BreakerRecord, settings: BreakerSettings, now: number): BreakerView {
  // An open breaker past its cooldown waits for a probe: to readers it is half-open.
  const state = b.state === 'open' && now >= (b.retryAt ?? Infinity) ? 'half_open' : b.state;
  return {
    state,
    since: b.since,
    ...(b.retryAt !== undefined && b.state !== 'closed' && { retryAt: b.retryAt }),
    probeInFlight: b.probe !== undefined && now - b.probe.grantedAt < settings.probeTimeoutMs,
    opened: b.opened,
    ...(b.reason && { reason: b.reason }),
  };
}

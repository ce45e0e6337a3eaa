// Aggregates this worker's provider calls between two health reports, so the health workflow gets
// one small signal per interval instead of one per call.
import type { ErrorClass } from '../core/error-classes.js';
import { latencyBin, type CallOutcome, type TargetReport } from '../core/health-types.js';

export type { CallOutcome };

function emptyReport(target: string, provider: string, at: number): TargetReport {
  return { target, provider, at, ok: 0, errors: {}, latency: {}, outputTokens: 0, okMs: 0 };
}

function mergeInto(into: TargetReport, from: TargetReport): void {
  into.at = Math.min(into.at, from.at);
  into.ok += from.ok;
  for (const [cls, n] of Object.entries(from.errors)) into.errors[cls as ErrorClass] = (into.errors[cls as ErrorClass] ?? 0) + (n ?? 0);
  for (const [bin, n] of Object.entries(from.latency)) into.latency[Number(bin)] = (into.latency[Number(bin)] ?? 0) + n;
  into.outputTokens += from.outputTokens;
  into.okMs += from.okMs;
  if (from.probeOk) into.probeOk = (into.probeOk ?? 0) + from.probeOk;
  if (from.probeFailed) into.probeFailed = (into.probeFailed ?? 0) + from.probeFailed;
}

export class HealthRecorder {
  private pending = new Map<string, TargetReport>();

  record(call: CallOutcome): void {
    const key = `${call.provider}/${call.model}`;
    let r = this.pending.get(key);
    if (!r) {
      r = emptyReport(key, call.provider, call.at);
      this.pending.set(key, r);
    }
    if (call.errorClass) {
      r.errors[call.errorClass] = (r.errors[call.errorClass] ?? 0) + 1;
      if (call.probe) r.probeFailed = (r.probeFailed ?? 0) + 1;
    } else {
      r.ok += 1;
      const bin = latencyBin(call.durationMs);
      r.latency[bin] = (r.latency[bin] ?? 0) + 1;
      r.outputTokens += call.outputTokens ?? 0;
      r.okMs += call.durationMs;
      if (call.probe) r.probeOk = (r.probeOk ?? 0) + 1;
    }
  }

  get size(): number {
    return this.pending.size;
  }

  /** Everything recorded since the last drain; the recorder starts empty again. */
  drain(): TargetReport[] {
    const out = [...this.pending.values()];
    this.pending.clear();
    return out;
  }

  /** Puts back a drained report that could not be sent, so no call goes uncounted. */
  restore(reports: TargetReport[]): void {
    for (const r of reports) {
      const mine = this.pending.get(r.target);
      if (mine) mergeInto(mine, r);
      else this.pending.set(r.target, r);
    }
  }
}

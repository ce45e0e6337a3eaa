// What `/metrics` answers: Keel's metrics, then the Temporal SDK's own (the Runtime's Prometheus
// exporter, bound on loopback by src/worker/temporal-runtime.ts), so one scrape per process gets
// both. The two sets share no metric name (`keel_*`, `gen_ai_*`, `process_*`, `nodejs_*` against
// `temporal_*`).
import type { KeelMetrics } from './metrics.js';

/** A scrape must not hang on the Runtime's exporter: Keel's own metrics are answered regardless. */
const TEMPORAL_SCRAPE_TIMEOUT_MS = 2_000;

export const METRICS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

export class MetricsEndpoint {
  /** `temporalUrl`: the Runtime's exporter (http://127.0.0.1:PORT/metrics), when this process has one. */
  constructor(
    private readonly metrics: KeelMetrics,
    private readonly temporalUrl?: string,
  ) {}

  async text(): Promise<string> {
    if (!this.temporalUrl) return this.metrics.text();
    let temporal = '';
    try {
      const res = await fetch(this.temporalUrl, { signal: AbortSignal.timeout(TEMPORAL_SCRAPE_TIMEOUT_MS) });
      if (res.ok) temporal = await res.text();
    } catch {
      // Reported by keel_temporal_metrics_up = 0.
    }
    this.metrics.temporalMetricsRead(temporal !== '');
    const own = await this.metrics.text();
    return temporal ? `${own.endsWith('\n') ? own : `${own}\n`}${temporal}` : own;
  }
}

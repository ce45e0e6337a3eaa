// The worker-side Temporal runtime (one per process): its logging — warnings and errors only,
// without the notices that every provider-only worker prints by design (it runs activities, no
// workflows) — and its metrics: the SDK's own Prometheus exporter, bound on loopback at a free port
// and read by this process's /metrics (docs/OPERATIONS.md), or at KEEL_TEMPORAL_METRICS_ADDRESS
// for a deployment that scrapes it directly.
import { DefaultLogger, Runtime, type LogEntry } from '@temporalio/worker';
import { freePort } from '../temporal/ports.js';

const EXPECTED = [/^No workflows registered/, /^No Nexus services registered/];

export interface InstalledRuntime {
  /** Where the SDK's metrics can be read (http://host:port/metrics); undefined when they are off. */
  temporalMetricsUrl?: string;
}

export async function installRuntime(
  opts: { level?: 'DEBUG' | 'INFO' | 'WARN' | 'ERROR'; metrics?: boolean; env?: NodeJS.ProcessEnv } = {},
): Promise<InstalledRuntime> {
  const env = opts.env ?? process.env;
  const level = opts.level ?? (env.KEEL_LOG_LEVEL as 'WARN' | undefined) ?? 'WARN';
  // A port picked now and bound by the Runtime a moment later: on loopback, with nothing else of
  // Keel's racing for it, that is safe enough; an explicit address is used as given.
  const bindAddress = opts.metrics === false ? undefined : (env.KEEL_TEMPORAL_METRICS_ADDRESS ?? `127.0.0.1:${await freePort()}`);
  Runtime.install({
    logger: new DefaultLogger(level, (entry: LogEntry) => {
      if (EXPECTED.some((re) => re.test(entry.message))) return;
      const line = `${new Date(Number(entry.timestampNanos / 1_000_000n)).toISOString()} [${entry.level}] ${entry.message}`;
      (entry.level === 'ERROR' || entry.level === 'WARN' ? console.error : console.log)(line, entry.meta ?? '');
    }),
    ...(bindAddress && {
      telemetryOptions: {
        // Temporal's own names and units (latencies in ms), so its documentation and published
        // SDK dashboards apply as they are.
        metrics: { prometheus: { bindAddress } },
      },
    }),
  });
  if (!bindAddress) return {};
  const [host, port] = [bindAddress.slice(0, bindAddress.lastIndexOf(':')), bindAddress.slice(bindAddress.lastIndexOf(':') + 1)];
  const reachable = host === '0.0.0.0' || host === '' ? '127.0.0.1' : host === '[::]' ? '[::1]' : host;
  return { temporalMetricsUrl: `http://${reachable}:${port}/metrics` };
}

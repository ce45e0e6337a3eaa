// `npm run worker`: the worker role alone (request workflows + one activity worker per provider),
// with its metrics on KEEL_METRICS_PORT (docs/OPERATIONS.md).
import { NativeConnection } from '@temporalio/worker';
import { installRuntime } from '../worker/temporal-runtime.js';
import { loadConfigOrExit } from '../config/load.js';
import { createKeelWorkers, runKeelWorkers } from '../worker/workers.js';
import { bundleWorkflows } from '../worker/workflow-bundle.js';
import { KeelMetrics } from '../observability/metrics.js';
import { MetricsEndpoint } from '../observability/metrics-endpoint.js';
import { startMetricsServer } from '../observability/metrics-server.js';
import { metricsAccess } from '../observability/metrics-access.js';
import { KeelTracing } from '../observability/tracing.js';
import { bundleOptionsFor } from '../codec/data-converter.js';

const config = loadConfigOrExit();
const { metrics: metricsSettings } = config.telemetry;
const runtime = await installRuntime({ metrics: metricsSettings.enabled && metricsSettings.temporal });
const tracing = KeelTracing.start(config.telemetry.tracing, 'worker');
const metrics = new KeelMetrics();
const connection = await NativeConnection.connect({ address: config.temporalAddress });
const { workers } = await createKeelWorkers({ connection, config, workflowBundle: await bundleWorkflows({ ...bundleOptionsFor(config.codec), tracing: tracing !== undefined }), metrics, ...(tracing && { tracing }) });
// Metrics are for watching the worker, not for running it: a port already taken is reported and
// the worker runs on without them.
const metricsServer = metricsSettings.enabled
  ? await startMetricsServer(new MetricsEndpoint(metrics, runtime.temporalMetricsUrl), config.host, metricsSettings.port, metricsAccess(config)).catch((err: Error) => {
      console.error(`keel worker: no /metrics: cannot listen on ${config.host}:${metricsSettings.port} (${err.message}); set KEEL_METRICS_PORT (0: any free port)`);
      return undefined;
    })
  : undefined;
console.log(
  `keel worker polling ${config.taskQueue} and ${Object.keys(config.providers).length} provider queue(s)` +
    `${metricsServer ? `; metrics on ${metricsServer.url}` : ''}${tracing ? `; traces to ${tracing.url}` : ''}`,
);
// Worker.run() shuts down on SIGINT/SIGTERM by itself, finishing the calls in flight.
await runKeelWorkers(workers);
await metricsServer?.close();
await tracing?.shutdown().catch(() => undefined);
await connection.close();

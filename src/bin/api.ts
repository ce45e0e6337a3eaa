// `npm run api`: the API role alone, against the Temporal server at TEMPORAL_ADDRESS.
import { startApi } from '../api/server.js';
import { apiConfigOrExit } from '../config/load.js';
import { KeelTracing } from '../observability/tracing.js';

const config = apiConfigOrExit();
const tracing = KeelTracing.start(config.telemetry.tracing, 'api');
const api = await startApi(config, { address: config.temporalAddress, ...(tracing && { tracing }) });
console.log(`keel api listening on ${api.url}${config.telemetry.metrics.enabled ? ` (metrics: ${api.url}/metrics)` : ''}${tracing ? `; traces to ${tracing.url}` : ''}`);
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    void api
      .close()
      .then(() => tracing?.shutdown())
      .catch(() => undefined)
      .then(() => process.exit(0));
  });
}

// Starts the API on a real listening socket: used by `npm run api`, `npm start` and the tests.
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import { Client, Connection, type ConnectionLike } from '@temporalio/client';
import type { KeelConfig } from '../config/schema.js';
import type { LocalWorkers } from '../services/request-service.js';
import { createApp } from './app.js';
import { KeelMetrics } from '../observability/metrics.js';
import { MetricsEndpoint } from '../observability/metrics-endpoint.js';
import type { KeelTracing } from '../observability/tracing.js';
import { tracingClientInterceptors } from '../observability/temporal-tracing.js';
import { keelDataConverter } from '../codec/data-converter.js';
import { ConfigError, authProblem } from '../config/load.js';

export interface RunningApi {
  url: string;
  server: Server;
  client: Client;
  close(): Promise<void>;
}

export interface ApiOptions {
  /** The Temporal frontend, for an API with a connection of its own (`npm run api`). */
  address?: string;
  /**
   * A connection shared with workers in this process (`npm start`): the API's client uses it,
   * which is what lets a start hand its first workflow task straight to the local worker.
   */
  connection?: ConnectionLike;
  /** Workers in this process (with `connection`): eager starts and early answers. */
  local?: LocalWorkers;
  port?: number;
  /** This process's metrics (shared with its workers); the API makes its own without. */
  metrics?: KeelMetrics;
  /** The Temporal SDK's metrics to append to /metrics (workers in this process: their Runtime's exporter). */
  temporalMetricsUrl?: string;
  tracing?: KeelTracing;
}

export async function startApi(config: KeelConfig, opts: ApiOptions): Promise<RunningApi> {
  const problem = authProblem(config);
  if (problem) throw new ConfigError(problem);
  const own = opts.connection ? undefined : await Connection.connect({ address: opts.address ?? config.temporalAddress });
  const dataConverter = keelDataConverter(config.codec);
  const client = new Client({ connection: opts.connection ?? own!, namespace: config.namespace, ...(dataConverter && { dataConverter }), ...tracingClientInterceptors(opts.tracing) });
  const metrics = opts.metrics ?? new KeelMetrics();
  const metricsEndpoint = config.telemetry.metrics.enabled ? new MetricsEndpoint(metrics, opts.temporalMetricsUrl) : undefined;
  const app = createApp({ client, config, metrics, ...(metricsEndpoint && { metricsEndpoint }), ...(opts.tracing && { tracing: opts.tracing }), ...(opts.connection && opts.local && { local: opts.local }) });
  const server = app.listen(opts.port ?? config.port, config.host);
  await new Promise<void>((resolve, reject) => {
    server.once('listening', resolve);
    server.once('error', reject);
  });
  // Keep-alive sockets from clients (SDK pools) would otherwise hold close() open.
  server.keepAliveTimeout = 5_000;
  const { port: actual } = server.address() as AddressInfo;
  const host = config.host === '0.0.0.0' ? '127.0.0.1' : config.host;
  return {
    url: `http://${host}:${actual}`,
    server,
    client,
    async close() {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      // A shared connection belongs to the workers.
      await own?.close();
    },
  };
}

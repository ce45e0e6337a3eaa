// The worker role's own HTTP listener: GET /metrics and nothing else (a worker has no API port).
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { METRICS_CONTENT_TYPE, type MetricsEndpoint } from './metrics-endpoint.js';
import { METRICS_UNAUTHORIZED, type MetricsAccess } from './metrics-access.js';

export interface MetricsServer {
  url: string;
  close(): Promise<void>;
}

/** `access`: who may read it (src/observability/metrics-access.ts); default: anyone. */
export async function startMetricsServer(endpoint: MetricsEndpoint, host: string, port: number, access: MetricsAccess = () => true): Promise<MetricsServer> {
  const server: Server = createServer((req, res) => {
    if (req.method !== 'GET' || (req.url ?? '').split('?')[0] !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: GET /metrics\n');
      return;
    }
    if (!access(req.headers.authorization)) {
      res.writeHead(METRICS_UNAUTHORIZED.status, METRICS_UNAUTHORIZED.headers).end(METRICS_UNAUTHORIZED.body);
      return;
    }
    endpoint.text().then(
      (text) => res.writeHead(200, { 'content-type': METRICS_CONTENT_TYPE }).end(text),
      (err: Error) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`metrics unavailable: ${err.message}\n`),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  server.keepAliveTimeout = 5_000;
  const bound = (server.address() as AddressInfo).port;
  return {
    url: `http://${host === '0.0.0.0' ? '127.0.0.1' : host}:${bound}/metrics`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

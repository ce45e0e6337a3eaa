// Starts the API on a real listening socket: used by `npm run api`, `npm start` and the tests.
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import { Client, Connection } from '@temporalio/client';
import type { KeelConfig } from '../config/schema.js';
import { createApp } from './app.js';

export interface RunningApi {
  url: string;
  server: Server;
  client: Client;
  close(): Promise<void>;
}

export async function startApi(config: KeelConfig, temporalAddress: string, port = config.port): Promise<RunningApi> {
  const connection = await Connection.connect({ address: temporalAddress });
  const client = new Client({ connection, namespace: config.namespace });
  const server = createApp({ client, config }).listen(port, config.host);
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
      await connection.close();
    },
  };
}

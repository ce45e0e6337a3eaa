// `npm start`: Keel on one machine with embedded defaults — the Temporal dev server (SQLite in
// the data folder), one worker, the API, and fake providers for every provider marked `fake`.
import { join, resolve } from 'node:path';
import { NativeConnection } from '@temporalio/worker';
import { startApi } from './api/server.js';
import { startDevServer, type DevServer } from './dev-server.js';
import { startFakeProvider, type FakeProvider } from './fakes/index.js';
import { installRuntime } from './temporal-runtime.js';
import { dataDir, loadConfigOrExit } from './startup.js';
import { createKeelWorkers, runKeelWorkers } from './worker.js';
import { bundleWorkflows } from './workflow-bundle.js';

const config = loadConfigOrExit();
installRuntime();
const data = resolve(dataDir());
let devServer: DevServer | undefined;
let address: string;
if (process.env.TEMPORAL_ADDRESS) {
  address = process.env.TEMPORAL_ADDRESS;
} else {
  console.log(`keel: starting the Temporal dev server (data in ${join(data, 'temporal.sqlite')}) ...`);
  devServer = await startDevServer({ dataDir: data, port: Number(process.env.TEMPORAL_PORT ?? 7233), uiPort: Number(process.env.TEMPORAL_UI_PORT ?? 8233) });
  address = devServer.address;
}

const fakes: FakeProvider[] = [];
for (const [name, provider] of Object.entries(config.providers)) {
  if (!provider.fake) continue;
  const url = new URL(provider.baseURL);
  const fake = await startFakeProvider({
    type: provider.type,
    host: url.hostname,
    port: Number(url.port),
    behaviours: { '*': { latency: { baseMs: provider.fake.latencyMs ?? 0, jitterMs: provider.fake.jitterMs ?? 0 } } },
  });
  fakes.push(fake);
  console.log(`keel: demo provider ${name} (${provider.type}) on ${fake.url}`);
}

const connection = await NativeConnection.connect({ address });
const workers = await createKeelWorkers({ connection, config, workflowBundle: await bundleWorkflows() });
const running = runKeelWorkers(workers);
const api = await startApi(config, address);

console.log(`
Keel is running.
  API          ${api.url}/v1   (try: curl ${api.url}/v1/chat/completions -H 'content-type: application/json' -d '{"model":"chat","messages":[{"role":"user","content":"Hello"}]}')
  Health       ${api.url}/healthz
  Temporal UI  ${devServer?.uiUrl ?? config.uiUrl}
  Temporal     ${address}
Press Ctrl-C to stop.`);

let stopping = false;
async function stop(): Promise<void> {
  if (stopping) return;
  stopping = true;
  console.log('\nkeel: stopping ...');
  await api.close();
  // The Temporal runtime shuts the workers down on the same signal; wait for their calls to finish.
  for (const w of workers) if (w.getState() === 'RUNNING') w.shutdown();
  await running;
  await connection.close();
  await Promise.all(fakes.map((f) => f.close()));
  await devServer?.stop();
  console.log('keel: stopped');
  process.exit(0);
}
process.on('SIGINT', () => void stop());
process.on('SIGTERM', () => void stop());

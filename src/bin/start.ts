// `npm start`: Keel on one machine with embedded defaults — the Temporal dev server (SQLite in
// the data folder), one worker, the API, and fake providers for every provider marked `fake`.
import { join, resolve } from 'node:path';
import { startDevServer, type DevServer } from '../temporal/dev-server.js';
import { startFakeProvider, type FakeProvider } from '../../dev/fakes/index.js';
import { installRuntime } from '../worker/temporal-runtime.js';
import { dataDir, apiConfigOrExit, uiOrigins } from '../config/load.js';
import type { KeelConfig } from '../config/schema.js';
import { GatewayProcess } from './gateway-process.js';

const loaded = apiConfigOrExit();
const runtime = await installRuntime({ metrics: loaded.telemetry.metrics.enabled && loaded.telemetry.metrics.temporal });
const data = resolve(dataDir());

// What has been started so far: Ctrl-C during start-up, or a start-up failure, stops exactly that.
// In particular the dev server, a child process, must never outlive this one (it would keep the
// port and the SQLite file, and the next `npm start` would fail).
let devServerStarting: Promise<DevServer> | undefined;
const fakes: FakeProvider[] = [];
let gateway: GatewayProcess | undefined;

let stopping = false;
async function stop(code: number): Promise<void> {
  if (stopping) return;
  stopping = true;
  console.log('\nkeel: stopping ...');
  try {
    await gateway?.stop();
    await Promise.all(fakes.map((f) => f.close()));
  } catch (err) {
    console.error(`keel: while stopping: ${(err as Error).message}`);
    code ||= 1;
  } finally {
    await (await devServerStarting?.catch(() => undefined))?.stop();
  }
  console.log('keel: stopped');
  process.exit(code);
}
// Registered before anything starts: the Temporal runtime's own SIGINT handler would otherwise
// swallow a Ctrl-C during start-up, and Keel would come up without workers.
process.on('SIGINT', () => void stop(0));
process.on('SIGTERM', () => void stop(0));
/** The UI this process runs: links point at it, and (unless configured) the codec server's CORS allows it. */
function withUiUrl(config: KeelConfig, uiUrl: string): KeelConfig {
  const corsOrigins = config.raw.codec?.server?.corsOrigins ? config.codec.server.corsOrigins : uiOrigins(uiUrl);
  return { ...config, uiUrl, codec: { ...config.codec, server: { ...config.codec.server, corsOrigins } } };
}

/** After each start-up step: once stopping, start nothing more. */
function checkpoint(): void {
  if (stopping) throw new Error('stopped during start-up');
}

try {
  let address: string;
  let devServer: DevServer | undefined;
  if (process.env.TEMPORAL_ADDRESS) {
    address = process.env.TEMPORAL_ADDRESS;
  } else {
    console.log(`keel: starting the Temporal dev server (data in ${join(data, 'temporal.sqlite')}) ...`);
    // With the codec on, the UI decodes payloads through this process's API (docs/ENCRYPTION.md).
    const apiHost = loaded.host === '0.0.0.0' ? '127.0.0.1' : loaded.host;
    devServerStarting = startDevServer({
      dataDir: data,
      port: Number(process.env.TEMPORAL_PORT ?? 7233),
      uiPort: Number(process.env.TEMPORAL_UI_PORT ?? 8233),
      ...(loaded.codec.server.enabled && { uiCodecEndpoint: `http://${apiHost}:${loaded.port}/codec` }),
    });
    devServer = await devServerStarting;
    address = devServer.address;
  }
  checkpoint();
  // Links handed out (x-keel-ui-url, webhook payloads) point at the UI this process runs, on
  // whatever port TEMPORAL_UI_PORT gave it, unless TEMPORAL_UI_URL names another one.
  const config = devServer?.uiUrl && !process.env.TEMPORAL_UI_URL ? withUiUrl(loaded, devServer.uiUrl) : loaded;

  for (const [name, provider] of Object.entries(config.providers)) {
    if (!provider.fake) continue;
    checkpoint();
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

  checkpoint();
  gateway = new GatewayProcess(config, runtime);
  const api = await gateway.start(address, checkpoint);
  gateway.running?.catch((err) => {
    console.error(`keel: a worker failed: ${(err as Error).stack ?? err}`);
    void stop(1);
  });

  console.log(`
Keel is running.
  API          ${api.url}/v1   (try: curl ${api.url}/v1/chat/completions${config.auth.adminKey ? ' -H "authorization: Bearer $KEEL_ADMIN_KEY"' : ''} -H 'content-type: application/json' -d '{"model":"chat","messages":[{"role":"user","content":"Hello"}]}')
  Keys         ${config.auth.adminKey ? 'required: the admin key (KEEL_ADMIN_KEY) or a virtual key (POST /v1/keys; docs/KEYS.md)' : 'none needed (set KEEL_ADMIN_KEY to require keys; docs/KEYS.md)'}
  Health       ${api.url}/healthz
  Temporal UI  ${devServer?.uiUrl ?? config.uiUrl}
  Temporal     ${address}
Press Ctrl-C to stop.`);
} catch (err) {
  if (!stopping) console.error(`keel: could not start: ${(err as Error).stack ?? err}`);
  await stop(1);
}

// `npm run cluster`: Keel's production topology on this machine as processes on loopback —
// PostgreSQL, the Temporal server (deploy/temporal/), two workers and two APIs run with
// `npm run worker` / `npm run gateway` and deploy/keel.production.yaml — the same files as
// docker-compose.yml. Ctrl-C stops everything. README, "A cluster on one machine".
//
//   npm run cluster -- [--data-dir DIR] [--apis 2] [--workers 2] [--api-port 3000] [--temporal-port 7233] [--real-providers]
//
// Without --real-providers the three providers of the production config point at fake providers
// on loopback (the OpenAI, Anthropic and Gemini wire formats), so it answers with no API keys.
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { startFakeProvider, type FakeProvider } from '../../dev/fakes/index.js';
import { dataDir } from '../config/load.js';
import { startCluster, type Cluster } from '../temporal/cluster.js';

const USAGE = 'usage: npm run cluster -- [--data-dir DIR] [--apis N] [--workers N] [--api-port PORT] [--temporal-port PORT] [--real-providers]';

let values;
try {
  ({ values } = parseArgs({
    options: {
      'data-dir': { type: 'string' },
      apis: { type: 'string', default: '2' },
      workers: { type: 'string', default: '2' },
      'api-port': { type: 'string', default: '3000' },
      'temporal-port': { type: 'string', default: '7233' },
      'real-providers': { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h' },
    },
  }));
} catch (err) {
  console.error(`keel cluster: ${(err as Error).message}\n${USAGE}`);
  process.exit(2);
}
if (values.help) {
  console.log(USAGE);
  process.exit(0);
}
const count = (name: string, v: string, min: number) => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < min || n > 65_535) {
    console.error(`keel cluster: --${name} must be an integer >= ${min}, got ${v}\n${USAGE}`);
    process.exit(2);
  }
  return n;
};
const apis = count('apis', values.apis, 1);
const workers = count('workers', values.workers, 1);
const apiPort = count('api-port', values['api-port'], 1);
const temporalPort = count('temporal-port', values['temporal-port'], 1);

const fakes: FakeProvider[] = [];
let cluster: Cluster | undefined;
let starting: Promise<Cluster> | undefined;
// Ctrl-C during start-up: startCluster stops what it has started at its next step.
const abort = new AbortController();
let stopping = false;
async function stop(code: number): Promise<void> {
  if (stopping) return;
  stopping = true;
  console.log('\nkeel cluster: stopping (APIs, workers, Temporal, PostgreSQL) ...');
  abort.abort();
  try {
    await cluster?.stop();
    await starting?.catch(() => undefined);
    await Promise.all(fakes.map((f) => f.close()));
  } catch (err) {
    console.error(`keel cluster: while stopping: ${(err as Error).message}`);
    code ||= 1;
  }
  console.log('keel cluster: stopped');
  process.exit(code);
}
process.on('SIGINT', () => void stop(0));
process.on('SIGTERM', () => void stop(0));

try {
  const env: Record<string, string> = {};
  if (!values['real-providers']) {
    for (const type of ['openai', 'anthropic', 'gemini'] as const) {
      const fake = await startFakeProvider({ type, behaviours: { '*': { latency: { baseMs: 50, jitterMs: 20 } } } });
      fakes.push(fake);
      const prefix = type.toUpperCase();
      env[`${prefix}_BASE_URL`] = fake.url;
      env[`${prefix}_API_KEY`] = process.env[`${prefix}_API_KEY`] || 'fake-key';
    }
  }
  starting = startCluster({
    dataDir: resolve(values['data-dir'] ?? join(dataDir(), 'cluster')),
    keelConfig: process.env.KEEL_CONFIG ?? 'deploy/keel.production.yaml',
    apis,
    workers,
    apiPorts: Array.from({ length: apis }, (_, i) => apiPort + i),
    temporalPort,
    env,
    signal: abort.signal,
    log: (line) => console.log(line),
  });
  cluster = await starting;
  const c = cluster;
  const pad = (s: string) => s.padEnd(16);
  // Made for this data folder when the environment has none (src/temporal/cluster-secrets.ts); never printed.
  const adminKeyFile = c.secrets.KEEL_ADMIN_KEY ? join(c.dataDir, 'secrets.json') : undefined;
  console.log(`
Keel cluster is running (${c.apis.length} APIs, each with a worker of its own, and ${c.workers.length} workers).
${c.apis.map((a) => `  ${pad(a.name)}${a.url}/v1   (health: ${a.url}/healthz)`).join('\n')}
${c.workers.map((w) => `  ${pad(w.name)}pid ${w.pid}`).join('\n')}
  ${pad('Temporal')}${c.address}  namespace ${c.namespace}  (PostgreSQL ${c.postgres?.host}:${c.postgres?.port})
  ${pad('config')}${process.env.KEEL_CONFIG ?? 'deploy/keel.production.yaml'}; server: deploy/temporal/config.yaml, ${c.dynamicConfigFile}
${fakes.map((f) => `  ${pad(`fake ${f.type}`)}${f.url}`).join('\n')}
  ${pad('data, logs')}${c.dataDir}, ${c.logsDir}
  ${pad('admin key')}${adminKeyFile ? `KEEL_ADMIN_KEY in ${adminKeyFile}` : 'KEEL_ADMIN_KEY'} (every /v1 route needs it, or a virtual key: docs/KEYS.md)
  Try: curl ${c.apis[0].url}/v1/chat/completions -H "authorization: Bearer ${adminKeyFile ? '<the admin key>' : '$KEEL_ADMIN_KEY'}" -H 'content-type: application/json' -d '{"model":"chat","messages":[{"role":"user","content":"Hello"}]}'
  Temporal CLI: temporal workflow list --address ${c.address}
Press Ctrl-C to stop.`);
} catch (err) {
  if (!stopping) console.error(`keel cluster: could not start: ${(err as Error).stack ?? err}`);
  await stop(1);
}

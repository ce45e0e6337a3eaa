// Keel's production topology on one machine, as plain processes on loopback: PostgreSQL, Temporal's
// schema set-up, the Temporal server with deploy/temporal/config.yaml and its dynamic config, Keel's
// namespace set-up (setup.ts), then N API and M worker processes started with the production
// commands (`npm run gateway`: the API with a worker of its own, so that requests start eagerly,
// answers come early and streams are live; `npm run worker`). docker-compose.yml runs the same topology in
// containers with the same files. `npm run cluster` (src/bin/cluster.ts), the cluster test and the
// cluster benchmark use it.
//
// `backend: 'dev-server'` puts the Temporal CLI dev server in place of PostgreSQL and the server,
// with everything else the same: the benchmark's same-run comparison.
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, createWriteStream, mkdirSync, statSync, readdirSync, readFileSync, writeFileSync, type WriteStream } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse as parseYaml } from 'yaml';
import { loadConfig } from '../config/load.js';
import { localClusterSecrets } from './cluster-secrets.js';
import { providerTaskQueue } from '../core/task-queues.js';
import { startDevServer, type DevServer } from './dev-server.js';
import { clusterDynamicConfigYaml, singlePartitionQueues } from './dynamic-config.js';
import { freePort } from './ports.js';
import { startPostgres, type Postgres } from './postgres.js';
import { setUpTemporalSchema } from './schema.js';
import { allocateServerPorts, DYNAMIC_CONFIG_FILE, startTemporalServer, type TemporalServer } from './server.js';
import { ensureTemporalServer } from './server-install.js';
import { DEFAULT_RETENTION, parseRetention, setUpKeelNamespace } from './setup.js';

const projectRoot = resolve(fileURLToPath(new URL('../..', import.meta.url)));

export interface ClusterOptions {
  /** Everything lives here: PostgreSQL's data, logs, the file store (KEEL_DATA_DIR of every Keel process). */
  dataDir: string;
  /** KEEL_CONFIG of the API and worker processes. */
  keelConfig: string;
  apis?: number;
  workers?: number;
  /** One per API process; default: free ports. */
  apiPorts?: number[];
  /** The Temporal frontend's port; default: a free one. */
  temporalPort?: number;
  /** Extra environment for the Keel processes (provider base URLs and keys). */
  env?: Record<string, string>;
  namespace?: string;
  retention?: string;
  backend?: 'postgres' | 'dev-server';
  /** Aborted during start-up: what has started is stopped, and startCluster rejects. */
  signal?: AbortSignal;
  log?: (line: string) => void;
}

export interface KeelProcess {
  role: KeelRole;
  name: string;
  /** The API's base URL (api and gateway). */
  url?: string;
  port?: number;
  /** The `npm run …` process: what a container's init would signal. */
  pid: number;
  /** The Node process that runs src/bin/<role>.ts (npm, sh and tsx stand between). */
  keelPid(): number | undefined;
  alive(): boolean;
  /** npm's exit code once it has exited: 0 after a graceful stop. */
  exitCode(): number | null;
  /** SIGTERM to npm, as `docker stop` does; SIGKILL to the whole process group after graceMs. */
  stop(graceMs?: number): Promise<void>;
  /** SIGKILL to every process of the role at once (a crashed container). */
  kill(): Promise<void>;
  output(): string;
  logFile: string;
}

export interface Cluster {
  backend: 'postgres' | 'dev-server';
  address: string;
  namespace: string;
  dataDir: string;
  dynamicConfigFile?: string;
  postgres?: Postgres;
  temporal: { pid(): number | undefined; stop(signal?: NodeJS.Signals): Promise<void>; start(): Promise<void> };
  apis: KeelProcess[];
  workers: KeelProcess[];
  logsDir: string;
  /** The secrets this cluster made for the production config (src/temporal/cluster-secrets.ts): what another Keel process here needs in its environment. */
  secrets: Record<string, string>;
  /** Starts one more worker (or a replacement); it joins `workers`. */
  addWorker(): Promise<KeelProcess>;
  /** Starts an API on `port` (a replacement for a killed one on the same port); it joins `apis`. */
  addApi(port?: number): Promise<KeelProcess>;
  stop(): Promise<void>;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Every process below `pid`, read from /proc (children before grandchildren). */
function descendants(pid: number): number[] {
  const parent = new Map<number, number>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      // The command name may hold spaces and parentheses: the fields after the last ')' are fixed.
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      parent.set(Number(entry), ppid);
    } catch {
      // gone meanwhile
    }
  }
  const out: number[] = [];
  const queue = [pid];
  while (queue.length > 0) {
    const p = queue.shift()!;
    for (const [child, pp] of parent) {
      if (pp !== p) continue;
      out.push(child);
      queue.push(child);
    }
  }
  return out;
}

function cmdline(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ');
  } catch {
    return '';
  }
}

function npmCommand(): { cmd: string; args: string[] } {
  // Under `npm run …`, npm_execpath is npm's own script: the same npm runs the roles.
  const npmCli = process.env.npm_execpath;
  return npmCli && npmCli.endsWith('npm-cli.js') ? { cmd: process.execPath, args: [npmCli] } : { cmd: 'npm', args: [] };
}

/** `npm run <role>`: the API alone, the API with a worker (the cluster's API tier), a worker. */
export type KeelRole = 'api' | 'gateway' | 'worker';

const READY: Record<KeelRole, RegExp> = { api: /keel api listening on (\S+)/, gateway: /keel gateway listening on (\S+)/, worker: /keel worker polling/ };

interface RoleSpawn {
  role: KeelRole;
  name: string;
  env: NodeJS.ProcessEnv;
  logFile: string;
  port?: number;
  timeoutMs?: number;
}

/** `npm run <role>` in its own process group; resolves once it prints its ready line. */
export async function spawnKeelRole(s: RoleSpawn): Promise<KeelProcess> {
  const npm = npmCommand();
  const log: WriteStream = createWriteStream(s.logFile, { flags: 'a' });
  await new Promise((r) => log.once('open', r));
  const child: ChildProcess = spawn(npm.cmd, [...npm.args, 'run', '--silent', s.role], {
    cwd: projectRoot,
    env: { ...s.env, ...(s.port !== undefined && { PORT: String(s.port) }) },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  let out = '';
  const keep = (b: Buffer) => {
    out = (out + b.toString()).slice(-20_000);
    log.write(b);
  };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  void exited.then(() => log.end());
  const alive = () => child.exitCode === null && child.signalCode === null;
  const group = (signal: NodeJS.Signals) => {
    try {
      process.kill(-child.pid!, signal);
    } catch {
      // already gone
    }
  };
  /** Whether any process of the role's group is left (npm exits with its child, but to be sure). */
  const groupAlive = () => {
    try {
      process.kill(-child.pid!, 0);
      return true;
    } catch {
      return false;
    }
  };
  const until = Date.now() + (s.timeoutMs ?? 120_000);
  while (!READY[s.role].test(out)) {
    if (!alive()) throw new Error(`${s.name} exited at start (${child.exitCode ?? child.signalCode}):\n${out}`);
    if (Date.now() > until) {
      group('SIGKILL');
      throw new Error(`${s.name} not ready within ${s.timeoutMs ?? 120_000} ms:\n${out}`);
    }
    await sleep(100);
  }
  let keelPid: number | undefined;
  const proc: KeelProcess = {
    role: s.role,
    name: s.name,
    ...(s.role !== 'worker' && { url: READY[s.role].exec(out)![1], port: s.port }),
    pid: child.pid!,
    keelPid() {
      if (keelPid !== undefined && cmdline(keelPid).includes(`src/bin/${s.role}.ts`)) return keelPid;
      const matches = descendants(child.pid!).filter((p) => cmdline(p).includes(`src/bin/${s.role}.ts`));
      keelPid = matches.at(-1);
      return keelPid;
    },
    alive,
    async stop(graceMs = 30_000) {
      if (!alive()) return;
      // npm forwards SIGTERM to its child; the scripts `exec` tsx, which relays it to Node.
      child.kill('SIGTERM');
      const until = Date.now() + graceMs;
      await Promise.race([exited, sleep(graceMs)]);
      while (groupAlive() && Date.now() < until) await sleep(100);
      group('SIGKILL');
      await exited;
    },
    async kill() {
      group('SIGKILL');
      await exited;
    },
    exitCode: () => child.exitCode,
    output: () => out,
    logFile: s.logFile,
  };
  return proc;
}

/** The dynamic config file the server reads: deploy/'s, when it covers every provider of the Keel config. */
function dynamicConfigFor(keelConfigPath: string, env: NodeJS.ProcessEnv, dataDir: string, log: (line: string) => void): string {
  const providers = Object.keys(loadConfig(keelConfigPath, env).providers);
  const shared = readFileSync(DYNAMIC_CONFIG_FILE, 'utf8');
  const covered = new Set(singlePartitionQueues(parseYaml(shared)));
  if (providers.every((p) => covered.has(providerTaskQueue(p)))) return DYNAMIC_CONFIG_FILE;
  const own = join(dataDir, 'dynamicconfig.yaml');
  writeFileSync(own, clusterDynamicConfigYaml(providers));
  log(`keel: ${keelConfigPath} has providers that deploy/temporal/dynamicconfig.yaml does not list; the server reads ${own} instead`);
  return own;
}

export async function startCluster(opts: ClusterOptions): Promise<Cluster> {
  const log = opts.log ?? (() => undefined);
  const backend = opts.backend ?? 'postgres';
  const dataDir = resolve(opts.dataDir);
  mkdirSync(dataDir, { recursive: true });
  // Run as root, PostgreSQL runs as another user (postgres.ts), who must be able to pass through
  // this folder (to its own, inside): execute permission only, nobody else can list it.
  if (process.getuid?.() === 0) chmodSync(dataDir, statSync(dataDir).mode | 0o011);
  const logsDir = join(dataDir, 'logs');
  mkdirSync(logsDir, { recursive: true });
  const namespace = opts.namespace ?? process.env.TEMPORAL_NAMESPACE ?? 'default';
  // The production config's secrets (codec key, tokens) when the environment has none: made once per data folder.
  const secrets = localClusterSecrets(dataDir, { ...process.env, ...opts.env });
  const retentionSeconds = parseRetention(opts.retention ?? process.env.KEEL_NAMESPACE_RETENTION ?? DEFAULT_RETENTION);

  // Started so far, for stop() (also on a failed start).
  let postgres: Postgres | undefined;
  let server: TemporalServer | undefined;
  let devServer: DevServer | undefined;
  const apis: KeelProcess[] = [];
  const workers: KeelProcess[] = [];
  let stopped = false;
  async function stop(): Promise<void> {
    if (stopped) return;
    stopped = true;
    await Promise.all(apis.map((p) => p.stop(10_000)));
    await Promise.all(workers.map((p) => p.stop(30_000)));
    await server?.stop('SIGTERM');
    await devServer?.stop('SIGTERM');
    await postgres?.stop('fast');
  }

  const checkpoint = () => {
    if (opts.signal?.aborted) throw new Error('stopped during start-up');
  };
  try {
    checkpoint();
    let address: string;
    let temporal: Cluster['temporal'];
    let dynamicConfigFile: string | undefined;
    if (backend === 'postgres') {
      const tools = ensureTemporalServer(process.env, log);
      checkpoint();
      const pgPort = await freePort();
      postgres = await startPostgres({ dataDir: join(dataDir, 'postgres'), port: pgPort, logFile: join(logsDir, 'postgres.log') });
      log(`keel: PostgreSQL on ${postgres.host}:${postgres.port} (data in ${postgres.dataDir})`);
      await setUpTemporalSchema({ sqlTool: tools.sql, schemaDir: tools.postgresSchemaDir, host: postgres.host, port: postgres.port, user: postgres.user });
      log(`keel: Temporal schema up to date (temporal, temporal_visibility)`);
      checkpoint();
      dynamicConfigFile = dynamicConfigFor(opts.keelConfig, { ...process.env, ...secrets, ...opts.env }, dataDir, log);
      server = await startTemporalServer({
        serverBin: tools.server,
        ports: await allocateServerPorts(opts.temporalPort),
        postgres: { host: postgres.host, port: postgres.port, user: postgres.user },
        dynamicConfigFile,
        logFile: join(logsDir, 'temporal.log'),
      });
      address = server.address;
      temporal = server;
      log(`keel: Temporal server ${tools.version} on ${address}`);
    } else {
      devServer = await startDevServer({ dataDir: join(dataDir, 'dev-server'), port: opts.temporalPort ?? (await freePort()), headless: true });
      address = devServer.address;
      const ds = devServer;
      temporal = { pid: () => ds.process.pid, stop: (s) => ds.stop(s), start: () => Promise.reject(new Error('the dev-server backend is not restartable here')) };
      log(`keel: Temporal dev server on ${address}`);
    }
    checkpoint();
    await setUpKeelNamespace({ address, namespace, retentionSeconds, log: (l) => log(`keel: setup: ${l}`) });
    checkpoint();

    // The admin key goes to the APIs alone: workers never need it.
    const { KEEL_ADMIN_KEY: adminFromEnv, ...inherited } = process.env;
    const { KEEL_ADMIN_KEY: adminMade, ...roleSecrets } = secrets;
    const adminKey = adminFromEnv || adminMade;
    const roleEnv: NodeJS.ProcessEnv = {
      ...inherited,
      ...roleSecrets,
      KEEL_CONFIG: resolve(opts.keelConfig),
      KEEL_DATA_DIR: dataDir,
      TEMPORAL_ADDRESS: address,
      TEMPORAL_NAMESPACE: namespace,
      ...opts.env,
    };
    let apiCount = 0;
    let workerCount = 0;
    const addWorker = async () => {
      const name = `worker-${++workerCount}`;
      // Several workers on one machine: each its own metrics port (named in its ready line).
      const w = await spawnKeelRole({ role: 'worker', name, env: { ...roleEnv, KEEL_METRICS_PORT: process.env.KEEL_METRICS_PORT ?? '0' }, logFile: join(logsDir, `${name}.log`) });
      workers.push(w);
      return w;
    };
    const addApi = async (port?: number) => {
      const name = `api-${++apiCount}`;
      const a = await spawnKeelRole({ role: 'gateway', name, env: { ...roleEnv, ...(adminKey && { KEEL_ADMIN_KEY: adminKey }) }, port: port ?? (await freePort()), logFile: join(logsDir, `${name}.log`) });
      apis.push(a);
      return a;
    };
    // Workers first: an API with no worker polling answers /healthz with 503.
    await Promise.all(Array.from({ length: opts.workers ?? 2 }, () => addWorker()));
    checkpoint();
    for (let i = 0; i < (opts.apis ?? 2); i++) await addApi(opts.apiPorts?.[i]);
    checkpoint();
    return { backend, address, namespace, dataDir, dynamicConfigFile, postgres, temporal, apis, workers, logsDir, secrets, addWorker, addApi, stop };
  } catch (err) {
    await stop().catch(() => undefined);
    throw err;
  }
}

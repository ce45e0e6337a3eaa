// The Temporal server (all four services in one process) as a child process, with the config file
// that docker-compose.yml's temporal service mounts: deploy/temporal/config.yaml, filled in from
// the environment. Restartable on the same ports (the local cluster's test restarts it).
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { waitForTemporal } from './dev-server.js';
import { freeLowPorts } from './ports.js';

const projectRoot = resolve(fileURLToPath(new URL('../..', import.meta.url)));
/** The Temporal server's files, shared with docker-compose.yml. */
export const DEPLOY_TEMPORAL_DIR = join(projectRoot, 'deploy', 'temporal');
export const SERVER_CONFIG_FILE = join(DEPLOY_TEMPORAL_DIR, 'config.yaml');
export const DYNAMIC_CONFIG_FILE = join(DEPLOY_TEMPORAL_DIR, 'dynamicconfig.yaml');

/** The template's port variables (deploy/temporal/config.yaml), one service's gRPC and membership port each. */
const PORT_VARS = [
  'FRONTEND_GRPC_PORT',
  'FRONTEND_HTTP_PORT',
  'FRONTEND_MEMBERSHIP_PORT',
  'HISTORY_GRPC_PORT',
  'HISTORY_MEMBERSHIP_PORT',
  'MATCHING_GRPC_PORT',
  'MATCHING_MEMBERSHIP_PORT',
  'WORKER_GRPC_PORT',
  'WORKER_MEMBERSHIP_PORT',
] as const;
export type ServerPorts = Record<(typeof PORT_VARS)[number], number>;

export async function allocateServerPorts(frontendPort?: number): Promise<ServerPorts> {
  const taken = new Set(frontendPort ? [frontendPort] : []);
  const ports = await freeLowPorts(PORT_VARS.length - (frontendPort ? 1 : 0), '127.0.0.1', taken);
  const out = {} as ServerPorts;
  for (const v of PORT_VARS) out[v] = v === 'FRONTEND_GRPC_PORT' && frontendPort ? frontendPort : ports.shift()!;
  return out;
}

export interface TemporalServerOptions {
  serverBin: string;
  ports: ServerPorts;
  postgres: { host: string; port: number; user: string; password?: string };
  dynamicConfigFile: string;
  logFile: string;
  /** Default warn: the server logs every poll timeout at info. */
  logLevel?: string;
}

export interface TemporalServer {
  address: string;
  pid(): number | undefined;
  /** SIGTERM: the server drains and stops its services (up to ~30 s); SIGKILL: a crash. */
  stop(signal?: NodeJS.Signals): Promise<void>;
  /** Starts it again with the same ports and files; resolves once the frontend answers. */
  start(): Promise<void>;
}

/** The environment that fills in deploy/temporal/config.yaml (docker-compose.yml sets the same names). */
export function serverEnvironment(opts: Omit<TemporalServerOptions, 'serverBin' | 'logFile'>): Record<string, string> {
  return {
    TEMPORAL_SERVER_CONFIG_FILE_PATH: SERVER_CONFIG_FILE,
    DYNAMIC_CONFIG_FILE_PATH: opts.dynamicConfigFile,
    POSTGRES_SEEDS: opts.postgres.host,
    DB_PORT: String(opts.postgres.port),
    POSTGRES_USER: opts.postgres.user,
    POSTGRES_PWD: opts.postgres.password ?? '',
    BIND_ON_IP: '127.0.0.1',
    TEMPORAL_BROADCAST_ADDRESS: '127.0.0.1',
    LOG_LEVEL: opts.logLevel ?? 'warn',
    ...Object.fromEntries(Object.entries(opts.ports).map(([k, v]) => [k, String(v)])),
  };
}

export async function startTemporalServer(opts: TemporalServerOptions): Promise<TemporalServer> {
  const address = `127.0.0.1:${opts.ports.FRONTEND_GRPC_PORT}`;
  let child: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();

  async function start(): Promise<void> {
    const log = createWriteStream(opts.logFile, { flags: 'a' });
    await new Promise((r) => log.once('open', r));
    // No authorizer: the frontend listens on loopback only. (In docker-compose.yml it is published
    // on the host's 7233; put an authorizer or a network policy in front of it in production.)
    // Its own process group: a Ctrl-C in the terminal reaches the runner, which stops things in order.
    child = spawn(opts.serverBin, ['--allow-no-auth', 'start'], { env: { ...process.env, ...serverEnvironment(opts) }, stdio: ['ignore', log, log], detached: true });
    const c = child;
    exited = new Promise((r) => c.once('exit', () => r()));
    void exited.then(() => log.close());
    const early = exited.then(() => {
      throw new Error(`the Temporal server exited at start (code ${c.exitCode ?? c.signalCode}); see ${opts.logFile}`);
    });
    early.catch(() => undefined);
    try {
      await Promise.race([waitForTemporal(address, 120_000), early]);
    } catch (err) {
      c.kill('SIGKILL');
      throw err;
    }
  }

  await start();
  return {
    address,
    pid: () => (child && child.exitCode === null && child.signalCode === null ? child.pid : undefined),
    async stop(signal: NodeJS.Signals = 'SIGTERM') {
      const c = child;
      if (!c || c.exitCode !== null || c.signalCode !== null) return;
      c.kill(signal);
      const timer = setTimeout(() => c.kill('SIGKILL'), 45_000);
      await exited;
      clearTimeout(timer);
    },
    start,
  };
}

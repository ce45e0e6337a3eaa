// Runs the Temporal CLI dev server as a child process with its SQLite file in Keel's data
// folder, so a restart keeps every request, and Keel's search attributes registered.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { Connection } from '@temporalio/client';
import { SearchAttributeType } from '@temporalio/common';
import { KEEL_SEARCH_ATTRIBUTES } from '../core/search-attributes.js';
import { ensureTemporalCli } from './cli.js';
import { DEV_SERVER_DYNAMIC_CONFIG } from './dynamic-config.js';

export interface DevServerOptions {
  dataDir: string;
  ip?: string;
  port?: number;
  uiPort?: number;
  headless?: boolean;
  namespace?: string;
  /** The codec server the UI decodes payloads through (Keel's `/codec` route), for the UI's browser. */
  uiCodecEndpoint?: string;
  /** Where the server's own log goes; default: a file in dataDir. */
  stdio?: 'inherit' | 'ignore';
}

export interface DevServer {
  address: string;
  uiUrl?: string;
  process: ChildProcess;
  stop(signal?: NodeJS.Signals): Promise<void>;
}

const CLI_TYPE: Record<string, string> = {
  [SearchAttributeType.KEYWORD]: 'Keyword',
  [SearchAttributeType.TEXT]: 'Text',
  [SearchAttributeType.INT]: 'Int',
  [SearchAttributeType.DOUBLE]: 'Double',
  [SearchAttributeType.BOOL]: 'Bool',
  [SearchAttributeType.DATETIME]: 'Datetime',
  [SearchAttributeType.KEYWORD_LIST]: 'KeywordList',
};

/**
 * The dev server's defaults are tuned for a shared cluster, not for one process serving
 * interactive traffic; Keel runs it with the values in dynamic-config.ts (a cluster gets the same
 * from deploy/temporal/dynamicconfig.yaml).
 */
export { DEV_SERVER_DYNAMIC_CONFIG };

/**
 * Write-ahead logging without an fsync per commit: a commit survives the server process being
 * killed (the WAL is in the OS's page cache), only an OS crash or power loss can drop the last
 * commits. With SQLite's default rollback journal every task hop paid an fsync, and the server
 * managed 26 trivial workflows a second here instead of 58 (BENCHMARKS.md).
 */
export const SQLITE_PRAGMAS = ['journal_mode=wal', 'synchronous=normal'];

/** The CLI takes each value as JSON: a duration is a quoted string. */
export function devServerDynamicConfigArgs(extra: Record<string, string | number> = {}): string[] {
  return Object.entries({ ...DEV_SERVER_DYNAMIC_CONFIG, ...extra }).flatMap(([k, v]) => ['--dynamic-config-value', `${k}=${JSON.stringify(v)}`]);
}

export async function waitForTemporal(address: string, timeoutMs = 60_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  let lastError: unknown;
  while (Date.now() < until) {
    try {
      const connection = await Connection.connect({ address, connectTimeout: 1_000 });
      try {
        await connection.healthService.check({});
        return;
      } finally {
        await connection.close();
      }
    } catch (err) {
      lastError = err;
      await new Promise((r) => setTimeout(r, 250));
    }
  }
  throw new Error(`Temporal at ${address} did not become ready within ${timeoutMs} ms: ${(lastError as Error)?.message}`);
}

export async function startDevServer(opts: DevServerOptions): Promise<DevServer> {
  const cli = ensureTemporalCli();
  mkdirSync(opts.dataDir, { recursive: true });
  const ip = opts.ip ?? '127.0.0.1';
  const port = opts.port ?? 7233;
  const args = [
    'server', 'start-dev',
    '--db-filename', join(opts.dataDir, 'temporal.sqlite'),
    ...SQLITE_PRAGMAS.flatMap((p) => ['--sqlite-pragma', p]),
    '--ip', ip,
    '--port', String(port),
    '--log-level', 'warn',
    '--ui-disable-news-fetch',
    ...devServerDynamicConfigArgs(),
    ...(opts.namespace && opts.namespace !== 'default' ? ['--namespace', opts.namespace] : []),
    ...(opts.headless ? ['--headless'] : ['--ui-port', String(opts.uiPort ?? port + 1000)]),
    ...(!opts.headless && opts.uiCodecEndpoint ? ['--ui-codec-endpoint', opts.uiCodecEndpoint] : []),
    ...KEEL_SEARCH_ATTRIBUTES.flatMap((k) => ['--search-attribute', `${k.name}=${CLI_TYPE[k.type]}`]),
  ];
  const child = spawn(cli, args, { stdio: ['ignore', opts.stdio ?? 'ignore', opts.stdio ?? 'ignore'], detached: false });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const address = `${ip}:${port}`;
  const early = exited.then(() => {
    throw new Error(`the Temporal dev server exited at start (exit code ${child.exitCode}); is port ${port} in use?`);
  });
  early.catch(() => undefined);
  try {
    await Promise.race([waitForTemporal(address), early]);
  } catch (err) {
    // A server that never became ready must not linger holding the port and the SQLite file.
    child.kill('SIGKILL');
    throw err;
  }
  return {
    address,
    ...(!opts.headless && { uiUrl: `http://${ip === '127.0.0.1' ? 'localhost' : ip}:${opts.uiPort ?? port + 1000}` }),
    process: child,
    async stop(signal: NodeJS.Signals = 'SIGTERM') {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill(signal);
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

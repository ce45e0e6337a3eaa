// A PostgreSQL server of the machine's own installation (initdb, postgres) as a child process, with
// its data folder wherever the caller says: the local cluster's persistence (cluster.ts). Loopback
// TCP only (no Unix socket), trust authentication: for one machine, never for a shared host.
//
// PostgreSQL refuses to run as root. Run as root (CI, containers), it is started as the `postgres`
// user if there is one, else `nobody`, and its data folder is handed to that user.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { chownSync, createWriteStream, existsSync, mkdirSync, readdirSync, readFileSync, realpathSync, statSync } from 'node:fs';
import { delimiter, dirname, join, resolve } from 'node:path';
import { isExecutable } from './executable.js';

export const POSTGRES_USER = 'temporal';

export interface PostgresOptions {
  /** The cluster's data folder (PGDATA); created by initdb when empty. */
  dataDir: string;
  port: number;
  /** Where the server's log goes (appended). */
  logFile: string;
}

export interface Postgres {
  host: string;
  port: number;
  user: string;
  dataDir: string;
  pid(): number | undefined;
  /** `fast`: roll back open transactions and close connections, then a clean shutdown (SIGINT). */
  stop(mode?: 'fast' | 'immediate'): Promise<void>;
  /** Starts it again on the same folder and port. */
  start(): Promise<void>;
}

/** The folder holding initdb and postgres: POSTGRES_BIN_DIR, else PATH, else Debian's /usr/lib/postgresql/<newest>/bin. */
export function postgresBinDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.POSTGRES_BIN_DIR) return env.POSTGRES_BIN_DIR;
  for (const dir of (env.PATH ?? '').split(delimiter)) {
    // Debian links a few of them into /usr/local/bin or /usr/bin; the real folder has them all (pg_isready).
    if (dir && isExecutable(join(dir, 'initdb')) && isExecutable(join(dir, 'postgres'))) return dirname(realpathSync(join(dir, 'initdb')));
  }
  const debian = '/usr/lib/postgresql';
  if (existsSync(debian)) {
    const versions = readdirSync(debian).filter((v) => isExecutable(join(debian, v, 'bin', 'initdb'))).sort((a, b) => Number(b) - Number(a));
    if (versions.length > 0) return join(debian, versions[0], 'bin');
  }
  throw new Error('PostgreSQL is not installed (no initdb and postgres on PATH or in /usr/lib/postgresql/*/bin); install it (Debian: apt-get install postgresql) or set POSTGRES_BIN_DIR');
}

interface RunAs {
  uid: number;
  gid: number;
  name: string;
}

/** Root cannot run PostgreSQL: the first of `postgres` and `nobody` that /etc/passwd has. */
function unprivilegedUser(): RunAs | undefined {
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) return undefined;
  const passwd = readFileSync('/etc/passwd', 'utf8').split('\n').map((l) => l.split(':'));
  for (const name of ['postgres', 'nobody']) {
    const row = passwd.find((f) => f[0] === name);
    if (row) return { name, uid: Number(row[2]), gid: Number(row[3]) };
  }
  throw new Error('running as root, and neither a postgres nor a nobody user exists to run PostgreSQL as');
}

/** Whether `user` can reach `dir`: every folder above it must let others (or that user) through. */
function reachable(dir: string, user: RunAs): boolean {
  for (let d = dirname(resolve(dir)); ; d = dirname(d)) {
    const st = statSync(d);
    const through = st.uid === user.uid ? st.mode & 0o100 : st.gid === user.gid ? st.mode & 0o010 : st.mode & 0o001;
    if (!through) return false;
    if (d === dirname(d)) return true;
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function startPostgres(opts: PostgresOptions): Promise<Postgres> {
  const bin = postgresBinDir();
  const runAs = unprivilegedUser();
  const dataDir = resolve(opts.dataDir);
  const host = '127.0.0.1';
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  if (runAs) {
    if (!reachable(dataDir, runAs)) {
      throw new Error(`PostgreSQL runs as the user ${runAs.name} (this process is root), who cannot reach ${dataDir}: choose a data folder under a world-readable path (e.g. in /tmp)`);
    }
    chownSync(dataDir, runAs.uid, runAs.gid);
  }
  const ids = runAs ? { uid: runAs.uid, gid: runAs.gid } : {};
  if (!existsSync(join(dataDir, 'PG_VERSION'))) {
    // --no-sync: a fresh, empty cluster; PostgreSQL itself still fsyncs every commit afterwards.
    execFileSync(join(bin, 'initdb'), ['-D', dataDir, '-U', POSTGRES_USER, '-A', 'trust', '-E', 'UTF8', '--locale=C', '--no-sync'], {
      ...ids,
      stdio: ['ignore', 'ignore', 'pipe'],
      cwd: dataDir,
    });
  }
  let child: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();

  async function ready(timeoutMs = 60_000): Promise<void> {
    const until = Date.now() + timeoutMs;
    for (;;) {
      if (!child || child.exitCode !== null || child.signalCode !== null) {
        throw new Error(`PostgreSQL exited at start (code ${child?.exitCode ?? child?.signalCode}); see ${opts.logFile}`);
      }
      try {
        execFileSync(join(bin, 'pg_isready'), ['-h', host, '-p', String(opts.port), '-U', POSTGRES_USER, '-d', 'postgres', '-q'], { stdio: 'ignore' });
        // Another server on the port would answer too: ours must still be running.
        await sleep(100);
        if (child.exitCode !== null || child.signalCode !== null) continue;
        return;
      } catch {
        if (Date.now() > until) throw new Error(`PostgreSQL not ready on ${host}:${opts.port} within ${timeoutMs} ms; see ${opts.logFile}`);
        await sleep(200);
      }
    }
  }

  async function start(): Promise<void> {
    const log = createWriteStream(opts.logFile, { flags: 'a' });
    await new Promise((r) => log.once('open', r));
    child = spawn(
      join(bin, 'postgres'),
      ['-D', dataDir, '-p', String(opts.port), '-c', `listen_addresses=${host}`, '-c', 'unix_socket_directories=', '-c', 'max_connections=200'],
      // Its own process group: a Ctrl-C in the terminal reaches the runner, which stops things in order.
      { ...ids, cwd: dataDir, stdio: ['ignore', log, log], detached: true },
    );
    const c = child;
    exited = new Promise((r) => c.once('exit', () => r()));
    void exited.then(() => log.close());
    try {
      await ready();
    } catch (err) {
      c.kill('SIGKILL');
      throw err;
    }
  }

  await start();
  return {
    host,
    port: opts.port,
    user: POSTGRES_USER,
    dataDir,
    pid: () => (child && child.exitCode === null && child.signalCode === null ? child.pid : undefined),
    async stop(mode = 'fast') {
      const c = child;
      if (!c || c.exitCode !== null || c.signalCode !== null) return;
      // PostgreSQL's shutdown modes are signals to the postmaster: SIGINT fast, SIGQUIT immediate.
      c.kill(mode === 'fast' ? 'SIGINT' : 'SIGQUIT');
      const timer = setTimeout(() => c.kill('SIGKILL'), 30_000);
      await exited;
      clearTimeout(timer);
    },
    start,
  };
}

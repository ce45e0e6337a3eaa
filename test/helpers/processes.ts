// Keel's roles as real child processes (worker, API) against a dev server with its SQLite file in
// a temp folder: what the durability test kills and restarts, and what the benchmarks measure.
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { WORKER_PROCESS_ENV } from '../../src/worker/process-env.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

/**
 * Spawns an entry point (`src/bin/…`) with `env` added, and resolves once it prints its ready line
 * (a stale poller of a killed worker would fool /healthz). The child is pushed to `into` at once,
 * so a test's cleanup kills it even when it never becomes ready.
 */
export async function spawnEntry(entry: string, ready: RegExp, env: NodeJS.ProcessEnv, into: ChildProcess[], timeoutMs = 120_000): Promise<ChildProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', entry], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'inherit'] });
  into.push(child);
  let out = '';
  child.stdout!.on('data', (b: Buffer) => {
    out = (out + b.toString()).slice(-4_000);
  });
  const until = Date.now() + timeoutMs;
  while (!ready.test(out)) {
    if (child.exitCode !== null) throw new Error(`${entry} exited at start:\n${out}`);
    if (Date.now() > until) throw new Error(`${entry} not ready within ${timeoutMs / 1000} s:\n${out}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return child;
}

export { freePort } from '../../src/temporal/ports.js';

function statusMb(pid: number, field: 'VmHWM' | 'VmRSS'): number | undefined {
  try {
    const m = new RegExp(`${field}:\\s+(\\d+) kB`).exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : undefined;
  } catch {
    return undefined;
  }
}

export interface RoleProcess {
  child: ChildProcess;
  pid: number;
  /** Peak resident set (VmHWM) so far, in MB; undefined once the process has gone. */
  peakRssMb(): number | undefined;
  /** Resident set (VmRSS) now, in MB; undefined once the process has gone. */
  rssMb(): number | undefined;
  kill(signal?: NodeJS.Signals): Promise<void>;
  output(): string;
}

export interface RoleEnv {
  configPath: string;
  temporalAddress: string;
  dataDir: string;
  port?: number;
  /** More environment for the process (e.g. KEEL_ADMIN_KEY, KEEL_TASK_QUEUE, KEEL_METRICS_PORT). */
  env?: Record<string, string>;
}

/** Starts `src/bin/worker.ts` or `src/bin/api.ts`; resolves once it prints its ready line. */
export async function startRole(role: 'worker' | 'api', env: RoleEnv, timeoutMs = 60_000): Promise<RoleProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', `src/bin/${role}.ts`], {
    cwd: ROOT,
    env: {
      ...process.env,
      KEEL_CONFIG: env.configPath,
      TEMPORAL_ADDRESS: env.temporalAddress,
      KEEL_DATA_DIR: env.dataDir,
      // The worker runs as `npm run worker` runs it.
      ...(role === 'worker' && { ...WORKER_PROCESS_ENV, NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} ${WORKER_PROCESS_ENV.NODE_OPTIONS}`.trim() }),
      ...(env.port !== undefined && { PORT: String(env.port) }),
      // A worker's metrics on any free port: other test runs on this machine may hold 9464.
      ...(role === 'worker' && { KEEL_METRICS_PORT: '0' }),
      ...env.env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  const keep = (b: Buffer) => {
    out = (out + b.toString()).slice(-20_000);
  };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const ready = role === 'worker' ? /keel worker polling/ : /keel api listening/;
  const until = Date.now() + timeoutMs;
  while (!ready.test(out)) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`${role} exited at start:\n${out}`);
    if (Date.now() > until) {
      child.kill('SIGKILL');
      throw new Error(`${role} not ready within ${timeoutMs} ms:\n${out}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    child,
    pid: child.pid!,
    peakRssMb: () => statusMb(child.pid!, 'VmHWM'),
    rssMb: () => statusMb(child.pid!, 'VmRSS'),
    async kill(signal: NodeJS.Signals = 'SIGTERM') {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill(signal);
      const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
      await exited;
      clearTimeout(timer);
    },
    output: () => out,
  };
}

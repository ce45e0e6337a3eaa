// Child processes of the gateway benchmark: each in a process group of its own, so stopping it
// stops what it started too (`npm start` runs tsx, which runs node, which runs the Temporal dev
// server; LiteLLM's CLI runs uvicorn). Every child is registered, and all of them are stopped on
// exit, on Ctrl-C, on SIGTERM and on an uncaught error.
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';

export interface Child {
  name: string;
  process: ChildProcess;
  pid: number;
  /** The last 50,000 characters of stdout and stderr. */
  output(): string;
  alive(): boolean;
  /** Resolves once `ready` matches the output; rejects if the child exits or the time runs out. */
  waitFor(ready: RegExp, timeoutMs: number): Promise<void>;
  /** SIGINT/SIGTERM to the whole group, SIGKILL after `graceMs`. */
  stop(signal?: NodeJS.Signals, graceMs?: number): Promise<void>;
}

/** Everything started and not yet stopped, in start order: stopped in reverse. */
interface Entry {
  name: string;
  pids: () => number[];
  /** Children in groups of their own: a signal to -pid reaches the whole group. */
  group: boolean;
  stop: () => Promise<void>;
  /** What a last-resort kill does besides SIGKILL (remove a temp folder). */
  now?: () => void;
}
const entries: Entry[] = [];
let stopping = false;

function forget(entry: Entry): void {
  const i = entries.indexOf(entry);
  if (i >= 0) entries.splice(i, 1);
}

function signalGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    // the group is gone already
  }
}

/** Processes started elsewhere (test/helpers/processes.ts, src/temporal/dev-server.ts): their pids for a last-resort kill, and their own stop. Returns the unregister function. */
export function registerStop(name: string, pids: () => number[], stop: () => Promise<void>, now?: () => void): () => void {
  const entry: Entry = { name, pids, group: false, stop, ...(now && { now }) };
  entries.push(entry);
  return () => forget(entry);
}

export function startProcess(name: string, command: string, args: string[], opts: SpawnOptions = {}): Child {
  const child = spawn(command, args, { ...opts, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  if (child.pid === undefined) throw new Error(`${name}: could not start ${command}`);
  let out = '';
  const keep = (b: Buffer) => {
    out = (out + b.toString()).slice(-50_000);
  };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const pid = child.pid;
  const alive = () => child.exitCode === null && child.signalCode === null;
  const entry: Entry = { name, pids: () => [pid], group: true, stop: () => handle.stop() };
  const handle: Child = {
    name,
    process: child,
    pid,
    output: () => out,
    alive,
    async waitFor(ready, timeoutMs) {
      const until = Date.now() + timeoutMs;
      while (!ready.test(out)) {
        if (!alive()) throw new Error(`${name} exited at start (code ${child.exitCode}, signal ${child.signalCode}):\n${out.slice(-5_000)}`);
        if (Date.now() > until) throw new Error(`${name} not ready within ${timeoutMs} ms:\n${out.slice(-5_000)}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    },
    async stop(signal = 'SIGTERM', graceMs = 15_000) {
      forget(entry);
      if (alive()) {
        signalGroup(pid, signal);
        const timer = setTimeout(() => signalGroup(pid, 'SIGKILL'), graceMs);
        await exited;
        clearTimeout(timer);
      }
      // Whatever the group leader left behind (a dev server it had no time to stop).
      signalGroup(pid, 'SIGKILL');
    },
  };
  entries.push(entry);
  return handle;
}

/** Synchronous last resort: SIGKILL everything still registered. */
export function killAllNow(): void {
  for (const e of entries.splice(0).reverse()) {
    e.now?.();
    for (const pid of e.pids()) {
      if (e.group) signalGroup(pid, 'SIGKILL');
      else {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // gone already
        }
      }
    }
  }
}

/** Stops everything still registered, the last started first (a worker before its server). */
export async function stopAll(): Promise<void> {
  stopping = true;
  while (entries.length > 0) {
    const e = entries.pop()!;
    await e.stop().catch((err) => console.error(`stopping ${e.name}: ${(err as Error).message}`));
  }
}

/** Runs a bench's `main`, then exits: 0 when it finished, 1 (after stopping every child) when it failed. */
export function runBench(main: () => Promise<void>): void {
  main().then(
    () => process.exit(0),
    (err) => {
      console.error(err);
      void stopAll().finally(() => process.exit(1));
    },
  );
}

let installed = false;
/** Stops every child when this process ends, however it ends. */
export function stopChildrenOnExit(): void {
  if (installed) return;
  installed = true;
  process.once('exit', killAllNow);
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(signal, () => {
      console.error(`\n${signal}: stopping every child process ...`);
      void stopAll().finally(() => process.exit(130));
      // A second signal, or a stop that hangs: no more waiting.
      setTimeout(() => {
        killAllNow();
        process.exit(130);
      }, 20_000).unref();
    });
  }
  // While stopping, calls still in flight fail as their servers go (a closed gRPC channel): say
  // so and let the stop finish. Otherwise an uncaught error ends the run, after a last-resort kill.
  const fatal = (err: unknown) => {
    if (stopping) {
      console.error(`while stopping: ${(err as Error)?.message ?? err}`);
      return;
    }
    console.error(err);
    killAllNow();
    process.exit(1);
  };
  process.on('uncaughtException', fatal);
  process.on('unhandledRejection', fatal);
}

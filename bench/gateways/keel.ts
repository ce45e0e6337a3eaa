// Keel as users run it, each in processes of its own:
// - `npm start` (src/bin/start.ts: its own dev server with SQLite in the data folder and the UI,
//   one worker and the API in one process) with a one-target config in front of the external fake;
// - the split: `src/bin/worker.ts` and `src/bin/api.ts` as `npm run worker` / `npm run api` run
//   them, against a dev server started with Keel's settings (src/temporal/dev-server.ts).
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { freePort, startRole, type RoleProcess } from '../../test/helpers/processes.js';
import { registerStop, startProcess, type Child } from './children.js';
import { ROOT } from './paths.js';

const START_TIMEOUT_MS = 240_000; // the first start bundles the workflows (webpack) on a busy machine

/**
 * One provider, one public model: what a user puts in front of one OpenAI-compatible endpoint.
 * `chat-call` and `chat-recorded` are the same target at the other answer points (docs/REQUESTS.md).
 */
export function oneTargetConfig(fakeUrl: string): string {
  return [
    'providers:',
    `  fake: { type: openai, baseURL: ${fakeUrl}, apiKey: bench }`,
    'models:',
    '  chat: { targets: [fake/m] }',
    '  chat-call: { targets: [fake/m], answer: call }',
    '  chat-recorded: { targets: [fake/m], answer: recorded }',
    '',
  ].join('\n');
}

/** The environment with nothing from the caller's shell that would point Keel elsewhere. */
export function cleanEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const k of ['TEMPORAL_ADDRESS', 'TEMPORAL_NAMESPACE', 'KEEL_TASK_QUEUE', 'HOST', 'PORT', 'KEEL_URL', 'KEEL_CONFIG', 'KEEL_DATA_DIR', 'KEEL_LOG_LEVEL', 'NODE_TEST_CONTEXT']) delete env[k];
  return { ...env, ...extra };
}

export interface RunningKeel {
  /** The OpenAI SDK's base URL. */
  baseURL: string;
  stop(): Promise<void>;
}

async function waitHealthy(apiUrl: string, timeoutMs: number, what: () => string): Promise<void> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const status = await fetch(`${apiUrl}/healthz`, { signal: AbortSignal.timeout(5_000) }).then(
      (r) => r.status,
      () => 0,
    );
    if (status === 200) return;
    if (Date.now() > until) throw new Error(`Keel at ${apiUrl} not healthy within ${timeoutMs} ms (last status ${status}):\n${what().slice(-5_000)}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

export interface NpmStartOptions {
  /** The YAML config; default: one target in front of the fake. */
  config?: string;
  /** Extra environment, e.g. TEMPORAL_ADDRESS to use a server it does not start. */
  env?: Record<string, string>;
  /** How to run it: `npm start` (default), or a command line of its own (the gap study). */
  command?: [string, ...string[]];
  label?: string;
}

/** `npm start` in a temp folder of its own (config, data dir), on free ports. */
export async function startKeelNpmStart(fakeUrl: string, workDir: string, opts: NpmStartOptions = {}): Promise<RunningKeel & { child: Child; temporalAddress: string }> {
  const dir = join(workDir, opts.label ?? 'npm-start');
  mkdirSync(dir, { recursive: true });
  const configPath = join(dir, 'keel.config.yaml');
  writeFileSync(configPath, opts.config ?? oneTargetConfig(fakeUrl));
  const apiPort = await freePort();
  const temporalPort = await freePort();
  const [command, ...args] = opts.command ?? ['npm', 'start'];
  const child = startProcess(opts.label ?? 'keel (npm start)', command, args, {
    cwd: ROOT,
    env: cleanEnv({
      KEEL_CONFIG: configPath,
      KEEL_DATA_DIR: join(dir, 'data'),
      PORT: String(apiPort),
      TEMPORAL_PORT: String(temporalPort),
      TEMPORAL_UI_PORT: String(await freePort()),
      ...opts.env,
    }),
  });
  await child.waitFor(/Keel is running/, START_TIMEOUT_MS);
  const apiUrl = `http://127.0.0.1:${apiPort}`;
  await waitHealthy(apiUrl, 60_000, child.output);
  // SIGINT, as Ctrl-C: start.ts stops its dev server itself.
  const temporalAddress = opts.env?.TEMPORAL_ADDRESS ?? `127.0.0.1:${temporalPort}`;
  return { baseURL: `${apiUrl}/v1`, child, temporalAddress, stop: () => child.stop('SIGINT', 30_000) };
}

/** `npm run worker` + `npm run api` against a running Temporal server. */
export async function startKeelSplit(fakeUrl: string, workDir: string, temporalAddress: string, opts: { config?: string; label?: string } = {}): Promise<RunningKeel & { roles: RoleProcess[] }> {
  const dir = join(workDir, opts.label ?? 'split');
  mkdirSync(dir, { recursive: true });
  const configPath = join(dir, 'keel.config.yaml');
  // Its own task queue: the split may share its dev server with other Keel instances.
  writeFileSync(configPath, `temporal: { taskQueue: keel-bench-${opts.label ?? 'split'} }\n${opts.config ?? oneTargetConfig(fakeUrl)}`);
  const roleEnv = { configPath, temporalAddress, dataDir: join(dir, 'data') };
  const roles: RoleProcess[] = [];
  const stop = async () => {
    for (const r of roles.reverse()) await r.kill();
  };
  const unregister = registerStop(`keel split (${opts.label ?? 'split'})`, () => roles.map((r) => r.pid), stop);
  try {
    roles.push(await startRole('worker', roleEnv, START_TIMEOUT_MS));
    const apiPort = await freePort();
    roles.push(await startRole('api', { ...roleEnv, port: apiPort }, START_TIMEOUT_MS));
    const apiUrl = `http://127.0.0.1:${apiPort}`;
    await waitHealthy(apiUrl, 60_000, () => roles.map((r) => r.output()).join('\n'));
    return {
      baseURL: `${apiUrl}/v1`,
      roles,
      stop: async () => {
        unregister();
        await stop();
      },
    };
  } catch (err) {
    unregister();
    await stop();
    throw err;
  }
}

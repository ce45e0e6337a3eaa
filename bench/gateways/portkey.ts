// Portkey's open-source gateway as a peer: `npm install` of the pinned package into a git-ignored
// folder (first run only, without install scripts: its only one is patch-package, which has
// nothing to patch in the published package), started headless on a free loopback port. Each
// request names its target in the `x-portkey-config` header: provider `openai` with the fake as
// `custom_host` (Portkey's documented way to reach a self-hosted OpenAI-compatible server).
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { freePort } from '../../test/helpers/processes.js';
import { startProcess } from './children.js';
import type { RunningPeer } from './litellm.js';
import { PEERS_DIR } from './paths.js';

const run = promisify(execFile);

export const PORTKEY_VERSION = '1.15.2';
const DIR = join(PEERS_DIR, 'portkey');
const PACKAGE_JSON = join(DIR, 'node_modules', '@portkey-ai', 'gateway', 'package.json');
const ENTRY = join(DIR, 'node_modules', '@portkey-ai', 'gateway', 'build', 'start-server.js');
const START_TIMEOUT_MS = 60_000;

function installedVersion(): string | undefined {
  try {
    return (JSON.parse(readFileSync(PACKAGE_JSON, 'utf8')) as { version: string }).version;
  } catch {
    return undefined;
  }
}

export async function ensurePortkey(log: (line: string) => void): Promise<string> {
  if (installedVersion() === PORTKEY_VERSION && existsSync(ENTRY)) return PORTKEY_VERSION;
  log(`installing Portkey's gateway (npm @portkey-ai/gateway@${PORTKEY_VERSION}) into ${DIR} (first run only) ...`);
  mkdirSync(DIR, { recursive: true });
  if (!existsSync(join(DIR, 'package.json'))) writeFileSync(join(DIR, 'package.json'), `${JSON.stringify({ name: 'keel-bench-portkey', private: true }, null, 2)}\n`);
  await run('npm', ['install', '--no-audit', '--no-fund', '--ignore-scripts', `@portkey-ai/gateway@${PORTKEY_VERSION}`], { cwd: DIR, timeout: 10 * 60_000, maxBuffer: 16 * 1024 * 1024 });
  const version = installedVersion();
  if (version !== PORTKEY_VERSION) throw new Error(`Portkey ${PORTKEY_VERSION} wanted, ${version} installed`);
  return version;
}

export async function startPortkey(fakeUrl: string): Promise<RunningPeer> {
  const port = await freePort();
  const preload = pathToFileURL(new URL('./loopback-only.mjs', import.meta.url).pathname).href;
  const child = startProcess('portkey', process.execPath, ['--import', preload, ENTRY, `--port=${port}`, '--headless'], { cwd: DIR, env: { ...process.env } });
  const base = `http://127.0.0.1:${port}`;
  const until = Date.now() + START_TIMEOUT_MS;
  for (;;) {
    if (!child.alive()) throw new Error(`portkey exited at start:\n${child.output().slice(-5_000)}`);
    if (Date.now() > until) throw new Error(`portkey not ready within ${START_TIMEOUT_MS} ms:\n${child.output().slice(-5_000)}`);
    const ok = await fetch(`${base}/`, { signal: AbortSignal.timeout(2_000) }).then(
      (r) => r.ok,
      () => false,
    );
    if (ok) break;
    await new Promise((r) => setTimeout(r, 250));
  }
  return {
    name: 'portkey',
    baseURL: `${base}/v1`,
    model: 'm',
    headers: { 'x-portkey-config': JSON.stringify({ provider: 'openai', api_key: 'bench', custom_host: fakeUrl }) },
    apiKey: 'bench',
    version: installedVersion() ?? PORTKEY_VERSION,
    child,
  };
}

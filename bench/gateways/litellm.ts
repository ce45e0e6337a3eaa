// LiteLLM's proxy as a peer: installed by the bench with pip into a virtualenv in a git-ignored
// folder (first run only), started with one OpenAI-compatible model whose api_base is the fake,
// one uvicorn worker, on a free loopback port, its logs at warnings and errors.
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { freePort } from '../../test/helpers/processes.js';
import { startProcess, type Child } from './children.js';
import { PEERS_DIR } from './paths.js';

const run = promisify(execFile);

/**
 * Pinned. The newest release whose `[proxy]` extra installs from PyPI as this project's machines
 * reach it: later ones pin `litellm-proxy` / `litellm-proxy-extras` releases it does not serve.
 */
export const LITELLM_VERSION = '1.106.12';
const DIR = join(PEERS_DIR, 'litellm');
const MARKER = join(DIR, 'keel-bench-installed.json');
const INSTALL_TIMEOUT_MS = 20 * 60_000;
const START_TIMEOUT_MS = 180_000;

export interface RunningPeer {
  name: string;
  /** The OpenAI SDK's base URL. */
  baseURL: string;
  model: string;
  headers: Record<string, string>;
  /** What the client sends as its API key. */
  apiKey: string;
  version: string;
  child: Child;
}

function installedVersion(): string | undefined {
  try {
    return (JSON.parse(readFileSync(MARKER, 'utf8')) as { version: string }).version;
  } catch {
    return undefined;
  }
}

export async function ensureLiteLLM(log: (line: string) => void): Promise<string> {
  if (installedVersion() === LITELLM_VERSION && existsSync(join(DIR, 'bin', 'litellm'))) return LITELLM_VERSION;
  log(`installing LiteLLM proxy (PyPI litellm[proxy]==${LITELLM_VERSION}) into ${DIR} (first run only; a few minutes) ...`);
  rmSync(DIR, { recursive: true, force: true });
  mkdirSync(PEERS_DIR, { recursive: true });
  const python = process.env.PYTHON ?? 'python3';
  await run(python, ['-m', 'venv', DIR], { timeout: INSTALL_TIMEOUT_MS });
  await run(join(DIR, 'bin', 'python'), ['-m', 'pip', 'install', '--quiet', '--disable-pip-version-check', `litellm[proxy]==${LITELLM_VERSION}`], {
    timeout: INSTALL_TIMEOUT_MS,
    maxBuffer: 64 * 1024 * 1024,
  });
  const { stdout } = await run(join(DIR, 'bin', 'python'), ['-c', 'import importlib.metadata as m; print(m.version("litellm"))']);
  const version = stdout.trim();
  if (version !== LITELLM_VERSION) throw new Error(`LiteLLM ${LITELLM_VERSION} wanted, ${version} installed`);
  writeFileSync(MARKER, JSON.stringify({ version }));
  return version;
}

/** Python's logging config for uvicorn: no access line per request, warnings and errors only. */
const LOG_CONFIG = {
  version: 1,
  disable_existing_loggers: false,
  formatters: { plain: { format: '%(levelname)s %(name)s %(message)s' } },
  handlers: { stderr: { class: 'logging.StreamHandler', formatter: 'plain', stream: 'ext://sys.stderr' } },
  root: { handlers: ['stderr'], level: 'WARNING' },
  loggers: {
    uvicorn: { level: 'WARNING' },
    'uvicorn.error': { level: 'WARNING' },
    'uvicorn.access': { level: 'WARNING', handlers: ['stderr'], propagate: false },
  },
};

export async function startLiteLLM(fakeUrl: string, workDir: string): Promise<RunningPeer> {
  const version = installedVersion() ?? LITELLM_VERSION;
  const port = await freePort();
  // The proxy refuses to start without a master key (requests would go unauthenticated); a
  // random one per run, which clients send as their API key, as a deployment would.
  const masterKey = `sk-bench-${randomBytes(16).toString('hex')}`;
  const configPath = join(workDir, 'litellm.yaml');
  const logConfigPath = join(workDir, 'litellm-logging.json');
  // One public model, one OpenAI-compatible target, no retries (the client sees every failure).
  writeFileSync(
    configPath,
    [
      'model_list:',
      '  - model_name: chat',
      '    litellm_params:',
      '      model: openai/m',
      `      api_base: ${fakeUrl}`,
      '      api_key: bench',
      'litellm_settings:',
      '  num_retries: 0',
      '  request_timeout: 30',
      '  telemetry: false',
      '',
    ].join('\n'),
  );
  writeFileSync(logConfigPath, JSON.stringify(LOG_CONFIG));
  const child = startProcess('litellm', join(DIR, 'bin', 'litellm'), ['--config', configPath, '--host', '127.0.0.1', '--port', String(port), '--num_workers', '1', '--log_config', logConfigPath], {
    cwd: workDir,
    env: {
      ...process.env,
      LITELLM_LOG: 'ERROR',
      LITELLM_MASTER_KEY: masterKey,
      // The model price list ships in the package; without this the proxy fetches it at start.
      LITELLM_LOCAL_MODEL_COST_MAP: 'True',
    },
  });
  const base = `http://127.0.0.1:${port}`;
  const until = Date.now() + START_TIMEOUT_MS;
  for (;;) {
    if (!child.alive()) throw new Error(`litellm exited at start:\n${child.output().slice(-5_000)}`);
    if (Date.now() > until) throw new Error(`litellm not ready within ${START_TIMEOUT_MS} ms:\n${child.output().slice(-5_000)}`);
    const ok = await fetch(`${base}/health/liveliness`, { signal: AbortSignal.timeout(2_000) }).then(
      (r) => r.ok,
      () => false,
    );
    if (ok) break;
    await new Promise((r) => setTimeout(r, 250));
  }
  return { name: 'litellm', baseURL: `${base}/v1`, model: 'chat', headers: {}, apiKey: masterKey, version, child };
}

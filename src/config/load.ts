// Loading Keel's configuration: the YAML file, `${VAR}` substitution from the environment, and
// the defaults filled in (src/config/schema.ts holds the schema and types).
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import type { z } from 'zod';
import {
  ConfigSchema,
  DEFAULT_BATCHES,
  DEFAULT_BREAKER,
  DEFAULT_HEDGE,
  DEFAULT_LIMITS,
  DEFAULT_METRICS_PORT,
  DEFAULT_OPEN_PATHS,
  DEFAULT_RETRY,
  DEFAULT_STREAM,
  DEFAULT_STREAMING,
  DEFAULT_TIMEOUTS,
  DEFAULT_WEBHOOK_RETRY,
  type KeelConfig,
  type RawConfig,
  type RoutingConfig,
  type TelemetrySettings,
} from './schema.js';

export const DEFAULT_CONFIG_PATH = 'keel.config.yaml';

export class ConfigError extends Error {
  override name = 'ConfigError';
}

/** `${VAR}` and `${VAR:-default}` are replaced from the environment; a missing variable is an error. */
function substituteEnv(value: unknown, env: NodeJS.ProcessEnv, path: string[]): unknown {
  if (typeof value === 'string') {
    return value.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g, (_m, name: string, fallback?: string) => {
      const v = env[name];
      if (v !== undefined && v !== '') return v;
      if (fallback !== undefined) return fallback;
      throw new ConfigError(`${path.join('.') || '(root)'}: environment variable ${name} is not set`);
    });
  }
  if (Array.isArray(value)) return value.map((v, i) => substituteEnv(v, env, [...path, String(i)]));
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, substituteEnv(v, env, [...path, k])]));
  }
  return value;
}

function describeIssues(error: z.ZodError): string {
  return error.issues
    .map((issue) => `${issue.path.map(String).join('.') || '(root)'}: ${issue.message}`)
    .join('\n');
}

/** The Temporal UI's origin as a browser may write it: localhost and 127.0.0.1 are the same UI. */
export function uiOrigins(uiUrl: string): string[] {
  const url = new URL(uiUrl);
  const aliases = { localhost: '127.0.0.1', '127.0.0.1': 'localhost' } as Record<string, string>;
  const alias = aliases[url.hostname];
  if (!alias) return [url.origin];
  const other = new URL(url.origin);
  other.hostname = alias;
  return [url.origin, other.origin];
}

export function parseConfig(text: string, env: NodeJS.ProcessEnv = process.env, source = 'config'): KeelConfig {
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (err) {
    throw new ConfigError(`${source}: not valid YAML: ${(err as Error).message}`);
  }
  const parsed = ConfigSchema.safeParse(substituteEnv(doc ?? {}, env, []));
  if (!parsed.success) throw new ConfigError(`${source}: invalid configuration\n${describeIssues(parsed.error)}`);
  const raw = parsed.data;
  const routing: RoutingConfig = {
    providers: Object.fromEntries(
      Object.entries(raw.providers).map(([name, p]) => {
        const callPath = p.callPath ?? (p.rateLimitPerSecond !== undefined ? 'queue' : 'local');
        return [name, p.models ? { type: p.type, models: p.models, callPath } : { type: p.type, callPath }];
      }),
    ),
    models: raw.models,
    defaults: {
      retry: { ...DEFAULT_RETRY, ...raw.defaults?.retry },
      timeouts: { ...DEFAULT_TIMEOUTS, ...raw.defaults?.timeouts },
      mode: raw.defaults?.mode ?? 'fallback',
      answer: raw.defaults?.answer ?? 'early',
      hedge: { ...DEFAULT_HEDGE, ...raw.defaults?.hedge },
      stream: { ...DEFAULT_STREAM, ...raw.defaults?.stream },
    },
    limits: { ...DEFAULT_LIMITS, ...raw.limits },
  };
  const uiUrl = (env.TEMPORAL_UI_URL ?? raw.temporal?.uiUrl ?? 'http://localhost:8233').replace(/\/$/, '');
  const codecEnabled = raw.codec?.enabled ?? false;
  const codecKeys = raw.codec?.keys ?? [];
  const port = Number(env.PORT ?? raw.server?.port ?? 3000);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new ConfigError(`PORT: not a valid port: ${env.PORT}`);
  return {
    raw,
    routing,
    providers: raw.providers,
    port,
    host: env.HOST ?? raw.server?.host ?? '127.0.0.1',
    bodyLimitBytes: raw.server?.bodyLimitBytes ?? 4 * 1024 * 1024,
    namespace: env.TEMPORAL_NAMESPACE ?? raw.temporal?.namespace ?? 'default',
    taskQueue: env.KEEL_TASK_QUEUE ?? raw.temporal?.taskQueue ?? 'keel-requests',
    uiUrl,
    health: {
      publishIntervalMs: raw.health?.publishIntervalMs ?? 1_000,
      refreshIntervalMs: raw.health?.refreshIntervalMs ?? 1_000,
      degradedBelow: raw.health?.degradedBelow ?? 0.5,
      degradedMinCalls: raw.health?.degradedMinCalls ?? 20,
      breaker: { ...DEFAULT_BREAKER, ...raw.health?.breaker },
    },
    temporalAddress: env.TEMPORAL_ADDRESS ?? raw.temporal?.address ?? '127.0.0.1:7233',
    batches: { ...DEFAULT_BATCHES, ...raw.batches },
    telemetry: telemetrySettings(raw, env),
    auth: {
      // `${KEEL_ADMIN_KEY:-}` with the variable unset is an empty string: authentication off.
      ...(raw.auth?.adminKey && { adminKey: raw.auth.adminKey }),
      required: raw.auth?.required ?? false,
      openPaths: raw.auth?.openPaths ?? DEFAULT_OPEN_PATHS,
    },
    streaming: { ...DEFAULT_STREAMING, ...raw.streaming },
    webhooks: {
      ...(raw.webhooks?.secret && { secret: raw.webhooks.secret }),
      allowPrivate: raw.webhooks?.allowPrivate ?? false,
      allowedHosts: raw.webhooks?.allowedHosts ?? [],
      timeoutMs: raw.webhooks?.timeoutMs ?? 10_000,
      retry: { ...DEFAULT_WEBHOOK_RETRY, ...raw.webhooks?.retry },
    },
    codec: {
      enabled: codecEnabled,
      keys: codecKeys,
      ...(codecKeys.length > 0 && { encryptWith: raw.codec?.encryptWith ?? codecKeys[codecKeys.length - 1].id }),
      ...(raw.codec?.compressAboveBytes !== undefined && { compressAboveBytes: raw.codec.compressAboveBytes }),
      server: {
        enabled: codecKeys.length > 0 && (raw.codec?.server?.enabled ?? true),
        tokens: raw.codec?.server?.tokens ?? [],
        ...(raw.codec?.server?.jwt && { jwt: raw.codec.server.jwt }),
        corsOrigins: raw.codec?.server?.corsOrigins?.map((o) => new URL(o).origin) ?? uiOrigins(uiUrl),
        allowLoopback: raw.codec?.server?.allowLoopback ?? false,
        maxBodyBytes: raw.codec?.server?.maxBodyBytes ?? 16 * 1024 * 1024,
      },
    },
  };
}

/** OTLP/HTTP traces URL: the signal's own variable as is, else the base endpoint + /v1/traces. */
function tracesUrl(raw: RawConfig, env: NodeJS.ProcessEnv): string | undefined {
  if (env.OTEL_SDK_DISABLED === 'true' || env.OTEL_TRACES_EXPORTER === 'none') return undefined;
  if (env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) return env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT;
  const base = env.OTEL_EXPORTER_OTLP_ENDPOINT || raw.telemetry?.tracing?.endpoint;
  return base ? `${base.replace(/\/$/, '')}/v1/traces` : undefined;
}

function telemetrySettings(raw: RawConfig, env: NodeJS.ProcessEnv): TelemetrySettings {
  const port = Number(env.KEEL_METRICS_PORT ?? raw.telemetry?.metrics?.port ?? DEFAULT_METRICS_PORT);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new ConfigError(`KEEL_METRICS_PORT: not a valid port: ${env.KEEL_METRICS_PORT}`);
  const url = tracesUrl(raw, env);
  return {
    metrics: {
      enabled: raw.telemetry?.metrics?.enabled ?? true,
      port,
      temporal: raw.telemetry?.metrics?.temporal ?? true,
      // `${KEEL_METRICS_TOKEN:-}` with the variable unset is an empty string: no scrape token.
      ...(raw.telemetry?.metrics?.token && { token: raw.telemetry.metrics.token }),
    },
    tracing: { ...(url && { tracesUrl: url }), serviceName: env.OTEL_SERVICE_NAME || raw.telemetry?.tracing?.serviceName || 'keel' },
  };
}

export function configPath(env: NodeJS.ProcessEnv = process.env): string {
  return env.KEEL_CONFIG ?? DEFAULT_CONFIG_PATH;
}

export function loadConfig(path = configPath(), env: NodeJS.ProcessEnv = process.env): KeelConfig {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError(`${path}: cannot read configuration: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  return parseConfig(text, env, path);
}

/** For the entry points: the configuration, or exit 1 with a message naming the field. */
export function loadConfigOrExit(): KeelConfig {
  try {
    return loadConfig(configPath());
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(`keel: ${err.message}`);
      process.exit(1);
    }
    throw err;
  }
}

/** `auth.required` without an admin key: the API must not start open. Workers never need the key. */
export function authProblem(config: KeelConfig): string | undefined {
  if (config.auth.required && config.auth.adminKey === undefined) {
    return 'auth.required is set but auth.adminKey is empty: set KEEL_ADMIN_KEY (at least 16 characters)';
  }
  return undefined;
}

/** For the API's entry points: the configuration, or exit 1 (a bad file, or a required admin key missing). */
export function apiConfigOrExit(): KeelConfig {
  const config = loadConfigOrExit();
  const problem = authProblem(config);
  if (problem) {
    console.error(`keel: ${problem}`);
    process.exit(1);
  }
  return config;
}

/** Where `npm start` keeps the dev server's SQLite file and the file store. */
export function dataDir(env: NodeJS.ProcessEnv = process.env): string {
  return env.KEEL_DATA_DIR ?? '.keel';
}

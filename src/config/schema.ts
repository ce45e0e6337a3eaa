// Keel's configuration as data: the zod schema of keel.config.yaml, the types derived from it and
// the defaults. Workflow-safe (no Node, no I/O): workflows and the routing core plan with these
// types. Reading the file and the environment is src/config/load.ts.
import { z } from 'zod';
const ms = z.number().int().nonnegative();
const positiveMs = z.number().int().positive();

export const RetrySchema = z
  .object({
    maxAttempts: z.number().int().min(1).max(20),
    initialIntervalMs: positiveMs,
    backoffCoefficient: z.number().min(1).max(10),
    maximumIntervalMs: positiveMs,
    // Share of each backoff delay that is randomised (0 = none, 1 = full jitter).
    jitter: z.number().min(0).max(1),
  })
  .strict();
export type RetrySettings = z.infer<typeof RetrySchema>;

export const TimeoutsSchema = z
  .object({
    attemptMs: positiveMs,
    requestMs: positiveMs,
  })
  .strict();
export type TimeoutSettings = z.infer<typeof TimeoutsSchema>;

export const ModeSchema = z.enum(['fallback', 'race', 'hedge']);
export type RoutingMode = z.infer<typeof ModeSchema>;

/** Provider calls in flight per worker when a provider sets no `concurrency`. */
export const DEFAULT_PROVIDER_CONCURRENCY = 200;

export const CallPathSchema = z.enum(['local', 'queue']);
export type CallPath = z.infer<typeof CallPathSchema>;

// When a waiting client gets its answer (docs/REQUESTS.md, "When you get your answer"): `call`,
// as soon as the request's first call answers in the API's own process (the request durable
// already, its result recorded right after); `early`, as soon as the workflow has it, while its
// completion is being recorded; `recorded`, once the completion is in the history.
export const AnswerSchema = z.enum(['call', 'early', 'recorded']);
export type AnswerMode = z.infer<typeof AnswerSchema>;

export const HedgeSchema = z
  .object({
    // Start the next target after this delay if the current one has not answered.
    delayMs: ms.optional(),
    // Or: after this percentile (p50 or p95, the ones live stats keep) of the target's observed
    // latency over the last minute; delayMs stays the delay while a target has no stats yet.
    percentile: z.union([z.literal(50), z.literal(95)]).optional(),
    // At most this share of requests may hedge, so an outage cannot double the load.
    maxShare: z.number().min(0).max(1),
  })
  .strict();

// Streamed requests (docs/STREAMING.md): how long a stream may go without a chunk once it has
// begun, and what happens when it breaks after its first token — `none`: the stream ends with an
// error event; `continue`: the next target is asked to continue the partial answer.
export const StreamRecoverySchema = z.enum(['none', 'continue']);
export type StreamRecovery = z.infer<typeof StreamRecoverySchema>;
export const StreamSchema = z
  .object({
    idleTimeoutMs: positiveMs,
    recovery: StreamRecoverySchema,
  })
  .strict();
export type StreamSettings = z.infer<typeof StreamSchema>;
export { DEFAULT_STREAM } from './stream-defaults.js';

const TargetRef = z
  .string()
  .regex(/^[A-Za-z0-9_.-]+\/.+$/, 'must be "provider/upstream-model"');

const ModelEntrySchema = z
  .object({
    targets: z.array(TargetRef).min(1),
    mode: ModeSchema.optional(),
    answer: AnswerSchema.optional(),
    race: z.object({ width: z.number().int().min(2).max(8) }).strict().optional(),
    hedge: HedgeSchema.partial().optional(),
    retry: RetrySchema.partial().optional(),
    timeouts: TimeoutsSchema.partial().optional(),
    stream: StreamSchema.partial().optional(),
    description: z.string().optional(),
  })
  .strict();
export type ModelEntry = z.infer<typeof ModelEntrySchema>;

const UpstreamModelSchema = z
  .object({
    contextWindow: z.number().int().positive().optional(),
    // The most tokens one answer can have: the worst case a budgeted key reserves for a request
    // without max_tokens (docs/KEYS.md). Without it, contextWindow is that bound.
    maxOutputTokens: z.number().int().positive().optional(),
    // USD per million tokens.
    pricing: z.object({ input: z.number().nonnegative(), output: z.number().nonnegative() }).strict().optional(),
  })
  .strict();

// A fake provider that `npm start` runs for this entry (demo mode, no API keys needed).
const FakeSchema = z
  .object({
    latencyMs: ms.optional(),
    jitterMs: ms.optional(),
  })
  .strict();

/** The wire formats Keel speaks: every adapter, fake provider and error reader is one of these. */
export const PROVIDER_TYPES = ['openai', 'anthropic', 'gemini'] as const;
export const ProviderTypeSchema = z.enum(PROVIDER_TYPES);
export type ProviderType = z.infer<typeof ProviderTypeSchema>;

const ProviderSchema = z
  .object({
    type: ProviderTypeSchema,
    baseURL: z.string().url(),
    apiKey: z.string().optional(),
    models: z.record(z.string(), UpstreamModelSchema).optional(),
    // Provider calls per second: enforced by the Temporal server across all workers (task-queue
    // rate limit), and strictly (no burst, at most this many in any second) by each worker's share.
    rateLimitPerSecond: z.number().positive().optional(),
    // Worker processes that poll this provider: each takes 1/rateLimitWorkers of the limit as its
    // strict share (docs/ROUTING.md, "Per-provider task queues and rate limits"). Default 1.
    rateLimitWorkers: z.number().int().positive().max(1000).optional(),
    // Concurrent provider calls per worker.
    concurrency: z.number().int().positive().max(10_000).optional(),
    // How a call reaches this provider (docs/ROUTING.md, "Call paths"): `local`, a local activity in
    // the worker that runs the request's workflow (no task-queue hop); `queue`, an activity on the
    // provider's own task queue (the server's rate limit, workers per provider). Default: `queue`
    // when rateLimitPerSecond is set, else `local`. Hedged requests always use `queue`.
    callPath: CallPathSchema.optional(),
    fake: FakeSchema.optional(),
  })
  .strict()
  .refine((p) => !(p.callPath === 'local' && p.rateLimitPerSecond !== undefined), {
    message: 'callPath local cannot keep a rate limit (rateLimitPerSecond needs the provider task queue)',
    path: ['callPath'],
  });
export type ProviderConfig = z.infer<typeof ProviderSchema>;

// Async-job webhooks (docs/REQUESTS.md): the signing secret stays in the worker's configuration.
export const WebhooksSchema = z
  .object({
    // HMAC-SHA256 key for `x-keel-signature`; at least 16 characters.
    secret: z.string().min(16, 'must be at least 16 characters').optional(),
    // Private, loopback, link-local and other non-public ranges become allowed (cloud metadata
    // and the Temporal frontend stay refused unless listed in allowedHosts).
    allowPrivate: z.boolean().optional(),
    // Host names or IP addresses allowed even if they are in a refused range; "host:port" entries
    // allow exactly that port (the only way to allow the Temporal frontend).
    allowedHosts: z.array(z.string().min(1)).optional(),
    timeoutMs: positiveMs.optional(),
    retry: z
      .object({
        maxAttempts: z.number().int().min(1).max(50),
        initialIntervalMs: positiveMs,
        backoffCoefficient: z.number().min(1).max(10),
        maximumIntervalMs: positiveMs,
      })
      .partial()
      .strict()
      .optional(),
  })
  .strict();

// Gateway keys (docs/KEYS.md): the admin key from the environment; virtual keys are created with it.
export const AuthSchema = z
  .object({
    // Unset or empty: no authentication (the `npm start` demo). At least 16 characters.
    adminKey: z.string().optional(),
    // The API refuses to start without an adminKey (the production config sets this). Only the
    // API checks it: workers never need the admin key.
    required: z.boolean().optional(),
    // Paths answered without a key (exact paths). Default: /healthz and /status.
    openPaths: z.array(z.string().startsWith('/')).optional(),
  })
  .strict()
  .refine((a) => a.adminKey === undefined || a.adminKey === '' || a.adminKey.length >= 16, {
    message: 'must be at least 16 characters',
    path: ['adminKey'],
  });

// Payload encryption (docs/ENCRYPTION.md): an AES-256-GCM payload codec on every client and worker,
// the same keys for the file store, and a codec server for the Temporal UI and CLI. A key is 32
// random bytes in standard base64 (`openssl rand -base64 32`). Messages never repeat a value.
const CODEC_KEY_ID = /^[A-Za-z0-9_.-]{1,64}$/;
// 32 bytes are 43 base64 characters and one '=': the last character before it carries 4 bits.
const BASE64_32_BYTES = /^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$/;

export const CodecKeySchema = z
  .object({
    id: z.string().regex(CODEC_KEY_ID, 'key ids use 1-64 letters, digits, _ . -'),
    key: z.string().trim().regex(BASE64_32_BYTES, 'must be 32 random bytes in base64, e.g. the output of `openssl rand -base64 32` (the value is not shown)'),
  })
  .strict();

export const CodecServerSchema = z
  .object({
    // Serve POST /codec/encode and /codec/decode on the API (default: on when the codec is).
    enabled: z.boolean().optional(),
    // Bearer keys accepted in `Authorization: Bearer <token>` (the CLI's --codec-auth); at least 24 characters.
    tokens: z.array(z.string().min(24, 'must be at least 24 characters (the value is not shown)')).optional(),
    // Or: the access token the Temporal UI forwards for its signed-in user (a JWT from the UI's
    // OIDC provider), verified against the provider's published keys.
    jwt: z
      .object({
        jwksUrl: z.string().url(),
        issuer: z.string().min(1),
        audience: z.string().min(1).optional(),
      })
      .strict()
      .optional(),
    // Browser origins allowed by CORS; default: the origin of temporal.uiUrl.
    corsOrigins: z.array(z.string().url()).optional(),
    // Requests from a loopback address need no token: for one machine (npm start), never a cluster.
    allowLoopback: z.boolean().optional(),
    maxBodyBytes: z.number().int().positive().optional(),
  })
  .strict();

export const CodecSchema = z
  .object({
    enabled: z.boolean().optional(),
    // Every key decrypts; new payloads and files are encrypted with `encryptWith`, or the last key.
    keys: z.array(CodecKeySchema).optional(),
    encryptWith: z.string().regex(CODEC_KEY_ID).optional(),
    // Compress a payload of at least this many bytes before encrypting it (unset: never).
    compressAboveBytes: z.number().int().nonnegative().optional(),
    server: CodecServerSchema.optional(),
  })
  .strict()
  .superRefine((codec, ctx) => {
    const ids = (codec.keys ?? []).map((k) => k.id);
    if (codec.enabled && ids.length === 0) ctx.addIssue({ code: 'custom', path: ['keys'], message: 'the codec is enabled but has no keys' });
    ids.forEach((id, i) => {
      if (ids.indexOf(id) !== i) ctx.addIssue({ code: 'custom', path: ['keys', i, 'id'], message: `duplicate key id "${id}"` });
    });
    const server = codec.server;
    if (ids.length > 0 && server?.enabled !== false && !server?.tokens?.length && !server?.jwt && !server?.allowLoopback) {
      ctx.addIssue({ code: 'custom', path: ['server'], message: 'the codec server needs tokens, jwt or allowLoopback to know who may decrypt (or server.enabled: false)' });
    }
    if (codec.encryptWith !== undefined && !ids.includes(codec.encryptWith)) {
      ctx.addIssue({ code: 'custom', path: ['encryptWith'], message: `no key with id "${codec.encryptWith}" in codec.keys` });
    }
  });

export const BatchesSchema = z
  .object({
    // Request workflows in flight per batch (Temporal allows 2,000 pending children per execution).
    window: z.number().int().min(1).max(1_900),
    // Children per workflow run before continue-as-new keeps the history small.
    childrenPerRun: z.number().int().min(10).max(5_000),
    // Finished lines written per results chunk (one activity each).
    flushSize: z.number().int().min(1).max(1_000),
    // OpenAI's limits: 50,000 requests and 200 MB per batch input file.
    maxLines: z.number().int().positive(),
    maxFileBytes: z.number().int().positive(),
  })
  .strict();
export type BatchSettings = z.infer<typeof BatchesSchema>;
export const DEFAULT_BATCHES: BatchSettings = { window: 200, childrenPerRun: 2_000, flushSize: 100, maxLines: 50_000, maxFileBytes: 200 * 1024 * 1024 };

/** When a target's circuit breaker opens and how it closes again (docs/ROUTING.md). */
export interface BreakerSettings {
  enabled: boolean;
  /** The window failures are counted in. */
  windowMs: number;
  /** Open when failures/calls >= failureRatio over at least minCalls calls ... */
  minCalls: number;
  failureRatio: number;
  /** ... or when failures reach this count (unset: ratio only). */
  failureCount?: number;
  /** Open this long before a probe is let through. */
  cooldownMs: number;
  /** A granted probe that has not reported by then is given up; another may be granted. */
  probeTimeoutMs: number;
}

export const DEFAULT_BREAKER: BreakerSettings = {
  enabled: true,
  windowMs: 60_000,
  // High enough that a handful of failing retries of one request cannot open it.
  minCalls: 20,
  failureRatio: 0.5,
  cooldownMs: 30_000,
  probeTimeoutMs: 60_000,
};

// Health-aware routing (docs/ROUTING.md): how often workers publish and read provider health,
// and when a target's circuit breaker opens.
export const HealthSchema = z
  .object({
    publishIntervalMs: positiveMs.optional(),
    refreshIntervalMs: positiveMs.optional(),
    // Below this success rate over the last minute (and at least degradedMinCalls calls) a target
    // goes behind its healthy peers: e.g. a provider answering half its calls with 429s.
    degradedBelow: z.number().min(0).max(1).optional(),
    degradedMinCalls: z.number().int().min(1).optional(),
    breaker: z
      .object({
        enabled: z.boolean(),
        windowMs: positiveMs,
        minCalls: z.number().int().min(1),
        failureRatio: z.number().gt(0).max(1),
        failureCount: z.number().int().min(1),
        cooldownMs: positiveMs,
        probeTimeoutMs: positiveMs,
      })
      .partial()
      .strict()
      .optional(),
  })
  .strict();

// Metrics and traces (docs/OPERATIONS.md).
export const TelemetrySchema = z
  .object({
    metrics: z
      .object({
        // Serve Prometheus metrics: the API at /metrics on its own port, a worker on `port`.
        enabled: z.boolean().optional(),
        // The worker role's metrics port (KEEL_METRICS_PORT); 0 picks a free one. Default 9464.
        port: z.number().int().min(0).max(65535).optional(),
        // Include the Temporal SDK's own metrics (its Runtime's Prometheus exporter) in /metrics.
        temporal: z.boolean().optional(),
        // A scrape token (`Authorization: Bearer <token>`) that reads /metrics and nothing else,
        // on the API and the worker's port; at least 24 characters. Empty or unset: none (with
        // auth.adminKey set, the API's /metrics then takes the admin key). docs/OPERATIONS.md.
        token: z.string().optional(),
      })
      .strict()
      .refine((m) => m.token === undefined || m.token === '' || m.token.length >= 24, {
        message: 'must be at least 24 characters (the value is not shown)',
        path: ['token'],
      })
      .optional(),
    tracing: z
      .object({
        // OTLP/HTTP endpoint (the collector's base URL, e.g. http://collector:4318; traces go to
        // <endpoint>/v1/traces). OTEL_EXPORTER_OTLP_TRACES_ENDPOINT / OTEL_EXPORTER_OTLP_ENDPOINT
        // win over it. Unset: no tracing.
        endpoint: z.string().url().optional(),
        serviceName: z.string().min(1).optional(),
      })
      .strict()
      .optional(),
  })
  .strict();

export const ConfigSchema = z
  .object({
    server: z
      .object({
        port: z.number().int().min(0).max(65535).optional(),
        host: z.string().optional(),
        bodyLimitBytes: z.number().int().positive().optional(),
      })
      .strict()
      .optional(),
    temporal: z
      .object({
        address: z.string().optional(),
        namespace: z.string().optional(),
        taskQueue: z.string().optional(),
        uiUrl: z.string().url().optional(),
      })
      .strict()
      .optional(),
    defaults: z
      .object({
        retry: RetrySchema.partial().optional(),
        timeouts: TimeoutsSchema.partial().optional(),
        mode: ModeSchema.optional(),
        answer: AnswerSchema.optional(),
        hedge: HedgeSchema.partial().optional(),
        stream: StreamSchema.partial().optional(),
      })
      .strict()
      .optional(),
    // Upper bounds on what a request may ask for through its own retry/timeout fields.
    limits: z
      .object({
        maxAttemptsPerTarget: z.number().int().min(1).max(20).optional(),
        maxRequestMs: positiveMs.optional(),
        maxTargets: z.number().int().min(1).max(20).optional(),
      })
      .strict()
      .optional(),
    // Batch API: sliding window of request workflows per batch, and when a batch run continues-as-new.
    batches: BatchesSchema.partial().optional(),
    providers: z.record(z.string().regex(/^[A-Za-z0-9_.-]+$/, 'provider names use letters, digits, _ . -'), ProviderSchema),
    models: z.record(z.string(), ModelEntrySchema).default({}),
    health: HealthSchema.optional(),
    webhooks: WebhooksSchema.optional(),
    telemetry: TelemetrySchema.optional(),
    auth: AuthSchema.optional(),
    codec: CodecSchema.optional(),
    // The API process's buffer of streamed chunks (docs/STREAMING.md): how long a finished
    // stream's chunks stay there for clients that resume, and the most it may hold in all.
    streaming: z
      .object({
        retentionMs: positiveMs.optional(),
        bufferBytes: z.number().int().min(1024).optional(),
      })
      .strict()
      .optional(),
  })
  .strict()
  .superRefine((cfg, ctx) => {
    for (const [name, model] of Object.entries(cfg.models)) {
      model.targets.forEach((t, i) => {
        const provider = t.slice(0, t.indexOf('/'));
        if (!cfg.providers[provider]) {
          ctx.addIssue({
            code: 'custom',
            path: ['models', name, 'targets', i],
            message: `unknown provider "${provider}"`,
          });
        }
      });
    }
  });
export type RawConfig = z.infer<typeof ConfigSchema>;

export const DEFAULT_RETRY: RetrySettings = {
  maxAttempts: 3,
  initialIntervalMs: 500,
  backoffCoefficient: 2,
  maximumIntervalMs: 10_000,
  jitter: 0.5,
};
export const DEFAULT_TIMEOUTS: TimeoutSettings = { attemptMs: 60_000, requestMs: 300_000 };
export const DEFAULT_HEDGE = { delayMs: 2_000, maxShare: 0.1 };
export const DEFAULT_LIMITS = { maxAttemptsPerTarget: 10, maxRequestMs: 3_600_000, maxTargets: 8 };

/** The secret-free view of the configuration that workflows plan with. */
export interface RoutingConfig {
  /** `callPath` absent means `queue` (executions started before call paths existed carry none). */
  providers: Record<string, { type: ProviderType; models?: ProviderConfig['models']; callPath?: CallPath }>;
  models: Record<string, ModelEntry>;
  defaults: {
    retry: RetrySettings;
    timeouts: TimeoutSettings;
    mode: RoutingMode;
    answer?: AnswerMode;
    hedge: { delayMs: number; percentile?: number; maxShare: number };
    /** Absent in executions started before streaming existed. */
    stream?: StreamSettings;
  };
  limits: typeof DEFAULT_LIMITS;
}

export interface HealthSettings {
  publishIntervalMs: number;
  refreshIntervalMs: number;
  degradedBelow: number;
  /** Calls in the last minute before a success rate can mark a target degraded. */
  degradedMinCalls: number;
  breaker: BreakerSettings;
}

export interface KeelConfig {
  health: HealthSettings;
  raw: RawConfig;
  routing: RoutingConfig;
  providers: Record<string, ProviderConfig>;
  port: number;
  host: string;
  bodyLimitBytes: number;
  namespace: string;
  taskQueue: string;
  uiUrl: string;
  /** The Temporal frontend (host:port): TEMPORAL_ADDRESS, temporal.address, or 127.0.0.1:7233. */
  temporalAddress: string;
  webhooks: WebhookSettings;
  batches: BatchSettings;
  telemetry: TelemetrySettings;
  auth: AuthSettings;
  codec: CodecSettings;
  streaming: StreamingSettings;
}

export interface CodecSettings {
  /** Off: payloads and files are written in clear (what is already encrypted stays readable only with keys). */
  enabled: boolean;
  /** Base64 keys by id: secrets, never logged. */
  keys: { id: string; key: string }[];
  /** The key new payloads and files are encrypted with. */
  encryptWith?: string;
  compressAboveBytes?: number;
  server: {
    enabled: boolean;
    tokens: string[];
    jwt?: { jwksUrl: string; issuer: string; audience?: string };
    corsOrigins: string[];
    allowLoopback: boolean;
    maxBodyBytes: number;
  };
}

export interface AuthSettings {
  /** Undefined: authentication is off (every route is open, virtual keys cannot be created). */
  adminKey?: string;
  /** The API must not start without an adminKey. */
  required: boolean;
  /** Paths answered without a key. */
  openPaths: string[];
}

export interface MetricsSettings {
  enabled: boolean;
  /** The worker role's own metrics server (the API serves /metrics on its port). */
  port: number;
  /** Append the Temporal SDK's metrics (the Runtime's Prometheus exporter) to /metrics. */
  temporal: boolean;
  /** A bearer token that reads /metrics (and nothing else); a secret, never logged. */
  token?: string;
}

export interface TracingSettings {
  /** Where OTLP/HTTP JSON spans are POSTed; undefined: tracing is off. */
  tracesUrl?: string;
  serviceName: string;
}

export interface TelemetrySettings {
  metrics: MetricsSettings;
  tracing: TracingSettings;
}

export const DEFAULT_METRICS_PORT = 9464;

export const DEFAULT_OPEN_PATHS = ['/healthz', '/status'];

/** The stream buffer of an API process (src/channels/stream-board.ts). */
export interface StreamingSettings {
  /** A stream's chunks are dropped this long after its last one. */
  retentionMs: number;
  /** The most the buffer holds across streams; past it the oldest chunks go (clients then read the record). */
  bufferBytes: number;
}

export const DEFAULT_STREAMING: StreamingSettings = { retentionMs: 5 * 60_000, bufferBytes: 64 * 1024 * 1024 };

export interface WebhookSettings {
  /** Undefined: webhooks are refused at submit time. */
  secret?: string;
  allowPrivate: boolean;
  allowedHosts: string[];
  timeoutMs: number;
  retry: { maxAttempts: number; initialIntervalMs: number; backoffCoefficient: number; maximumIntervalMs: number };
}

export const DEFAULT_WEBHOOK_RETRY = { maxAttempts: 8, initialIntervalMs: 1_000, backoffCoefficient: 2, maximumIntervalMs: 60_000 };

// Keel's Prometheus metrics: one registry per process (the API and the workers of a gateway share
// it), every metric defined here and recorded through the methods below, so each label set is
// bounded: model, provider, target model, outcome, error class, key id (a virtual key's id, or
// 'none'). Never a request id, a secret or prompt text. docs/OPERATIONS.md lists what each metric means.
//
// Names: the OpenTelemetry GenAI semantic conventions where they define one (as Prometheus
// spells them: `gen_ai.client.operation.duration` in seconds is
// `gen_ai_client_operation_duration_seconds`), `keel_*` for the rest.
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { ProviderType, RoutingConfig } from '../config/schema.js';
import { upstreamModelLabel } from '../core/metric-labels.js';
import type { BreakerStateName, HealthSnapshot } from '../core/health-types.js';
import type { KeyBudgetReport, RequestMetrics } from '../core/contract.js';

/** Request and call durations, seconds: from a cached answer to a long generation. */
const DURATION_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300];
/** The GenAI conventions' advice for gen_ai.client.operation.duration and time to first chunk. */
const GENAI_DURATION_BUCKETS = [0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92];
/** The GenAI conventions' advice for gen_ai.client.token.usage. */
const GENAI_TOKEN_BUCKETS = [1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864];
/** Waits for a rate-limit window: none, a fraction of a second, or a few windows. */
const WAIT_BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30];

/** `gen_ai.provider.name` for each wire format (the conventions' well-known values). */
const GENAI_PROVIDER: Record<ProviderType, string> = { openai: 'openai', anthropic: 'anthropic', gemini: 'gcp.gemini' };

const BREAKER_STATES: BreakerStateName[] = ['closed', 'open', 'half_open'];

export interface ChatCompletionObservation {
  /** The configured model asked for ('other' for anything else). */
  model: string;
  /** The provider that answered, or the last one tried; '' when none was. */
  provider: string;
  outcome: 'succeeded' | 'failed';
  errorClass?: string;
  /** docs/REQUESTS.md: `early` or `recorded`; '' when the request never reached a workflow. */
  answeredAt: string;
  /** The virtual key's id, or 'none' (src/core/metric-labels.ts, NO_KEY). */
  key: string;
  seconds: number;
}

export interface ProviderCallObservation {
  provider: string;
  providerType: ProviderType;
  model: string;
  callPath: 'local' | 'queue';
  outcome: 'success' | 'error' | 'cancelled';
  errorClass?: string;
  seconds: number;
  /** The model the provider says answered. */
  responseModel?: string;
  inputTokens?: number;
  outputTokens?: number;
  /** USD, from the configured pricing. */
  cost?: number;
  /** Another attempt on this target follows (Temporal retries it after `nextRetryDelay`). */
  retrying: boolean;
}

export class KeelMetrics {
  readonly registry = new Registry();

  // ---- API (src/api) ------------------------------------------------------------------------
  private readonly httpDuration = new Histogram({
    name: 'keel_http_request_duration_seconds',
    help: 'HTTP requests served by the API, by route pattern and status.',
    labelNames: ['method', 'route', 'status'] as const,
    buckets: DURATION_BUCKETS,
    registers: [this.registry],
  });
  private readonly httpInFlight = new Gauge({
    name: 'keel_http_requests_in_flight',
    help: 'HTTP requests the API is serving now.',
    registers: [this.registry],
  });
  private readonly chatCompletions = new Counter({
    name: 'keel_chat_completions_total',
    help: 'Synchronous chat completions answered by this API, by model, provider, outcome, error class, answer point and key.',
    labelNames: ['model', 'provider', 'outcome', 'error_class', 'answered_at', 'key'] as const,
    registers: [this.registry],
  });
  private readonly chatDuration = new Histogram({
    name: 'keel_chat_completion_duration_seconds',
    help: 'Time from receiving a synchronous chat completion to answering it, as the client waits.',
    labelNames: ['model', 'provider', 'outcome', 'answered_at', 'key'] as const,
    buckets: DURATION_BUCKETS,
    registers: [this.registry],
  });

  // ---- Request workflows (the worker's `metrics.requestEnded` sink) --------------------------
  private readonly requests = new Counter({
    name: 'keel_requests_total',
    help: 'Requests (sync, async and batch lines) that ended, by model, answering provider, outcome, error class, mode and key.',
    labelNames: ['model', 'provider', 'outcome', 'error_class', 'mode', 'source', 'key'] as const,
    registers: [this.registry],
  });
  private readonly requestDuration = new Histogram({
    name: 'keel_request_duration_seconds',
    help: "A request workflow's time from its first task to its outcome.",
    labelNames: ['model', 'provider', 'outcome', 'key'] as const,
    buckets: DURATION_BUCKETS,
    registers: [this.registry],
  });
  private readonly fallbacks = new Counter({
    name: 'keel_fallbacks_total',
    help: 'Targets given up on by a request that then went on to another target, by the target left and why.',
    labelNames: ['model', 'provider', 'target_model', 'error_class'] as const,
    registers: [this.registry],
  });
  private readonly hedgesFired = new Counter({
    name: 'keel_hedges_fired_total',
    help: 'Hedge calls started because the first target had not answered within the hedge delay.',
    labelNames: ['model'] as const,
    registers: [this.registry],
  });
  private readonly hedgesWon = new Counter({
    name: 'keel_hedges_won_total',
    help: 'Requests answered by a hedge call rather than the target it hedged.',
    labelNames: ['model', 'provider'] as const,
    registers: [this.registry],
  });
  private readonly requestTokens = new Counter({
    name: 'keel_request_tokens_total',
    help: "Tokens of requests' answers (what the client is billed for), by model, provider, type and key.",
    labelNames: ['model', 'provider', 'type', 'key'] as const,
    registers: [this.registry],
  });
  private readonly requestCost = new Counter({
    name: 'keel_request_cost_usd_total',
    help: "USD of requests' answers (usage.cost), from the configured pricing, by model, provider and key.",
    labelNames: ['model', 'provider', 'key'] as const,
    registers: [this.registry],
  });

  // ---- Provider calls (the callProvider activity, both call paths) --------------------------
  private readonly attempts = new Counter({
    name: 'keel_provider_attempts_total',
    help: 'Provider call attempts, by provider, upstream model, call path, outcome and error class.',
    labelNames: ['provider', 'model', 'call_path', 'outcome', 'error_class'] as const,
    registers: [this.registry],
  });
  private readonly retries = new Counter({
    name: 'keel_provider_retries_total',
    help: 'Failed attempts after which the same target is tried again (Temporal retries the activity), by error class.',
    labelNames: ['provider', 'model', 'error_class'] as const,
    registers: [this.registry],
  });
  private readonly providerCost = new Counter({
    name: 'keel_provider_cost_usd_total',
    help: 'USD of every answered provider call (hedge and race calls that also answered included), from the configured pricing.',
    labelNames: ['provider', 'model'] as const,
    registers: [this.registry],
  });
  private readonly genaiDuration = new Histogram({
    name: 'gen_ai_client_operation_duration_seconds',
    help: 'GenAI operation duration (OpenTelemetry gen_ai.client.operation.duration): one provider call attempt.',
    labelNames: ['gen_ai_operation_name', 'gen_ai_provider_name', 'gen_ai_request_model', 'gen_ai_response_model', 'error_type', 'provider'] as const,
    buckets: GENAI_DURATION_BUCKETS,
    registers: [this.registry],
  });
  private readonly genaiTokens = new Histogram({
    name: 'gen_ai_client_token_usage',
    help: 'Number of input and output tokens used (OpenTelemetry gen_ai.client.token.usage), per answered provider call.',
    labelNames: ['gen_ai_operation_name', 'gen_ai_provider_name', 'gen_ai_request_model', 'gen_ai_response_model', 'gen_ai_token_type', 'provider'] as const,
    buckets: GENAI_TOKEN_BUCKETS,
    registers: [this.registry],
  });
  private readonly genaiFirstChunk = new Histogram({
    name: 'gen_ai_client_operation_time_to_first_chunk_seconds',
    help: 'Time to the first chunk of a streamed provider call (OpenTelemetry gen_ai.client.operation.time_to_first_chunk).',
    labelNames: ['gen_ai_operation_name', 'gen_ai_provider_name', 'gen_ai_request_model', 'provider'] as const,
    buckets: GENAI_DURATION_BUCKETS,
    registers: [this.registry],
  });

  // ---- Rate limits (src/worker/provider-slots.ts) -------------------------------------------
  private readonly rateWait = new Histogram({
    name: 'keel_rate_limit_wait_seconds',
    help: 'Time from scheduling a call on a rate-limited provider to its turn to send: held at the server, by the worker\'s polling and for its send turn.',
    labelNames: ['provider'] as const,
    buckets: WAIT_BUCKETS,
    registers: [this.registry],
  });
  private readonly rateWaiting = new Gauge({
    name: 'keel_rate_limit_waiting',
    help: 'Provider calls waiting now for their turn under a rate limit.',
    labelNames: ['provider'] as const,
    registers: [this.registry],
  });

  // ---- Keys (each key's workflow reports its budget: the `metrics.keyBudget` sink) -----------
  private readonly budgetRemaining = new Gauge({
    name: 'keel_key_budget_remaining_usd',
    help: "USD a virtual key may still spend in its budget period: its budget less this period's settled spend and its open reservations, as its workflow last reported it.",
    labelNames: ['key'] as const,
    registers: [this.registry],
  });
  private readonly budgetLimit = new Gauge({
    name: 'keel_key_budget_limit_usd',
    help: "A virtual key's budget for its period, USD.",
    labelNames: ['key'] as const,
    registers: [this.registry],
  });
  private readonly budgetUpdated = new Gauge({
    name: 'keel_key_budget_updated_timestamp_seconds',
    help: "When the key's workflow reported the budget this process shows (its clock, Unix seconds): across processes, the latest report is the key's budget now.",
    labelNames: ['key'] as const,
    registers: [this.registry],
  });
  private readonly keyRefusals = new Counter({
    name: 'keel_key_refusals_total',
    help: "Requests refused for their virtual key's sake before anything started, by key and reason (budget_exceeded, rate_limit_exceeded, model_not_allowed, ...).",
    labelNames: ['key', 'reason'] as const,
    registers: [this.registry],
  });
  private readonly headStarts = new Counter({
    name: 'keel_head_starts_total',
    help: "First calls a gateway's API sent as their requests started, by outcome: adopted by the request's first attempt, or abandoned (aborted unadopted: a wasted call).",
    labelNames: ['provider', 'outcome'] as const,
    registers: [this.registry],
  });
  /** The workflow clock of the budget report each key's series show (older reports are dropped). */
  private readonly budgetAt = new Map<string, number>();

  private readonly temporalUp = new Gauge({
    name: 'keel_temporal_metrics_up',
    help: "1 when the Temporal SDK's metrics were read for this scrape, 0 when they could not be (absent: this process runs no Temporal worker).",
    registers: [this.registry],
  });

  /** Where the breaker gauges read from (the worker's cached health snapshot); set by the worker. */
  private healthSources: HealthSource[] = [];

  constructor(opts: { processMetrics?: boolean } = {}) {
    // Read at scrape time from the worker's cached snapshot: no extra query to the health workflow.
    const sources = () => this.healthSources;
    new Gauge({
      name: 'keel_circuit_breaker_state',
      help: "1 for each target's current circuit breaker state (closed, open, half_open), as this worker last saw it.",
      labelNames: ['provider', 'model', 'state'] as const,
      registers: [this.registry],
      collect() {
        this.reset();
        // Targets the configuration does not name share the model label 'other': each of its
        // states is 1 when any of them is in it.
        const states = new Map<string, { provider: string; model: string; in: Set<BreakerStateName> }>();
        for (const { snapshot, routing } of latest(sources())) {
          for (const t of Object.values(snapshot.targets)) {
            const state = t.breaker.state === 'open' && t.breaker.retryAt !== undefined && Date.now() >= t.breaker.retryAt ? 'half_open' : t.breaker.state;
            const model = upstreamModelLabel(t.provider, t.model, routing);
            const key = `${t.provider}/${model}`;
            const entry = states.get(key) ?? { provider: t.provider, model, in: new Set<BreakerStateName>() };
            entry.in.add(state);
            states.set(key, entry);
          }
        }
        for (const { provider, model, in: current } of states.values()) {
          for (const s of BREAKER_STATES) this.set({ provider, model, state: s }, current.has(s) ? 1 : 0);
        }
      },
    });
    new Gauge({
      name: 'keel_circuit_breaker_opened',
      help: "How many times each target's circuit breaker has opened (kept by the provider-health workflow).",
      labelNames: ['provider', 'model'] as const,
      registers: [this.registry],
      collect() {
        this.reset();
        const opened = new Map<string, { provider: string; model: string; n: number }>();
        for (const { snapshot, routing } of latest(sources())) {
          for (const t of Object.values(snapshot.targets)) {
            const model = upstreamModelLabel(t.provider, t.model, routing);
            const entry = opened.get(`${t.provider}/${model}`) ?? { provider: t.provider, model, n: 0 };
            entry.n += t.breaker.opened;
            opened.set(`${t.provider}/${model}`, entry);
          }
        }
        for (const { provider, model, n } of opened.values()) this.set({ provider, model }, n);
      },
    });
    if (opts.processMetrics !== false) collectDefaultMetrics({ register: this.registry });
  }

  /** The breaker gauges read this worker's cached health snapshot at scrape time; `routing` bounds the model labels. */
  watchHealth(snapshot: () => HealthSnapshot | undefined, routing: RoutingConfig): void {
    this.healthSources.push({ snapshot, routing });
  }

  // ---- Recording -----------------------------------------------------------------------------

  httpStarted(): () => void {
    this.httpInFlight.inc();
    return () => this.httpInFlight.dec();
  }

  httpServed(method: string, route: string, status: number, seconds: number): void {
    this.httpDuration.observe({ method, route, status: String(status) }, seconds);
  }

  chatCompletion(o: ChatCompletionObservation): void {
    this.chatCompletions.inc({ model: o.model, provider: o.provider, outcome: o.outcome, error_class: o.errorClass ?? '', answered_at: o.answeredAt, key: o.key });
    this.chatDuration.observe({ model: o.model, provider: o.provider, outcome: o.outcome, answered_at: o.answeredAt, key: o.key }, o.seconds);
  }

  /** One request workflow's outcome, handed over by its `metrics.requestEnded` sink. */
  requestEnded(m: RequestMetrics): void {
    const provider = m.provider ?? '';
    const key = m.key;
    this.requests.inc({ model: m.model, provider, outcome: m.outcome, error_class: m.errorClass ?? '', mode: m.mode, source: m.batch ? 'batch' : 'api', key });
    this.requestDuration.observe({ model: m.model, provider, outcome: m.outcome, key }, m.durationMs / 1000);
    for (const f of m.fallbacks) this.fallbacks.inc({ model: m.model, provider: f.provider, target_model: f.model, error_class: f.errorClass });
    if (m.hedgesFired > 0) this.hedgesFired.inc({ model: m.model }, m.hedgesFired);
    if (m.hedgeWon) this.hedgesWon.inc({ model: m.model, provider });
    if (m.usage) {
      this.requestTokens.inc({ model: m.model, provider, type: 'input', key }, m.usage.input);
      this.requestTokens.inc({ model: m.model, provider, type: 'output', key }, m.usage.output);
    }
    if (m.cost !== undefined) this.requestCost.inc({ model: m.model, provider, key }, m.cost);
  }

  /** One attempt of the callProvider activity. */
  providerCall(o: ProviderCallObservation): void {
    const errorClass = o.errorClass ?? '';
    this.attempts.inc({ provider: o.provider, model: o.model, call_path: o.callPath, outcome: o.outcome, error_class: errorClass });
    if (o.retrying) this.retries.inc({ provider: o.provider, model: o.model, error_class: errorClass });
    // A cancelled call (a lost race or hedge, a client's cancel) is no completed operation.
    if (o.outcome === 'cancelled') return;
    const genai = { gen_ai_operation_name: 'chat', gen_ai_provider_name: GENAI_PROVIDER[o.providerType], gen_ai_request_model: o.model, provider: o.provider };
    this.genaiDuration.observe({ ...genai, gen_ai_response_model: o.responseModel ?? '', error_type: errorClass }, o.seconds);
    if (o.outcome !== 'success') return;
    if (o.inputTokens !== undefined) this.genaiTokens.observe({ ...genai, gen_ai_response_model: o.responseModel ?? '', gen_ai_token_type: 'input' }, o.inputTokens);
    if (o.outputTokens !== undefined) this.genaiTokens.observe({ ...genai, gen_ai_response_model: o.responseModel ?? '', gen_ai_token_type: 'output' }, o.outputTokens);
    if (o.cost !== undefined) this.providerCost.inc({ provider: o.provider, model: o.model }, o.cost);
  }

  /**
   * Time to the first chunk of a streamed provider call. Streaming is not on this branch yet: the
   * streaming call path calls this when its first content chunk arrives.
   */
  firstChunk(o: { provider: string; providerType: ProviderType; model: string; seconds: number }): void {
    this.genaiFirstChunk.observe({ gen_ai_operation_name: 'chat', gen_ai_provider_name: GENAI_PROVIDER[o.providerType], gen_ai_request_model: o.model, provider: o.provider }, o.seconds);
  }

  /**
   * A call on `provider`'s rate-limited queue, scheduled at `scheduledAtMs` (the server's clock),
   * starts waiting for its turn to send; the returned function ends the wait.
   */
  rateLimitWait(provider: string, scheduledAtMs: number): () => void {
    this.rateWaiting.inc({ provider });
    return () => {
      this.rateWaiting.dec({ provider });
      // Clocks of the server and this worker may differ a little: never a negative wait.
      this.rateWait.observe({ provider }, Math.max(0, Date.now() - scheduledAtMs) / 1000);
    };
  }

  /**
   * A virtual key's budget, as its workflow reports it after each reservation, settlement, release
   * or change (the `metrics.keyBudget` sink). A report older than the one shown is dropped: sinks
   * of one worker arrive in order, but a key's workflow may have run on another worker since.
   */
  keyBudget(report: KeyBudgetReport): void {
    const { key, at } = report;
    if (at < (this.budgetAt.get(key) ?? -Infinity)) return;
    if ('none' in report) {
      // No budget any more, or the key's workflow ended: its series go (bounded by the keys that exist).
      this.budgetAt.delete(key);
      this.budgetRemaining.remove({ key });
      this.budgetLimit.remove({ key });
      this.budgetUpdated.remove({ key });
      return;
    }
    this.budgetAt.set(key, at);
    this.budgetRemaining.set({ key }, report.remainingUsd);
    this.budgetLimit.set({ key }, report.limitUsd);
    this.budgetUpdated.set({ key }, at / 1000);
  }

  /** A request the API refused for its key (budget, rate limit, model) before starting anything. */
  keyRefused(key: string, reason: string): void {
    this.keyRefusals.inc({ key, reason });
  }

  /** A head start's end (activities/provider-call/head-start.ts). */
  headStart(provider: string, outcome: 'adopted' | 'abandoned'): void {
    this.headStarts.inc({ provider, outcome });
  }

  temporalMetricsRead(ok: boolean): void {
    this.temporalUp.set(ok ? 1 : 0);
  }

  /** The text exposition of Keel's metrics. */
  text(): Promise<string> {
    return this.registry.metrics();
  }
}

interface HealthSource {
  snapshot: () => HealthSnapshot | undefined;
  routing: RoutingConfig;
}

/** Each source's snapshot; several health agents in one registry (tests) each report their own. */
function latest(sources: HealthSource[]): { snapshot: HealthSnapshot; routing: RoutingConfig }[] {
  return sources.flatMap((s) => {
    const snapshot = s.snapshot();
    return snapshot ? [{ snapshot, routing: s.routing }] : [];
  });
}

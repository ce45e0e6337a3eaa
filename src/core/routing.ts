// Pure, deterministic planning: request + routing config -> ordered targets and a mode.
// Runs inside workflows (so: no I/O, no clock) and in the API to reject bad requests up front.
import type { AnswerMode, CallPath, RetrySettings, RoutingConfig, RoutingMode, StreamSettings, TimeoutSettings, ProviderType } from '../config/schema.js';
import { DEFAULT_STREAM } from '../config/stream-defaults.js';
import { FEATURES, unsupportedBy, type Feature, type FeatureUse } from './capabilities.js';
import type { KeelOptions, ProviderPrefs } from './chat-request.js';
import type { RoutingHealth } from './health-types.js';
import { applyBreakers, preferHealthy, sortTargets, type BreakerFilter } from './routing-health.js';

export interface Target {
  provider: string;
  providerType: ProviderType;
  /** Upstream model name sent to the provider. */
  model: string;
  contextWindow?: number;
  /** How calls reach the provider (absent: `queue`, as before call paths existed). */
  callPath?: CallPath;
}

export interface Plan {
  /** What the client asked for (public model name or provider/model). */
  requestedModel: string;
  targets: Target[];
  mode: RoutingMode;
  /** When a waiting client gets the answer: as soon as the workflow has it, or once recorded. */
  answer: AnswerMode;
  raceWidth: number;
  hedge: { delayMs: number; percentile?: number; maxShare: number };
  retry: RetrySettings;
  timeouts: TimeoutSettings;
  /** For a streamed request: the stall limit and what a break after the first token leads to. */
  stream: StreamSettings;
  /** Targets left out because their circuit breaker is open (health-aware plans only). */
  skipped?: BreakerFilter<Target>['skipped'];
  /** Targets left out because their wire format cannot carry a feature the request uses. */
  unsupported?: { target: string; feature: Feature; param: string }[];
  /** provider/model this request probes: one attempt, first. */
  probe?: string;
  /** A half-open target this request may ask to probe. */
  probeCandidate?: string;
}

export interface PlanOptions {
  /**
   * The features the request uses (capabilities.ts `requestFeatures`): targets whose wire format
   * cannot carry one are left out, and a request no target can carry is a 400. Without it every
   * target stays (how plans were made before capability routing; see workflows/health-plan.ts).
   */
  features?: readonly FeatureUse[];
}

export interface PlanInput {
  model?: string;
  models?: string[];
  provider?: ProviderPrefs;
  keel?: KeelOptions;
}

/** A request that cannot be planned; carries the OpenAI error fields the API answers with. */
export class PlanError extends Error {
  constructor(
    readonly status: 400 | 404,
    message: string,
    readonly param: string | null,
    readonly code: string,
  ) {
    super(message);
    this.name = 'PlanError';
  }
}

export function targetKey(t: Pick<Target, 'provider' | 'model'>): string {
  return `${t.provider}/${t.model}`;
}

function resolveModel(name: string, routing: RoutingConfig, param: string): { targets: Target[]; entry?: RoutingConfig['models'][string] } {
  const entry = routing.models[name];
  const refs = entry ? entry.targets : [name];
  const targets = refs.map((ref) => {
    const slash = ref.indexOf('/');
    const provider = slash > 0 ? ref.slice(0, slash) : '';
    const p = routing.providers[provider];
    if (!p || slash === ref.length - 1) {
      throw new PlanError(404, `The model '${name}' does not exist`, param, 'model_not_found');
    }
    const model = ref.slice(slash + 1);
    const contextWindow = p.models?.[model]?.contextWindow;
    return { provider, providerType: p.type, model, ...(contextWindow !== undefined && { contextWindow }), ...(p.callPath && { callPath: p.callPath }) };
  });
  return entry ? { targets, entry } : { targets };
}

function applyProviderPrefs(targets: Target[], prefs: ProviderPrefs | undefined, routing: RoutingConfig, health?: RoutingHealth): Target[] {
  // Healthier first among otherwise equal targets; a client's explicit order is kept as given.
  if (health && !prefs?.order) targets = preferHealthy(targets, health);
  if (!prefs) return targets;
  for (const field of ['order', 'only', 'ignore'] as const) {
    for (const name of prefs[field] ?? []) {
      if (!routing.providers[name]) throw new PlanError(400, `Unknown provider '${name}' in provider.${field}`, `provider.${field}`, 'invalid_provider');
    }
  }
  let out = targets;
  if (prefs.only) out = out.filter((t) => prefs.only!.includes(t.provider));
  if (prefs.ignore) out = out.filter((t) => !prefs.ignore!.includes(t.provider));
  // Before `order`, so the providers the client names come first and `sort` ranks the rest.
  if (prefs.sort) out = sortTargets(out, prefs.sort, routing, health);
  if (prefs.order) {
    const rank = (t: Target) => {
      const i = prefs.order!.indexOf(t.provider);
      return i === -1 ? prefs.order!.length : i;
    };
    // Stable sort keeps the configured order among providers the request did not rank.
    out = out.map((t, i) => ({ t, i })).sort((a, b) => rank(a.t) - rank(b.t) || a.i - b.i).map(({ t }) => t);
  }
  if (prefs.allow_fallbacks === false) {
    out = prefs.order ? out.filter((t) => prefs.order!.includes(t.provider)) : out.slice(0, 1);
  }
  return out;
}

function resolveTargets(req: PlanInput, routing: RoutingConfig): { names: string[]; primaryEntry?: RoutingConfig['models'][string]; targets: Target[] } {
  const names = [...(req.model !== undefined ? [req.model] : []), ...(req.models ?? [])];
  if (names.length === 0) throw new PlanError(400, 'model is required', 'model', 'missing_model');
  let primaryEntry: RoutingConfig['models'][string] | undefined;
  const seen = new Set<string>();
  const targets: Target[] = [];
  names.forEach((name, i) => {
    const resolved = resolveModel(name, routing, req.model !== undefined && i === 0 ? 'model' : `models`);
    if (i === 0) primaryEntry = resolved.entry;
    // A target listed twice would be a loop in the chain: keep its first place only.
    for (const t of resolved.targets) {
      if (!seen.has(targetKey(t))) {
        seen.add(targetKey(t));
        targets.push(t);
      }
    }
  });
  return primaryEntry ? { names, primaryEntry, targets } : { names, targets };
}

/** Leaves out the targets that cannot carry the request; none left is the client's 400, naming each target's obstacle. */
function applyCapabilities(targets: Target[], features: readonly FeatureUse[], model: string): { targets: Target[]; unsupported?: Plan['unsupported'] } {
  const able: Target[] = [];
  const unable: NonNullable<Plan['unsupported']> = [];
  for (const t of targets) {
    const use = unsupportedBy(t.providerType, features);
    if (use) unable.push({ target: targetKey(t), feature: use.feature, param: use.param });
    else able.push(t);
  }
  if (able.length === 0) {
    const why = unable.map((u) => {
      const type = targets.find((t) => targetKey(t) === u.target)?.providerType;
      return `${u.target} (${type}) cannot take ${FEATURES[u.feature]}, used at ${u.param}`;
    });
    throw new PlanError(400, `No target of model '${model}' can serve this request: ${why.join('; ')}`, unable[0].param, 'unsupported_feature');
  }
  return unable.length > 0 ? { targets: able, unsupported: unable } : { targets: able };
}

/** Every target a request could be routed to (before ordering and limits): whose health the workflow reads. */
export function healthCandidates(req: PlanInput, routing: RoutingConfig): string[] {
  const { only, ignore } = req.provider ?? {};
  return resolveTargets(req, routing)
    .targets.filter((t) => (!only || only.includes(t.provider)) && !ignore?.includes(t.provider))
    .map(targetKey);
}

/**
 * The targets health is read for ahead of starting these requests (a batch's next lines): every
 * candidate of each, once. A request this routing cannot plan adds none; it reads its own.
 */
export function healthTargets(requests: PlanInput[], routing: RoutingConfig): string[] {
  const out = new Set<string>();
  for (const req of requests) {
    try {
      for (const t of healthCandidates(req, routing)) out.add(t);
    } catch {
      // An unknown model here is the request's own error when it runs.
    }
  }
  return [...out];
}

/**
 * `health` (optional) makes the plan health-aware: open breakers are skipped, degraded targets
 * go last among equals, and `provider.sort` latency/throughput use the live figures.
 */
export function planRequest(req: PlanInput, routing: RoutingConfig, health?: RoutingHealth, opts: PlanOptions = {}): Plan {
  const { names, primaryEntry, targets: resolved } = resolveTargets(req, routing);
  let targets = resolved;
  targets = applyProviderPrefs(targets, req.provider, routing, health);
  if (targets.length === 0) {
    throw new PlanError(400, 'No target is left for this model after applying provider preferences', 'provider', 'no_targets');
  }
  let unsupported: Plan['unsupported'];
  if (opts.features) ({ targets, unsupported } = applyCapabilities(targets, opts.features, names[0]));
  let breakers: BreakerFilter<Target> | undefined;
  if (health) {
    breakers = applyBreakers(targets, health);
    targets = breakers.targets;
  }
  targets = targets.slice(0, routing.limits.maxTargets);

  const d = routing.defaults;
  const k = req.keel ?? {};
  const retry: RetrySettings = { ...d.retry, ...primaryEntry?.retry };
  if (k.max_attempts !== undefined) {
    if (k.max_attempts > routing.limits.maxAttemptsPerTarget) {
      throw new PlanError(400, `keel.max_attempts must be at most ${routing.limits.maxAttemptsPerTarget}`, 'keel.max_attempts', 'limit_exceeded');
    }
    retry.maxAttempts = k.max_attempts;
  }
  const timeouts: TimeoutSettings = { ...d.timeouts, ...primaryEntry?.timeouts };
  if (k.timeout_ms !== undefined) timeouts.requestMs = k.timeout_ms;
  if (k.attempt_timeout_ms !== undefined) timeouts.attemptMs = k.attempt_timeout_ms;
  if (timeouts.requestMs > routing.limits.maxRequestMs) {
    throw new PlanError(400, `keel.timeout_ms must be at most ${routing.limits.maxRequestMs}`, 'keel.timeout_ms', 'limit_exceeded');
  }
  const hedge = { ...d.hedge, ...primaryEntry?.hedge };
  if (k.hedge_delay_ms !== undefined) {
    hedge.delayMs = k.hedge_delay_ms;
    delete hedge.percentile;
  }
  if (hedge.percentile !== undefined && targets[0]) {
    const seen = health?.targets[targetKey(targets[0])];
    const observed = hedge.percentile === 50 ? seen?.p50Ms : seen?.p95Ms;
    if (typeof observed === 'number' && observed > 0) hedge.delayMs = Math.round(observed);
  }
  const stream: StreamSettings = {
    idleTimeoutMs: k.stream_idle_timeout_ms ?? primaryEntry?.stream?.idleTimeoutMs ?? d.stream?.idleTimeoutMs ?? DEFAULT_STREAM.idleTimeoutMs,
    recovery: k.stream_recovery ?? primaryEntry?.stream?.recovery ?? d.stream?.recovery ?? DEFAULT_STREAM.recovery,
  };
  const mode = k.mode ?? primaryEntry?.mode ?? d.mode;
  const answer = k.answer ?? primaryEntry?.answer ?? d.answer ?? 'recorded';
  const raceWidth = Math.max(1, Math.min(k.race_width ?? primaryEntry?.race?.width ?? 2, targets.length));
  return {
    requestedModel: names[0],
    targets,
    mode,
    answer,
    raceWidth,
    hedge,
    retry,
    timeouts: { ...timeouts, attemptMs: Math.min(timeouts.attemptMs, timeouts.requestMs) },
    stream,
    ...(breakers && breakers.skipped.length > 0 && { skipped: breakers.skipped }),
    ...(unsupported && { unsupported }),
    ...(breakers?.probe && { probe: breakers.probe }),
    ...(breakers?.probeCandidate && { probeCandidate: breakers.probeCandidate }),
  };
}

/**
 * A target is called through a local activity when its provider allows it and the request does
 * not hedge: a hedge delay is a workflow timer, and a timer started while a local activity holds
 * the workflow task open would only fire at the task's next heartbeat (docs/ROUTING.md).
 */
export function isLocalCall(plan: Pick<Plan, 'mode'>, target: Target): boolean {
  return target.callPath === 'local' && plan.mode !== 'hedge';
}

/**
 * A workflow task that runs a local provider call must prove itself alive well within a client's
 * patience: the SDK extends it at 80 % of this timeout, and only then do a cancel, a status query
 * or a timer reach the workflow (docs/ROUTING.md, "Call paths").
 */
export const LOCAL_CALL_TASK_TIMEOUT = '2s';

/**
 * The part of the routing configuration a request can touch: the models and providers it names
 * or may be routed to, the defaults and the limits. This is what a request workflow's input
 * carries (instead of the whole configuration); planning with it gives the same plan.
 */
export function routingFor(req: PlanInput, routing: RoutingConfig): RoutingConfig {
  const names = [...(req.model !== undefined ? [req.model] : []), ...(req.models ?? [])];
  const models: RoutingConfig['models'] = {};
  const providers: RoutingConfig['providers'] = {};
  const addProvider = (name: string) => {
    if (routing.providers[name]) providers[name] = routing.providers[name];
  };
  for (const name of names) {
    const entry = routing.models[name];
    if (entry) {
      models[name] = entry;
      for (const ref of entry.targets) addProvider(ref.slice(0, ref.indexOf('/')));
    } else if (name.includes('/')) {
      addProvider(name.slice(0, name.indexOf('/')));
    }
  }
  const prefs = req.provider;
  for (const name of [...(prefs?.order ?? []), ...(prefs?.only ?? []), ...(prefs?.ignore ?? [])]) addProvider(name);
  return { providers, models, defaults: routing.defaults, limits: routing.limits };
}

/** Every model a client can name: configured public models, then each provider's known upstream models. */
export function listModels(routing: RoutingConfig): { id: string; owned_by: string }[] {
  const out = Object.keys(routing.models).map((id) => ({ id, owned_by: 'keel' }));
  for (const [provider, p] of Object.entries(routing.providers)) {
    for (const model of Object.keys(p.models ?? {})) out.push({ id: `${provider}/${model}`, owned_by: provider });
  }
  for (const m of Object.values(routing.models)) {
    for (const ref of m.targets) if (!out.some((o) => o.id === ref)) out.push({ id: ref, owned_by: ref.slice(0, ref.indexOf('/')) });
  }
  return out;
}

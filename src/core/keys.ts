// A virtual key's state and the pure logic of its entity workflow (workflows/virtual-key.ts):
// reservations against the budget, settlement, the RPM/TPM window, allowed models, the view the
// API shows. Workflow-safe and deterministic: every function takes `now` from its caller (the
// workflow's clock), so the same inputs give the same state on replay. See docs/KEYS.md.

export const KEY_PERIODS = ['day', 'month', 'total'] as const;
export type KeyPeriod = (typeof KEY_PERIODS)[number];

/** Nano-USD per USD. Money is counted in integers: ten reservations of $0.001 must fit a $0.01 budget exactly. */
export const NANOS_PER_USD = 1_000_000_000;
export const RATE_WINDOW_MS = 60_000;
/** Settled request ids remembered against double counting (a retried POST, a repeated signal). */
const SETTLED_MEMORY = 2_000;

export function usdToNanos(usd: number): number {
  return Math.round(usd * NANOS_PER_USD);
}
export function nanosToUsd(nanos: number): number {
  return nanos / NANOS_PER_USD;
}

/** What an admin sets on a key (POST /v1/keys, PATCH /v1/keys/:id). */
export interface KeySettings {
  name?: string;
  /** Public model names, or `provider/model` patterns where `*` matches anything; absent: every model. */
  models?: string[];
  budget?: { usd: number; period: KeyPeriod };
  /** Requests admitted per rolling minute. */
  rpm?: number;
  /** Tokens (worst case at admission, actual once settled) per rolling minute. */
  tpm?: number;
  /** Epoch ms after which the key is refused. */
  expiresAt?: number;
  metadata?: Record<string, string>;
}

export interface KeyRecord {
  id: string;
  /** SHA-256 (hex) of the secret. The secret itself is shown once, at creation, and stored nowhere. */
  secretHash: string;
  createdAt: number;
  settings: KeySettings;
  revokedAt?: number;
}

export interface Reservation {
  nanos: number;
  tokens: number;
  at: number;
  /** Released without a charge if never settled by then (the request's deadline has long passed). */
  expiresAt: number;
}

export interface Admission {
  at: number;
  requestId: string;
  /** Worst case at admission; the actual count once the request is settled. */
  tokens: number;
}

export interface KeyState {
  record: KeyRecord;
  /** Start of the current budget period (epoch ms; the key's creation for `total`). */
  periodStart: number;
  /** Settled spend in the current period. */
  periodNanos: number;
  lifetimeNanos: number;
  /** Requests settled over the key's life. */
  settledCount: number;
  reservations: Record<string, Reservation>;
  /** Admissions of the last minute, oldest first: the RPM/TPM window. */
  window: Admission[];
  /** `requestId/runId` of recent settlements, oldest first. */
  settled: string[];
}

export interface ReserveItem {
  requestId: string;
  /** The request's worst-case cost. */
  nanos: number;
  /** The request's worst-case tokens (prompt + output), for TPM. */
  tokens: number;
  /** How long the reservation holds if it is never settled. */
  holdMs: number;
  /**
   * Items of one group are decided in order and stop at the first refusal: the later ones get the
   * same refusal untried (a batch starts its lines in file order and must not skip one).
   */
  group?: string;
}

export type Refusal =
  | { code: 'key_revoked' | 'key_expired'; message: string }
  | {
      code: 'budget_exceeded';
      message: string;
      budgetNanos: number;
      remainingNanos: number;
      requestedNanos: number;
      period: KeyPeriod;
      /** Epoch ms when the period's spend starts again from zero; absent for `total`. */
      resetsAt?: number;
    }
  | {
      code: 'rate_limit_exceeded';
      message: string;
      limit: 'rpm' | 'tpm';
      /** Absent when waiting cannot help (the request alone is over the TPM limit). */
      retryAfterMs?: number;
    };

export type ReserveOutcome =
  | {
      ok: true;
      /** The request id was reserved or settled before (a retried POST): nothing new is held. */
      duplicate?: boolean;
      /** Budget left after this reservation (absent without a budget). */
      remainingNanos?: number;
    }
  | { ok: false; refusal: Refusal };

export interface Settlement {
  requestId: string;
  /** The request workflow's run: a replayed (reset) request is a new run and is charged again. */
  runId: string;
  nanos: number;
  tokens: number;
}

export function newKeyState(record: KeyRecord): KeyState {
  return {
    record,
    periodStart: periodStartFor(record.settings.budget?.period ?? 'total', record.createdAt, record.createdAt),
    periodNanos: 0,
    lifetimeNanos: 0,
    settledCount: 0,
    reservations: {},
    window: [],
    settled: [],
  };
}

/** UTC calendar periods: a day from 00:00, a month from the 1st; `total` from the key's creation. */
export function periodStartFor(period: KeyPeriod, now: number, createdAt: number): number {
  const d = new Date(now);
  if (period === 'day') return Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate());
  if (period === 'month') return Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), 1);
  return createdAt;
}

export function periodEnd(period: KeyPeriod, start: number): number | undefined {
  const d = new Date(start);
  if (period === 'day') return Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate() + 1);
  if (period === 'month') return Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 1);
  return undefined;
}

/** A key that reserves before each request: one with a budget or a rate limit. */
export function needsReservation(settings: KeySettings): boolean {
  return settings.budget !== undefined || settings.rpm !== undefined || settings.tpm !== undefined;
}

/** Rolls the budget period over, releases expired reservations and forgets admissions older than the window. */
export function refresh(state: KeyState, now: number): void {
  const period = state.record.settings.budget?.period ?? 'total';
  const end = periodEnd(period, state.periodStart);
  if (end !== undefined && now >= end) {
    state.periodStart = periodStartFor(period, now, state.record.createdAt);
    state.periodNanos = 0;
  }
  for (const [id, r] of Object.entries(state.reservations)) if (r.expiresAt <= now) delete state.reservations[id];
  const cutoff = now - RATE_WINDOW_MS;
  let drop = 0;
  while (drop < state.window.length && state.window[drop].at <= cutoff) drop++;
  if (drop > 0) state.window.splice(0, drop);
}

export function reservedNanos(state: KeyState): number {
  return Object.values(state.reservations).reduce((n, r) => n + r.nanos, 0);
}

function wasSettled(state: KeyState, requestId: string): boolean {
  const prefix = `${requestId}/`;
  return state.settled.some((s) => s.startsWith(prefix));
}

/** Whether the key may be used at all at `now`: revoked and expired keys are refused. */
export function keyRefusal(record: KeyRecord, now: number): Refusal | undefined {
  if (record.revokedAt !== undefined) return { code: 'key_revoked', message: 'This API key has been revoked' };
  if (record.settings.expiresAt !== undefined && now >= record.settings.expiresAt) return { code: 'key_expired', message: 'This API key has expired' };
  return undefined;
}

const PERIOD_WORD: Record<KeyPeriod, string> = { day: 'daily', month: 'monthly', total: 'total' };

function usd(nanos: number): string {
  return `$${nanosToUsd(nanos).toFixed(6).replace(/0{1,4}$/, '')}`;
}

/** Decides one reservation against the (refreshed) state and, when admitted, records it. */
function reserveOne(state: KeyState, item: ReserveItem, now: number): ReserveOutcome {
  const { settings } = state.record;
  const refused = keyRefusal(state.record, now);
  if (refused) return { ok: false, refusal: refused };
  const budgetNanos = settings.budget ? usdToNanos(settings.budget.usd) : undefined;
  const remaining = () => (budgetNanos === undefined ? undefined : budgetNanos - state.periodNanos - reservedNanos(state));
  if (state.reservations[item.requestId] || wasSettled(state, item.requestId)) {
    const left = remaining();
    return { ok: true, duplicate: true, ...(left !== undefined && { remainingNanos: left }) };
  }
  if (settings.budget && budgetNanos !== undefined) {
    const left = remaining()!;
    if (item.nanos > left) {
      const resetsAt = periodEnd(settings.budget.period, state.periodStart);
      return {
        ok: false,
        refusal: {
          code: 'budget_exceeded',
          message: `This key's ${PERIOD_WORD[settings.budget.period]} budget of ${usd(budgetNanos)} has ${usd(Math.max(0, left))} left; this request may cost up to ${usd(item.nanos)}`,
          budgetNanos,
          remainingNanos: Math.max(0, left),
          requestedNanos: item.nanos,
          period: settings.budget.period,
          ...(resetsAt !== undefined && { resetsAt }),
        },
      };
    }
  }
  if (settings.rpm !== undefined && state.window.length >= settings.rpm) {
    const oldest = state.window[state.window.length - settings.rpm];
    return {
      ok: false,
      refusal: {
        code: 'rate_limit_exceeded',
        limit: 'rpm',
        message: `Rate limit reached for this key: ${settings.rpm} requests per minute`,
        retryAfterMs: Math.max(1, oldest.at + RATE_WINDOW_MS - now),
      },
    };
  }
  if (settings.tpm !== undefined) {
    if (item.tokens > settings.tpm) {
      return {
        ok: false,
        refusal: {
          code: 'rate_limit_exceeded',
          limit: 'tpm',
          message: `This request may use up to ${item.tokens} tokens, more than this key's limit of ${settings.tpm} tokens per minute: set a smaller max_tokens`,
        },
      };
    }
    let used = state.window.reduce((n, a) => n + a.tokens, 0);
    if (used + item.tokens > settings.tpm) {
      // The admission whose leaving the window makes room.
      let i = 0;
      while (used + item.tokens > settings.tpm) used -= state.window[i++].tokens;
      return {
        ok: false,
        refusal: {
          code: 'rate_limit_exceeded',
          limit: 'tpm',
          message: `Rate limit reached for this key: ${settings.tpm} tokens per minute (this request may use up to ${item.tokens})`,
          retryAfterMs: Math.max(1, state.window[i - 1].at + RATE_WINDOW_MS - now),
        },
      };
    }
  }
  state.reservations[item.requestId] = { nanos: item.nanos, tokens: item.tokens, at: now, expiresAt: now + item.holdMs };
  if (settings.rpm !== undefined || settings.tpm !== undefined) state.window.push({ at: now, requestId: item.requestId, tokens: item.tokens });
  const left = remaining();
  return { ok: true, ...(left !== undefined && { remainingNanos: left }) };
}

/** Reserves each item in turn (a later item sees the earlier ones' reservations). Mutates `state`. */
export function reserve(state: KeyState, items: readonly ReserveItem[], now: number): ReserveOutcome[] {
  refresh(state, now);
  const refusedGroups = new Map<string, Refusal>();
  return items.map((item) => {
    const earlier = item.group !== undefined ? refusedGroups.get(item.group) : undefined;
    if (earlier) return { ok: false, refusal: earlier };
    const outcome = reserveOne(state, item, now);
    if (!outcome.ok && item.group !== undefined) refusedGroups.set(item.group, outcome.refusal);
    return outcome;
  });
}

/** The outcomes `reserve` would give, leaving `state` as it is (the Update's validator). */
export function previewReserve(state: KeyState, items: readonly ReserveItem[], now: number): ReserveOutcome[] {
  return reserve(structuredCloneState(state), items, now);
}

function structuredCloneState(state: KeyState): KeyState {
  return JSON.parse(JSON.stringify(state)) as KeyState;
}

/** Charges a finished request and releases its reservation. A settlement seen before is ignored. */
export function settle(state: KeyState, s: Settlement, now: number): boolean {
  const id = `${s.requestId}/${s.runId}`;
  if (state.settled.includes(id)) return false;
  refresh(state, now);
  delete state.reservations[s.requestId];
  state.periodNanos += s.nanos;
  state.lifetimeNanos += s.nanos;
  state.settledCount += 1;
  const admission = state.window.find((a) => a.requestId === s.requestId);
  if (admission) admission.tokens = s.tokens;
  state.settled.push(id);
  if (state.settled.length > SETTLED_MEMORY) state.settled.splice(0, state.settled.length - SETTLED_MEMORY);
  return true;
}

/**
 * The key's budget for the metrics (`keel_key_budget_*`): the budget of its period and what is
 * left of it — spend settled this period and open reservations taken off, as GET /v1/keys/:id
 * shows it. Undefined for a key without a budget. Leaves `state` as it is.
 */
export function budgetReport(state: KeyState, now: number): { budgetNanos: number; remainingNanos: number } | undefined {
  const budget = state.record.settings.budget;
  if (!budget) return undefined;
  const end = periodEnd(budget.period, state.periodStart);
  // A period that has ended holds no spend of the current one (refresh rolls it over on the next change).
  const spent = end !== undefined && now >= end ? 0 : state.periodNanos;
  const reserved = Object.values(state.reservations).reduce((n, r) => n + (r.expiresAt > now ? r.nanos : 0), 0);
  const budgetNanos = usdToNanos(budget.usd);
  return { budgetNanos, remainingNanos: Math.max(0, budgetNanos - spent - reserved) };
}

/** Gives back a reservation whose request never started (its start failed): no charge, no admission. */
export function release(state: KeyState, requestId: string): void {
  delete state.reservations[requestId];
  const i = state.window.findIndex((a) => a.requestId === requestId);
  if (i >= 0) state.window.splice(i, 1);
}

/** A PATCH: `null` clears a setting, an absent field keeps it. */
export type KeySettingsPatch = { [K in keyof KeySettings]?: KeySettings[K] | null };

export function applySettings(state: KeyState, patch: KeySettingsPatch, now: number): void {
  const next: KeySettings = { ...state.record.settings };
  for (const [k, v] of Object.entries(patch) as [keyof KeySettings, unknown][]) {
    if (v === null) delete next[k];
    else if (v !== undefined) (next as Record<string, unknown>)[k] = v;
  }
  const before = state.record.settings.budget?.period ?? 'total';
  const after = next.budget?.period ?? 'total';
  state.record = { ...state.record, settings: next };
  // A new period kind counts from the start of its current period; the spend so far stays in it.
  if (before !== after) state.periodStart = periodStartFor(after, now, state.record.createdAt);
  refresh(state, now);
}

/** Every model name that a pattern list allows: `*` matches any run of characters. */
function matches(pattern: string, name: string): boolean {
  if (!pattern.includes('*')) return pattern === name;
  const parts = pattern.split('*');
  if (!name.startsWith(parts[0])) return false;
  let at = parts[0].length;
  for (let i = 1; i < parts.length - 1; i++) {
    const found = name.indexOf(parts[i], at);
    if (found < 0) return false;
    at = found + parts[i].length;
  }
  const last = parts[parts.length - 1];
  return name.length - at >= last.length && name.endsWith(last);
}

/**
 * Whether a key may use a model name a request gives: listed (or matched by a pattern) itself,
 * or a public model whose every target the patterns allow. `targets` are that name's
 * `provider/model` targets (empty for a `provider/model` name).
 */
export function modelAllowed(allowed: readonly string[] | undefined, name: string, targets: readonly string[]): boolean {
  if (allowed === undefined) return true;
  if (allowed.some((p) => matches(p, name))) return true;
  return targets.length > 0 && targets.every((t) => allowed.some((p) => matches(p, t)));
}

/** What GET /v1/keys/:id shows (never the secret or its hash). */
export interface KeyView {
  id: string;
  object: 'keel.key';
  name: string | null;
  status: 'active' | 'revoked' | 'expired';
  created_at: number;
  expires_at: number | null;
  revoked_at: number | null;
  models: string[] | null;
  metadata: Record<string, string>;
  budget: null | {
    usd: number;
    period: KeyPeriod;
    period_start: number;
    resets_at: number | null;
    spent_usd: number;
    reserved_usd: number;
    remaining_usd: number;
  };
  limits: {
    rpm: number | null;
    tpm: number | null;
    requests_last_minute: number;
    tokens_last_minute: number;
  };
  spend: { period_usd: number; lifetime_usd: number; requests: number };
  reservations: { request_id: string; usd: number; tokens: number; reserved_at: number; expires_at: number }[];
}

const seconds = (ms: number) => Math.floor(ms / 1000);

/** The view at `now` (the caller's clock), computed on a refreshed copy. */
export function keyView(source: KeyState, now: number): KeyView {
  const state = structuredCloneState(source);
  refresh(state, now);
  const { record } = state;
  const { settings } = record;
  const reserved = reservedNanos(state);
  const refusal = keyRefusal(record, now);
  const budgetNanos = settings.budget ? usdToNanos(settings.budget.usd) : 0;
  const end = settings.budget ? periodEnd(settings.budget.period, state.periodStart) : undefined;
  return {
    id: record.id,
    object: 'keel.key',
    name: settings.name ?? null,
    status: refusal?.code === 'key_revoked' ? 'revoked' : refusal?.code === 'key_expired' ? 'expired' : 'active',
    created_at: seconds(record.createdAt),
    expires_at: settings.expiresAt !== undefined ? seconds(settings.expiresAt) : null,
    revoked_at: record.revokedAt !== undefined ? seconds(record.revokedAt) : null,
    models: settings.models ?? null,
    metadata: settings.metadata ?? {},
    budget: settings.budget
      ? {
          usd: settings.budget.usd,
          period: settings.budget.period,
          period_start: seconds(state.periodStart),
          resets_at: end !== undefined ? seconds(end) : null,
          spent_usd: nanosToUsd(state.periodNanos),
          reserved_usd: nanosToUsd(reserved),
          remaining_usd: nanosToUsd(Math.max(0, budgetNanos - state.periodNanos - reserved)),
        }
      : null,
    limits: {
      rpm: settings.rpm ?? null,
      tpm: settings.tpm ?? null,
      requests_last_minute: state.window.length,
      tokens_last_minute: state.window.reduce((n, a) => n + a.tokens, 0),
    },
    spend: { period_usd: nanosToUsd(state.periodNanos), lifetime_usd: nanosToUsd(state.lifetimeNanos), requests: state.settledCount },
    reservations: Object.entries(state.reservations).map(([id, r]) => ({
      request_id: id,
      usd: nanosToUsd(r.nanos),
      tokens: r.tokens,
      reserved_at: seconds(r.at),
      expires_at: seconds(r.expiresAt),
    })),
  };
}

/** What the key workflow's query answers: the view, and the hash the API checks a presented secret against. */
export interface KeySnapshot {
  secretHash: string;
  view: KeyView;
}

/** A change through the admin API. */
export type KeyChange = { settings: KeySettingsPatch } | { revoke: true };

/** The key workflow's input (the state is carried across continue-as-new). */
export interface VirtualKeyInput {
  record: KeyRecord;
  state?: KeyState;
  /** Events after which a run continues as new (default 10,000; tests use a small one). */
  historyLimit?: number;
}

/** Public key ids: `vk_` and 24 hex digits (96 random bits). */
export const KEY_ID_PATTERN = /^vk_[0-9a-f]{24}$/;

/** The entity workflow's id for a key (one workflow per key). */
export function keyWorkflowId(keyId: string): string {
  return `keel-key-${keyId}`;
}

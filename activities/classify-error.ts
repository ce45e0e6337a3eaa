// Turns whatever an adapter threw into a ProviderErrorInfo. The HTTP status alone is not enough:
// a 429 may be a short rate limit or an empty account, a 400 may be a prompt that is too long
// for this model only, so the provider's error body is read as well.
import type { ErrorClass, ProviderErrorInfo } from '../src/error-classes.js';
import { ProviderCallError } from './providers/types.js';

export type ProviderType = 'openai' | 'anthropic' | 'gemini';

const MAX_DETAIL_CHARS = 300;

/**
 * True when `err` is the SDK's answer to an aborted signal (ours, when the activity is
 * cancelled), which is not a provider failure. With `signal`, only when that signal fired.
 */
export function isAbortError(err: unknown, signal?: AbortSignal): boolean {
  if (signal && !signal.aborted) return false;
  if (signal && err === signal.reason) return true;
  return chain(err).some((e) => is(e, 'AbortError') || is(e, 'APIUserAbortError'));
}

export function classifyError(err: unknown, providerType: ProviderType | string, secrets: readonly string[] = []): ProviderErrorInfo {
  const info = classify(err, providerType);
  return { ...info, message: scrub(info.message, secrets) };
}

function classify(err: unknown, provider: string): ProviderErrorInfo {
  if (err instanceof ProviderCallError) return err.toInfo();
  if (isAbortError(err)) return { errorClass: 'timeout', message: `${provider}: request aborted` };

  const http = httpFailure(err);
  if (http) return classifyHttp(provider, http);

  const links = chain(err);
  const syntax = links.find((e) => is(e, 'SyntaxError'));
  if (syntax) return { errorClass: 'bad_response', message: `${provider} answered with invalid JSON: ${detail(syntax.message)}` };

  const network = networkFailure(links);
  if (network) return { errorClass: network.errorClass, message: `${provider} ${network.errorClass === 'timeout' ? 'timed out' : 'unreachable'}: ${network.detail}` };

  // Unknown failures (an SDK refusing an answer it cannot parse, a translation bug on an odd
  // answer) are treated like a bad answer: worth another attempt and another target.
  const top = links[0];
  return { errorClass: 'bad_response', message: `${provider}: ${detail(top?.message ?? String(err))}` };
}

// ---- HTTP errors -------------------------------------------------------------------------

interface HttpFailure {
  status: number;
  /** OpenAI `code`. */
  code?: string;
  /** OpenAI/Anthropic `type`, Gemini `status` (e.g. RESOURCE_EXHAUSTED). */
  type?: string;
  message: string;
  details: Record<string, unknown>[];
  retryAfterMs?: number;
}

/** openai/anthropic APIError carry the parsed body in `.error`; genai's ApiError only as JSON text in `.message`. */
function httpFailure(err: unknown): HttpFailure | undefined {
  if (!isRecord(err) || typeof err.status !== 'number' || err.status < 400) return undefined;
  const status = err.status;
  const rawMessage = typeof err.message === 'string' ? err.message : '';
  let body: unknown = err.error;
  if (body === undefined) body = parseJson(rawMessage);
  const inner = isRecord(body) ? (isRecord(body.error) ? body.error : body) : undefined;
  const message =
    str(inner?.message) ??
    (typeof body === 'string' ? body : undefined) ??
    // The SDKs prefix their own message with the status; the bare text is what the provider said.
    rawMessage.replace(new RegExp(`^${status}\\s*`), '').trim();
  const details = Array.isArray(inner?.details) ? inner.details.filter(isRecord) : [];
  return {
    status,
    code: str(inner?.code),
    type: str(inner?.type) ?? str(inner?.status),
    message: message || `status ${status}`,
    details,
    retryAfterMs: retryAfterFromHeaders(err.headers) ?? retryAfterFromDetails(details),
  };
}

const CONTEXT_SIGNS =
  /context[ _]length|context window|maximum context|prompt is too long|too many (input )?tokens|exceeds the maximum number of tokens|input token count|reduce the length of the (messages|prompt)/i;
// Recent Claude models refuse sampling parameters; some Gemini models refuse candidateCount.
const UNSUPPORTED_SIGNS =
  /\b(temperature|top_p|top_k|topP|topK)\b.*\b(deprecated|not supported|unsupported|cannot both be specified)|multiple candidates|candidate_?count/i;
const GEMINI_EXHAUSTED_SIGNS = /\blimit: 0\b|spending cap|prepay|credits? (are|is|have been|has been) (depleted|exhausted)/i;

function classifyHttp(provider: string, f: HttpFailure): ProviderErrorInfo {
  const errorClass = httpClass(f);
  const label = f.code ?? f.type;
  const unsupported = errorClass === 'model_not_found' && f.status === 400 && UNSUPPORTED_SIGNS.test(f.message);
  const providerCode = unsupported ? 'unsupported_feature' : label;
  return {
    errorClass,
    status: f.status,
    message: `${provider} ${f.status}${label ? ` ${label}` : ''}: ${detail(f.message)}`,
    ...(providerCode !== undefined && { providerCode }),
    ...(f.retryAfterMs !== undefined && { retryAfterMs: f.retryAfterMs }),
  };
}

function httpClass(f: HttpFailure): ErrorClass {
  const ids = [f.code, f.type].map((s) => s?.toLowerCase());
  const has = (...names: string[]) => names.some((n) => ids.includes(n));
  const badRequest = f.status === 400 || f.status === 422;

  if (has('insufficient_quota', 'billing_hard_limit_reached', 'billing_error') || /credit balance is too low/i.test(f.message)) {
    return 'quota_exhausted';
  }
  if (has('context_length_exceeded', 'request_too_large') || f.status === 413 || (badRequest && CONTEXT_SIGNS.test(f.message))) {
    return 'context_too_long';
  }
  if (has('content_filter', 'content_policy_violation')) return 'content_filtered';
  if (has('model_not_found', 'not_found_error')) return 'model_not_found';
  if (f.status === 400 && UNSUPPORTED_SIGNS.test(f.message)) return 'model_not_found';
  if (has('overloaded_error', 'api_error')) return 'unavailable';
  if (has('rate_limit_error')) return 'rate_limited';
  if (has('authentication_error', 'permission_error', 'permission_denied', 'unauthenticated')) return 'auth';
  if (has('timeout_error', 'deadline_exceeded')) return 'timeout';
  // Gemini answers a bad key with 400 INVALID_ARGUMENT, reason API_KEY_INVALID.
  if (f.details.some((d) => d.reason === 'API_KEY_INVALID') || /api key not valid/i.test(f.message)) return 'auth';
  // "User location is not supported": this target cannot serve us, another may.
  if (has('failed_precondition') && /location/i.test(f.message)) return 'auth';

  switch (f.status) {
    case 401:
    case 402:
    case 403:
      return f.status === 402 ? 'quota_exhausted' : 'auth';
    case 404:
      return 'model_not_found';
    case 408:
      return 'timeout';
    case 409: // OpenAI: a lock conflict, explicitly worth retrying
      return 'unavailable';
    case 429:
      return isExhaustedQuota(f) ? 'quota_exhausted' : 'rate_limited';
  }
  return f.status >= 500 ? 'unavailable' : 'invalid_request';
}

/**
 * Gemini says "You exceeded your current quota" for per-minute limits too, so the words prove
 * nothing; a per-day quota (QuotaFailure quotaId ...PerDay...), a zero limit (no access on this
 * tier) or a spent prepaid balance will not recover by retrying within a request's lifetime.
 */
function isExhaustedQuota(f: HttpFailure): boolean {
  if (GEMINI_EXHAUSTED_SIGNS.test(f.message)) return true;
  return f.details.some(
    (d) =>
      Array.isArray(d.violations) &&
      d.violations.some((v) => isRecord(v) && [v.quotaId, v.quotaMetric].some((s) => typeof s === 'string' && /per ?day/i.test(s))),
  );
}

function retryAfterFromHeaders(headers: unknown): number | undefined {
  const get = (name: string): string | undefined => {
    if (!headers) return undefined;
    if (typeof (headers as Headers).get === 'function') return (headers as Headers).get(name) ?? undefined;
    if (isRecord(headers)) return str(headers[name]);
    return undefined;
  };
  const ms = Number(get('retry-after-ms'));
  if (get('retry-after-ms') && Number.isFinite(ms) && ms >= 0) return Math.round(ms);
  const after = get('retry-after')?.trim();
  if (!after) return undefined;
  if (/^\d+(\.\d+)?$/.test(after)) return Math.round(Number(after) * 1000);
  const date = Date.parse(after);
  return Number.isNaN(date) ? undefined : Math.max(0, date - Date.now());
}

/** Gemini puts the wait in a google.rpc.RetryInfo detail, e.g. retryDelay "37s". */
function retryAfterFromDetails(details: Record<string, unknown>[]): number | undefined {
  for (const d of details) {
    const m = typeof d.retryDelay === 'string' ? /^(\d+(?:\.\d+)?)s$/.exec(d.retryDelay) : null;
    if (m) return Math.round(Number(m[1]) * 1000);
  }
  return undefined;
}

// ---- Transport errors --------------------------------------------------------------------

const TIMEOUT_CODES = new Set(['ETIMEDOUT', 'UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT']);
const UNREACHABLE_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENETDOWN',
  'EPIPE',
  'ECONNABORTED',
  'UND_ERR_SOCKET',
  'UND_ERR_CLOSED',
]);

function networkFailure(links: ErrorLike[]): { errorClass: ErrorClass; detail: string } | undefined {
  const coded = links.filter((e) => typeof e.code === 'string');
  const describe = (e: ErrorLike | undefined) => detail(e ? `${e.message}${e.code && !e.message.includes(e.code) ? ` (${e.code})` : ''}` : 'connection failed');

  const timeout = links.find((e) => is(e, 'APIConnectionTimeoutError') || is(e, 'TimeoutError') || TIMEOUT_CODES.has(e.code ?? ''));
  if (timeout) return { errorClass: 'timeout', detail: describe(coded.find((e) => TIMEOUT_CODES.has(e.code!)) ?? timeout) };

  const known = coded.find((e) => UNREACHABLE_CODES.has(e.code!) || e.code!.startsWith('ERR_TLS') || e.code!.includes('CERT'));
  if (known) return { errorClass: 'unreachable', detail: describe(known) };
  // undici reports transport failures as TypeError "fetch failed" / "terminated"; the SDKs wrap them.
  const transport = links.find(
    (e) => is(e, 'APIConnectionError') || (is(e, 'TypeError') && /fetch failed|terminated|network/i.test(e.message)),
  );
  if (transport) return { errorClass: 'unreachable', detail: describe(coded.at(-1) ?? links.at(-1)) };
  return undefined;
}

// ---- Helpers -----------------------------------------------------------------------------

interface ErrorLike {
  name: string;
  /** Class name: the openai SDK leaves `name` as "Error" on its own error classes. */
  ctor: string;
  message: string;
  code?: string;
}

function is(e: ErrorLike, name: string): boolean {
  return e.name === name || e.ctor === name;
}

/** The error and its causes (and an AggregateError's members), outermost first. */
function chain(err: unknown): ErrorLike[] {
  const out: ErrorLike[] = [];
  const seen = new Set<unknown>();
  const visit = (e: unknown, depth: number): void => {
    if (!isRecord(e) || seen.has(e) || depth > 6) return;
    seen.add(e);
    const ctor = (e.constructor as { name?: unknown } | undefined)?.name;
    out.push({
      name: typeof e.name === 'string' ? e.name : 'Error',
      ctor: typeof ctor === 'string' ? ctor : '',
      message: typeof e.message === 'string' ? e.message : '',
      ...(typeof e.code === 'string' && { code: e.code }),
    });
    visit(e.cause, depth + 1);
    if (Array.isArray(e.errors)) for (const inner of e.errors) visit(inner, depth + 1);
  };
  visit(err, 0);
  return out;
}

function detail(text: string): string {
  const flat = text.replace(/\s+/g, ' ').trim();
  return flat.length > MAX_DETAIL_CHARS ? `${flat.slice(0, MAX_DETAIL_CHARS - 1)}…` : flat;
}

/** Configured keys, plus anything shaped like a well-known provider key, never leave in a message. */
const KEY_SHAPES = [/\bsk-[A-Za-z0-9_-]{16,}/g, /\bAIza[0-9A-Za-z_-]{30,}/g];

export function scrub(text: string, secrets: readonly string[]): string {
  let out = text;
  for (const secret of secrets) {
    if (secret && secret.length >= 4) out = out.split(secret).join('[redacted]');
  }
  for (const shape of KEY_SHAPES) out = out.replace(shape, '[redacted]');
  return out;
}

function parseJson(text: string): unknown {
  if (!text.startsWith('{')) return undefined;
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

function str(value: unknown): string | undefined {
  return typeof value === 'string' && value.length > 0 ? value : undefined;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null;
}

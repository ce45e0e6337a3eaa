// Turns whatever an adapter threw into a ProviderErrorInfo. The HTTP status alone is not enough:
// a 429 may be a short rate limit or an empty account, a 400 may be a prompt that is too long
// for this model only, so the provider's error body is read as well — by that provider's reader
// (providers/<name>/errors.ts); the status, transport failures and the signs every provider
// shares are decided here.
import type { ProviderType } from '../../src/config/schema.js';
import type { ErrorClass, ProviderErrorInfo } from '../../src/core/error-classes.js';
import { isRecord } from '../../src/core/guards.js';
import { anthropicErrors } from '../providers/anthropic/errors.js';
import { geminiErrors } from '../providers/gemini/errors.js';
import { openaiErrors } from '../providers/openai/errors.js';
import { ProviderCallError, type HttpFailure, type ProviderErrorReader } from '../providers/types.js';

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

  const reader = READERS[provider as ProviderType] as ProviderErrorReader | undefined;
  const http = httpFailure(err, reader);
  if (http) return classifyHttp(provider, http, reader);

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

/** The stack of what Keel itself threw (the cause an `internal` error wraps), for the worker's log. */
export function internalStack(err: unknown, secrets: readonly string[] = []): string {
  const inner = err instanceof Error && err.cause !== undefined ? err.cause : err;
  const text = inner instanceof Error ? (inner.stack ?? `${inner.name}: ${inner.message}`) : String(inner);
  return scrub(text, secrets);
}

// ---- HTTP errors -------------------------------------------------------------------------

const READERS: Record<ProviderType, ProviderErrorReader> = { openai: openaiErrors, anthropic: anthropicErrors, gemini: geminiErrors };

/**
 * Any SDK error with an HTTP status, read through its provider's reader; or an error event inside a
 * stream (OpenAI's `data: {"error": …}`, Anthropic's `event: error`), which the SDKs raise as their
 * API error without a status: status 0.
 */
function httpFailure(err: unknown, reader: ProviderErrorReader | undefined): HttpFailure | undefined {
  if (!isRecord(err)) return undefined;
  const inStream = err.status === undefined && isRecord(err.error) && chain(err).some((e) => is(e, 'APIError'));
  if (!inStream && (typeof err.status !== 'number' || err.status < 400)) return undefined;
  const status = inStream ? 0 : (err.status as number);
  const rawMessage = typeof err.message === 'string' ? err.message : '';
  const body = reader ? reader.body(err) : err.error;
  const inner = isRecord(body) ? (isRecord(body.error) ? body.error : body) : undefined;
  const message =
    str(inner?.message) ??
    (typeof body === 'string' ? body : undefined) ??
    // The SDKs prefix their own message with the status; the bare text is what the provider said.
    rawMessage.replace(new RegExp(`^${status}\\s*`), '').trim();
  const details = Array.isArray(inner?.details) ? inner.details.filter(isRecord) : [];
  const failure: HttpFailure = {
    status,
    code: str(inner?.code),
    type: str(inner?.type) ?? str(inner?.status),
    message: message || `status ${status}`,
    details,
  };
  const retryAfterMs = retryAfterFromHeaders(err.headers) ?? reader?.retryAfterMs?.(failure);
  return retryAfterMs === undefined ? failure : { ...failure, retryAfterMs };
}

const CONTEXT_SIGNS =
  /context[ _]length|context window|maximum context|prompt is too long|too many (input )?tokens|exceeds the maximum number of tokens|input token count|reduce the length of the (messages|prompt)/i;
// Recent Claude models refuse sampling parameters; some Gemini models refuse candidateCount.
const UNSUPPORTED_SIGNS =
  /\b(temperature|top_p|top_k|topP|topK)\b.*\b(deprecated|not supported|unsupported|cannot both be specified)|multiple candidates|candidate_?count/i;

function classifyHttp(provider: string, f: HttpFailure, reader: ProviderErrorReader | undefined): ProviderErrorInfo {
  const unsupported = f.status === 400 && UNSUPPORTED_SIGNS.test(f.message);
  // An error event mid-stream says nothing about the client's request: the provider failed while generating.
  const errorClass = reader?.classify(f) ?? (unsupported ? 'model_not_found' : f.status === 0 ? 'unavailable' : statusClass(f));
  const label = f.code ?? f.type;
  const providerCode = errorClass === 'model_not_found' && unsupported ? 'unsupported_feature' : label;
  return {
    errorClass,
    ...(f.status !== 0 && { status: f.status }),
    message: `${provider} ${f.status === 0 ? 'stream error' : f.status}${label ? ` ${label}` : ''}: ${detail(f.message)}`,
    ...(providerCode !== undefined && { providerCode }),
    ...(f.retryAfterMs !== undefined && { retryAfterMs: f.retryAfterMs }),
  };
}

/** What the status and the signs every provider shares say, when the provider's reader had no opinion. */
function statusClass(f: HttpFailure): ErrorClass {
  const badRequest = f.status === 400 || f.status === 422;
  if (f.status === 413 || (badRequest && CONTEXT_SIGNS.test(f.message))) return 'context_too_long';
  switch (f.status) {
    case 401:
    case 403:
      return 'auth';
    case 402:
      return 'quota_exhausted';
    case 404:
      return 'model_not_found';
    case 408:
      return 'timeout';
    case 409: // OpenAI: a lock conflict, explicitly worth retrying
      return 'unavailable';
    case 429:
      return 'rate_limited';
  }
  return f.status >= 500 ? 'unavailable' : 'invalid_request';
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

function str(value: unknown): string | undefined {
  return typeof value === 'string' && value.length > 0 ? value : undefined;
}

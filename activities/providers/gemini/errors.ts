// How Gemini says what went wrong: google.rpc statuses (RESOURCE_EXHAUSTED, ...) with typed
// details (ErrorInfo reasons, QuotaFailure, RetryInfo). @google/genai's ApiError carries the
// body only as JSON text in `.message`.
import type { ErrorClass } from '../../../src/core/error-classes.js';
import { isRecord } from '../../../src/core/guards.js';
import type { HttpFailure, ProviderErrorReader } from '../types.js';

const EXHAUSTED_SIGNS = /\blimit: 0\b|spending cap|prepay|credits? (are|is|have been|has been) (depleted|exhausted)/i;

/**
 * Gemini says "You exceeded your current quota" for per-minute limits too, so the words prove
 * nothing; a per-day quota (QuotaFailure quotaId ...PerDay...), a zero limit (no access on this
 * tier) or a spent prepaid balance will not recover by retrying within a request's lifetime.
 */
function isExhaustedQuota(f: HttpFailure): boolean {
  if (EXHAUSTED_SIGNS.test(f.message)) return true;
  return f.details.some(
    (d) =>
      Array.isArray(d.violations) &&
      d.violations.some((v) => isRecord(v) && [v.quotaId, v.quotaMetric].some((s) => typeof s === 'string' && /per ?day/i.test(s))),
  );
}

function parseJson(text: string): unknown {
  // An error inside a stream comes as "got status: UNAVAILABLE. {json}".
  text = text.replace(/^got status: [A-Z_]*\. /, '');
  if (!text.startsWith('{')) return undefined;
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

export const geminiErrors: ProviderErrorReader = {
  body: (err) => err.error ?? (typeof err.message === 'string' ? parseJson(err.message) : undefined),
  classify(f: HttpFailure): ErrorClass | undefined {
    const status = f.type?.toLowerCase();
    if (status === 'permission_denied' || status === 'unauthenticated') return 'auth';
    if (status === 'deadline_exceeded') return 'timeout';
    // A bad key is a 400 INVALID_ARGUMENT with reason API_KEY_INVALID.
    if (f.details.some((d) => d.reason === 'API_KEY_INVALID') || /api key not valid/i.test(f.message)) return 'auth';
    // "User location is not supported": this target cannot serve us, another may.
    if (status === 'failed_precondition' && /location/i.test(f.message)) return 'auth';
    if (f.status === 429 && isExhaustedQuota(f)) return 'quota_exhausted';
    return undefined;
  },
  /** The wait is in a google.rpc.RetryInfo detail, e.g. retryDelay "37s". */
  retryAfterMs(f: HttpFailure): number | undefined {
    for (const d of f.details) {
      const m = typeof d.retryDelay === 'string' ? /^(\d+(?:\.\d+)?)s$/.exec(d.retryDelay) : null;
      if (m) return Math.round(Number(m[1]) * 1000);
    }
    return undefined;
  },
};

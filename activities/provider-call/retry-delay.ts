// Delay before the next attempt on the same target. Temporal's RetryPolicy has no jitter, so the
// activity computes the delay itself and hands it to Temporal as `nextRetryDelay`.
import type { RetrySettings } from '../../src/config/schema.js';

export function backoffDelayMs(retry: RetrySettings, attempt: number, random: () => number = Math.random): number {
  const base = Math.min(retry.initialIntervalMs * retry.backoffCoefficient ** (attempt - 1), retry.maximumIntervalMs);
  // Spreads retries of many requests that failed together, so they do not return in step.
  const jitter = base * retry.jitter;
  return Math.max(1, Math.round(base - jitter + random() * jitter));
}

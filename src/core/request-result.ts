// What a request that succeeded answers with: built by the request workflow from its winning call,
// and by a gateway's API from its head-started call when it answers from the call (docs/REQUESTS.md,
// "When you get your answer"). One function for both, so the answer a client got from the call is
// the result the workflow then records. Pure and deterministic (workflow code imports it).
import type { RoutingConfig } from '../config/schema.js';
import { usageCost, withUsageCost } from './cost.js';
import { nanosToUsd, usdToNanos } from './keys.js';
import type { Plan } from './routing.js';
import type { AttemptRecord, ChatWorkflowResult, RequestKey, RequestKeyInfo } from './request-types.js';
import type { ChatCompletion } from 'openai/resources/chat/completions';

/** What a request made with a virtual key records about it; `charged` is nano-USD. */
export function keyInfo(key: RequestKey, chargedNanos: number): RequestKeyInfo {
  return {
    id: key.id,
    ...(key.reservedNanos !== undefined && { reserved_usd: nanosToUsd(key.reservedNanos) }),
    ...(key.remainingNanos !== undefined && { budget_remaining_usd: nanosToUsd(key.remainingNanos) }),
    charged_usd: nanosToUsd(chargedNanos),
  };
}

/**
 * What a successful request is charged: its cost from the answer's usage and the configured
 * pricing. An answer without usage is charged its whole reservation, so a provider (or a stream)
 * that reports no usage cannot spend a budget for free.
 */
export function charge(key: RequestKey, cost: number | undefined, usage: { total_tokens?: number; prompt_tokens?: number; completion_tokens?: number } | null | undefined) {
  const tokens = usage ? (usage.total_tokens ?? (usage.prompt_tokens ?? 0) + (usage.completion_tokens ?? 0)) : (key.reservedTokens ?? 0);
  if (cost !== undefined) return { nanos: usdToNanos(cost), tokens };
  return { nanos: usage ? 0 : (key.reservedNanos ?? 0), tokens };
}

export interface Succeeded {
  requestId: string;
  /** The target whose call answered. */
  provider: string;
  model: string;
  mode: Plan['mode'];
  completion: ChatCompletion;
  /** Every attempt of the request, the answering one last. */
  attempts: AttemptRecord[];
  routing: RoutingConfig;
  key?: RequestKey;
  stream?: ChatWorkflowResult['stream'];
}

export function succeededResult(s: Succeeded): ChatWorkflowResult {
  const cost = usageCost(s.completion.usage, s.provider, s.model, s.routing);
  return {
    completion: withUsageCost(s.completion, cost),
    keel: {
      request_id: s.requestId,
      provider: s.provider,
      model: s.model,
      mode: s.mode,
      attempts: s.attempts,
      ...(cost !== undefined && { cost }),
      ...(s.key && { key: keyInfo(s.key, charge(s.key, cost, s.completion.usage).nanos) }),
    },
    ...(s.stream && { stream: s.stream }),
  };
}

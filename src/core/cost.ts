// What a request cost, from the configured prices of the target that answered. Pure.
import type { RoutingConfig } from '../config/schema.js';

export interface TokenUsage {
  prompt_tokens?: number;
  completion_tokens?: number;
}

/** USD for one call; undefined when the target has no configured pricing or the answer no usage. */
export function usageCost(usage: TokenUsage | undefined | null, provider: string, model: string, routing: RoutingConfig): number | undefined {
  const pricing = routing.providers[provider]?.models?.[model]?.pricing;
  if (!pricing || !usage) return undefined;
  const usd = ((usage.prompt_tokens ?? 0) * pricing.input + (usage.completion_tokens ?? 0) * pricing.output) / 1_000_000;
  // Micro-dollar precision: enough for a bill, free of float noise in responses.
  return Math.round(usd * 1e9) / 1e9;
}

/** The completion with `usage.cost` set (OpenRouter's field), left as is without a cost. */
export function withUsageCost<T extends { usage?: object | null }>(completion: T, cost: number | undefined): T {
  if (cost === undefined || !completion.usage) return completion;
  return { ...completion, usage: { ...completion.usage, cost } };
}

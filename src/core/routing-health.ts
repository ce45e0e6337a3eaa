// The health-aware part of planning: sort by price/latency/throughput, prefer healthy targets,
// skip open breakers. Pure: health arrives as data (read by a local activity in the workflow).
import type { RoutingConfig } from '../config/schema.js';
import type { RoutingHealth, TargetRoutingHealth } from './health-types.js';

export type SortBy = 'price' | 'latency' | 'throughput';

interface TargetLike {
  provider: string;
  model: string;
}

const keyOf = (t: TargetLike) => `${t.provider}/${t.model}`;

function stableSort<T>(items: T[], score: (t: T) => number): T[] {
  return items
    .map((t, i) => ({ t, i, s: score(t) }))
    .sort((a, b) => a.s - b.s || a.i - b.i)
    .map(({ t }) => t);
}

/** USD per million tokens, input + output: OpenRouter's "price" compares both sides of a call. */
export function blendedPrice(t: TargetLike, routing: RoutingConfig): number | undefined {
  const pricing = routing.providers[t.provider]?.models?.[t.model]?.pricing;
  return pricing ? pricing.input + pricing.output : undefined;
}

/** Stable: targets without the figure a sort needs keep their order, after those that have it. */
export function sortTargets<T extends TargetLike>(targets: T[], sort: SortBy, routing: RoutingConfig, health?: RoutingHealth): T[] {
  const stat = (t: T): TargetRoutingHealth | undefined => health?.targets[keyOf(t)];
  const score: Record<SortBy, (t: T) => number> = {
    price: (t) => blendedPrice(t, routing) ?? Infinity,
    latency: (t) => stat(t)?.p50Ms ?? Infinity,
    // Highest first.
    throughput: (t) => -(stat(t)?.tokensPerSec ?? -Infinity),
  };
  return stableSort(targets, score[sort]);
}

export function isDegraded(h: TargetRoutingHealth | undefined, health: RoutingHealth): boolean {
  return h !== undefined && h.calls >= health.minCalls && h.successRate !== null && h.successRate < health.degradedBelow;
}

/** Healthy (or unknown) targets before degraded ones; the configured order otherwise. */
export function preferHealthy<T extends TargetLike>(targets: T[], health: RoutingHealth): T[] {
  return stableSort(targets, (t) => (isDegraded(health.targets[keyOf(t)], health) ? 1 : 0));
}

export interface BreakerFilter<T> {
  targets: T[];
  skipped: { target: string; reason: 'breaker_open' | 'breaker_half_open' }[];
  /** The target this request probes (it holds the half-open probe): tried first, once. */
  probe?: string;
  /** A half-open target this request could probe if granted (the workflow asks, then replans). */
  probeCandidate?: string;
}

export function applyBreakers<T extends TargetLike>(targets: T[], health: RoutingHealth): BreakerFilter<T> {
  const out: BreakerFilter<T> = { targets: [], skipped: [] };
  let probeTarget: T | undefined;
  for (const t of targets) {
    const h = health.targets[keyOf(t)];
    if (!h || h.breaker === 'closed') out.targets.push(t);
    else if (h.breaker === 'half_open' && h.probe && !probeTarget) probeTarget = t;
    else {
      if (h.breaker === 'half_open' && out.probeCandidate === undefined) out.probeCandidate = keyOf(t);
      out.skipped.push({ target: keyOf(t), reason: h.breaker === 'open' ? 'breaker_open' : 'breaker_half_open' });
    }
  }
  if (probeTarget) {
    // A probe that is never tried would hold the breaker half-open until the probe times out.
    out.targets.unshift(probeTarget);
    out.probe = keyOf(probeTarget);
    delete out.probeCandidate;
  }
  return out;
}

// Model names as metric labels. A label value must come from a bounded set: a client may name any
// upstream model of a configured provider (`provider/anything`), and each new value would be a new
// time series in every metric that carries it. So only names the configuration knows are kept.
// Pure and workflow-safe: the request workflow labels its own metrics with these too.
import type { RoutingConfig } from '../config/schema.js';

/** For requests naming neither a configured model nor an upstream model the configuration knows. */
export const OTHER = 'other';

/**
 * The `key` label of a request made without a virtual key (authentication off, or the admin key).
 * A virtual key's label is its id (`vk_…`, never its secret): the set is the keys an admin made.
 */
export const NO_KEY = 'none';

const known = new WeakMap<RoutingConfig, Set<string>>();

/** The `provider/model` targets the configuration names: models' targets and providers' model lists. */
function knownTargets(routing: RoutingConfig): Set<string> {
  let set = known.get(routing);
  if (!set) {
    set = new Set<string>();
    for (const entry of Object.values(routing.models)) for (const t of entry.targets) set.add(t);
    for (const [provider, p] of Object.entries(routing.providers)) for (const m of Object.keys(p.models ?? {})) set.add(`${provider}/${m}`);
    known.set(routing, set);
  }
  return set;
}

/** A requested model: a configured model name, a known `provider/model` target, else `other`. */
export function modelLabel(name: string | undefined, routing: RoutingConfig): string {
  if (name === undefined) return OTHER;
  // Own names only: `constructor` names no model.
  if (Object.hasOwn(routing.models, name) || knownTargets(routing).has(name)) return name;
  return OTHER;
}

/** An upstream model of `provider`: itself when the configuration knows the target, else `other`. */
export function upstreamModelLabel(provider: string, model: string, routing: RoutingConfig): string {
  return knownTargets(routing).has(`${provider}/${model}`) ? model : OTHER;
}

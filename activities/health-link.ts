// What the activities need of their worker's link to provider health. The worker passes its
// HealthAgent (src/worker/health-agent.ts), which has this shape; activities depend on the shape,
// not on the worker that assembles them.
import type { CallOutcome, RoutingHealth } from '../src/core/health-types.js';

export interface HealthLink {
  /** Resolves once the worker has a health snapshot (bounded: health is advisory). */
  ready(): Promise<void>;
  current(): unknown;
  /** The cached view of `targets` for the planner. */
  routingHealth(targets: string[]): RoutingHealth;
  /** Whether a non-probe call may go to this target now. */
  admits(target: string): boolean;
  acquireProbe(target: string, requestId: string): Promise<boolean>;
  /** A probe's outcome decides a breaker: report it now, not at the next interval. */
  publishSoon(): void;
  recorder: { record(call: CallOutcome): void };
}

// Health-aware planning inside the request workflow. Health lives in worker memory (a cached
// snapshot of the provider-health workflow); workflow code must not read it directly or replay
// would plan differently. A local activity reads it instead: its result is recorded as a marker
// in history, and replay uses the recorded value.
import { ApplicationFailure, isCancellation, proxyLocalActivities, upsertSearchAttributes } from '@temporalio/workflow';
import { requestHas } from './request-changes.js';
import type { KeelActivities } from '../activities/index.js';
import type { RoutingHealth } from '../src/core/health-types.js';
import type { ChatWorkflowInput, RequestFailureDetails } from '../src/core/request-types.js';
import { requestFeatures } from '../src/core/capabilities.js';
import { healthCandidates, planRequest, type Plan, type PlanOptions } from '../src/core/routing.js';
import { KeelErrorClass, KeelStatus } from '../src/core/search-attributes.js';

const { readHealth, acquireProbe } = proxyLocalActivities<KeelActivities>({
  startToCloseTimeout: '5s',
  retry: { maximumAttempts: 1 },
});

function holdingProbe(health: RoutingHealth, target: string): RoutingHealth {
  return { ...health, targets: { ...health.targets, [target]: { ...health.targets[target], probe: true } } };
}

/**
 * Executions started before capability routing called every target, including those that cannot
 * carry the request (their adapter refused it and the next target was tried): they replay with
 * that plan. A request accepted under an older, laxer schema (started before, or reset since) may
 * not have the shape requestFeatures reads: it is planned as before, and the provider call
 * refuses it as the client's 400 before any translation (activities/providers/common.ts).
 */
function capabilityOptions(input: ChatWorkflowInput): PlanOptions {
  if (!requestHas('capability-routing')) return {};
  try {
    return { features: requestFeatures(input.request) };
  } catch {
    return {};
  }
}

/** The plan, health-aware when the worker has a health snapshot. Throws PlanError like planRequest. */
export async function planWithHealth(input: ChatWorkflowInput, requestId: string): Promise<Plan> {
  const opts = capabilityOptions(input);
  const plain = planRequest(input.request, input.routing, undefined, opts);
  // Executions started before health-aware routing replay without these markers.
  if (!requestHas('health-routing')) return plain;
  let health: RoutingHealth | null;
  if (input.health !== undefined) {
    // Read by the API when it started the request (its worker's snapshot): no local activity.
    health = input.health;
  } else {
    try {
      health = await readHealth(healthCandidates(input.request, input.routing));
    } catch (err) {
      if (isCancellation(err)) throw err;
      // Health is advisory: without it, route as configured.
      return plain;
    }
  }
  if (!health) return plain;
  let plan = planRequest(input.request, input.routing, health, opts);
  if (plan.probeCandidate) {
    const target = plan.probeCandidate;
    const granted = await acquireProbe(target, requestId).catch((err) => {
      if (isCancellation(err)) throw err;
      return false;
    });
    if (granted) plan = planRequest(input.request, input.routing, holdingProbe(health, target), opts);
  }
  if (plan.targets.length === 0) {
    const open = (plan.skipped ?? []).map((s) => s.target).join(', ');
    const details: RequestFailureDetails = {
      errorClass: 'unavailable',
      status: 503,
      message: `Every target for model '${plan.requestedModel}' has an open circuit breaker (${open}); try again later`,
      attempts: [],
    };
    upsertSearchAttributes([
      { key: KeelErrorClass, value: 'unavailable' },
      { key: KeelStatus, value: 'failed' },
    ]);
    throw ApplicationFailure.create({ type: 'unavailable', message: details.message, nonRetryable: true, details: [details] });
  }
  return plan;
}

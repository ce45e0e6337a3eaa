// Everything a Keel worker registers as activities. Workflows import only the type.
import type { KeelConfig } from '../src/config/schema.js';
import type { HealthLink } from './health-link.js';
import type { RoutingHealth } from '../src/core/health-types.js';
import type { StreamBoard } from '../src/channels/stream-board.js';
import { createCallProvider, type CallObservers } from './provider-call/call-provider.js';
import type { HeadStarts } from './provider-call/head-start.js';
import { createDeliverWebhook } from './webhook/deliver.js';
import { takeHedge } from './provider-call/hedge-budget.js';

export function createActivities(config: KeelConfig, health?: HealthLink, observers: CallObservers = {}, streams?: StreamBoard, headStarts?: HeadStarts) {
  return {
    callProvider: createCallProvider(config, health, observers, streams, headStarts),
    /** Runs on the request task queue: POSTs an async job's signed webhook. */
    deliverWebhook: createDeliverWebhook(config),
    /** Runs as a local activity: the hedge budget is this worker's, read without a server round trip. */
    async hedgeAllowed(maxShare: number): Promise<boolean> {
      return takeHedge(maxShare);
    },
    /** Local activity: the worker's cached health snapshot, recorded as a marker so replay sees the same plan. */
    async readHealth(targets: string[]): Promise<RoutingHealth | null> {
      await health?.ready();
      return health?.current() ? health.routingHealth(targets) : null;
    },
    /** Local activity: asks the health workflow for a half-open target's single probe. */
    async acquireProbe(target: string, requestId: string): Promise<boolean> {
      return health ? health.acquireProbe(target, requestId) : false;
    },
  };
}

export type KeelActivities = ReturnType<typeof createActivities>;

// Everything a Keel worker registers as activities. Workflows import only the type.
import type { KeelConfig } from '../src/config.js';
import { createCallProvider } from './call-provider.js';
import { createDeliverWebhook } from './deliver-webhook.js';
import { takeHedge } from './hedge-budget.js';

export function createActivities(config: KeelConfig) {
  return {
    callProvider: createCallProvider(config),
    /** Runs on the request task queue: POSTs an async job's signed webhook. */
    deliverWebhook: createDeliverWebhook(config),
    /** Runs as a local activity: the hedge budget is this worker's, read without a server round trip. */
    async hedgeAllowed(maxShare: number): Promise<boolean> {
      return takeHedge(maxShare);
    },
  };
}

export type KeelActivities = ReturnType<typeof createActivities>;

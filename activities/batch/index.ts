// The batch activities, registered on the request task queue next to the batch workflow. They
// need the file store and a Temporal client (to read children's outcomes); workflows import
// only the type.
import { Context } from '@temporalio/activity';
import type { Client } from '@temporalio/client';
import type { BatchStore } from '../../src/store/batch-store.js';
import type { KeelConfig } from '../../src/config/schema.js';
import { createBatchFinalizeActivities } from './finalize.js';
import { createBatchRunActivities } from './run.js';
import type { RoutingHealth } from '../../src/core/health-types.js';
import { createValidateBatch } from './validate.js';

/** Heartbeats while the activity runs, so a worker killed mid-way is noticed within the heartbeat timeout. */
function heartbeating<A extends unknown[], R>(fn: (...args: A) => Promise<R>): (...args: A) => Promise<R> {
  return async (...args: A) => {
    const ctx = Context.current();
    const beat = setInterval(() => ctx.heartbeat(), 2_000);
    try {
      return await fn(...args);
    } finally {
      clearInterval(beat);
    }
  };
}

/** `readHealth`: the worker's health snapshot for some targets (undefined before the first one). */
export function createBatchActivities(config: KeelConfig, client: Client, files: BatchStore, readHealth?: (targets: string[]) => RoutingHealth | undefined) {
  const run = createBatchRunActivities(client, files, config.routing, readHealth);
  const fin = createBatchFinalizeActivities(files);
  return {
    validateBatchInput: heartbeating(createValidateBatch(config, files)),
    readBatchPage: heartbeating(run.readBatchPage),
    reserveBatchLines: heartbeating(run.reserveBatchLines),
    recordBatchResults: heartbeating(run.recordBatchResults),
    writeUnstartedErrors: heartbeating(run.writeUnstartedErrors),
    updateBatch: heartbeating(run.updateBatch),
    finalizeBatch: heartbeating(fin.finalizeBatch),
    prepareRetry: heartbeating(fin.prepareRetry),
  };
}

export type BatchActivities = ReturnType<typeof createBatchActivities>;

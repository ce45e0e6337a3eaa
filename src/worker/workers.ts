// Keel's worker role: the request workflows on the main task queue, and one activity worker per
// provider on that provider's task queue (its own rate limit, concurrency cap and scaling).
import { NativeConnection, Worker, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { createActivities } from '../../activities/index.js';
import { Client } from '@temporalio/client';
import { createBatchActivities } from '../../activities/batch/index.js';
import { openBatchStore } from '../store/batch-store.js';
import type { KeelConfig } from '../config/schema.js';
import { HealthAgent } from './health-agent.js';
import { providerWorkerOptions } from './provider-slots.js';
import { batchTaskQueue, providerHealthWorkflowId, providerTaskQueue } from '../core/task-queues.js';

export interface KeelWorkersOptions {
  connection: NativeConnection;
  config: KeelConfig;
  workflowBundle: WorkflowBundleWithSourceMap;
  identity?: string;
}

export async function createKeelWorkers(opts: KeelWorkersOptions): Promise<Worker[]> {
  const { connection, config } = opts;
  const workers: Worker[] = [];
  const health = new HealthAgent({
    client: new Client({ connection, namespace: config.namespace }),
    workflowId: providerHealthWorkflowId(config.taskQueue),
    taskQueue: config.taskQueue,
    settings: config.health,
    ...(opts.identity && { identity: opts.identity }),
    // The request worker's state stands for the set: once it stops, publish the rest and stop.
    stopWhen: () => workers.length > 0 && !['INITIALIZED', 'RUNNING'].includes(workers[0].getState()),
  });
  const activities = createActivities(config, health);
  const common = { connection, namespace: config.namespace, ...(opts.identity && { identity: opts.identity }) };
  workers.push(
    await Worker.create({
      ...common,
      taskQueue: config.taskQueue,
      workflowBundle: opts.workflowBundle,
      // Local activities run where the workflow runs.
      activities: {
        hedgeAllowed: activities.hedgeAllowed,
        deliverWebhook: activities.deliverWebhook,
        readHealth: activities.readHealth,
        acquireProbe: activities.acquireProbe,
      },
    }),
  );
  for (const [name, provider] of Object.entries(config.providers)) {
    workers.push(
      await Worker.create({
        ...common,
        taskQueue: providerTaskQueue(name),
        activities: { callProvider: activities.callProvider },
        ...providerWorkerOptions(provider),
      }),
    );
  }
  // Batch workflows and their activities on a queue of their own. A batch run is one long-lived
  // workflow with thousands of promises; in the shared V8 context (reuseV8Context) the worker
  // crashed under load ("async hook stack has become corrupted"), so batches get isolated contexts.
  workers.push(
    await Worker.create({
      ...common,
      taskQueue: batchTaskQueue(config.taskQueue),
      workflowBundle: opts.workflowBundle,
      reuseV8Context: false,
      // One thread is enough for the few batch runs a worker drives; each thread holds a V8 heap.
      workflowThreadPoolSize: 1,
      maxCachedWorkflows: 20,
      // Batch activities read children's outcomes through a client on the worker's own connection.
      activities: createBatchActivities(config, new Client({ connection, namespace: config.namespace }), openBatchStore()),
    }),
  );
  health.start();
  return workers;
}

/** Runs until every worker has shut down (call `shutdown()` on them, or send SIGINT/SIGTERM). */
export async function runKeelWorkers(workers: Worker[]): Promise<void> {
  await Promise.all(workers.map((w) => w.run()));
}

// Whether this API can serve requests: Temporal answers, and a worker polls the request task queue.
import type { Client } from '@temporalio/client';
import proto from '@temporalio/proto';
import type { KeelConfig } from '../config/schema.js';

// A poller seen within this window counts as a live worker (pollers re-poll at least once a minute).
const POLLER_FRESH_MS = 90_000;

export interface HealthCheck {
  ok: boolean;
  temporal: 'ok' | 'unreachable';
  /** Workers seen polling the request task queue. */
  workers: number;
  problem?: string;
}

export async function checkHealth(client: Client, config: KeelConfig): Promise<HealthCheck> {
  let temporalOk = false;
  let workers = 0;
  let problem: string | undefined;
  try {
    await client.workflowService.getSystemInfo({});
    temporalOk = true;
    const described = await client.workflowService.describeTaskQueue({
      namespace: config.namespace,
      taskQueue: { name: config.taskQueue, kind: proto.temporal.api.enums.v1.TaskQueueKind.TASK_QUEUE_KIND_NORMAL },
      taskQueueType: proto.temporal.api.enums.v1.TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
    });
    const now = Date.now();
    workers = (described.pollers ?? []).filter((p) => {
      const seen = p.lastAccessTime?.seconds ? Number(p.lastAccessTime.seconds) * 1000 : 0;
      return now - seen < POLLER_FRESH_MS;
    }).length;
    if (workers === 0) problem = `no worker is polling task queue ${config.taskQueue}`;
  } catch (err) {
    problem = `Temporal is not reachable: ${(err as Error).message}`;
  }
  return { ok: temporalOk && workers > 0, temporal: temporalOk ? 'ok' : 'unreachable', workers, ...(problem && { problem }) };
}

// Whether this API can serve requests, and if not, why: Temporal does not answer (the server or
// the network is down: nothing can be started or read), or it answers but no worker polls the
// request task queue (requests would be accepted and wait). An operator acts differently on each.
import type { Client } from '@temporalio/client';
import proto from '@temporalio/proto';
import type { KeelConfig } from '../config/schema.js';

// A poller seen within this window counts as a live worker (pollers re-poll at least once a minute).
const POLLER_FRESH_MS = 90_000;
// A health probe answers promptly: the client's own retries would hold it for many seconds while
// the server is down (each call is retried with backoff on Unavailable). The deadline bounds a gRPC
// client's calls; a gateway's client runs on the worker's native connection, whose retries can go
// past it (about 10 s measured), so the probe stops waiting at the deadline itself.
const TEMPORAL_DEADLINE_MS = 3_000;

function unanswered(ms: number): { promise: Promise<never>; clear(): void } {
  let timer: NodeJS.Timeout | undefined;
  const promise = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
  });
  return { promise, clear: () => clearTimeout(timer) };
}

export type HealthProblem = 'temporal_unreachable' | 'no_worker_polling';

export interface HealthCheck {
  ok: boolean;
  temporal: 'ok' | 'unreachable';
  /**
   * Workers seen polling the request task queue (0 when Temporal is unreachable: unknown). The
   * server describes the queue's root partition: with several partitions, a lower bound.
   */
  workers: number;
  /** Why it is not ok. */
  code?: HealthProblem;
  problem?: string;
}

export async function checkHealth(client: Client, config: KeelConfig): Promise<HealthCheck> {
  let described;
  const late = unanswered(TEMPORAL_DEADLINE_MS);
  try {
    const asked = client.withDeadline(Date.now() + TEMPORAL_DEADLINE_MS, async () => {
      await client.workflowService.getSystemInfo({});
      return client.workflowService.describeTaskQueue({
        namespace: config.namespace,
        taskQueue: { name: config.taskQueue, kind: proto.temporal.api.enums.v1.TaskQueueKind.TASK_QUEUE_KIND_NORMAL },
        taskQueueType: proto.temporal.api.enums.v1.TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
      });
    });
    // What the call says after the probe answered matters to no one.
    asked.catch(() => undefined);
    described = await Promise.race([asked, late.promise]);
  } catch (err) {
    return { ok: false, temporal: 'unreachable', workers: 0, code: 'temporal_unreachable', problem: `Temporal is not reachable: ${(err as Error).message}` };
  } finally {
    late.clear();
  }
  const now = Date.now();
  const workers = (described.pollers ?? []).filter((p) => {
    const seen = p.lastAccessTime?.seconds ? Number(p.lastAccessTime.seconds) * 1000 : 0;
    return now - seen < POLLER_FRESH_MS;
  }).length;
  if (workers === 0) return { ok: false, temporal: 'ok', workers, code: 'no_worker_polling', problem: `no worker is polling task queue ${config.taskQueue}` };
  return { ok: true, temporal: 'ok', workers };
}

// Where a Keel request's time goes, from its workflow history: the server stamps every event, so
// the waits between them (a task scheduled → picked up by a worker → completed) split the
// request into hops without any clock of ours. Medians over the most recent requests.
import { Client, Connection } from '@temporalio/client';
import proto from '@temporalio/proto';
import { WORKFLOW_TYPES } from '../../src/core/contract.js';

const T = proto.temporal.api.enums.v1.EventType;

/** An event's server timestamp, in ms. */
export function ms(ts: { seconds?: unknown; nanos?: number | null } | null | undefined): number {
  return Number(ts?.seconds ?? 0) * 1000 + (ts?.nanos ?? 0) / 1e6;
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? NaN : +s[Math.floor((s.length - 1) / 2)].toFixed(2);
};

/**
 * Per request workflow: first workflow task (wait for a worker, then run: planning, the health
 * read's local activities, search attributes), the provider activity (wait, run: the HTTP call),
 * the completing workflow task (wait, run), and start → close in all.
 */
export async function hopBreakdown(address: string, taskQueue: string, count = 100): Promise<Record<string, number>> {
  const connection = await Connection.connect({ address });
  try {
    const client = new Client({ connection });
    const ids: string[] = [];
    for await (const wf of client.workflow.list({ query: `WorkflowType="${WORKFLOW_TYPES.request}" AND TaskQueue="${taskQueue}" AND ExecutionStatus="Completed"` })) {
      ids.push(wf.workflowId);
      if (ids.length >= count) break;
    }
    const hops: Record<string, number[]> = { wft1Wait: [], wft1Run: [], activityWait: [], activityRun: [], wft2Wait: [], wft2Run: [], total: [] };
    for (const id of ids) {
      const history = await client.workflow.getHandle(id).fetchHistory();
      const events = history.events ?? [];
      const at = (type: number, nth = 0) => ms(events.filter((e) => e.eventType === type)[nth]?.eventTime);
      const start = at(T.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED);
      const close = at(T.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED);
      hops.wft1Wait.push(at(T.EVENT_TYPE_WORKFLOW_TASK_STARTED, 0) - at(T.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED, 0));
      hops.wft1Run.push(at(T.EVENT_TYPE_WORKFLOW_TASK_COMPLETED, 0) - at(T.EVENT_TYPE_WORKFLOW_TASK_STARTED, 0));
      hops.activityWait.push(at(T.EVENT_TYPE_ACTIVITY_TASK_STARTED) - at(T.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED));
      hops.activityRun.push(at(T.EVENT_TYPE_ACTIVITY_TASK_COMPLETED) - at(T.EVENT_TYPE_ACTIVITY_TASK_STARTED));
      // The last workflow task: the one that completes the workflow.
      const n = events.filter((e) => e.eventType === T.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED).length - 1;
      hops.wft2Wait.push(at(T.EVENT_TYPE_WORKFLOW_TASK_STARTED, n) - at(T.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED, n));
      hops.wft2Run.push(at(T.EVENT_TYPE_WORKFLOW_TASK_COMPLETED, n) - at(T.EVENT_TYPE_WORKFLOW_TASK_STARTED, n));
      hops.total.push(close - start);
    }
    return { workflows: ids.length, ...Object.fromEntries(Object.entries(hops).map(([k, v]) => [k, median(v)])) };
  } finally {
    await connection.close();
  }
}

import { proxyActivities, proxyLocalActivities, condition, allHandlersFinished } from '@temporalio/workflow';
import { WorkflowStream } from '@temporalio/workflow-streams/workflow';
import type * as acts from './activities.js';
const remote = proxyActivities<typeof acts>({ startToCloseTimeout: '1 minute' });
const local = proxyLocalActivities<typeof acts>({ startToCloseTimeout: '1 minute' });
export async function streamed(n: number, gap: number, batchMs: number, path: 'remote' | 'local', channel: 'wfs' | 'direct'): Promise<void> {
  const stream = new WorkflowStream();
  const done = stream.topic<{ done: true }>('done');
  await (path === 'local' ? local : remote).produce(n, gap, batchMs, channel);
  done.publish({ done: true });
  await condition(allHandlersFinished);
}

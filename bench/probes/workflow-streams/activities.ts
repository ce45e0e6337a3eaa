import { EventEmitter } from 'node:events';
import { Context } from '@temporalio/activity';
import { WorkflowStreamClient } from '@temporalio/workflow-streams/client';
export const board = new EventEmitter();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
export async function produce(n: number, gap: number, batchMs: number, channel: 'wfs' | 'direct'): Promise<void> {
  const id = Context.current().info.workflowExecution.workflowId;
  if (channel === 'direct') {
    for (let i = 0; i < n; i++) { board.emit(id, { i, t: performance.now() + performance.timeOrigin }); await sleep(gap); }
    board.emit(id, { done: true });
    return;
  }
  const client = WorkflowStreamClient.fromWithinActivity(batchMs === 0 ? {} : { batchInterval: batchMs });
  const tokens = client.topic<{ i: number; t: number }>('tokens');
  for (let i = 0; i < n; i++) {
    tokens.publish({ i, t: performance.now() + performance.timeOrigin }, { forceFlush: batchMs === 0 });
    await sleep(gap);
  }
  await client.flush();
  await (client as any)[Symbol.asyncDispose]?.();
}

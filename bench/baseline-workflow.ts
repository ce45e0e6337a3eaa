// The batch benchmark's baseline: the least a "line = workflow + provider call activity" design
// can cost on the same server — no routing, health, search attributes or batch bookkeeping.
import { proxyActivities } from '@temporalio/workflow';

export interface BaselineActivities {
  callFake(body: unknown): Promise<unknown>;
}

const { callFake } = proxyActivities<BaselineActivities>({ startToCloseTimeout: '30s', taskQueue: 'baseline-provider' });

export async function baselineLineWorkflow(body: unknown): Promise<unknown> {
  return await callFake(body);
}

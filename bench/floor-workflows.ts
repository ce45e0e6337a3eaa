// The gateway benchmark's floors: the least that "one LLM call = one durable workflow" can cost on
// Keel's dev server, with no Keel code (no routing, health, search attributes). Workflow code only.
import { allHandlersFinished, condition, defineUpdate, proxyActivities, proxyLocalActivities, setHandler } from '@temporalio/workflow';

export interface FloorActivities {
  callFake(body: unknown): Promise<unknown>;
  /** The answer of the call the starting client made after the start was durable (in the same process). */
  takeCall(): Promise<unknown>;
}

// The activity on the workflow's own task queue: the server may hand it to the worker in the
// workflow task's completion response (eager activity dispatch, on by default in the SDK).
const { callFake } = proxyActivities<FloorActivities>({ startToCloseTimeout: '30s', retry: { maximumAttempts: 1 } });
const local = proxyLocalActivities<FloorActivities>({ startToCloseTimeout: '30s', retry: { maximumAttempts: 1 } });

export async function floorActivityWorkflow(body: unknown): Promise<unknown> {
  return await callFake(body);
}

export async function floorLocalActivityWorkflow(body: unknown): Promise<unknown> {
  return await local.callFake(body);
}

/** The call made by the client once the start is durable; the workflow records its answer by local activity. */
export async function floorRecordCallWorkflow(): Promise<unknown> {
  return await local.takeCall();
}

/** Durable start alone: the workflow does nothing; the client measures the start call only. */
export async function floorEmptyWorkflow(): Promise<void> {}

/** The floors' one update: a bench's own name, not one of Keel's (those live in src/core/contract.ts). */
const CALL_UPDATE = 'call';
export const callUpdate = defineUpdate<unknown, [unknown]>(CALL_UPDATE);

/** Update-with-Start: the call happens in the update handler; the workflow ends once it has answered. */
export async function floorUpdateWorkflow(): Promise<void> {
  let done = false;
  setHandler(callUpdate, async (body) => {
    try {
      return await local.callFake(body);
    } finally {
      done = true;
    }
  });
  await condition(() => done && allHandlersFinished());
}

// Changes made to the request workflow while it had one type, each behind `patched()` so that
// executions begun before it replay as they ran. Every execution of the current type
// (WORKFLOW_TYPES.request) began on code that has all of them: it skips the check, and its history
// holds no patch marker and no TemporalChangeVersion upsert for them, which Temporal would otherwise
// write for every request (one visibility write each). Executions of the V1 type still ask.
// A change made from now on goes behind `patched()` for both types, as before.
import { patched, workflowInfo } from '@temporalio/workflow';
import { WORKFLOW_TYPES } from '../src/core/contract.js';

export type RequestChange = 'capability-routing' | 'health-routing' | 'webhook' | 'virtual-keys';

export function requestHas(change: RequestChange): boolean {
  return workflowInfo().workflowType !== WORKFLOW_TYPES.requestV1 || patched(change);
}

// The singleton provider-health workflow: every worker sends it one aggregated report per publish
// interval; it keeps the sliding windows and the breakers, and answers snapshots and probe
// requests. Temporal is the shared store, so health survives worker restarts with no extra service.
import {
  allHandlersFinished,
  condition,
  continueAsNew,
  defineQuery,
  defineSignal,
  defineUpdate,
  setHandler,
  workflowInfo,
} from '@temporalio/workflow';
import { applyHealthReport, buildSnapshot, grantProbe, pruneState, type HealthState } from '../src/health-state.js';
import type { BreakerSettings, HealthReport, HealthSnapshot } from '../src/health-types.js';

export interface ProviderHealthInput {
  settings: BreakerSettings;
  /** Carried across continue-as-new. */
  state?: HealthState;
}

export const healthReportSignal = defineSignal<[HealthReport]>('report');
export const healthConfigureSignal = defineSignal<[BreakerSettings]>('configure');
/** `now` is the caller's clock: windows are relative to it, not to the last report. */
export const healthSnapshotQuery = defineQuery<HealthSnapshot, [{ now: number; series?: boolean }]>('snapshot');
export const acquireProbeUpdate = defineUpdate<boolean, [{ target: string; requestId: string }]>('acquireProbe');

// One report per worker per second is ~3,600 events an hour: start a fresh run well before
// Temporal's history limits, carrying only the (pruned) state.
const MAX_HISTORY_EVENTS = 4_000;

export async function providerHealthWorkflow(input: ProviderHealthInput): Promise<void> {
  const state: HealthState = input.state ?? { settings: input.settings, targets: {} };
  setHandler(healthConfigureSignal, (settings) => {
    state.settings = settings;
  });
  setHandler(healthReportSignal, (report) => applyHealthReport(state, report, Date.now()));
  setHandler(acquireProbeUpdate, ({ target, requestId }) => grantProbe(state, target, requestId, Date.now()));
  setHandler(healthSnapshotQuery, ({ now, series }) => buildSnapshot(state, now, series === true));

  await condition(() => workflowInfo().continueAsNewSuggested || workflowInfo().historyLength > MAX_HISTORY_EVENTS);
  await condition(allHandlersFinished);
  await continueAsNew<typeof providerHealthWorkflow>({ settings: state.settings, state: pruneState(state, Date.now()) });
}

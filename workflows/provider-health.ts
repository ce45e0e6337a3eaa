// The singleton provider-health workflow: every worker sends it one aggregated report per publish
// interval; it keeps the sliding windows and the breakers, and answers snapshots and probe
// requests. Temporal is the shared store, so health survives worker restarts with no extra service.
import { allHandlersFinished, condition, continueAsNew, setHandler, workflowInfo } from '@temporalio/workflow';
import {
  acquireProbeUpdate,
  healthConfigureSignal,
  healthReportSignal,
  healthSnapshotQuery,
  type ProviderHealthInput,
  type ProviderHealthWorkflow,
} from '../src/core/contract.js';
import { applyHealthReport, buildSnapshot, grantProbe, pruneState, type HealthState } from '../src/core/health-state.js';

// One report per worker per second is ~3,600 events an hour: start a fresh run well before
// Temporal's history limits, carrying only the (pruned) state.
const MAX_HISTORY_EVENTS = 4_000;

export const providerHealthWorkflow: ProviderHealthWorkflow = async (input: ProviderHealthInput): Promise<void> => {
  const state: HealthState = input.state ?? { settings: input.settings, targets: {} };
  setHandler(healthConfigureSignal, (settings) => {
    state.settings = settings;
  });
  setHandler(healthReportSignal, (report) => applyHealthReport(state, report, Date.now()));
  setHandler(acquireProbeUpdate, ({ target, requestId }) => grantProbe(state, target, requestId, Date.now()));
  setHandler(healthSnapshotQuery, ({ now, series }) => buildSnapshot(state, now, series === true));

  await condition(() => workflowInfo().continueAsNewSuggested || workflowInfo().historyLength > MAX_HISTORY_EVENTS);
  await condition(allHandlersFinished);
  await continueAsNew<ProviderHealthWorkflow>({ settings: state.settings, state: pruneState(state, Date.now()) });
};

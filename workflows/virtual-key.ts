// One virtual key = one long-lived entity workflow (its ID derived from the key's id). Its state is
// the key: settings, the hash of its secret, spend, open reservations and the RPM/TPM window.
// Temporal runs a workflow's updates one at a time, so a reservation is decided against every
// earlier one, whichever API process sent it: that is what keeps a key within its budget across
// replicas. The logic is pure (src/core/keys.ts); this file only wires it to Temporal. docs/KEYS.md.
import { ApplicationFailure, allHandlersFinished, condition, continueAsNew, proxySinks, setHandler, upsertMemo, upsertSearchAttributes, workflowInfo } from '@temporalio/workflow';
import {
  changeKeyUpdate,
  keySnapshotQuery,
  releaseKeySignal,
  reserveKeyUpdate,
  settleKeySignal,
  type KeelSinks,
  type VirtualKeyWorkflow,
} from '../src/core/contract.js';
import { applySettings, budgetReport, keyView, nanosToUsd, newKeyState, previewReserve, refresh, release, reserve, settle, type ReserveItem, type VirtualKeyInput } from '../src/core/keys.js';
import { KeelStatus } from '../src/core/search-attributes.js';

// Every accepted reservation writes two update events and a workflow task's three: start a fresh
// run, carrying only the state, long before Temporal's history limits.
const MAX_HISTORY_EVENTS = 10_000;

function validItems(items: unknown): items is ReserveItem[] {
  return (
    Array.isArray(items) &&
    items.length > 0 &&
    items.every(
      (i: Partial<ReserveItem>) =>
        typeof i?.requestId === 'string' &&
        [i.nanos, i.tokens, i.holdMs].every((n) => typeof n === 'number' && Number.isFinite(n) && n >= 0),
    )
  );
}

const { metrics } = proxySinks<KeelSinks>();

export const virtualKeyWorkflow: VirtualKeyWorkflow = async (input: VirtualKeyInput) => {
  const state = input.state ?? newKeyState(input.record);
  /**
   * The budget as it now stands, to the worker's metrics (`keel_key_budget_*`). A sink: no command,
   * nothing in the history, not called again on replay — every reservation, settlement and release
   * passes through here, whichever API process or batch sent it, so this is the one place that sees
   * them all.
   */
  const budgeted = () => state.record.settings.budget !== undefined;
  const reportBudget = (ended = false) => {
    const at = Date.now();
    const budget = ended ? undefined : budgetReport(state, at);
    metrics.keyBudget(
      budget
        ? { key: state.record.id, at, limitUsd: nanosToUsd(budget.budgetNanos), remainingUsd: nanosToUsd(budget.remainingNanos) }
        : { key: state.record.id, at, none: true },
    );
  };

  setHandler(
    reserveKeyUpdate,
    (items) => {
      const outcomes = reserve(state, items, Date.now());
      if (budgeted() && outcomes.some((o) => o.ok && !o.duplicate)) reportBudget();
      return outcomes;
    },
    {
      // A refusal rejected here costs nothing in the history: the Update never becomes an event.
      validator: (items) => {
        if (!validItems(items)) throw ApplicationFailure.create({ type: 'invalid_reservation', message: 'A reservation needs a request id and non-negative amounts', nonRetryable: true });
        const outcomes = previewReserve(state, items, Date.now());
        const first = outcomes[0];
        if (!first.ok && outcomes.every((o) => !o.ok)) {
          throw ApplicationFailure.create({ type: first.refusal.code, message: first.refusal.message, nonRetryable: true, details: [first.refusal, outcomes] });
        }
      },
    },
  );
  setHandler(settleKeySignal, (s) => {
    if (settle(state, s, Date.now()) && budgeted()) reportBudget();
  });
  setHandler(releaseKeySignal, ({ requestId }) => {
    release(state, requestId);
    if (budgeted()) reportBudget();
  });
  setHandler(changeKeyUpdate, (change) => {
    const now = Date.now();
    if ('revoke' in change) {
      if (state.record.revokedAt === undefined) {
        state.record = { ...state.record, revokedAt: now };
        upsertSearchAttributes([{ key: KeelStatus, value: 'revoked' }]);
      }
    } else {
      if (state.record.revokedAt !== undefined) throw ApplicationFailure.create({ type: 'key_revoked', message: 'This key has been revoked', nonRetryable: true });
      applySettings(state, change.settings, now);
      upsertMemo({ name: state.record.settings.name ?? null });
      reportBudget();
    }
    return keyView(state, now);
  });
  setHandler(keySnapshotQuery, ({ now }) => ({ secretHash: state.record.secretHash, view: keyView(state, now) }));

  const limit = input.historyLimit ?? MAX_HISTORY_EVENTS;
  const newRun = () => workflowInfo().continueAsNewSuggested || workflowInfo().historyLength > limit;
  const revoked = () => state.record.revokedAt !== undefined;
  const open = () => Object.values(state.reservations);
  for (;;) {
    if (revoked()) {
      // A revoked key waits for its requests in flight to settle (or their reservations to
      // expire), so their spend is recorded, then ends with its final view.
      const expiries = open().map((r) => r.expiresAt);
      if (expiries.length === 0) break;
      await condition(() => newRun() || open().length === 0, Math.max(1, Math.min(...expiries) - Date.now()));
      refresh(state, Date.now());
    } else {
      await condition(() => newRun() || revoked());
    }
    if (newRun()) {
      await condition(allHandlersFinished);
      await continueAsNew<VirtualKeyWorkflow>({ record: state.record, state, ...(input.historyLimit !== undefined && { historyLimit: input.historyLimit }) });
    }
  }
  await condition(allHandlersFinished);
  reportBudget(true);
  return keyView(state, Date.now());
};

// The one Temporal contract between Keel's workflows and everything that talks to them: workflow
// type names and signatures, and every signal, query and update. Workflows register handlers
// for these definitions; the API, services and worker send them. No handler or workflow name
// is written anywhere else (test/boundaries.test.ts checks).
import { defineQuery, defineSignal, defineUpdate, type Sinks } from '@temporalio/workflow';
import type { BreakerSettings, RoutingMode } from '../config/schema.js';
import type { ErrorClass } from './error-classes.js';
import type { BatchWorkflowInput } from './batch-types.js';
import type { HealthState } from './health-state.js';
import type { HealthReport, HealthSnapshot } from './health-types.js';
import type { ChatWorkflowInput, ChatWorkflowResult, RequestFailureDetails, RequestStatusView } from './request-types.js';
import type { KeyChange, KeySnapshot, KeyView, ReserveItem, ReserveOutcome, Settlement, VirtualKeyInput } from './keys.js';

/** Workflow type names: the exported function names in workflows/index.ts. */
export const WORKFLOW_TYPES = {
  /** Every request started now (docs/ARCHITECTURE.md, "Workflow types and versions"). */
  request: 'chatCompletionWorkflowV2',
  /**
   * The same workflow under the name requests had before V2. Executions of it may have begun before
   * any of the changes behind `patched()` (workflows/request-changes.ts), so they ask their history;
   * nothing starts it any more, and it stays registered for those still in flight or reset.
   */
  requestV1: 'chatCompletionWorkflow',
  batch: 'batchWorkflow',
  providerHealth: 'providerHealthWorkflow',
  virtualKey: 'virtualKeyWorkflow',
} as const;

/** Every type a request's workflow may have been started as. */
export const REQUEST_WORKFLOW_TYPES: readonly string[] = [WORKFLOW_TYPES.request, WORKFLOW_TYPES.requestV1];

export function isRequestWorkflowType(type: string): boolean {
  return REQUEST_WORKFLOW_TYPES.includes(type);
}

export interface ProviderHealthInput {
  settings: BreakerSettings;
  /** Carried across continue-as-new. */
  state?: HealthState;
}

/** One LLM request: its result, or a Failed execution whose ApplicationFailure carries the attempt log. */
export type RequestWorkflow = (input: ChatWorkflowInput) => Promise<ChatWorkflowResult>;
/** One OpenAI batch (one run per round); returns its final status. */
export type BatchWorkflow = (input: BatchWorkflowInput) => Promise<string>;
/** The deployment's singleton provider-health state. */
export type ProviderHealthWorkflow = (input: ProviderHealthInput) => Promise<void>;
/** One virtual key: its settings, spend, reservations and rate window; returns its last view once revoked. */
export type VirtualKeyWorkflow = (input: VirtualKeyInput) => Promise<KeyView>;

// ---- Request workflow ----------------------------------------------------------------------
/** Live state of a request: attempts so far, targets in flight, outcome while a webhook is delivered. */
export const requestStatusQuery = defineQuery<RequestStatusView>('status');

/** What a request workflow settled on, as it hands it to the worker before recording it. */
export type SettledRequest = { ok: true; result: ChatWorkflowResult } | { ok: false; failure: RequestFailureDetails };

/**
 * Sinks: calls from workflow code into the worker process, outside the history (never replayed).
 * `answers.settled` runs before the workflow task that records the outcome is sent to the
 * server, so an API waiting in the same process can answer at once (the `early` answer path,
 * docs/REQUESTS.md).
 */
export interface KeelSinks extends Sinks {
  answers: { settled(outcome: SettledRequest): void };
  /** Registered with `callDuringReplay: false`: each outcome is counted once, when it happens. */
  metrics: {
    requestEnded(request: RequestMetrics): void;
    /** A virtual key's workflow after each change to its budget: a reservation, a settlement, a release, new settings, its end. */
    keyBudget(report: KeyBudgetReport): void;
  };
}

/**
 * A virtual key's budget as its workflow holds it (src/core/keys.ts, `budgetReport`). `at` is the
 * workflow's clock: a report older than one already seen is stale (the key's workflow moved to
 * another worker and back).
 */
export type KeyBudgetReport =
  | { key: string; at: number; limitUsd: number; remainingUsd: number }
  /** No budget (none set, or cleared), or the key's workflow ended (revoked): its series go away. */
  | { key: string; at: number; none: true };

/**
 * What a request workflow hands its worker's metrics when it ends: the decisions only workflow code
 * sees (fallbacks, hedges) and its outcome. Labels only: no request id, no prompt, no secret.
 */
export interface RequestMetrics {
  /** The model asked for, as the configuration knows it ('other' otherwise: src/core/metric-labels.ts). */
  model: string;
  mode: RoutingMode;
  outcome: 'succeeded' | 'failed' | 'cancelled';
  errorClass?: ErrorClass;
  /** The provider that answered, or the last one tried. */
  provider?: string;
  targetModel?: string;
  durationMs: number;
  /** Each target given up on before the next one was tried (an upstream model the configuration does not name: 'other'). */
  fallbacks: { provider: string; model: string; errorClass: ErrorClass }[];
  hedgesFired: number;
  /** The answer came from a call started by a hedge. */
  hedgeWon: boolean;
  /** Tokens of the answer. */
  usage?: { input: number; output: number };
  /** USD of the answer (usage.cost). */
  cost?: number;
  /** A batch line (a child of a batch workflow). */
  batch: boolean;
  /** The virtual key's id, or NO_KEY ('none': src/core/metric-labels.ts). */
  key: string;
}

// ---- Batch workflow ------------------------------------------------------------------------
/** Stop starting lines; running ones are cancelled and the batch ends `cancelled`. */
export const cancelBatchSignal = defineSignal('cancelBatch');

// ---- Provider-health workflow --------------------------------------------------------------
/** A worker's aggregated calls since its last report. */
export const healthReportSignal = defineSignal<[HealthReport]>('report');
/** The breaker settings of the workers' configuration. */
export const healthConfigureSignal = defineSignal<[BreakerSettings]>('configure');
/** `now` is the caller's clock: windows are relative to it, not to the last report. */
export const healthSnapshotQuery = defineQuery<HealthSnapshot, [{ now: number; series?: boolean }]>('snapshot');
/** Asks for a half-open target's single probe; true for exactly one request at a time. */
export const acquireProbeUpdate = defineUpdate<boolean, [{ target: string; requestId: string }]>('acquireProbe');

// ---- Virtual-key workflow (docs/KEYS.md) ----------------------------------------------------
/**
 * Reserves each item's worst case against the key's budget and RPM/TPM limits, in order. Its
 * validator refuses the whole Update (nothing is written to the history) when every item would be
 * refused; the refusal's ApplicationFailure carries the first item's Refusal and every item's
 * outcome as its details.
 */
export const reserveKeyUpdate = defineUpdate<ReserveOutcome[], [ReserveItem[]]>('reserve');
/** A finished request's actual cost and tokens (sent by the request workflow itself as it ends). */
export const settleKeySignal = defineSignal<[Settlement]>('settle');
/** A reservation whose request never started. */
export const releaseKeySignal = defineSignal<[{ requestId: string }]>('release');
/** PATCH /v1/keys/:id and DELETE /v1/keys/:id (revocation); answers with the view after the change. */
export const changeKeyUpdate = defineUpdate<KeyView, [KeyChange]>('change');
/** The key as the API shows it, at the caller's `now`, with the hash a presented secret is checked against. */
export const keySnapshotQuery = defineQuery<KeySnapshot, [{ now: number }]>('keySnapshot');

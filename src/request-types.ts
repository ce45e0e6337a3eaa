// Shapes that cross the workflow/activity/API boundaries. Type-only, so workflows may import them.
import type { ChatCompletion } from 'openai/resources/chat/completions';
import type { RetrySettings, RoutingConfig } from './config.js';
import type { ChatRequestBody } from './chat-request.js';
import type { ErrorClass } from './error-classes.js';
import type { Plan } from './routing.js';

export interface AttemptRecord {
  /** provider/upstream-model */
  target: string;
  provider: string;
  model: string;
  /** 1-based attempt number on this target. */
  attempt: number;
  /** Epoch ms. */
  startedAt: number;
  durationMs: number;
  outcome: 'success' | 'error' | 'cancelled';
  errorClass?: ErrorClass;
  status?: number;
  message?: string;
  /** Delay before the next attempt on this target, when one follows. */
  retryInMs?: number;
}

export interface ProviderCallInput {
  requestId: string;
  provider: string;
  model: string;
  request: ChatRequestBody;
  retry: RetrySettings;
  /** Epoch ms after which no new attempt is worth starting (whole-request budget). */
  deadline: number;
}

export interface ProviderCallOutput {
  completion: ChatCompletion;
  attempts: AttemptRecord[];
}

/** Carried in heartbeat details and failure details so every attempt reaches the attempt log. */
export interface AttemptLogDetails {
  attempts: AttemptRecord[];
}

export interface ChatWorkflowInput {
  request: ChatRequestBody;
  routing: RoutingConfig;
  batchId?: string;
  /** Plan computed by the caller for validation; the workflow recomputes it from the same inputs. */
  plan?: Plan;
}

export interface KeelResponseInfo {
  request_id: string;
  provider: string;
  model: string;
  mode: Plan['mode'];
  attempts: AttemptRecord[];
}

export interface ChatWorkflowResult {
  completion: ChatCompletion;
  keel: KeelResponseInfo;
}

/** Details of the ApplicationFailure a request workflow fails with when every target is spent. */
export interface RequestFailureDetails {
  errorClass: ErrorClass;
  /** HTTP status the client gets. */
  status: number;
  message: string;
  attempts: AttemptRecord[];
}

export type RequestState = 'running' | 'succeeded' | 'failed' | 'cancelled';

export interface RequestStatusView {
  state: RequestState;
  requestedModel: string;
  mode: Plan['mode'];
  /** Targets with a provider call in flight. */
  activeTargets: string[];
  attempts: AttemptRecord[];
  startedAt: number;
}

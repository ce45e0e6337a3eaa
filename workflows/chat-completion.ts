// One chat completion request = one execution of this workflow. Deterministic: every provider
// call is an activity on that provider's task queue, every wait is a Temporal timer.
import {
  ActivityFailure,
  ApplicationFailure,
  CancellationScope,
  TimeoutFailure,
  getExternalWorkflowHandle,
  isCancellation,
  log,
  proxyActivities,
  proxyLocalActivities,
  proxySinks,
  setHandler,
  sleep,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import type { KeelActivities } from '../activities/index.js';
import { ERROR_POLICY, isErrorClass, type ErrorClass } from '../src/core/error-classes.js';
import { PlanError, isLocalCall, targetKey, type Plan, type Target } from '../src/core/routing.js';
import { usageCost } from '../src/core/cost.js';
import { charge, keyInfo, succeededResult } from '../src/core/request-result.js';
import { NO_KEY, modelLabel, upstreamModelLabel } from '../src/core/metric-labels.js';
import { planWithHealth } from './health-plan.js';
import { requestHas } from './request-changes.js';
import { requestStatusQuery, settleKeySignal, type KeelSinks, type RequestMetrics, type RequestWorkflow } from '../src/core/contract.js';
import { keyWorkflowId, usdToNanos } from '../src/core/keys.js';
import { promptTokenBound, utf8Length } from '../src/core/key-cost.js';
import { CANCELLED_ERROR, failureError } from '../src/core/openai-error.js';
import { KeelErrorClass, KeelProvider, KeelStatus } from '../src/core/search-attributes.js';
import { providerTaskQueue } from '../src/core/task-queues.js';
import type {
  AttemptLogDetails,
  AttemptRecord,
  ChatWorkflowInput,
  ChatWorkflowResult,
  PartialStream,
  ProviderCallOutput,
  RequestFailureDetails,
  RequestStatusView,
  StreamRequestSpec,
  WebhookEvent,
  WebhookSpec,
} from '../src/core/request-types.js';

/** How often a running provider call must prove it is alive; cancellation reaches it on the next heartbeat. */
const HEARTBEAT_TIMEOUT_MS = 1_500;

/**
 * A hedged streamed call waits on the starting process's own queue; a process that is gone starts
 * nothing, and the call times out here rather than at the request's deadline.
 */
const PROCESS_QUEUE_START_TIMEOUT_MS = 10_000;

const { hedgeAllowed } = proxyLocalActivities<KeelActivities>({
  startToCloseTimeout: '5s',
  retry: { maximumAttempts: 1 },
});

const { answers, metrics } = proxySinks<KeelSinks>();

type Settled =
  | { target: Target; ok: true; out: ProviderCallOutput }
  /** `notStarted`: the call never started (its queue had no poller: a process queue whose process is gone). */
  | { target: Target; ok: false; failure: RequestFailureDetails; notStarted?: boolean };

function providerCall(target: Target, plan: Plan, deadline: number, stream?: StreamRequestSpec) {
  const retry = plan.retry;
  // A half-open probe is one call: a second would be a second probe.
  const probe = plan.probe === targetKey(target);
  const common = {
    startToCloseTimeout: plan.timeouts.attemptMs,
    // The whole-request budget bounds every retry on this target too.
    scheduleToCloseTimeout: Math.max(1, deadline - Date.now()),
    summary: `${target.provider} / ${target.model}`,
    retry: {
      maximumAttempts: probe ? 1 : retry.maxAttempts,
      initialInterval: retry.initialIntervalMs,
      backoffCoefficient: retry.backoffCoefficient,
      maximumInterval: retry.maximumIntervalMs,
    },
  };
  if (stream) {
    // A streamed call runs in the process whose API streams it (docs/STREAMING.md): a local call
    // (this workflow runs there: it was started eagerly), or, when a hedge timer must fire while one
    // streams, an activity on that process's own queue. Its attempt budget bounds the first chunk
    // (enforced by the call); the whole answer may take the request's budget.
    const streamed = { ...common, startToCloseTimeout: Math.max(1, deadline - Date.now()) };
    if (plan.mode !== 'hedge') return proxyLocalActivities<KeelActivities>(streamed).callProvider;
    return proxyActivities<KeelActivities>({
      ...streamed,
      taskQueue: stream.processQueue,
      heartbeatTimeout: HEARTBEAT_TIMEOUT_MS,
      scheduleToStartTimeout: PROCESS_QUEUE_START_TIMEOUT_MS,
    }).callProvider;
  }
  // The local path runs the call in this worker, inside the workflow task: no task-queue hops.
  if (isLocalCall(plan, target)) return proxyLocalActivities<KeelActivities>(common).callProvider;
  return proxyActivities<KeelActivities>({ ...common, taskQueue: providerTaskQueue(target.provider), heartbeatTimeout: HEARTBEAT_TIMEOUT_MS }).callProvider;
}

/** Turns whatever a provider call failed with into the attempt log's terms. */
function describeFailure(target: Target, err: unknown): RequestFailureDetails {
  const app = err instanceof ActivityFailure ? err.cause : err;
  if (app instanceof ApplicationFailure) {
    const d = (app.details?.[0] ?? {}) as Partial<RequestFailureDetails>;
    const errorClass = isErrorClass(app.type) ? app.type : 'bad_response';
    return {
      errorClass,
      // The status the client gets; each upstream status stays in its attempt record.
      status: ERROR_POLICY[errorClass].clientStatus,
      message: app.message,
      attempts: d.attempts ?? [],
      ...(d.stream && { stream: d.stream }),
      ...(d.cause && { cause: d.cause }),
    };
  }
  if (app instanceof TimeoutFailure) {
    const log = app.lastHeartbeatDetails as AttemptLogDetails | undefined;
    return {
      errorClass: 'timeout',
      status: 504,
      message: `${targetKey(target)}: no answer within the time budget (${app.timeoutType ?? 'timeout'})`,
      attempts: log?.attempts ?? [],
    };
  }
  return { errorClass: 'bad_response', status: 502, message: String((app as Error)?.message ?? app), attempts: [] };
}

/** An interrupted answer another target can continue: one choice of text (tool calls cannot be continued). */
function continuable(partial: PartialStream): boolean {
  const choices = partial.completion.choices;
  return choices.length === 1 && !choices[0].message.tool_calls?.length && !!choices[0].message.content;
}

function requestFailed(details: RequestFailureDetails): ApplicationFailure {
  return ApplicationFailure.create({
    type: details.errorClass,
    message: details.message,
    nonRetryable: true,
    details: [details],
  });
}

/** The outcome as a webhook event (deterministic: the id is the run's, the time the workflow's). */
function webhookEvent(requestId: string, model: string | null, outcome: { result: ChatWorkflowResult } | { error: unknown }): WebhookEvent {
  const base = { id: `evt-${workflowInfo().runId}`, object: 'keel.webhook_event' as const, created_at: Math.floor(Date.now() / 1000) };
  const data = { id: requestId, object: 'keel.request' as const, model };
  if ('result' in outcome) {
    const { result } = outcome;
    return { ...base, type: 'request.succeeded', data: { ...data, status: 'succeeded', attempts: result.keel.attempts, result: { ...result.completion, keel: result.keel } } };
  }
  const err = outcome.error;
  if (isCancellation(err)) {
    const { message, type, code, status } = CANCELLED_ERROR;
    return { ...base, type: 'request.cancelled', data: { ...data, status: 'cancelled', attempts: [], error: { message, type, code, status } } };
  }
  const { error, failure } = failureError(err);
  return {
    ...base,
    type: 'request.failed',
    data: { ...data, status: 'failed', attempts: failure?.attempts ?? [], error: { message: error.message, type: error.type, code: error.code, status: error.status } },
  };
}

/** POSTs the webhook through an activity (bounded retries); a delivery that never succeeds does not change the request's outcome. */
async function deliverWebhook(spec: WebhookSpec, event: WebhookEvent, view: Partial<RequestStatusView>): Promise<void> {
  // Workflows started before webhooks existed replay without the activity.
  if (!requestHas('webhook')) return;
  const { deliverWebhook: deliver } = proxyActivities<KeelActivities>({
    startToCloseTimeout: spec.timeoutMs + 5_000,
    summary: `webhook ${event.type}`,
    retry: {
      maximumAttempts: spec.retry.maxAttempts,
      initialInterval: spec.retry.initialIntervalMs,
      backoffCoefficient: spec.retry.backoffCoefficient,
      maximumInterval: spec.retry.maximumIntervalMs,
      nonRetryableErrorTypes: ['webhook_destination_refused', 'webhook_not_configured'],
    },
  });
  view.webhook = 'delivering';
  try {
    // A cancelled request still reports that it was cancelled.
    await CancellationScope.nonCancellable(() => deliver({ url: spec.url, timeoutMs: spec.timeoutMs, event }));
    view.webhook = 'delivered';
  } catch (err) {
    view.webhook = 'failed';
    log.warn('webhook delivery failed', { error: String((err as Error)?.cause ?? err) });
  }
}

/**
 * What a failed request is charged: nothing, unless its stream broke after the first token. The
 * provider bills what it streamed, and a zero would let a client stream for free by breaking off;
 * its usage never came, so the reservation's own bound is used — the prompt and the streamed part
 * at one token per UTF-8 byte (src/core/key-cost.ts), priced on the target that streamed — and
 * never more than was reserved.
 */
function failedCharge(input: ChatWorkflowInput, failure: RequestFailureDetails | undefined): { nanos: number; tokens: number } {
  const key = input.key;
  const partial = failure?.stream;
  if (!key || !partial) return { nanos: 0, tokens: 0 };
  const streamed = [...failure.attempts].reverse().find((a) => a.stream !== undefined);
  const text = partial.completion.choices
    .map((c) => (c.message.content ?? '') + (c.message.refusal ?? '') + (c.message.tool_calls ?? []).map((t) => ('function' in t ? t.function.arguments : '')).join(''))
    .join('');
  const usage = { prompt_tokens: promptTokenBound(input.request), completion_tokens: utf8Length(text) };
  const tokens = usage.prompt_tokens + usage.completion_tokens;
  const cost = streamed ? usageCost(usage, streamed.provider, streamed.model, input.routing) : undefined;
  const nanos = cost !== undefined ? usdToNanos(cost) : (key.reservedNanos ?? 0);
  return { nanos: Math.min(nanos, key.reservedNanos ?? nanos), tokens: Math.min(tokens, key.reservedTokens ?? tokens) };
}

/**
 * Settles the request with its key's workflow as the request ends, whatever the outcome: the
 * reservation is released and the actual cost charged. The workflow does it itself, so a request
 * whose API process died is settled all the same. The signal is awaited: a workflow that completes
 * with a signal still in flight loses it.
 */
async function withSettlement(input: ChatWorkflowInput, run: () => Promise<ChatWorkflowResult>): Promise<ChatWorkflowResult> {
  const key = input.key;
  // Requests without a key, and executions started before virtual keys, settle nothing.
  if (!key || !requestHas('virtual-keys')) return run();
  const send = async (nanos: number, tokens: number) => {
    const { workflowId: requestId, runId } = workflowInfo();
    try {
      await CancellationScope.nonCancellable(() => getExternalWorkflowHandle(keyWorkflowId(key.id)).signal(settleKeySignal, { requestId, runId, nanos, tokens }));
    } catch (err) {
      // The key's workflow has ended (revoked, every reservation settled or expired): nothing to charge.
      log.warn('could not settle with the key', { key: key.id, error: String((err as Error)?.message ?? err) });
    }
  };
  let result: ChatWorkflowResult;
  try {
    result = await run();
  } catch (err) {
    const details = err instanceof ApplicationFailure ? (err.details?.[0] as RequestFailureDetails | undefined) : undefined;
    const charged = failedCharge(input, details);
    await send(charged.nanos, charged.tokens);
    throw err;
  }
  const charged = charge(key, result.keel.cost, result.completion.usage);
  await send(charged.nanos, charged.tokens);
  return result;
}

const chatRequest: RequestWorkflow = async (input: ChatWorkflowInput): Promise<ChatWorkflowResult> => {
  // Settled before a webhook is delivered: a delivery retried for minutes must not hold the reservation.
  if (!input.webhook) return withSettlement(input, () => runRequest(input, {}));
  const view: Partial<RequestStatusView> = { webhook: 'pending' };
  const requestId = workflowInfo().workflowId;
  const model = input.request.model ?? input.request.models?.[0] ?? null;
  let result: ChatWorkflowResult;
  try {
    result = await withSettlement(input, () => runRequest(input, view));
  } catch (err) {
    const details = err instanceof ApplicationFailure ? (err.details?.[0] as RequestFailureDetails | undefined) : undefined;
    if (details) view.failure = details;
    await deliverWebhook(input.webhook, webhookEvent(requestId, model, { error: err }), view);
    throw err;
  }
  view.result = result;
  await deliverWebhook(input.webhook, webhookEvent(requestId, model, { result }), view);
  return result;
};

/** Every request (WORKFLOW_TYPES.request): the changes in request-changes.ts are all there. */
export const chatCompletionWorkflowV2: RequestWorkflow = chatRequest;
/** The same workflow under its V1 type name, for executions started before V2 (they ask their history). */
export const chatCompletionWorkflow: RequestWorkflow = chatRequest;

/** The request and its metrics: the outcome is handed to the worker's metrics sink once it is known. */
async function runRequest(input: ChatWorkflowInput, extra: Partial<RequestStatusView>): Promise<ChatWorkflowResult> {
  const asked = input.request.model ?? input.request.models?.[0];
  const m: RequestMetrics = {
    // Names the configuration knows: a label value never comes from free client text.
    model: modelLabel(asked, input.routing),
    mode: (asked !== undefined && Object.hasOwn(input.routing.models, asked) ? input.routing.models[asked].mode : undefined) ?? input.routing.defaults.mode,
    outcome: 'failed',
    durationMs: 0,
    fallbacks: [],
    hedgesFired: 0,
    hedgeWon: false,
    batch: input.batchId !== undefined,
    // The key's id (never its secret): the keys an admin made are a bounded set.
    key: input.key?.id ?? NO_KEY,
  };
  const startedAt = Date.now();
  try {
    const result = await runTargets(input, extra, m);
    m.outcome = 'succeeded';
    m.provider = result.keel.provider;
    m.targetModel = result.keel.model;
    const usage = result.completion.usage;
    if (usage) m.usage = { input: usage.prompt_tokens ?? 0, output: usage.completion_tokens ?? 0 };
    if (result.keel.cost !== undefined) m.cost = result.keel.cost;
    return result;
  } catch (err) {
    if (isCancellation(err)) m.outcome = 'cancelled';
    else if (err instanceof ApplicationFailure && isErrorClass(err.type)) m.errorClass = err.type;
    throw err;
  } finally {
    m.durationMs = Date.now() - startedAt;
    metrics.requestEnded(m);
  }
}

/** The request itself; `extra` is merged into the status query (webhook state, outcome while delivering). */
async function runTargets(input: ChatWorkflowInput, extra: Partial<RequestStatusView>, m: RequestMetrics): Promise<ChatWorkflowResult> {
  const startedAt = Date.now();
  let plan: Plan;
  try {
    plan = await planWithHealth(input, workflowInfo().workflowId);
  } catch (err) {
    if (err instanceof PlanError) {
      throw requestFailed({ errorClass: 'invalid_request', status: err.status, message: err.message, attempts: [], ...(input.key && { key: keyInfo(input.key, 0) }) });
    }
    throw err;
  }
  m.mode = plan.mode;
  const requestId = workflowInfo().workflowId;
  const deadline = startedAt + plan.timeouts.requestMs;
  const attempts: AttemptRecord[] = [];
  const running = new Map<string, { scope: CancellationScope; settled: Promise<Settled> }>();
  let state: RequestStatusView['state'] = 'running';

  setHandler(requestStatusQuery, () => ({
    state,
    requestedModel: plan.requestedModel,
    mode: plan.mode,
    activeTargets: [...running.keys()],
    attempts,
    startedAt,
    ...extra,
  }));

  const queue = [...plan.targets];
  // A streamed request: once a call owns the stream (a loser says so), no other target starts,
  // except one asked to continue an interrupted answer.
  let streamTaken = false;
  let continuation: PartialStream | undefined;
  // The process that streams this request is gone (its queue starts nothing): calls go the ordinary way.
  let streaming = input.stream;
  /** Targets started by a hedge (for the hedges-won count). */
  const hedged = new Set<string>();
  let hedging = false;
  const launch = (target: Target) => {
    if (hedging) hedged.add(targetKey(target));
    const scope = new CancellationScope();
    const stream = streaming;
    const call = providerCall(target, plan, deadline, stream);
    const settled = scope
      .run(() =>
        call({
          requestId,
          provider: target.provider,
          model: target.model,
          request: input.request,
          retry: plan.retry,
          deadline,
          ...(plan.probe === targetKey(target) && { probe: true }),
          ...(stream && {
            stream: { idleTimeoutMs: plan.stream.idleTimeoutMs, firstChunkTimeoutMs: plan.timeouts.attemptMs, ...(continuation && { continuation }) },
          }),
        }),
      )
      .then(
        (out): Settled => ({ target, ok: true, out }),
        (err): Settled => {
          if (isCancellation(err) && scope.consideredCancelled) throw err;
          const cause = err instanceof ActivityFailure ? err.cause : err;
          const notStarted = stream !== undefined && cause instanceof TimeoutFailure && cause.timeoutType === 'SCHEDULE_TO_START';
          return { target, ok: false, failure: describeFailure(target, err), ...(notStarted && { notStarted }) };
        },
      );
    // A loser's cancellation rejection is expected: keep it from surfacing as unhandled.
    settled.catch(() => undefined);
    running.set(targetKey(target), { scope, settled });
  };
  const cancelRunning = () => {
    for (const { scope } of running.values()) scope.cancel();
    running.clear();
  };

  let width = plan.mode === 'race' ? plan.raceWidth : 1;
  let hedgeTimer: Promise<'hedge'> | undefined;
  let hedgeScope: CancellationScope | undefined;
  let lastFailure: RequestFailureDetails | undefined;
  // What the client has of a stream that broke after its first token.
  let partial: PartialStream | undefined;

  try {
    for (;;) {
      while (running.size < width && queue.length > 0 && Date.now() < deadline && (!streamTaken || continuation)) launch(queue.shift()!);
      hedging = false;
      if (running.size === 0) {
        // The call that owns the stream is not one this execution runs (its workflow task was lost and run again).
        if (streamTaken && !continuation) lastFailure = { errorClass: 'stream_interrupted', status: 502, message: 'the call streaming this answer is no longer running', attempts: [] };
        break;
      }
      if (plan.mode === 'hedge' && queue.length > 0 && !hedgeTimer) {
        hedgeScope = new CancellationScope();
        hedgeTimer = hedgeScope.run(() => sleep(plan.hedge.delayMs)).then(() => 'hedge' as const);
        hedgeTimer.catch(() => undefined);
      }
      const next = await Promise.race([...[...running.values()].map((r) => r.settled), ...(hedgeTimer ? [hedgeTimer] : [])]);
      if (next === 'hedge') {
        hedgeTimer = undefined;
        // The cap keeps hedging from doubling the load when a provider is slow for everyone.
        if (await hedgeAllowed(plan.hedge.maxShare)) {
          width += 1;
          m.hedgesFired += 1;
          hedging = true;
        }
        continue;
      }
      running.delete(targetKey(next.target));
      if (next.ok) {
        const out = next.out;
        if ('lost' in out) {
          // Beaten to the first token by another target of this request: no verdict, no fallback.
          attempts.push(...out.attempts);
          streamTaken = true;
          continue;
        }
        hedgeScope?.cancel();
        cancelRunning();
        attempts.push(...out.attempts);
        m.hedgeWon = hedged.has(targetKey(next.target));
        state = 'succeeded';
        upsertSearchAttributes([
          { key: KeelProvider, value: next.target.provider },
          { key: KeelStatus, value: 'succeeded' },
        ]);
        const result = succeededResult({
          requestId,
          provider: next.target.provider,
          model: next.target.model,
          mode: plan.mode,
          completion: out.completion,
          attempts,
          routing: input.routing,
          ...(input.key && { key: input.key }),
          // A streamed request started by an API without a worker in its process has no stream spec:
          // its answer is streamed from this record, with the usage chunk if the client asked for it.
          ...((input.stream || input.request.stream === true) && {
            stream: { ...(out.layout && { layout: out.layout }), includeUsage: input.stream?.includeUsage ?? input.request.stream_options?.include_usage === true },
          }),
        });
        answers.settled({ ok: true, result });
        return result;
      }
      if (next.notStarted) {
        // Nobody polls the streaming process's queue any more: this target again, the ordinary way.
        streaming = undefined;
        queue.unshift(next.target);
        continue;
      }
      attempts.push(...next.failure.attempts);
      lastFailure = next.failure;
      if (next.failure.stream) partial = next.failure.stream;
      m.provider = next.target.provider;
      m.targetModel = next.target.model;
      upsertSearchAttributes([{ key: KeelProvider, value: next.target.provider }]);
      const policy = ERROR_POLICY[next.failure.errorClass as ErrorClass] ?? ERROR_POLICY.bad_response;
      if (next.failure.errorClass === 'stream_interrupted' && next.failure.stream && plan.stream.recovery === 'continue' && continuable(next.failure.stream)) {
        // The request asked the next target to continue the answer the client has part of.
        continuation = next.failure.stream;
        continue;
      }
      if (policy.fallback === 'no') break;
      if (policy.fallback === 'larger-context') {
        const limit = next.target.contextWindow;
        // Only a target known to hold more can take a prompt that was too long here.
        const larger = queue.filter((t) => t.contextWindow !== undefined && (limit === undefined || t.contextWindow > limit));
        queue.splice(0, queue.length, ...larger);
      }
      // A fallback: this target is given up on and another one is (or is still) on its way.
      if (queue.length > 0 || running.size > 0) {
        m.fallbacks.push({ provider: next.target.provider, model: upstreamModelLabel(next.target.provider, next.target.model, input.routing), errorClass: next.failure.errorClass });
      }
      // A failure frees a slot: hedge/race go on with the next target at once.
      hedgeScope?.cancel();
      hedgeTimer = undefined;
    }
  } catch (err) {
    if (isCancellation(err)) {
      state = 'cancelled';
      upsertSearchAttributes([{ key: KeelStatus, value: 'cancelled' }]);
    }
    throw err;
  }

  cancelRunning();
  state = 'failed';
  const failure: RequestFailureDetails = lastFailure
    ? { ...lastFailure, attempts }
    : { errorClass: 'timeout', status: 504, message: 'The request deadline passed before a provider answered', attempts };
  // Once the client has part of an answer, whatever ends the request ends that stream.
  if (partial) Object.assign(failure, { stream: partial, ...(failure.errorClass !== 'stream_interrupted' && { cause: failure.errorClass, errorClass: 'stream_interrupted', status: 502 }) });
  if (input.key) failure.key = keyInfo(input.key, failedCharge(input, failure).nanos);
  const tried = new Set(attempts.map((a) => a.target)).size;
  failure.message = `All ${tried} target(s) failed for model '${plan.requestedModel}'; last error: ${failure.message}`;
  upsertSearchAttributes([
    { key: KeelErrorClass, value: failure.errorClass },
    { key: KeelStatus, value: 'failed' },
  ]);
  answers.settled({ ok: false, failure });
  throw requestFailed(failure);
}

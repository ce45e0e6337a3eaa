// Fast workflow tests: the real request workflow (fallback, race, hedge, cancel, deadline) on a
// real dev server, with test doubles for its activities, so a routing change is checked in seconds.
// Every provider here takes the task-queue call path (docs/ROUTING.md, "Call paths"), whose
// scheduling the history shows; test/fast-path.test.ts covers the local path.
// The doubles behave like activities/provider-call/call-provider.ts at its boundary: the attempt log
// in heartbeats and failure details, Keel's error classes as ApplicationFailure types,
// `nextRetryDelay` for a retry here, non-retryable when the target's budget is spent, and
// cancellation honoured through heartbeats. Assertions are on what the workflow controls: its
// result, its failure, its attempt log and its history (activity scheduling, timers, cancel
// requests, timeouts) rather than on wall-clock gaps measured at a provider.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { ApplicationFailure, Context } from '@temporalio/activity';
import { CancelledFailure, WorkflowFailedError, type WorkflowHandle } from '@temporalio/client';
import { defaultPayloadConverter } from '@temporalio/common';
import { optionalTsToMs } from '@temporalio/common/lib/time.js';
import proto, { type temporal } from '@temporalio/proto';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { DefaultLogger, Runtime, Worker } from '@temporalio/worker';
import type { KeelActivities } from '../activities/index.js';
import { parseConfig } from '../src/config/load.js';
import { requestStatusQuery, WORKFLOW_TYPES, type RequestWorkflow } from '../src/core/contract.js';
import type { ErrorClass } from '../src/core/error-classes.js';
import type {
  AttemptLogDetails,
  AttemptRecord,
  ChatWorkflowInput,
  ProviderCallInput,
  ProviderCallOutput,
  RequestFailureDetails,
} from '../src/core/request-types.js';
import type { ChatRequestBody } from '../src/core/chat-request.js';
import { providerTaskQueue } from '../src/core/task-queues.js';
import { until } from './helpers/http.js';
import { startTemporal, workflowBundle } from './helpers/temporal.js';

// Worker state changes and the expected activity failures would drown the test output.
Runtime.install({ logger: new DefaultLogger('ERROR') });

type History = temporal.api.history.v1.IHistory;
type HistoryEvent = temporal.api.history.v1.IHistoryEvent;
const EventType = proto.temporal.api.enums.v1.EventType;

const HEDGE_DELAY_MS = 400;
const routing = parseConfig(
  `
defaults:
  retry: { maxAttempts: 3, initialIntervalMs: 50, backoffCoefficient: 2, maximumIntervalMs: 200, jitter: 0 }
  timeouts: { attemptMs: 10000, requestMs: 20000 }
  hedge: { delayMs: 2000, maxShare: 0.25 }
providers:
  a: { type: openai, baseURL: "http://127.0.0.1:9/v1", models: { small: { contextWindow: 8000 } }, callPath: queue }
  b: { type: anthropic, baseURL: "http://127.0.0.1:9", models: { big: { contextWindow: 200000 } }, callPath: queue }
  c: { type: gemini, baseURL: "http://127.0.0.1:9", callPath: queue }
models:
  chain: { targets: [a/m, b/m] }
  ctx: { targets: [a/small, b/m, b/big] }
  ctx-largest-first: { targets: [b/big, a/small] }
  raced: { targets: [a/m, b/m], mode: race }
  raced3: { targets: [a/m, b/m, c/m], mode: race, race: { width: 2 } }
  hedged: { targets: [a/m, b/m], mode: hedge, hedge: { delayMs: ${HEDGE_DELAY_MS} } }
`,
  {},
  'request-workflow test config',
).routing;

// ---- Activity doubles ----------------------------------------------------------------------

/** What one attempt on a target does. `retryInMs` set: retryable with that nextRetryDelay; unset: the target's budget is spent. */
type Step =
  | { ok: true; afterMs?: number }
  | { error: ErrorClass; status?: number; afterMs?: number; retryInMs?: number }
  | { hang: true };

/** Per target ("provider/model"): one step for every attempt, or a list (the last one repeats). */
type Script = Record<string, Step | Step[]>;

interface Call {
  requestId: string;
  target: string;
  attempt: number;
  startedAt: number;
  endedAt?: number;
  outcome: 'running' | 'success' | 'error' | 'cancelled';
}

const scripts = new Map<string, Script>();
const hedgeAnswers = new Map<string, boolean>();
const calls: Call[] = [];
const hedgeRequests: { requestId: string; maxShare: number }[] = [];

function stepFor(requestId: string, target: string, attempt: number): Step {
  const s = scripts.get(requestId)?.[target];
  if (s === undefined) throw new Error(`test bug: no script for ${target} in ${requestId}`);
  return Array.isArray(s) ? s[Math.min(attempt, s.length) - 1] : s;
}

function completion(target: string) {
  return {
    id: `chatcmpl-${target}`,
    object: 'chat.completion' as const,
    created: 0,
    model: target,
    choices: [{ index: 0, message: { role: 'assistant' as const, content: `answer from ${target}`, refusal: null }, finish_reason: 'stop' as const, logprobs: null }],
    usage: { prompt_tokens: 1, completion_tokens: 3, total_tokens: 4 },
  };
}

const callProvider: KeelActivities['callProvider'] = async (input: ProviderCallInput): Promise<ProviderCallOutput> => {
  const ctx = Context.current();
  const target = `${input.provider}/${input.model}`;
  const attempt = ctx.info.attempt;
  const prior = (ctx.info.heartbeatDetails as AttemptLogDetails | undefined)?.attempts ?? [];
  const step = stepFor(input.requestId, target, attempt);
  const call: Call = { requestId: input.requestId, target, attempt, startedAt: Date.now(), outcome: 'running' };
  calls.push(call);
  const record: AttemptRecord = { target, provider: input.provider, model: input.model, attempt, startedAt: call.startedAt, durationMs: 0, outcome: 'success' };
  ctx.heartbeat({ attempts: prior } satisfies AttemptLogDetails);
  // Cancellation reaches an activity only through a heartbeat, as it does the real callProvider.
  const beat = setInterval(() => ctx.heartbeat({ attempts: prior } satisfies AttemptLogDetails), 100);
  try {
    if ('hang' in step) await ctx.cancelled;
    else await ctx.sleep(step.afterMs ?? 0);
  } catch (err) {
    call.outcome = 'cancelled';
    call.endedAt = Date.now();
    throw err instanceof CancelledFailure ? err : new CancelledFailure('provider call cancelled');
  } finally {
    clearInterval(beat);
  }
  call.endedAt = Date.now();
  record.durationMs = call.endedAt - call.startedAt;
  if ('ok' in step) {
    call.outcome = 'success';
    return { completion: completion(target), attempts: [...prior, record] };
  }
  call.outcome = 'error';
  const { error: errorClass, status, retryInMs } = step as Extract<Step, { error: ErrorClass }>;
  const message = `${errorClass} from the test double`;
  Object.assign(record, { outcome: 'error', errorClass, ...(status !== undefined && { status }), message, ...(retryInMs !== undefined && { retryInMs }) });
  const attempts = [...prior, record];
  ctx.heartbeat({ attempts } satisfies AttemptLogDetails);
  throw ApplicationFailure.create({
    type: errorClass,
    message: `${target} attempt ${attempt}: ${message}`,
    nonRetryable: retryInMs === undefined,
    ...(retryInMs !== undefined && { nextRetryDelay: retryInMs }),
    details: [{ errorClass, status, message, attempts }],
  });
};

const localActivities: Pick<KeelActivities, 'readHealth' | 'acquireProbe' | 'hedgeAllowed'> = {
  // No health snapshot: the plan is the configured one.
  async readHealth() {
    return null;
  },
  async acquireProbe() {
    return false;
  },
  async hedgeAllowed(maxShare: number) {
    const requestId = Context.current().info.workflowExecution?.workflowId ?? '';
    hedgeRequests.push({ requestId, maxShare });
    return hedgeAnswers.get(requestId) ?? true;
  },
};

// ---- Environment ---------------------------------------------------------------------------

let env: TestWorkflowEnvironment;
let workers: Worker[] = [];
let running: Promise<unknown>;
const taskQueue = `request-workflow-test-${process.pid}`;

before(async () => {
  env = await startTemporal();
  const connection = env.nativeConnection;
  workers = [
    await Worker.create({ connection, taskQueue, workflowBundle: await workflowBundle(), activities: localActivities, sinks: { answers: { settled: { fn: () => undefined } }, metrics: { requestEnded: { fn: () => undefined } } } }),
    ...(await Promise.all(Object.keys(routing.providers).map((p) => Worker.create({ connection, taskQueue: providerTaskQueue(p), activities: { callProvider } })))),
  ];
  running = Promise.all(workers.map((w) => w.run()));
});

after(async () => {
  for (const w of workers) if (w.getState() === 'RUNNING') w.shutdown();
  await running;
  await env?.teardown();
});

let counter = 0;

/** Starts one request workflow whose provider calls follow `script`. */
async function start(
  name: string,
  script: Script,
  request: Partial<ChatRequestBody> & { model: string },
  opts: { hedgeAllowed?: boolean; type?: string } = {},
): Promise<WorkflowHandle<RequestWorkflow>> {
  const workflowId = `req-${name}-${process.pid}-${++counter}`;
  scripts.set(workflowId, script);
  if (opts.hedgeAllowed !== undefined) hedgeAnswers.set(workflowId, opts.hedgeAllowed);
  const input: ChatWorkflowInput = { request: { messages: [{ role: 'user', content: 'ping' }], ...request } as ChatRequestBody, routing };
  return env.client.workflow.start<RequestWorkflow>(opts.type ?? WORKFLOW_TYPES.request, { taskQueue, workflowId, args: [input] });
}

async function failureOf(handle: WorkflowHandle<RequestWorkflow>): Promise<{ failure: ApplicationFailure; details: RequestFailureDetails }> {
  const err = await handle.result().then(
    () => assert.fail('expected the request workflow to fail'),
    (e: unknown) => e,
  );
  assert.ok(err instanceof WorkflowFailedError, String(err));
  assert.ok(err.cause instanceof ApplicationFailure, `cause: ${String(err.cause)}`);
  return { failure: err.cause, details: err.cause.details?.[0] as RequestFailureDetails };
}

const callsOf = (requestId: string, target?: string) => calls.filter((c) => c.requestId === requestId && (target === undefined || c.target === target));
const attemptSummary = (attempts: AttemptRecord[]) => attempts.map((x) => `${x.target}#${x.attempt}:${x.outcome}${x.errorClass ? `:${x.errorClass}` : ''}`);

// ---- History reading -----------------------------------------------------------------------

interface Scheduled {
  eventId: number;
  target: string;
  taskQueue: string;
  scheduleToCloseMs: number;
  workflowTaskCompletedEventId: number;
  maximumAttempts: number;
}

const id = (e: HistoryEvent) => Number(e.eventId);
const ofType = (h: History, type: temporal.api.enums.v1.EventType) => (h.events ?? []).filter((e) => e.eventType === type);

function scheduled(h: History): Scheduled[] {
  return ofType(h, EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED).map((e) => {
    const a = e.activityTaskScheduledEventAttributes!;
    const input = defaultPayloadConverter.fromPayload<ProviderCallInput>(a.input!.payloads![0]);
    return {
      eventId: id(e),
      target: `${input.provider}/${input.model}`,
      taskQueue: a.taskQueue!.name!,
      scheduleToCloseMs: optionalTsToMs(a.scheduleToCloseTimeout)!,
      workflowTaskCompletedEventId: Number(a.workflowTaskCompletedEventId),
      maximumAttempts: a.retryPolicy!.maximumAttempts!,
    };
  });
}

/** Event id of the first event of `type` about the activity scheduled as `scheduledId`. */
function activityEvent(h: History, type: temporal.api.enums.v1.EventType, scheduledId: number): number | undefined {
  const e = ofType(h, type).find((ev) => {
    const attrs =
      ev.activityTaskCompletedEventAttributes ??
      ev.activityTaskFailedEventAttributes ??
      ev.activityTaskTimedOutEventAttributes ??
      ev.activityTaskCancelRequestedEventAttributes ??
      ev.activityTaskCanceledEventAttributes ??
      ev.activityTaskStartedEventAttributes;
    return Number(attrs?.scheduledEventId) === scheduledId;
  });
  return e ? id(e) : undefined;
}

/** When the task that produced a command started (WorkflowTaskStarted): the workflow clock at that task's start. */
function workflowTimeOf(h: History, workflowTaskCompletedEventId: number): number {
  const completed = (h.events ?? []).find((e) => id(e) === workflowTaskCompletedEventId)!;
  const startedId = Number(completed.workflowTaskCompletedEventAttributes!.startedEventId);
  return optionalTsToMs((h.events ?? []).find((e) => id(e) === startedId)!.eventTime)!;
}

function markers(h: History): { eventId: number; activityType: string }[] {
  return ofType(h, EventType.EVENT_TYPE_MARKER_RECORDED).map((e) => {
    const data = e.markerRecordedEventAttributes!.details?.data?.payloads?.[0];
    const { activity_type } = data ? (defaultPayloadConverter.fromPayload(data) as { activity_type?: string }) : {};
    return { eventId: id(e), activityType: activity_type ?? '' };
  });
}

/** The patches a history asked about (Temporal's `core_patch` markers), and its TemporalChangeVersion upserts. */
function patchesAsked(h: History): { patches: string[]; changeVersionUpserts: number } {
  const patches = ofType(h, EventType.EVENT_TYPE_MARKER_RECORDED)
    .filter((e) => e.markerRecordedEventAttributes!.markerName === 'core_patch')
    .map((e) => defaultPayloadConverter.fromPayload<{ id: string }>(e.markerRecordedEventAttributes!.details!['patch-data'].payloads![0]).id);
  const changeVersionUpserts = ofType(h, EventType.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES).filter((e) =>
    Object.keys(e.upsertWorkflowSearchAttributesEventAttributes!.searchAttributes?.indexedFields ?? {}).includes('TemporalChangeVersion'),
  ).length;
  return { patches, changeVersionUpserts };
}

// ---- Tests ---------------------------------------------------------------------------------

describe('workflow types', () => {
  // docs/ARCHITECTURE.md, "Workflow types and versions".
  test('a request started as V2 asks no patch (no marker, no visibility upsert); the same request as V1 asks its history, and both answer alike', async () => {
    const v2 = await start('v2', { 'a/m': { ok: true } }, { model: 'chain' });
    const v1 = await start('v1', { 'a/m': { ok: true } }, { model: 'chain' }, { type: WORKFLOW_TYPES.requestV1 });
    const [r2, r1] = await Promise.all([v2.result(), v1.result()]);
    assert.deepEqual([r2.keel.provider, r2.completion.choices[0].message.content], ['a', 'answer from a/m']);
    assert.deepEqual([r1.keel.provider, r1.completion.choices[0].message.content], ['a', 'answer from a/m']);
    assert.deepEqual(attemptSummary(r2.keel.attempts), attemptSummary(r1.keel.attempts));
    assert.deepEqual(patchesAsked(await v2.fetchHistory()), { patches: [], changeVersionUpserts: 0 });
    const asked = patchesAsked(await v1.fetchHistory());
    assert.deepEqual(asked.patches.sort(), ['capability-routing', 'health-routing']);
    assert.equal(asked.changeVersionUpserts, 2);
  });
});

describe('fallback', () => {
  test('a fallback-class failure (budget spent) moves on to the next target, which answers', async () => {
    const h = await start('fallback', { 'a/m': [{ error: 'unavailable', status: 503, retryInMs: 50 }, { error: 'unavailable', status: 503, retryInMs: 50 }, { error: 'unavailable', status: 503 }], 'b/m': { ok: true } }, { model: 'chain' });
    const result = await h.result();
    assert.equal(result.keel.provider, 'b');
    assert.equal(result.completion.choices[0].message.content, 'answer from b/m');
    assert.deepEqual(attemptSummary(result.keel.attempts), ['a/m#1:error:unavailable', 'a/m#2:error:unavailable', 'a/m#3:error:unavailable', 'b/m#1:success']);
    const history = await h.fetchHistory();
    const [a, b, ...more] = scheduled(history);
    assert.deepEqual([a.target, b.target, more.length], ['a/m', 'b/m', 0]);
    assert.equal(a.taskQueue, providerTaskQueue('a'));
    assert.equal(b.taskQueue, providerTaskQueue('b'));
    assert.equal(a.maximumAttempts, 3, "each target's retries are bounded by the plan's budget");
    const aFailed = activityEvent(history, EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED, a.eventId);
    assert.ok(aFailed !== undefined && aFailed < b.eventId, 'b is scheduled only after a has failed');
  });

  test('invalid_request: no fallback, the request fails at once with 400', async () => {
    const h = await start('invalid', { 'a/m': { error: 'invalid_request', status: 400 }, 'b/m': { ok: true } }, { model: 'chain' });
    const { failure, details } = await failureOf(h);
    assert.equal(failure.type, 'invalid_request');
    assert.equal(failure.nonRetryable, true);
    assert.equal(details.status, 400);
    assert.deepEqual(attemptSummary(details.attempts), ['a/m#1:error:invalid_request']);
    assert.deepEqual(scheduled(await h.fetchHistory()).map((s) => s.target), ['a/m']);
    assert.equal(callsOf(h.workflowId, 'b/m').length, 0);
  });

  test('context_too_long falls back only to a target with a larger context window', async () => {
    const h = await start('ctx', { 'a/small': { error: 'context_too_long', status: 400 }, 'b/m': { ok: true }, 'b/big': { ok: true } }, { model: 'ctx' });
    const result = await h.result();
    assert.equal(result.keel.model, 'big');
    assert.deepEqual(scheduled(await h.fetchHistory()).map((s) => s.target), ['a/small', 'b/big'], 'b/m (window unknown) is skipped');
  });

  test('context_too_long on the largest window: no smaller target is tried, the client gets 400', async () => {
    const h = await start('ctx-largest', { 'b/big': { error: 'context_too_long', status: 400 }, 'a/small': { ok: true } }, { model: 'ctx-largest-first' });
    const { failure, details } = await failureOf(h);
    assert.equal(failure.type, 'context_too_long');
    assert.equal(details.status, 400);
    assert.deepEqual(scheduled(await h.fetchHistory()).map((s) => s.target), ['b/big']);
  });

  test('a retryable failure is retried on the same target after its nextRetryDelay, with no fallback', async () => {
    const RETRY_MS = 600;
    const h = await start('retry', { 'a/m': [{ error: 'rate_limited', status: 429, retryInMs: RETRY_MS }, { ok: true }], 'b/m': { ok: true } }, { model: 'chain' });
    const result = await h.result();
    assert.equal(result.keel.provider, 'a');
    assert.deepEqual(attemptSummary(result.keel.attempts), ['a/m#1:error:rate_limited', 'a/m#2:success']);
    assert.equal(result.keel.attempts[0].retryInMs, RETRY_MS);
    const history = await h.fetchHistory();
    // One scheduled activity: the retry is Temporal's (the server's retry timer), not a new command.
    assert.deepEqual(scheduled(history).map((s) => s.target), ['a/m']);
    const started = ofType(history, EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED)[0].activityTaskStartedEventAttributes!;
    assert.equal(started.attempt, 2);
    assert.equal(started.lastFailure?.applicationFailureInfo?.type, 'rate_limited');
    // A lower bound on one clock: the server starts the retry no sooner than the delay after it
    // received the failure, which is after the double threw. Load can only lengthen it.
    const [first, second] = callsOf(h.workflowId, 'a/m');
    assert.ok(second.startedAt - first.endedAt! >= RETRY_MS, `retried ${second.startedAt - first.endedAt!} ms after the failure`);
  });

  test('every target fails: a Failed execution (not Completed) carrying the whole attempt log', async () => {
    const spent = (errorClass: ErrorClass, status: number): Step[] => [{ error: errorClass, status, retryInMs: 20 }, { error: errorClass, status, retryInMs: 20 }, { error: errorClass, status }];
    const h = await start('all-fail', { 'a/m': spent('unreachable', 502), 'b/m': spent('unavailable', 529) }, { model: 'chain' });
    const { failure, details } = await failureOf(h);
    assert.equal(failure.type, 'unavailable', 'the last error decides the class');
    assert.equal(failure.nonRetryable, true);
    assert.match(failure.message, /All 2 target\(s\) failed for model 'chain'/);
    assert.equal(details.status, 503);
    assert.deepEqual(attemptSummary(details.attempts), [
      'a/m#1:error:unreachable',
      'a/m#2:error:unreachable',
      'a/m#3:error:unreachable',
      'b/m#1:error:unavailable',
      'b/m#2:error:unavailable',
      'b/m#3:error:unavailable',
    ]);
    assert.equal((await h.describe()).status.name, 'FAILED');
    const events = (await h.fetchHistory()).events ?? [];
    assert.equal(events.at(-1)!.eventType, EventType.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED);
    assert.equal(events.filter((e) => e.eventType === EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED).length, 0);
  });
});

describe('race', () => {
  test('both targets start together; the first success wins and the loser is cancelled', async () => {
    const h = await start('race', { 'a/m': { ok: true, afterMs: 8000 }, 'b/m': { ok: true, afterMs: 100 } }, { model: 'raced' });
    const result = await h.result();
    assert.equal(result.keel.provider, 'b');
    assert.equal(result.keel.mode, 'race');
    const history = await h.fetchHistory();
    const [a, b] = scheduled(history);
    assert.deepEqual([a.target, b.target], ['a/m', 'b/m']);
    assert.equal(a.workflowTaskCompletedEventId, b.workflowTaskCompletedEventId, 'both scheduled by one workflow task');
    assert.ok(activityEvent(history, EventType.EVENT_TYPE_ACTIVITY_TASK_CANCEL_REQUESTED, a.eventId) !== undefined, 'loser a: ActivityTaskCancelRequested');
    assert.equal(activityEvent(history, EventType.EVENT_TYPE_ACTIVITY_TASK_CANCEL_REQUESTED, b.eventId), undefined);
    // The running loser really stops: its next heartbeat tells it.
    await until('the losing call to see its cancellation', () => (callsOf(h.workflowId, 'a/m')[0]?.outcome === 'cancelled' ? true : undefined), 15_000);
  });

  test('a failure frees its slot: the next target starts at once and can win', async () => {
    const h = await start('race-refill', { 'a/m': { error: 'unavailable', status: 503, afterMs: 50 }, 'b/m': { ok: true, afterMs: 8000 }, 'c/m': { ok: true, afterMs: 50 } }, { model: 'raced3' });
    const result = await h.result();
    assert.equal(result.keel.provider, 'c');
    assert.deepEqual(attemptSummary(result.keel.attempts), ['a/m#1:error:unavailable', 'c/m#1:success']);
    const history = await h.fetchHistory();
    const [a, b, c] = scheduled(history);
    assert.deepEqual([a.target, b.target, c.target], ['a/m', 'b/m', 'c/m']);
    assert.equal(a.workflowTaskCompletedEventId, b.workflowTaskCompletedEventId, 'race width 2: a and b together');
    assert.ok(activityEvent(history, EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED, a.eventId)! < c.eventId, 'c only once a failed');
    assert.ok(activityEvent(history, EventType.EVENT_TYPE_ACTIVITY_TASK_CANCEL_REQUESTED, b.eventId) !== undefined, 'b cancelled when c won');
  });
});

describe('hedge', () => {
  test('the second target is scheduled only when the hedge timer (the configured delay) fires; the winner cancels the other', async () => {
    const h = await start('hedge', { 'a/m': { ok: true, afterMs: 8000 }, 'b/m': { ok: true, afterMs: 50 } }, { model: 'hedged' });
    const result = await h.result();
    assert.equal(result.keel.provider, 'b');
    assert.equal(result.keel.mode, 'hedge');
    const history = await h.fetchHistory();
    const [a, b] = scheduled(history);
    assert.deepEqual([a.target, b.target], ['a/m', 'b/m']);
    const timers = ofType(history, EventType.EVENT_TYPE_TIMER_STARTED);
    assert.equal(timers.length, 1);
    assert.equal(optionalTsToMs(timers[0].timerStartedEventAttributes!.startToFireTimeout), HEDGE_DELAY_MS);
    assert.ok(id(timers[0]) > a.eventId, 'the timer starts with the first call');
    const fired = ofType(history, EventType.EVENT_TYPE_TIMER_FIRED);
    assert.equal(fired.length, 1);
    assert.ok(id(fired[0]) < b.eventId, 'b is scheduled after the timer fired');
    const cap = markers(history).filter((m) => m.activityType === 'hedgeAllowed');
    assert.equal(cap.length, 1, 'the hedge cap was asked once');
    assert.ok(id(fired[0]) < cap[0].eventId && cap[0].eventId < b.eventId);
    assert.deepEqual(hedgeRequests.filter((r) => r.requestId === h.workflowId).map((r) => r.maxShare), [0.25], "the configured maxShare reaches the cap");
    assert.ok(activityEvent(history, EventType.EVENT_TYPE_ACTIVITY_TASK_CANCEL_REQUESTED, a.eventId) !== undefined, 'the slow primary is cancelled');
    await until('the slow primary to see its cancellation', () => (callsOf(h.workflowId, 'a/m')[0]?.outcome === 'cancelled' ? true : undefined), 15_000);
  });

  test('a primary that answers before the delay: the timer is cancelled and no second call is made', async () => {
    const h = await start('hedge-fast', { 'a/m': { ok: true, afterMs: 20 }, 'b/m': { ok: true } }, { model: 'hedged' });
    const result = await h.result();
    assert.equal(result.keel.provider, 'a');
    const history = await h.fetchHistory();
    assert.deepEqual(scheduled(history).map((s) => s.target), ['a/m']);
    assert.equal(ofType(history, EventType.EVENT_TYPE_TIMER_FIRED).length, 0);
    assert.equal(ofType(history, EventType.EVENT_TYPE_TIMER_CANCELED).length, 1);
  });

  test('the hedge cap denies the hedge: the timer fires, the cap is asked, no second target', async () => {
    const h = await start('hedge-capped', { 'a/m': { ok: true, afterMs: 1000 }, 'b/m': { ok: true } }, { model: 'hedged' }, { hedgeAllowed: false });
    const result = await h.result();
    assert.equal(result.keel.provider, 'a');
    const history = await h.fetchHistory();
    // A denied hedge re-arms the timer: the cap is asked again after every further delay.
    const fired = ofType(history, EventType.EVENT_TYPE_TIMER_FIRED).map(id);
    const asked = markers(history).filter((m) => m.activityType === 'hedgeAllowed').map((m) => m.eventId);
    assert.ok(fired.length >= 1, 'the hedge timer fired');
    assert.equal(asked.length, fired.length, 'the cap is asked once per fired timer');
    fired.forEach((f, i) => assert.ok(f < asked[i], 'the cap is asked after its timer fired'));
    for (const t of ofType(history, EventType.EVENT_TYPE_TIMER_STARTED)) {
      assert.equal(optionalTsToMs(t.timerStartedEventAttributes!.startToFireTimeout), HEDGE_DELAY_MS);
    }
    assert.deepEqual(scheduled(history).map((s) => s.target), ['a/m']);
    assert.equal(callsOf(h.workflowId, 'b/m').length, 0);
  });

  test('a primary that fails before the delay: the next target starts at once, without waiting for the timer', async () => {
    const h = await start('hedge-fail', { 'a/m': { error: 'unavailable', status: 503, afterMs: 20 }, 'b/m': { ok: true } }, { model: 'hedged' });
    const result = await h.result();
    assert.equal(result.keel.provider, 'b');
    const history = await h.fetchHistory();
    const [a, b] = scheduled(history);
    assert.ok(activityEvent(history, EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED, a.eventId)! < b.eventId);
    assert.equal(ofType(history, EventType.EVENT_TYPE_TIMER_FIRED).length, 0, 'b did not wait for the hedge timer');
    assert.equal(markers(history).filter((m) => m.activityType === 'hedgeAllowed').length, 0);
  });
});

describe('cancel and deadline', () => {
  test('a client cancel cancels the running call, falls back to nothing and ends Cancelled', async () => {
    const h = await start('cancel', { 'a/m': { hang: true }, 'b/m': { ok: true } }, { model: 'chain' });
    await until('the call to a to start', () => (callsOf(h.workflowId, 'a/m').length > 0 ? true : undefined), 15_000);
    const status = await h.query(requestStatusQuery);
    assert.equal(status.state, 'running');
    assert.deepEqual(status.activeTargets, ['a/m']);
    await h.cancel();
    const err = await h.result().then(
      () => assert.fail('a cancelled request has no result'),
      (e: unknown) => e,
    );
    assert.ok(err instanceof WorkflowFailedError && err.cause instanceof CancelledFailure, String(err));
    assert.equal((await h.describe()).status.name, 'CANCELLED');
    const history = await h.fetchHistory();
    const [a, ...more] = scheduled(history);
    assert.equal(more.length, 0, 'a cancelled request does not fall back');
    assert.ok(activityEvent(history, EventType.EVENT_TYPE_ACTIVITY_TASK_CANCEL_REQUESTED, a.eventId) !== undefined);
    await until('the running call to see its cancellation', () => (callsOf(h.workflowId, 'a/m')[0].outcome === 'cancelled' ? true : undefined), 15_000);
    assert.equal((await h.query(requestStatusQuery)).state, 'cancelled');
  });

  test('the request deadline: a target that never answers times out at the deadline, and the request fails with 504', async () => {
    const REQUEST_MS = 1500;
    const h = await start('deadline', { 'a/m': { hang: true }, 'b/m': { ok: true } }, { model: 'chain', keel: { timeout_ms: REQUEST_MS } });
    const { failure, details } = await failureOf(h);
    assert.equal(failure.type, 'timeout');
    assert.equal(details.status, 504);
    assert.match(details.message, /a\/m: no answer within the time budget/);
    const history = await h.fetchHistory();
    const [a, ...more] = scheduled(history);
    assert.ok(a.scheduleToCloseMs > 0 && a.scheduleToCloseMs <= REQUEST_MS, `scheduleToClose ${a.scheduleToCloseMs} ms`);
    const timedOut = ofType(history, EventType.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT);
    assert.equal(timedOut.length, 1);
    assert.equal(timedOut[0].activityTaskTimedOutEventAttributes!.failure?.timeoutFailureInfo?.timeoutType, proto.temporal.api.enums.v1.TimeoutType.TIMEOUT_TYPE_SCHEDULE_TO_CLOSE);
    assert.equal(more.length, 0, 'no target is started once the deadline has passed');
    assert.equal((await h.describe()).status.name, 'FAILED');
  });

  test("the deadline bounds every target's scheduleToClose: a later target gets only what is left", async () => {
    const REQUEST_MS = 3000;
    const h = await start('deadline-fallback', { 'a/m': { error: 'unavailable', status: 503, afterMs: 700 }, 'b/m': { hang: true } }, { model: 'chain', keel: { timeout_ms: REQUEST_MS } });
    const { details } = await failureOf(h);
    assert.equal(details.errorClass, 'timeout');
    const history = await h.fetchHistory();
    const [a, b] = scheduled(history);
    assert.deepEqual([a.target, b.target], ['a/m', 'b/m']);
    // deadline = the workflow clock at its first task + requestMs; each target gets deadline - now.
    // The workflow clock is the task's start (WorkflowTaskStarted) or, once a local activity such
    // as readHealth has resolved inside the task, a little later (5 ms measured under load): never
    // more than what was left at the task's start, and within a stated 500 ms of it.
    const begin = workflowTimeOf(history, Number((history.events ?? []).find((e) => e.eventType === EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED)!.eventId));
    for (const s of [a, b]) {
      const left = REQUEST_MS - (workflowTimeOf(history, s.workflowTaskCompletedEventId) - begin);
      const note = `${s.target}: scheduleToClose ${s.scheduleToCloseMs} ms, ${left} ms left at its task's start`;
      assert.ok(s.scheduleToCloseMs <= left + 1, note);
      assert.ok(s.scheduleToCloseMs >= left - 500, note);
    }
    assert.ok(b.scheduleToCloseMs <= REQUEST_MS - 700, `b got ${b.scheduleToCloseMs} ms after a spent at least 700`);
    assert.deepEqual(attemptSummary(details.attempts), ['a/m#1:error:unavailable']);
  });
});

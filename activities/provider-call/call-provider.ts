// The provider-call activity: one HTTP call to one provider per attempt. Temporal retries it
// (bounded RetryPolicy); this code decides, per failure, whether another attempt is worth it and
// after how long (`nextRetryDelay`), and keeps the attempt log across attempts in heartbeats.
import { randomUUID } from 'node:crypto';
import { ApplicationFailure, CancelledFailure, Context } from '@temporalio/activity';
import { ApplicationFailureCategory } from '@temporalio/common';
import { DEFAULT_PROVIDER_CONCURRENCY, type KeelConfig } from '../../src/config/schema.js';
import type { HealthLink } from '../health-link.js';
import type { StreamBoard } from '../../src/channels/stream-board.js';
import { ERROR_POLICY, type ErrorClass, type ProviderErrorInfo } from '../../src/core/error-classes.js';
import type { AttemptRecord, ProviderCallInput, ProviderCallOutput } from '../../src/core/request-types.js';
import { attemptLog } from './attempt-log.js';
import { acquirePermit } from './local-gate.js';
import { providerRequest, type HeadStarts } from './head-start.js';
import { classifyError, internalStack, isAbortError } from './classify-error.js';
import { noteProviderCall } from './hedge-budget.js';
import { createAdapter } from '../providers/index.js';
import type { ChatCompletion } from 'openai/resources/chat/completions';
import { backoffDelayMs } from './retry-delay.js';
import { StreamBroke, continuingRequest, streamCall, type StreamCallResult } from './stream-call.js';
import { SpanKind, SpanStatusCode, type Span, type Tracer } from '@opentelemetry/api';
import { usageCost } from '../../src/core/cost.js';
import { OTHER, upstreamModelLabel } from '../../src/core/metric-labels.js';
import type { KeelMetrics } from '../../src/observability/metrics.js';

const HEARTBEAT_EVERY_MS = 300;

/**
 * A call on a task queue must heartbeat within seconds of its start (that is how a dead worker is
 * noticed), also while it waits before calling: for this worker's first health snapshot (seconds,
 * when the health workflow's last worker died) or for a permit. A local call has no heartbeat.
 */
async function provingAlive<T>(ctx: Context, beat: () => void, wait: Promise<T>): Promise<T> {
  if (ctx.info.isLocal) return wait;
  beat();
  const timer = setInterval(beat, HEARTBEAT_EVERY_MS);
  try {
    return await wait;
  } finally {
    clearInterval(timer);
  }
}

/** Whether to try this target again, and when; undefined = move on (or stop). */
function nextDelay(info: ProviderErrorInfo, input: ProviderCallInput, attempt: number): number | undefined {
  if (!ERROR_POLICY[info.errorClass].retrySameTarget || attempt >= input.retry.maxAttempts) return undefined;
  const delay = info.retryAfterMs ?? backoffDelayMs(input.retry, attempt);
  // Waiting past the request's deadline would only spend the budget: fall back at once instead.
  if (Date.now() + delay >= input.deadline) return undefined;
  return delay;
}

function noteHealth(health: HealthLink | undefined, input: ProviderCallInput, record: AttemptRecord, errorClass?: ErrorClass, outputTokens?: number): void {
  if (!health) return;
  health.recorder.record({
    provider: input.provider,
    model: input.model,
    at: record.startedAt,
    durationMs: record.durationMs,
    ...(errorClass && { errorClass }),
    ...(outputTokens !== undefined && { outputTokens }),
    ...(input.probe && { probe: true }),
  });
  if (input.probe) health.publishSoon();
}

/**
 * A stream that broke after the client had content: neither retried nor (unless the request asked
 * to continue it) falls back — the failure carries what the client has.
 */
function streamInterrupted(err: StreamBroke, record: AttemptRecord, prior: AttemptRecord[], attempt: number, info: ProviderErrorInfo): ApplicationFailure {
  const message = `the answer broke after ${err.progress.chunks} chunk(s) (${info.errorClass}): ${info.message}`;
  Object.assign(record, {
    outcome: 'error',
    errorClass: 'stream_interrupted',
    ...(info.status !== undefined && { status: info.status }),
    message,
    stream: err.progress,
  } satisfies Partial<AttemptRecord>);
  return ApplicationFailure.create({
    type: 'stream_interrupted',
    message: `${record.target} attempt ${attempt}: ${message}`,
    category: ApplicationFailureCategory.BENIGN,
    nonRetryable: true,
    details: [{ errorClass: 'stream_interrupted', cause: info.errorClass, message, attempts: [...prior, record], stream: err.partial }],
  });
}

/** How a worker observes provider calls: metrics per attempt, a span per call to the provider. */
export interface CallObservers {
  metrics?: KeelMetrics;
  tracer?: Tracer;
}

/** `gen_ai.provider.name` (OpenTelemetry GenAI conventions) of each wire format. */
const GENAI_PROVIDER = { openai: 'openai', anthropic: 'anthropic', gemini: 'gcp.gemini' } as const;

/**
 * `streams`: the channel to an API in this process, where streamed calls publish their chunks.
 * `headStarts`: first calls that API sent before the workflow asked (head-start.ts).
 */
export function createCallProvider(config: KeelConfig, health?: HealthLink, observers: CallObservers = {}, streams?: StreamBoard, headStarts?: HeadStarts) {
  const { metrics, tracer } = observers;
  const secrets = Object.values(config.providers)
    .map((p) => p.apiKey)
    .filter((k): k is string => typeof k === 'string' && k.length > 0);

  return async function callProvider(input: ProviderCallInput): Promise<ProviderCallOutput> {
    const ctx = Context.current();
    const provider = config.providers[input.provider];
    if (!provider) {
      throw ApplicationFailure.create({ type: 'invalid_request', nonRetryable: true, message: `Provider '${input.provider}' is not configured on this worker` });
    }
    const attempt = ctx.info.attempt;
    // The API of this process may have sent this first call already: adopt it rather than send another.
    const head = ctx.info.isLocal && attempt === 1 && !input.probe && !input.stream?.continuation ? headStarts?.take(input.requestId, input.provider, input.model, input.stream !== undefined) : undefined;
    const log = attemptLog(ctx);
    const prior = log.prior;
    // A breaker that opened while this request was planned or retrying: not one more call to it.
    if (health && !input.probe) await provingAlive(ctx, () => log.keep(prior), health.ready());
    // An adopted call was admitted when it went out (its answer may be a client's already).
    if (health && !input.probe && !head && !health.admits(`${input.provider}/${input.model}`)) {
      throw ApplicationFailure.create({
        type: 'unavailable',
        nonRetryable: true,
        message: `${input.provider}/${input.model}: circuit breaker open, not called`,
        details: [{ errorClass: 'unavailable', message: 'circuit breaker open', attempts: prior }],
      });
    }
    const record: AttemptRecord = {
      target: `${input.provider}/${input.model}`,
      provider: input.provider,
      model: input.model,
      attempt,
      startedAt: Date.now(),
      durationMs: 0,
      outcome: 'success',
    };
    // A streamed call retried after its worker died: the client had part of an answer from it, and
    // a new call would start another one.
    if (input.stream && log.priorStreamed > 0) {
      const message = `the worker streaming this answer stopped after ${log.priorStreamed} chunk(s)`;
      Object.assign(record, { outcome: 'error', errorClass: 'stream_interrupted', message } satisfies Partial<AttemptRecord>);
      throw ApplicationFailure.create({
        type: 'stream_interrupted',
        message: `${record.target} attempt ${attempt}: ${message}`,
        category: ApplicationFailureCategory.BENIGN,
        nonRetryable: true,
        details: [{ errorClass: 'stream_interrupted', cause: 'unreachable', message, attempts: [...prior, record] }],
      });
    }
    // Local and streamed calls run beside the worker's own slots: the provider's cap is a permit here.
    const gated = ctx.info.isLocal || input.stream !== undefined;
    const release = head
      ? head.release
      : gated
        ? await provingAlive(ctx, () => log.keep(prior), acquirePermit(input.provider, provider.concurrency ?? DEFAULT_PROVIDER_CONCURRENCY, ctx.cancellationSignal))
        : undefined;
    // An adopted call's attempt began when its request went out.
    record.startedAt = head?.startedAt ?? Date.now();
    if (head) {
      const abortHead = () => head.controller.abort(new DOMException('provider call cancelled', 'AbortError'));
      if (ctx.cancellationSignal.aborted) abortHead();
      else ctx.cancellationSignal.addEventListener('abort', abortHead, { once: true });
    }
    noteProviderCall(record.startedAt);
    log.keep(prior);
    let streamed = 0;
    const callPath = ctx.info.isLocal ? 'local' : 'queue';
    // Labels: an upstream model the configuration does not name is 'other' (a client may send any).
    const modelLabel = upstreamModelLabel(input.provider, input.model, config.routing);
    const observed = { provider: input.provider, providerType: provider.type, model: modelLabel, callPath, seconds: 0 } as const;
    // The call to the provider, as a child of the activity's span (GenAI client span conventions).
    // Labels and counts only: never the prompt, the completion or a key.
    const span: Span | undefined = tracer?.startSpan(`chat ${input.model}`, {
      kind: SpanKind.CLIENT,
      attributes: {
        'gen_ai.operation.name': 'chat',
        'gen_ai.provider.name': GENAI_PROVIDER[provider.type],
        'gen_ai.request.model': input.model,
        'server.address': new URL(provider.baseURL).hostname,
        'keel.provider': input.provider,
        'keel.attempt': attempt,
        'keel.call_path': callPath,
        'keel.request_id': input.requestId,
      },
    });
    const observeSuccess = (completion: ChatCompletion) => {
      const usage = completion.usage;
      const cost = usageCost(usage, input.provider, input.model, config.routing);
      metrics?.providerCall({
        ...observed,
        outcome: 'success',
        seconds: record.durationMs / 1000,
        retrying: false,
        // A provider may echo the requested name back: no more bounded than the request's.
        responseModel: modelLabel === OTHER ? OTHER : completion.model,
        ...(usage && { inputTokens: usage.prompt_tokens, outputTokens: usage.completion_tokens }),
        ...(cost !== undefined && { cost }),
      });
      span?.setAttributes({
        'gen_ai.response.model': completion.model,
        ...(usage && { 'gen_ai.usage.input_tokens': usage.prompt_tokens, 'gen_ai.usage.output_tokens': usage.completion_tokens }),
      });
    };
    // Heartbeats are how a cancellation (race loser, client cancel) reaches a running call on a
    // task queue; a local call is cancelled in-process.
    const beat = ctx.info.isLocal ? undefined : setInterval(() => log.keep(prior, streamed), HEARTBEAT_EVERY_MS);
    try {
      const adapter = createAdapter(provider.type, { baseURL: provider.baseURL, ...(provider.apiKey && { apiKey: provider.apiKey }) });
      if (input.stream) {
        const continuation = input.stream.continuation;
        const onProgress = (n: number) => {
          streamed = n;
          if (n === 1) metrics?.firstChunk({ ...observed, seconds: (Date.now() - record.startedAt) / 1000 });
        };
        let out: StreamCallResult;
        if (head?.call.kind === 'stream') {
          // The API's call streams already: its first chunk may have gone out before this attempt began.
          const firstAt = head.call.firstChunkAt();
          if (firstAt !== undefined) metrics?.firstChunk({ ...observed, seconds: (firstAt - record.startedAt) / 1000 });
          out = await head.call.adopt(onProgress);
        } else {
          out = await streamCall({
            adapter,
            request: continuation ? continuingRequest(providerRequest(input.request, input.model), continuation, provider.type === 'anthropic') : providerRequest(input.request, input.model),
            upstreamModel: input.model,
            spec: input.stream,
            ...(streams && { board: streams }),
            requestId: input.requestId,
            runId: ctx.info.workflowExecution?.runId ?? '',
            // Unique per execution: a local call run again after a lost workflow task must not pass for the first.
            callId: `${ctx.info.activityId}#${attempt}#${randomUUID()}`,
            target: record.target,
            cancelled: ctx.cancellationSignal,
            onProgress,
          });
        }
        record.durationMs = Date.now() - record.startedAt;
        log.close();
        if (out.lost) {
          // Not a verdict on the target: another call of the request was first (a race, a hedge).
          Object.assign(record, { outcome: 'cancelled', message: `another target streamed first${out.to ? ` (${out.to})` : ''}` } satisfies Partial<AttemptRecord>);
          metrics?.providerCall({ ...observed, outcome: 'cancelled', seconds: record.durationMs / 1000, retrying: false });
          span?.setAttribute('keel.cancelled', true);
          return { lost: true, attempts: [...prior, record] };
        }
        record.stream = out.progress;
        noteHealth(health, input, record, undefined, out.completion.usage?.completion_tokens);
        observeSuccess(out.completion);
        return { completion: out.completion, layout: out.layout, attempts: [...prior, record] };
      }
      const headCall = head?.call.kind === 'complete' ? head.call : undefined;
      const completion = headCall ? await headCall.answer : await adapter.complete(providerRequest(input.request, input.model), input.model, ctx.cancellationSignal);
      // An adopted call's duration is the call's, not until its adoption (head-start.ts answeredAttempt).
      record.durationMs = (headCall?.finishedAt() ?? Date.now()) - record.startedAt;
      noteHealth(health, input, record, undefined, completion.usage?.completion_tokens);
      log.close();
      observeSuccess(completion);
      return { completion, attempts: [...prior, record] };
    } catch (err) {
      record.durationMs = Date.now() - record.startedAt;
      if (ctx.cancellationSignal.aborted && (isAbortError(err) || err instanceof CancelledFailure)) {
        // A lost race is no verdict on the target; running out of time is.
        if (ctx.cancellationDetails?.timedOut) noteHealth(health, input, record, 'timeout');
        log.close();
        metrics?.providerCall({ ...observed, outcome: 'cancelled', seconds: record.durationMs / 1000, retrying: false });
        span?.setAttribute('keel.cancelled', true);
        throw err instanceof CancelledFailure ? err : new CancelledFailure('provider call cancelled');
      }
      if (err instanceof StreamBroke) {
        const info = classifyError(err.cause, provider.type, secrets);
        noteHealth(health, input, record, info.errorClass);
        log.close();
        metrics?.providerCall({ ...observed, outcome: 'error', errorClass: 'stream_interrupted', seconds: record.durationMs / 1000, retrying: false });
        span?.setAttributes({ 'error.type': 'stream_interrupted', 'keel.stream.chunks': err.progress.chunks });
        span?.setStatus({ code: SpanStatusCode.ERROR, message: 'stream_interrupted' });
        throw streamInterrupted(err, record, prior, attempt, info);
      }
      const info = classifyError(err, provider.type, secrets);
      // Keel's own bug says nothing about the provider (no mark against its health), and only the log has its stack.
      if (info.errorClass === 'internal') ctx.log.error(`${record.target}: internal error in Keel`, { requestId: input.requestId, stack: internalStack(err, secrets) });
      else noteHealth(health, input, record, info.errorClass);
      const delay = nextDelay(info, input, attempt);
      Object.assign(record, {
        outcome: 'error',
        errorClass: info.errorClass,
        ...(info.status !== undefined && { status: info.status }),
        message: info.message,
        ...(delay !== undefined && { retryInMs: delay }),
      } satisfies Partial<AttemptRecord>);
      const attempts = [...prior, record];
      if (delay === undefined) log.close();
      else log.keep(attempts);
      metrics?.providerCall({ ...observed, outcome: 'error', errorClass: info.errorClass, seconds: record.durationMs / 1000, retrying: delay !== undefined });
      // The class and status only: the message may quote the provider's answer.
      span?.setAttributes({ 'error.type': info.errorClass, ...(info.status !== undefined && { 'http.response.status_code': info.status }) });
      span?.setStatus({ code: SpanStatusCode.ERROR, message: info.errorClass });
      throw ApplicationFailure.create({
        type: info.errorClass,
        message: `${record.target} attempt ${attempt}: ${info.message}`,
        // A provider failing is what Keel exists for: the attempt log records it; it is no worker
        // error to log. Keel's own bug is (logged above with its stack).
        ...(info.errorClass !== 'internal' && { category: ApplicationFailureCategory.BENIGN }),
        nonRetryable: delay === undefined,
        ...(delay !== undefined && { nextRetryDelay: delay }),
        details: [{ errorClass: info.errorClass, status: info.status, message: info.message, attempts }],
      });
    } finally {
      span?.end();
      clearInterval(beat);
      release?.();
    }
  };
}

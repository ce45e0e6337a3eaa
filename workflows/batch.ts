// One OpenAI batch = one execution chain of this workflow. It drives a request workflow per line
// as a child, keeping at most `window` in flight, and holds only counts and a byte cursor:
// lines come in pages from an activity, outcomes are written to the file store by an activity
// that reads each child's result from Temporal. Every `childrenPerRun` children (or when Temporal
// suggests it) it drains its window and continues-as-new, so no run's history grows large.
import {
  CancellationScope,
  ContinueAsNew,
  ParentClosePolicy,
  WorkflowIdReusePolicy,
  condition,
  continueAsNew,
  executeChild,
  getExternalWorkflowHandle,
  isCancellation,
  patched,
  proxyActivities,
  setHandler,
  sleep,
  workflowInfo,
} from '@temporalio/workflow';
import type { BatchActivities } from '../activities/batch/index.js';
import type { RoutingHealth } from '../src/core/health-types.js';
import { childWorkflowId, keys } from '../src/core/batch-keys.js';
import type { BatchCursor, BatchItem, BatchWorkflowInput, RecordItem, RequestCounts } from '../src/core/batch-types.js';
import type { ChatRequestBody } from '../src/core/chat-request.js';
import { KeelBatchId, KeelKey, KeelModel, KeelStatus } from '../src/core/search-attributes.js';
import { healthCandidates, healthTargets, planRequest, routingFor } from '../src/core/routing.js';
import { requestFeatures } from '../src/core/capabilities.js';
import { worstCase } from '../src/core/key-cost.js';
import type { ReserveItem } from '../src/core/keys.js';
import type { RequestKey } from '../src/core/request-types.js';
import { WORKFLOW_TYPES, cancelBatchSignal, type BatchWorkflow, type RequestWorkflow } from '../src/core/contract.js';

const retry = { maximumAttempts: 200, initialInterval: '200ms', backoffCoefficient: 2, maximumInterval: '5s' };
// Every batch activity heartbeats, so a killed worker's activity is retried within seconds.
const store = proxyActivities<BatchActivities>({ startToCloseTimeout: '30m', heartbeatTimeout: '10s', retry });
// A child still running when recorded (a re-drive found it) is waited for, within a request's budget.
const recorder = proxyActivities<BatchActivities>({ startToCloseTimeout: '2h', heartbeatTimeout: '10s', retry });

/**
 * How long a health snapshot a batch activity brought back serves the lines the batch starts. A
 * run reads one with its first page, and the recorder another every `flushSize` lines or 2 s
 * while lines finish, so a steady batch has one at most ~2 s old; a line started without one that
 * fresh reads health itself.
 */
const HEALTH_FRESH_MS = 3_000;

const PAGE_ITEMS = 500;
/** Lines reserved against the batch's key per Update. */
const RESERVE_GROUP = 200;
/** A line's reservation outlives its request's deadline by this much (as an API request's does). */
const RESERVATION_MARGIN_MS = 60_000;
const PAGE_BYTES = 1_000_000;
const FLUSH_EVERY_MS = 2_000;

export const batchWorkflow: BatchWorkflow = async (input: BatchWorkflowInput): Promise<string> => {
  const { batchId, round } = input;
  let cancelRequested = input.cursor?.cancelRequested ?? false;
  setHandler(cancelBatchSignal, () => {
    cancelRequested = true;
  });
  try {
    const cursor = input.cursor ?? (await begin(input, () => cancelRequested));
    if (!cursor) return 'failed';
    return await run(input, cursor, () => cancelRequested);
  } catch (err) {
    if (err instanceof ContinueAsNew) throw err;
    if (isCancellation(err)) {
      await CancellationScope.nonCancellable(() => store.finalizeBatch({ batchId, round, status: 'cancelled' }));
    } else {
      await store.updateBatch({ batchId, patch: { status: 'failed', errors: { object: 'list', data: [{ code: 'internal_error', message: String((err as Error)?.message ?? err), param: null, line: null }] } }, stamp: 'failed_at' });
    }
    throw err;
  }
};

/** validating (round 0) or collecting the failed lines (a retry round); undefined = the batch failed. */
async function begin(input: BatchWorkflowInput, cancelled: () => boolean): Promise<BatchCursor | undefined> {
  const { batchId, round } = input;
  if (round > 0) {
    const { counts } = await store.prepareRetry({ batchId, round });
    return { source: keys.retry(batchId, round), offset: 0, counts, seq: 0, cancelRequested: cancelled() };
  }
  const v = await store.validateBatchInput({ batchId, inputFileId: input.inputFileId, endpoint: input.endpoint, maxLines: input.maxLines, ...(input.key && { key: input.key }) });
  if (v.fatal) {
    await store.updateBatch({ batchId, patch: { status: 'failed', errors: { object: 'list', data: v.fatal }, request_counts: { total: v.total, completed: 0, failed: 0 } }, stamp: 'failed_at' });
    return undefined;
  }
  const counts: RequestCounts = { total: v.total, completed: 0, failed: v.invalid };
  await store.updateBatch({ batchId, patch: { status: 'in_progress', request_counts: counts }, stamp: 'in_progress_at' });
  return { source: keys.valid(batchId), offset: 0, counts, seq: 0, cancelRequested: cancelled() };
}

async function run(input: BatchWorkflowInput, cursor: BatchCursor, cancelled: () => boolean): Promise<string> {
  const { batchId, round } = input;
  let counts = cursor.counts;
  let seq = cursor.seq;
  let offset = cursor.offset;
  const pending = new Set<string>();
  const done: RecordItem[] = [];
  let buffer: BatchItem[] = [];
  let readOffset = offset;
  let eof = false;
  let started = 0;
  let lastFlush = Date.now();
  let stopSent = false;
  let expired = Date.now() >= input.expiresAt;
  // One timer per run for expiry and at most one at a time for flushing: timers are history events too.
  void sleep(Math.max(1, input.expiresAt - Date.now())).then(() => {
    expired = true;
  });
  let tick: Promise<void> | undefined;
  let ticked = false;
  // A keyed batch waits when its key refuses a line for now: until a rate limit's window has room,
  // or until one of its own lines in flight settles and gives back budget.
  let rateBlocked = false;
  let budgetBlocked = false;
  // Runs begun before the V2 request type started their lines as V1 and go on doing so: a child's
  // type is part of the history they replay. Asked once per run (one marker per run, not per line).
  const requestType = patched('request-workflow-v2') ? WORKFLOW_TYPES.request : WORKFLOW_TYPES.requestV1;
  // Since 'batch-health', the page reads and the recorder bring back the worker's health snapshot
  // for the targets of the lines about to start, and each line started within HEALTH_FRESH_MS of
  // it is given the part for its own targets: the lines' own reads were a local activity and a
  // marker each.
  const sharedHealth = patched('batch-health');
  // Since 'batch-tick', a fired flush tick is spent even when it finds nothing to record. Before,
  // a tick that fired after a `flushSize` flush had emptied `done`, while lines were still in
  // flight, stayed set: `condition` below resolves at once while its predicate holds, so the loop
  // spun inside one activation until the workflow task timed out (10 s) and the sandbox's own
  // limit stopped it (60 s), its promises piling up in the worker's memory. The retried task
  // usually carried a line's completion and went on. Seen near the end of runs, when the window
  // drains: a 30-60 s stall in two of four 10,000-line runs (BENCHMARKS.md, "Batches").
  const spendTick = patched('batch-tick');
  let health: { read: RoutingHealth; at: number; targets: Set<string> } | undefined;
  const healthFor = (request: ChatRequestBody): { health?: RoutingHealth } => {
    if (!health || Date.now() - health.at >= HEALTH_FRESH_MS) return {};
    const mine = healthCandidates(request, input.routing);
    if (!mine.every((t) => health!.targets.has(t))) return {};
    const all = health.read;
    return { health: { ...all, targets: Object.fromEntries(mine.filter((t) => all.targets[t]).map((t) => [t, all.targets[t]])) } };
  };

  const readPage = async () => {
    const page = await store.readBatchPage({ source: cursor.source, offset: readOffset, maxItems: PAGE_ITEMS, maxBytes: PAGE_BYTES, ...(sharedHealth && { withHealth: true }) });
    if (page.health) health = { read: page.health.read, at: Date.now(), targets: new Set(page.health.targets) };
    return page;
  };

  const launch = (item: BatchItem, key?: RequestKey) => {
    const childId = childWorkflowId(batchId, round, item.customId);
    pending.add(childId);
    offset = item.end;
    started += 1;
    // The result lands in this history (Temporal records it), but the workflow drops it at once:
    // the recorder activity reads it from Temporal and writes the line.
    const request = item.body as ChatRequestBody;
    const routing = routingFor(request, input.routing);
    void executeChild<RequestWorkflow>(requestType, {
      workflowId: childId,
      taskQueue: input.requestTaskQueue,
      // Temporal's default workflow task timeout (10 s), not the short one of interactive requests
      // with local calls: nobody waits on a line's cancel or status, and on a saturated worker a
      // short timeout would re-run local calls whose task merely checked in late.
      args: [{ request, routing, batchId, ...(key && { key }), ...healthFor(request) }],
      parentClosePolicy: ParentClosePolicy.REQUEST_CANCEL,
      // A re-drive that meets a finished child records that child instead of running the line again.
      workflowIdReusePolicy: WorkflowIdReusePolicy.REJECT_DUPLICATE,
      typedSearchAttributes: [
        { key: KeelBatchId, value: batchId },
        { key: KeelModel, value: item.model },
        { key: KeelStatus, value: 'running' },
        ...(key ? [{ key: KeelKey, value: key.id }] : []),
      ],
      staticSummary: `batch ${batchId} line ${item.customId}`,
    })
      .then(
        () => undefined,
        () => undefined,
      )
      .finally(() => {
        pending.delete(childId);
        done.push({ customId: item.customId, childId });
        budgetBlocked = false;
      });
  };

  /** A line its key will not let start: it goes to the error file as `code`, and is done. */
  const refuse = (item: BatchItem, code: string, message: string) => {
    offset = item.end;
    done.push({ customId: item.customId, childId: childWorkflowId(batchId, round, item.customId), error: { code, message } });
  };

  const reservation = (item: BatchItem): ReserveItem => {
    const requestId = childWorkflowId(batchId, round, item.customId);
    const request = item.body as ChatRequestBody;
    const routing = routingFor(request, input.routing);
    // Validated when the batch began (against the same routing): this cannot throw for a valid line.
    const features = requestFeatures(request);
    const wc = worstCase(request, routing, features);
    const plan = planRequest(request, routing, undefined, { features });
    return { requestId, nanos: wc.nanos, tokens: wc.tokens, holdMs: plan.timeouts.requestMs + RESERVATION_MARGIN_MS, group: batchId };
  };

  /** Starts lines as the window allows, each reserved against the batch's key first (in file order). */
  const launchKeyed = async (keyId: string) => {
    while (!rateBlocked && !budgetBlocked && pending.size < input.window && started < input.childrenPerRun) {
      if (buffer.length === 0) {
        if (eof) return;
        const page = await readPage();
        buffer = page.items;
        eof = page.eof;
        if (buffer.length > 0) readOffset = buffer[buffer.length - 1].end;
        if (buffer.length === 0) return;
      }
      const group = buffer.slice(0, Math.min(input.window - pending.size, input.childrenPerRun - started, RESERVE_GROUP));
      const items = group.map(reservation);
      const outcomes = await store.reserveBatchLines({ keyId, items });
      let i = 0;
      for (; i < group.length && outcomes[i].ok; i++) {
        buffer.shift();
        const o = outcomes[i];
        launch(group[i], { id: keyId, reservedNanos: items[i].nanos, reservedTokens: items[i].tokens, ...(o.ok && o.remainingNanos !== undefined && { remainingNanos: o.remainingNanos }) });
      }
      if (i === group.length) continue;
      const outcome = outcomes[i];
      if (outcome.ok) continue;
      const refusal = outcome.refusal;
      if (refusal.code === 'rate_limit_exceeded' && refusal.retryAfterMs !== undefined) {
        rateBlocked = true;
        void sleep(refusal.retryAfterMs).then(() => {
          rateBlocked = false;
        });
        return;
      }
      // Its own lines in flight will settle below their reservations: wait for them before giving up on a line.
      if (refusal.code === 'budget_exceeded' && pending.size > 0) {
        budgetBlocked = true;
        return;
      }
      // Nothing will make room: this line fails, and so do the next ones that cannot start either
      // (a revoked or expired key; more than the budget has left). The others are tried again.
      const alsoRefused = (j: number) =>
        refusal.code === 'key_revoked' || refusal.code === 'key_expired' || (refusal.code === 'budget_exceeded' && items[j].nanos > refusal.remainingNanos);
      do {
        buffer.shift();
        refuse(group[i], refusal.code, refusal.message);
        i++;
      } while (i < group.length && alsoRefused(i));
    }
  };

  const flush = async () => {
    const items = done.splice(0, done.length);
    const cancelCode = cancelled() ? 'batch_cancelled' : expired ? 'batch_expired' : undefined;
    const targets = sharedHealth ? healthTargets(buffer.slice(0, input.window).map((item) => item.body as ChatRequestBody), input.routing) : [];
    const { health: read, ...recorded } = await recorder.recordBatchResults({
      batchId,
      chunkKey: keys.chunk(batchId, round, seq++),
      items,
      counts,
      ...(cancelCode && { cancelCode }),
      ...(targets.length > 0 && { healthTargets: targets }),
    });
    counts = recorded;
    if (read) health = { read, at: Date.now(), targets: new Set(targets) };
    lastFlush = Date.now();
  };

  for (let guard = 0; ; guard++) {
    const stopping = cancelled() || expired;
    if (stopping && !stopSent) {
      stopSent = true;
      if (cancelled()) await store.updateBatch({ batchId, patch: { status: 'cancelling' }, stamp: 'cancelling_at' });
      for (const id of pending) getExternalWorkflowHandle(id).cancel().catch(() => undefined);
    }
    const runFull = started >= input.childrenPerRun || workflowInfo().continueAsNewSuggested;
    // Batches started before virtual keys have no key: they launch as they always did.
    const keyId = input.key && patched('virtual-keys') ? input.key.id : undefined;
    if (!stopping && !runFull && keyId !== undefined) await launchKeyed(keyId);
    else if (!stopping && !runFull) {
      while (pending.size < input.window) {
        if (buffer.length === 0) {
          if (eof) break;
          const page = await readPage();
          buffer = page.items;
          eof = page.eof;
          if (buffer.length > 0) readOffset = buffer[buffer.length - 1].end;
          if (buffer.length === 0) break;
        }
        launch(buffer.shift()!);
        if (started >= input.childrenPerRun) break;
      }
    }
    const allRead = eof && buffer.length === 0;
    const drained = pending.size === 0 && (stopping || runFull || allRead);
    if (done.length >= input.flushSize || (done.length > 0 && (drained || ticked || Date.now() - lastFlush >= FLUSH_EVERY_MS))) {
      ticked = false;
      await flush();
    } else if (spendTick) {
      ticked = false;
    }
    if (drained && done.length === 0) {
      if (allRead) return finish(input, 'completed');
      if (cancelled()) return finish(input, 'cancelled');
      if (expired) {
        counts = await store.writeUnstartedErrors({ batchId, source: cursor.source, offset, chunkKey: keys.chunk(batchId, round, seq++), counts });
        return finish(input, 'expired');
      }
      await continueAsNew<typeof batchWorkflow>({ ...input, cursor: { source: cursor.source, offset, counts, seq, cancelRequested: cancelled() } });
    }
    if (done.length > 0 && !tick) {
      tick = sleep(FLUSH_EVERY_MS).then(() => {
        ticked = true;
        tick = undefined;
      });
    }
    const seen = done.length;
    const wasStopping = stopping;
    const wasRateBlocked = rateBlocked;
    await condition(() => done.length !== seen || ticked || (!wasStopping && (cancelled() || expired)) || (wasRateBlocked && !rateBlocked));
    // Bounded: every pass either starts, records or waits for a child; this only trips on a bug.
    if (guard > 10_000_000) throw new Error('batch loop did not converge');
  }
}

async function finish(input: BatchWorkflowInput, status: 'completed' | 'cancelled' | 'expired'): Promise<string> {
  if (status === 'completed') await store.updateBatch({ batchId: input.batchId, patch: { status: 'finalizing' }, stamp: 'finalizing_at' });
  await store.finalizeBatch({ batchId: input.batchId, round: input.round, status });
  return status;
}

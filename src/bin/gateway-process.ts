// The API and a worker in one process on one Temporal connection: what `npm start` runs after the
// dev server, and `npm run gateway` alone. Sharing the process is what lets a request start
// eagerly on the local worker and a waiting client be answered as soon as its workflow settles
// (docs/REQUESTS.md, "When you get your answer"). Parts are stopped in reverse, whatever started.
import { randomUUID } from 'node:crypto';
import { NativeConnection, type Worker } from '@temporalio/worker';
import { startApi, type RunningApi } from '../api/server.js';
import { AnswerBoard } from '../channels/answer-board.js';
import { StreamBoard } from '../channels/stream-board.js';
import type { HeadStarts } from '../../activities/provider-call/head-start.js';
import type { KeelConfig } from '../config/schema.js';
import { createKeelWorkers, healthSource, runKeelWorkers } from '../worker/workers.js';
import { bundleWorkflows } from '../worker/workflow-bundle.js';
import type { InstalledRuntime } from '../worker/temporal-runtime.js';
import { KeelMetrics } from '../observability/metrics.js';
import { KeelTracing } from '../observability/tracing.js';
import { bundleOptionsFor } from '../codec/data-converter.js';

export class GatewayProcess {
  connection: NativeConnection | undefined;
  workers: Worker[] = [];
  /** Settles when every worker has stopped; rejects when one fails. */
  running: Promise<void> | undefined;
  api: RunningApi | undefined;
  streams: StreamBoard | undefined;
  headStarts: HeadStarts | undefined;
  /** One set of metrics for the process: the API's /metrics shows the workers' too. */
  readonly metrics = new KeelMetrics();
  readonly tracing: KeelTracing | undefined;

  /** `runtime`: what installRuntime() set up (where the Temporal SDK's metrics are read). */
  constructor(
    private readonly config: KeelConfig,
    private readonly runtime: InstalledRuntime = {},
  ) {
    this.tracing = KeelTracing.start(config.telemetry.tracing, 'gateway');
  }

  /** `checkpoint` is called between steps and throws to stop starting (Ctrl-C during start-up). */
  async start(address: string, checkpoint: () => void = () => undefined): Promise<RunningApi> {
    this.connection = await NativeConnection.connect({ address });
    const workflowBundle = await bundleWorkflows({ ...bundleOptionsFor(this.config.codec), tracing: this.tracing !== undefined });
    checkpoint();
    const answers = new AnswerBoard();
    // Streamed requests' chunks pass from their calls to the API here; hedged ones run on a queue only this process polls.
    this.streams = new StreamBoard(this.config.streaming);
    const streams = { board: this.streams, processQueue: `keel-process-${randomUUID()}` };
    const observe = { metrics: this.metrics, ...(this.tracing && { tracing: this.tracing }) };
    const keel = await createKeelWorkers({ connection: this.connection, config: this.config, workflowBundle, answers, streams, ...observe });
    this.workers = keel.workers;
    this.headStarts = keel.headStarts;
    this.running = runKeelWorkers(this.workers);
    await keel.health.warmUp();
    this.api = await startApi(this.config, {
      connection: this.connection,
      local: { answers, streams, health: healthSource(keel.health), ...(keel.headStarts && { headStarts: keel.headStarts }) },
      ...observe,
      ...(this.runtime.temporalMetricsUrl && { temporalMetricsUrl: this.runtime.temporalMetricsUrl }),
    });
    checkpoint();
    return this.api;
  }

  async stop(): Promise<void> {
    await this.api?.close();
    // The Temporal runtime shuts the workers down on the same signal; wait for their calls to finish.
    for (const w of this.workers) if (w.getState() === 'RUNNING') w.shutdown();
    await this.running?.catch(() => undefined);
    this.streams?.close();
    this.headStarts?.close();
    await this.tracing?.shutdown().catch(() => undefined);
    await this.connection?.close();
  }
}

// A worker's link to the provider-health workflow: publishes this worker's aggregated calls every
// interval, keeps a cached snapshot for routing reads (no server round trip per request), and
// asks for half-open probes. One per worker process.
import { hostname } from 'node:os';
import type { Client } from '@temporalio/client';
import { WORKFLOW_TYPES, acquireProbeUpdate, healthConfigureSignal, healthReportSignal, healthSnapshotQuery, type ProviderHealthWorkflow } from '../core/contract.js';
import type { SignalDefinition } from '@temporalio/common';
import type { HealthSettings } from '../config/schema.js';
import { HealthRecorder } from './health-recorder.js';
import type { HealthReport, HealthSnapshot, RoutingHealth, TargetRoutingHealth } from '../core/health-types.js';

const RPC_TIMEOUT_MS = 3_000;

export interface HealthAgentOptions {
  client: Client;
  workflowId: string;
  /** Where the health workflow runs: the request task queue. */
  taskQueue: string;
  settings: HealthSettings;
  identity?: string;
  /** Checked every tick: once true, the agent publishes what is left and stops (worker shutdown). */
  stopWhen?: () => boolean;
}

export class HealthAgent {
  readonly recorder = new HealthRecorder();
  private snapshot: HealthSnapshot | undefined;
  private timer: NodeJS.Timeout | undefined;
  private lastRefresh = 0;
  private busy = false;
  private stopped = false;
  private readonly identity: string;
  /** Probes granted to this worker, so its readers do not ask again before the next refresh. */
  private readonly localProbes = new Set<string>();

  constructor(private readonly opts: HealthAgentOptions) {
    this.identity = opts.identity ?? `${process.pid}@${hostname()}`;
  }

  get workflowId(): string {
    return this.opts.workflowId;
  }

  /** Starts the publish/refresh loop. The timer is unref'd: it never keeps a process alive. */
  start(): void {
    const tick = Math.min(this.opts.settings.publishIntervalMs, this.opts.settings.refreshIntervalMs);
    this.timer = setInterval(() => void this.tick(), tick);
    this.timer.unref();
    // Starts the workflow if it is not running yet, and hands it this worker's breaker settings.
    void this.send(healthConfigureSignal, this.opts.settings.breaker).catch(() => undefined);
    // The first snapshot now, not a tick later: routing waits for it (ready()).
    void this.ready();
  }

  /** Stops the loop and publishes what is left (best effort: the connection may be closing). */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    clearInterval(this.timer);
    await this.publish().catch(() => undefined);
  }

  private async tick(): Promise<void> {
    if (this.busy || this.stopped) return;
    if (this.opts.stopWhen?.()) return void this.stop();
    this.busy = true;
    try {
      const published = await this.publish();
      if (published || Date.now() - this.lastRefresh >= this.opts.settings.refreshIntervalMs) await this.refresh();
    } catch {
      // Health is advisory: routing goes on with the last snapshot while Temporal is unreachable.
    } finally {
      this.busy = false;
    }
  }

  private send<A>(signal: SignalDefinition<[A]>, arg: A): Promise<unknown> {
    return this.opts.client.withDeadline(Date.now() + RPC_TIMEOUT_MS, () =>
      this.opts.client.workflow.signalWithStart<ProviderHealthWorkflow, [A]>(WORKFLOW_TYPES.providerHealth, {
        workflowId: this.opts.workflowId,
        taskQueue: this.opts.taskQueue,
        args: [{ settings: this.opts.settings.breaker }],
        signal,
        signalArgs: [arg],
      }),
    );
  }

  /** Sends what this worker saw since the last report; false when there was nothing to send. */
  async publish(): Promise<boolean> {
    if (this.recorder.size === 0) return false;
    const targets = this.recorder.drain();
    const report: HealthReport = { worker: this.identity, sentAt: Date.now(), targets };
    try {
      await this.send(healthReportSignal, report);
      return true;
    } catch (err) {
      this.recorder.restore(targets);
      throw err;
    }
  }

  async refresh(): Promise<HealthSnapshot | undefined> {
    const handle = this.opts.client.workflow.getHandle(this.opts.workflowId);
    this.snapshot = await this.opts.client.withDeadline(Date.now() + RPC_TIMEOUT_MS, () =>
      handle.query(healthSnapshotQuery, { now: Date.now() }),
    );
    this.lastRefresh = Date.now();
    this.localProbes.clear();
    return this.snapshot;
  }

  /** Publishes at once: a probe's outcome decides a breaker, and other requests wait on it. */
  publishSoon(): void {
    if (this.stopped) return;
    void this.publish()
      .then(() => this.refresh())
      .catch(() => undefined);
  }

  current(): HealthSnapshot | undefined {
    return this.snapshot;
  }

  private first: Promise<void> | undefined;

  /**
   * Resolves once this worker has a snapshot — at once after the first refresh. A worker that just
   * started must not route around nothing: a breaker other workers opened has to hold for its
   * first requests too. Bounded: health is advisory, and without the health workflow (or before
   * any worker reported) routing goes on as configured.
   */
  ready(): Promise<void> {
    if (this.snapshot) return Promise.resolve();
    this.first ??= this.refresh()
      .then(() => undefined)
      .catch(() => undefined)
      .finally(() => {
        this.first = undefined;
      });
    return this.first;
  }

  /**
   * Waits, bounded, for the first snapshot, asking again while the health workflow's first task is
   * still on its way (a worker that just started). A gateway calls it before it serves, so that
   * its first requests carry health in their input like every later one.
   */
  async warmUp(timeoutMs = 5_000): Promise<void> {
    const until = Date.now() + timeoutMs;
    while (!this.snapshot && !this.stopped && Date.now() < until) {
      await this.ready();
      if (!this.snapshot) await new Promise((r) => setTimeout(r, 100));
    }
  }

  /** The cached view of `targets` for the planner, with the real clock deciding half-open. */
  routingHealth(targets: string[], now = Date.now()): RoutingHealth {
    const out: Record<string, TargetRoutingHealth> = {};
    for (const key of targets) {
      const t = this.snapshot?.targets[key];
      if (!t) continue;
      let breaker = t.breaker.state;
      if (breaker === 'open' && t.breaker.retryAt !== undefined && now >= t.breaker.retryAt) breaker = 'half_open';
      // A probe already out (here or on another worker) leaves nothing to ask for: stay away.
      if (breaker === 'half_open' && (t.breaker.probeInFlight || this.localProbes.has(key))) breaker = 'open';
      const w = t.windows['1m'].calls > 0 ? t.windows['1m'] : t.windows['30m'];
      out[key] = { breaker, calls: t.windows['1m'].calls, successRate: t.windows['1m'].successRate, p50Ms: w.p50Ms, p95Ms: w.p95Ms, tokensPerSec: w.tokensPerSec };
    }
    return { targets: out, degradedBelow: this.opts.settings.degradedBelow, minCalls: this.opts.settings.degradedMinCalls };
  }

  /** Whether a non-probe call may go to this target (the activity's last check before the wire). */
  admits(target: string, now = Date.now()): boolean {
    const state = this.routingHealth([target], now).targets[target]?.breaker;
    return state === undefined || state === 'closed';
  }

  async acquireProbe(target: string, requestId: string): Promise<boolean> {
    const handle = this.opts.client.workflow.getHandle(this.opts.workflowId);
    const granted = await this.opts.client.withDeadline(Date.now() + RPC_TIMEOUT_MS, () =>
      handle.executeUpdate(acquireProbeUpdate, { args: [{ target, requestId }] }),
    );
    if (granted) this.localProbes.add(target);
    return granted;
  }
}

// The virtual key's entity workflow on a real dev server (workflows/virtual-key.ts): what its
// Update, signals and query do to the key, and what it does on its own — continue-as-new with its
// state under concurrent reservations, a revoked key ending once its requests are settled, a
// refusal that costs no history. test/keys.test.ts covers the pure logic, keys.e2e the whole path.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { WorkflowUpdateFailedError, type WorkflowHandle } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import proto from '@temporalio/proto';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { DefaultLogger, Runtime, Worker } from '@temporalio/worker';
import { WORKFLOW_TYPES, changeKeyUpdate, keySnapshotQuery, releaseKeySignal, reserveKeyUpdate, settleKeySignal, type KeyBudgetReport, type VirtualKeyWorkflow } from '../src/core/contract.js';
import { keyWorkflowId, usdToNanos, type KeySettings, type ReserveItem } from '../src/core/keys.js';
import { until } from './helpers/http.js';
import { startTemporal, workflowBundle } from './helpers/temporal.js';

Runtime.install({ logger: new DefaultLogger('ERROR') });
const EventType = proto.temporal.api.enums.v1.EventType;
const TASK_QUEUE = 'virtual-key-workflow-test';

let env: TestWorkflowEnvironment;
let worker: Worker;
let running: Promise<void>;
/** What the key workflows reported to the worker's metrics (the `metrics.keyBudget` sink), in order. */
const reports: KeyBudgetReport[] = [];

before(async () => {
  env = await startTemporal();
  worker = await Worker.create({
    connection: env.nativeConnection,
    taskQueue: TASK_QUEUE,
    workflowBundle: await workflowBundle(),
    sinks: { metrics: { requestEnded: { fn: () => undefined }, keyBudget: { fn: (_info, r: KeyBudgetReport) => void reports.push(r), callDuringReplay: false } } },
  });
  running = worker.run();
});

after(async () => {
  worker?.shutdown();
  await running;
  await env?.teardown();
});

async function startKey(settings: KeySettings, historyLimit?: number): Promise<WorkflowHandle<VirtualKeyWorkflow>> {
  const id = `vk_${randomBytes(12).toString('hex')}`;
  return env.client.workflow.start<VirtualKeyWorkflow>(WORKFLOW_TYPES.virtualKey, {
    taskQueue: TASK_QUEUE,
    workflowId: keyWorkflowId(id),
    args: [{ record: { id, secretHash: '00'.repeat(32), createdAt: Date.now(), settings }, ...(historyLimit !== undefined && { historyLimit }) }],
  });
}

const item = (requestId: string, usd: number): ReserveItem => ({ requestId, nanos: usdToNanos(usd), tokens: 10, holdMs: 60_000 });
const snapshot = (h: WorkflowHandle<VirtualKeyWorkflow>) => h.query(keySnapshotQuery, { now: Date.now() });

/** One reservation as the API sends it: the outcome, a refusal rejected by the validator included. */
async function reserveOne(h: WorkflowHandle<VirtualKeyWorkflow>, it: ReserveItem): Promise<boolean> {
  try {
    const [o] = await h.executeUpdate(reserveKeyUpdate, { args: [[it]] });
    return o.ok;
  } catch (err) {
    if (err instanceof WorkflowUpdateFailedError && err.cause instanceof ApplicationFailure) return false;
    throw err;
  }
}

describe('the virtual-key workflow', () => {
  test('continue-as-new carries the state: spend, reservations and exactness hold across runs under concurrent reservations', { timeout: 120_000 }, async () => {
    const h = await startKey({ budget: { usd: 0.05, period: 'total' } }, 40);
    const firstRun = (await h.describe()).runId;
    // Sequential reservations and settlements: enough events for several runs.
    for (let i = 0; i < 20; i++) {
      assert.ok(await reserveOne(h, item(`seq-${i}`, 0.001)));
      await h.signal(settleKeySignal, { requestId: `seq-${i}`, runId: 'r', nanos: usdToNanos(0.001), tokens: 10 });
    }
    // $0.03 left: 60 concurrent $0.001 reservations, some arriving while a run continues as new.
    const outcomes = await Promise.all(Array.from({ length: 60 }, (_, i) => reserveOne(h, item(`burst-${i}`, 0.001))));
    assert.equal(outcomes.filter(Boolean).length, 30);
    const view = (await snapshot(h)).view;
    assert.equal(view.budget?.spent_usd, 0.02);
    assert.equal(view.budget?.reserved_usd, 0.03);
    assert.equal(view.spend.requests, 20);
    assert.equal(view.reservations.length, 30);
    assert.notEqual((await h.describe()).runId, firstRun, 'it continued as new');
    const firstHistory = await env.client.workflow.getHandle(h.workflowId, firstRun).fetchHistory();
    assert.equal(firstHistory.events?.at(-1)?.eventType, EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW);
  });

  test('a refusal is rejected by the validator: nothing is written to the history', async () => {
    const h = await startKey({ budget: { usd: 0.001, period: 'total' } });
    assert.ok(await reserveOne(h, item('a', 0.001)));
    const before = (await h.fetchHistory()).events?.length;
    await assert.rejects(h.executeUpdate(reserveKeyUpdate, { args: [[item('b', 0.001)]] }), (err: unknown) => {
      assert.ok(err instanceof WorkflowUpdateFailedError);
      assert.ok(err.cause instanceof ApplicationFailure);
      assert.equal(err.cause.type, 'budget_exceeded');
      const [refusal] = err.cause.details as [{ remainingNanos: number }];
      assert.equal(refusal.remainingNanos, 0);
      return true;
    });
    assert.equal((await h.fetchHistory()).events?.length, before);
  });

  test('a revoked key refuses at once, waits for its requests in flight to settle, then ends with its final view', async () => {
    const h = await startKey({ budget: { usd: 1, period: 'month' }, rpm: 100 });
    assert.ok(await reserveOne(h, item('in-flight', 0.01)));
    const revoked = await h.executeUpdate(changeKeyUpdate, { args: [{ revoke: true }] });
    assert.equal(revoked.status, 'revoked');
    assert.equal(await reserveOne(h, item('late', 0.01)), false);
    await assert.rejects(h.executeUpdate(changeKeyUpdate, { args: [{ settings: { rpm: 5 } }] }), WorkflowUpdateFailedError);
    assert.equal((await h.describe()).status.name, 'RUNNING', 'a request is still in flight');
    await h.signal(settleKeySignal, { requestId: 'in-flight', runId: 'r', nanos: usdToNanos(0.004), tokens: 10 });
    const final = await h.result();
    assert.equal(final.status, 'revoked');
    assert.equal(final.spend.lifetime_usd, 0.004, 'the request in flight was charged');
    assert.deepEqual(final.reservations, []);
    // Its record stays readable (a query on the closed workflow).
    await until('the closed key to answer a query', async () => ((await snapshot(h)).view.status === 'revoked' ? true : undefined));
  });

  test("reports its budget to the worker's metrics after each reservation, settlement, release and change, and its end", async () => {
    const h = await startKey({ budget: { usd: 0.01, period: 'month' } });
    const id = h.workflowId.replace(/^keel-key-/, '');
    const mine = () => reports.filter((r) => r.key === id);
    /** The last report, as the gauges show it: [limit, remaining] in USD, or 'none'. */
    const last = () => {
      const r = mine().at(-1);
      return r === undefined ? undefined : 'none' in r ? 'none' : [r.limitUsd, +r.remainingUsd.toFixed(9)];
    };
    assert.ok(await reserveOne(h, item('a', 0.004)));
    assert.deepEqual(last(), [0.01, 0.006]);
    // A retried reservation holds nothing new: no report.
    const count = mine().length;
    assert.ok(await reserveOne(h, item('a', 0.004)));
    assert.equal(mine().length, count);
    // Settled for less than reserved: the rest comes back.
    await h.signal(settleKeySignal, { requestId: 'a', runId: 'r', nanos: usdToNanos(0.001), tokens: 10 });
    await until('the settlement reported', () => (mine().length > count ? true : undefined));
    assert.deepEqual(last(), [0.01, 0.009]);
    assert.ok(await reserveOne(h, item('b', 0.002)));
    assert.deepEqual(last(), [0.01, 0.007]);
    await h.signal(releaseKeySignal, { requestId: 'b' });
    await until('the release reported', () => (last()?.[1] === 0.009 ? true : undefined));
    // A new budget, then none: the series would go.
    await h.executeUpdate(changeKeyUpdate, { args: [{ settings: { budget: { usd: 0.05, period: 'month' } } }] });
    assert.deepEqual(last(), [0.05, 0.049]);
    await h.executeUpdate(changeKeyUpdate, { args: [{ settings: { budget: null } }] });
    assert.equal(last(), 'none');
    await h.executeUpdate(changeKeyUpdate, { args: [{ settings: { budget: { usd: 0.02, period: 'total' } } }] });
    assert.deepEqual(last(), [0.02, 0.019]);
    // Revoked with nothing in flight: it ends, and says so.
    await h.executeUpdate(changeKeyUpdate, { args: [{ revoke: true }] });
    await h.result();
    assert.equal(last(), 'none');
    // The workflow's clock orders them.
    const times = mine().map((r) => r.at);
    assert.deepEqual(times, [...times].sort((x, y) => x - y));
  });
});

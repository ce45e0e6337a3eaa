// A worker killed with SIGKILL mid-request: the request completes once a worker is back, and
// its result is fetchable by request ID. The worker runs as its own process, as in production.
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import proto from '@temporalio/proto';
import { startApi, type RunningApi } from '../src/api/server.js';
import { parseConfig } from '../src/config/load.js';
import { startFakeProvider, type FakeProvider } from '../dev/fakes/index.js';
import { requestIdForKey } from '../src/services/request-service.js';
import { startTemporal } from './helpers/temporal.js';
import { freePort, spawnEntry } from './helpers/processes.js';
import { codecEnv, codecYaml } from './helpers/codec.js';

let env: TestWorkflowEnvironment;
let fake: FakeProvider;
let api: RunningApi;
let configPath: string;
const workers: ChildProcess[] = [];
const taskQueue = `keel-crash-${process.pid}`;
const EventType = proto.temporal.api.enums.v1.EventType;

const spawnRole = (entry: string, ready: RegExp, extraEnv: Record<string, string> = {}): Promise<ChildProcess> =>
  spawnEntry(entry, ready, { KEEL_CONFIG: configPath, TEMPORAL_ADDRESS: env.address, KEEL_TASK_QUEUE: taskQueue, ...extraEnv }, workers);

const startWorker = () => spawnRole('src/bin/worker.ts', /keel worker polling/);

before(async () => {
  env = await startTemporal();
  fake = await startFakeProvider({ type: 'openai' });
  const yaml = `
defaults:
  retry: { maxAttempts: 5, initialIntervalMs: 200, backoffCoefficient: 2, maximumIntervalMs: 1000, jitter: 0 }
  timeouts: { attemptMs: 60000, requestMs: 120000 }
providers:
  a: { type: openai, baseURL: ${fake.url} }
  q: { type: openai, baseURL: ${fake.url}, callPath: queue }
models:
  chat-local: { targets: [a/m] }
  chat-call: { targets: [a/mc], answer: call }
  chat-queue: { targets: [q/mq] }
${codecYaml}`;
  configPath = join(mkdtempSync(join(tmpdir(), 'keel-crash-')), 'keel.yaml');
  writeFileSync(configPath, yaml);
  api = await startApi(parseConfig(yaml, { ...codecEnv(), KEEL_TASK_QUEUE: taskQueue }), { address: env.address, port: 0 });
});

after(async () => {
  for (const w of workers) if (w.exitCode === null) w.kill('SIGKILL');
  await api?.close();
  await fake?.close();
  await env?.teardown();
});

// On each call path (docs/ROUTING.md, "Call paths"): a queued call is retried by Temporal after
// its heartbeat timeout, as attempt 2; a local call dies with its workflow task, which times out
// and is run again by the next worker — the call starts over as attempt 1, after a
// WorkflowTaskTimedOut in the history.
for (const path of ['queue', 'local'] as const) {
  test(`SIGKILL of the worker mid-request (${path} call): the request completes on the next worker`, { timeout: 180_000 }, async () => {
    const model = path === 'queue' ? 'mq' : 'm';
    // The first call outlives its worker; the retry on the next worker answers at once.
    fake.setBehaviour(model, { script: [{ kind: 'ok', latencyMs: 120_000 }], default: { kind: 'ok' } });
    const first = await startWorker();

    const key = `crash-${path}-${Date.now()}`;
    const pending = fetch(`${api.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'idempotency-key': key },
      body: JSON.stringify({ model: `chat-${path}`, messages: [{ role: 'user', content: 'survive this' }] }),
    });
    await fake.waitForCalls(1, { model, timeoutMs: 30_000 });
    first.kill('SIGKILL');
    await new Promise((r) => first.once('exit', r));
    assert.equal(fake.calls(model).length, 1);

    const second = await startWorker();
    try {
      const res = await pending;
      assert.equal(res.status, 200);
      const body = (await res.json()) as { choices: { message: { content: string } }[]; keel: { attempts: { attempt: number; outcome: string }[] } };
      assert.equal(body.choices[0].message.content, `[${model}] survive this`);
      assert.equal(fake.calls(model).length, 2, 'the lost call is retried once, not duplicated');
      assert.ok(fake.calls(model)[0].aborted, "the killed worker's connection was dropped");
      const last = body.keel.attempts.at(-1)!;
      assert.equal(last.outcome, 'success');
      // The queued retry is attempt 2, at once: the next worker's first call proves itself alive
      // while it waits for that worker's first health snapshot (which takes seconds here, the
      // health workflow's last worker being the dead one), so no attempt times out waiting.
      if (path === 'queue') assert.equal(last.attempt, 2);
      else assert.equal(last.attempt, 1);

      const id = requestIdForKey(key);
      const status = (await (await fetch(`${api.url}/v1/requests/${id}`)).json()) as { status: string; result: { choices: unknown[] } };
      assert.equal(status.status, 'succeeded');
      assert.equal(status.result.choices.length, 1);
      const events = (await api.client.workflow.getHandle(id).fetchHistory()).events ?? [];
      const timedOut = events.filter((e) => e.eventType === EventType.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT).length;
      const activityTimedOut = events.filter((e) => e.eventType === EventType.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT).length;
      if (path === 'local') assert.equal(timedOut, 1, 'the dead worker\'s workflow task timed out once');
      else assert.equal(activityTimedOut, 0, 'the queued call was retried, not timed out for good');
    } finally {
      second.kill('SIGTERM');
      await new Promise((r) => second.once('exit', r));
    }
  });
}

// The early answer path (docs/REQUESTS.md): the API and the worker share a process, so killing it
// drops the client's connection too. The request was durable from its start: a new gateway
// finishes it, and it is found by id with its result.
test('SIGKILL of a gateway (API + worker in one process) mid-request: a new gateway finishes it', { timeout: 180_000 }, async () => {
  fake.setBehaviour('m', { script: [{ kind: 'ok', latencyMs: 120_000 }], default: { kind: 'ok' } });
  fake.resetCalls();
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const spawnGateway = () => spawnRole('src/bin/gateway.ts', /keel gateway listening/, { PORT: String(port) });
  const first = await spawnGateway();
  const key = `crash-gateway-${Date.now()}`;
  const pending = fetch(`${url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'idempotency-key': key },
    body: JSON.stringify({ model: 'chat-local', messages: [{ role: 'user', content: 'survive this' }] }),
  }).then(
    (res) => res.status,
    (err: unknown) => err,
  );
  await fake.waitForCalls(1, { model: 'm', timeoutMs: 30_000 });
  first.kill('SIGKILL');
  await new Promise((r) => first.once('exit', r));
  assert.ok((await pending) instanceof Error, 'the client saw its connection drop, not an answer');

  const second = await spawnGateway();
  try {
    const id = requestIdForKey(key);
    const result = (await api.client.workflow.getHandle(id).result()) as { completion: { choices: { message: { content: string } }[] } };
    assert.equal(result.completion.choices[0].message.content, '[m] survive this');
    assert.equal(fake.calls('m').length, 2, 'the lost call is made once more, not duplicated');
    // The client retries its POST with the same Idempotency-Key and gets the recorded answer.
    const again = await fetch(`${url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'idempotency-key': key },
      body: JSON.stringify({ model: 'chat-local', messages: [{ role: 'user', content: 'survive this' }] }),
    });
    assert.equal(again.status, 200);
    assert.equal(((await again.json()) as { choices: { message: { content: string } }[] }).choices[0].message.content, '[m] survive this');
    assert.equal(fake.calls('m').length, 2, 'the retried POST joins the request instead of calling again');
  } finally {
    second.kill('SIGTERM');
    await new Promise((r) => second.once('exit', r));
  }
});

// The `call` answer point (docs/REQUESTS.md): the client is answered from the first call while the
// workflow records it. A gateway killed the moment its client has the answer either recorded that
// answer already, or its workflow task times out and another worker runs the request again: the
// provider is called again and the history holds that second answer, after the timed-out task.
// Which one happens is a matter of milliseconds; both must hold the contract, and nothing is lost.
test('SIGKILL of a gateway right after it answered from the call: the record is that answer, or a second call after a timed-out task', { timeout: 180_000 }, async (t) => {
  fake.setBehaviour('mc', { script: [{ kind: 'ok', content: 'the first answer' }], default: { kind: 'ok', content: 'the second answer' } });
  fake.resetCalls();
  const port = await freePort();
  const first = await spawnRole('src/bin/gateway.ts', /keel gateway listening/, { PORT: String(port) });
  const res = await fetch(`http://127.0.0.1:${port}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'chat-call', messages: [{ role: 'user', content: 'answer then die' }] }),
  });
  const answer = (await res.json()) as { choices: { message: { content: string } }[] };
  first.kill('SIGKILL');
  await new Promise((r) => first.once('exit', r));
  assert.equal(res.status, 200);
  assert.equal(res.headers.get('x-keel-answer'), 'call');
  assert.equal(answer.choices[0].message.content, 'the first answer');

  const second = await startWorker();
  try {
    const handle = api.client.workflow.getHandle(res.headers.get('x-request-id')!);
    const result = (await handle.result()) as { completion: { choices: { message: { content: string } }[] } };
    const events = (await handle.fetchHistory()).events ?? [];
    const timedOut = events.filter((e) => e.eventType === EventType.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT).length;
    t.diagnostic(timedOut === 0 ? 'recorded before the kill' : 'run again after the kill');
    if (timedOut === 0) {
      assert.equal(result.completion.choices[0].message.content, 'the first answer', 'recorded before the kill: the answer the client got');
      assert.equal(fake.calls('mc').length, 1);
    } else {
      assert.equal(result.completion.choices[0].message.content, 'the second answer', 'run again after the kill: the second call\'s answer');
      assert.equal(fake.calls('mc').length, 2);
    }
  } finally {
    second.kill('SIGTERM');
    await new Promise((r) => second.once('exit', r));
  }
});

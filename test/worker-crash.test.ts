// A worker killed with SIGKILL mid-request: the request completes once a worker is back, and
// its result is fetchable by request ID. The worker runs as its own process, as in production.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { startApi, type RunningApi } from '../src/api/server.js';
import { parseConfig } from '../src/config/load.js';
import { startFakeProvider, type FakeProvider } from '../dev/fakes/index.js';
import { requestIdForKey } from '../src/services/request-service.js';
import { startTemporal } from './helpers/temporal.js';

let env: TestWorkflowEnvironment;
let fake: FakeProvider;
let api: RunningApi;
let configPath: string;
const workers: ChildProcess[] = [];
const taskQueue = `keel-crash-${process.pid}`;

function startWorker(): ChildProcess {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/bin/worker.ts'], {
    env: { ...process.env, KEEL_CONFIG: configPath, TEMPORAL_ADDRESS: env.address, KEEL_TASK_QUEUE: taskQueue },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  workers.push(child);
  return child;
}

async function waitForWorker(url: string): Promise<void> {
  const until = Date.now() + 60_000;
  while (Date.now() < until) {
    const res = await fetch(`${url}/healthz`).catch(() => undefined);
    if (res?.status === 200) return;
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error('no worker came up within 60 s');
}

before(async () => {
  env = await startTemporal();
  fake = await startFakeProvider({ type: 'openai' });
  const yaml = `
defaults:
  retry: { maxAttempts: 5, initialIntervalMs: 200, backoffCoefficient: 2, maximumIntervalMs: 1000, jitter: 0 }
  timeouts: { attemptMs: 60000, requestMs: 120000 }
providers:
  a: { type: openai, baseURL: ${fake.url} }
models:
  chat: { targets: [a/m] }
`;
  configPath = join(mkdtempSync(join(tmpdir(), 'keel-crash-')), 'keel.yaml');
  writeFileSync(configPath, yaml);
  api = await startApi(parseConfig(yaml, { KEEL_TASK_QUEUE: taskQueue }), { address: env.address, port: 0 });
});

after(async () => {
  for (const w of workers) if (w.exitCode === null) w.kill('SIGKILL');
  await api?.close();
  await fake?.close();
  await env?.teardown();
});

test('SIGKILL of the worker mid-request: the request completes on the next worker', { timeout: 180_000 }, async () => {
  // The first call outlives its worker; the retry on the next worker answers at once.
  fake.setBehaviour('m', { script: [{ kind: 'ok', latencyMs: 120_000 }], default: { kind: 'ok' } });
  const first = startWorker();
  await waitForWorker(api.url);

  const key = `crash-${Date.now()}`;
  const pending = fetch(`${api.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'idempotency-key': key },
    body: JSON.stringify({ model: 'chat', messages: [{ role: 'user', content: 'survive this' }] }),
  });
  await fake.waitForCalls(1, { model: 'm', timeoutMs: 30_000 });
  first.kill('SIGKILL');
  await new Promise((r) => first.once('exit', r));
  assert.equal(fake.calls('m').length, 1);

  startWorker();
  const res = await pending;
  assert.equal(res.status, 200);
  const body = (await res.json()) as { choices: { message: { content: string } }[]; keel: { attempts: { attempt: number; outcome: string }[] } };
  assert.equal(body.choices[0].message.content, '[m] survive this');
  assert.equal(fake.calls('m').length, 2, 'the lost call is retried once, not duplicated');
  assert.ok(fake.calls('m')[0].aborted, "the killed worker's connection was dropped");
  assert.deepEqual(body.keel.attempts.at(-1), { ...body.keel.attempts.at(-1), attempt: 2, outcome: 'success' });

  const status = (await (await fetch(`${api.url}/v1/requests/${requestIdForKey(key)}`)).json()) as { status: string; result: { choices: unknown[] } };
  assert.equal(status.status, 'succeeded');
  assert.equal(status.result.choices.length, 1);
});

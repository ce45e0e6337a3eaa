// Keel on its production engine: the topology of docker-compose.yml run as processes on loopback by
// src/temporal/cluster.ts — PostgreSQL, the Temporal server 1.30.4 with deploy/temporal/, Keel's
// set-up, two APIs and two workers started with `npm run gateway` (the API with a worker of its
// own) / `npm run worker` — under load and failures:
//  - sync chat requests, async jobs and a 2,000-line batch through both APIs;
//  - one worker and one API SIGKILLed mid-load, the Temporal server restarted once, PostgreSQL
//    restarted once (fast shutdown); the surviving workers are never restarted: they reconnect;
//  - every request answered or retrievable by id with its result, every batch custom_id exactly
//    once, the per-provider rate limit held across both workers, a breaker opened by one worker's
//    calls protecting the other's, /healthz telling "Temporal unreachable" from "no worker";
//  - a failed request replayed (Keel's REST replay and a Temporal reset);
//  - a streamed request streamed live by the API that started it, through the official SDK.
// Run: npm run test:cluster (builds the Temporal server on first use: README, "A cluster on one machine").
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import OpenAI, { toFile } from 'openai';
import { parse as parseYaml, stringify } from 'yaml';
import { Client, Connection } from '@temporalio/client';
import proto from '@temporalio/proto';
import { startFakeProvider, type FakeProvider } from '../../dev/fakes/index.js';
import { requestIdForKey } from '../../src/services/request-service.js';
import { firstWorkflowTaskCompletedEventId } from '../../src/services/replay.js';
import { spawnKeelRole, startCluster, type Cluster, type KeelProcess } from '../../src/temporal/cluster.js';
import { DYNAMIC_CONFIG_FILE } from '../../src/temporal/server.js';
import { ensureTemporalServer } from '../../src/temporal/server-install.js';
import { callJson, type Json } from '../helpers/http.js';

const { EventType } = proto.temporal.api.enums.v1;
const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const LINES = 2_000;
// Sync requests (two lanes, one every 3 s each) and async jobs (one every 4 s) go on until the
// failures are over: at most this many (~8 and ~6 minutes' worth).
const SYNC_MAX = 320;
const ASYNC_MAX = 120;
const RATE = 8;
// Every process that runs a worker polls the rate-limited provider's queue: 2 APIs and 2 workers.
const RATE_WORKERS = 4;
const STREAM_TEXT = Array.from({ length: 30 }, (_, i) => `token${i}`).join(' ');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const log = (line: string) => console.log(`# ${new Date().toISOString().slice(11, 23)} ${line}`);

const dir = mkdtempSync(join(tmpdir(), 'keel-cluster-test-'));
const fakes = {} as Record<'openai' | 'anthropic' | 'gemini', FakeProvider>;
let cluster: Cluster | undefined;
let client: Client | undefined;

/** deploy/keel.production.yaml with the test's knobs: its three providers (so deploy/temporal/dynamicconfig.yaml applies), test models. */
function testConfig(): string {
  const prod = parseYaml(readFileSync(join(ROOT, 'deploy', 'keel.production.yaml'), 'utf8')) as Json;
  // Gateway keys are not this test's subject (test/keys.e2e.test.ts; command.test.ts runs the production config with them).
  delete prod.auth;
  prod.providers.openai = { ...prod.providers.openai, rateLimitPerSecond: RATE, rateLimitWorkers: RATE_WORKERS };
  prod.defaults = {
    retry: { maxAttempts: 5, initialIntervalMs: 200, backoffCoefficient: 2, maximumIntervalMs: 2000, jitter: 0.2 },
    // A call on a killed worker is retried after this, not after the default minute.
    timeouts: { attemptMs: 5000, requestMs: 300000 },
  };
  prod.health = { publishIntervalMs: 300, refreshIntervalMs: 300, breaker: { minCalls: 4, failureRatio: 0.5, windowMs: 120000, cooldownMs: 600000 } };
  prod.batches = { window: 100, childrenPerRun: 500, flushSize: 50 };
  prod.models = {
    chat: { targets: ['anthropic/claude-3-5-haiku-latest'] },
    flaky: { targets: ['gemini/gemini-2.0-flash', 'anthropic/claude-3-5-haiku-latest'], retry: { maxAttempts: 1 } },
    limited: { targets: ['openai/gpt-4o-mini'] },
    replay: { targets: ['anthropic/replay-model'], retry: { maxAttempts: 1 } },
    hedged: { targets: ['anthropic/slow-model', 'openai/gpt-4o-mini'], mode: 'hedge', hedge: { delayMs: 200 } },
    streamed: { targets: ['anthropic/stream-model'] },
  };
  const path = join(dir, 'keel.yaml');
  writeFileSync(path, stringify(prod));
  return path;
}

before(async () => {
  for (const type of ['openai', 'anthropic', 'gemini'] as const) {
    fakes[type] = await startFakeProvider({ type, behaviours: { '*': { latency: { baseMs: 20, jitterMs: 20 } } } });
  }
  fakes.gemini.setBehaviour('gemini-2.0-flash', { default: { kind: 'error', status: 503 } });
  fakes.anthropic.setBehaviour('slow-model', { latency: { baseMs: 3_000 } });
  fakes.anthropic.setBehaviour('stream-model', { default: { kind: 'ok', content: STREAM_TEXT }, stream: { chunkDelayMs: 50 } });
  const env = Object.fromEntries(
    Object.entries(fakes).flatMap(([type, f]) => [
      [`${type.toUpperCase()}_BASE_URL`, f.url],
      [`${type.toUpperCase()}_API_KEY`, `test-key-${type}`],
    ]),
  );
  const started = Date.now();
  cluster = await startCluster({ dataDir: dir, keelConfig: testConfig(), env, log });
  log(`cluster up in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  client = new Client({ connection: await Connection.connect({ address: cluster.address }), namespace: cluster.namespace });
});

after(async () => {
  await client?.connection.close().catch(() => undefined);
  await cluster?.stop();
  await Promise.all(Object.values(fakes).map((f) => f.close()));
  rmSync(dir, { recursive: true, force: true });
});

const apiUrl = (i: number) => live(cluster!.apis)[i % live(cluster!.apis).length].url!;
const live = (ps: KeelProcess[]) => ps.filter((p) => p.alive());
const identity = (p: KeelProcess) => `${p.keelPid()}@${hostname()}`;
const chat = (model: string, content: string) => ({ model, messages: [{ role: 'user', content }] });

/** POSTs until an answer comes from Keel (any API; a killed API's connection error or a 5xx from the engine is retried with the same key). */
async function postUntilAnswered(path: string, body: unknown, key: string, first: number, deadline: number): Promise<{ status: number; json: Json; tries: number }> {
  for (let tries = 1; ; tries++) {
    try {
      const { res, json } = await callJson(apiUrl(first + tries - 1), 'POST', path, body, { 'idempotency-key': key });
      if (res.status < 500) return { status: res.status, json, tries };
    } catch {
      // connection refused or reset: the API died under us
    }
    if (Date.now() > deadline) throw new Error(`${path} ${key}: no answer before the deadline`);
    await sleep(500);
  }
}

async function getRequest(id: string): Promise<Json | undefined> {
  for (let i = 0; i < cluster!.apis.length; i++) {
    try {
      const { res, json } = await callJson(apiUrl(i), 'GET', `/v1/requests/${id}`);
      if (res.status === 200) return json;
    } catch {
      // that API is down
    }
  }
  return undefined;
}

async function settled(id: string, timeoutMs: number): Promise<Json> {
  const deadline = Date.now() + timeoutMs;
  let last: Json | undefined;
  while (Date.now() < deadline) {
    last = await getRequest(id);
    if (last && ['succeeded', 'failed', 'cancelled'].includes(last.status)) return last;
    await sleep(500);
  }
  throw new Error(`request ${id} not settled in ${timeoutMs} ms; last: ${JSON.stringify(last)?.slice(0, 300)}`);
}

async function history(workflowId: string) {
  return (await client!.workflow.getHandle(workflowId).fetchHistory()).events ?? [];
}

test('the production topology under load, with a worker and an API killed and Temporal and PostgreSQL restarted', { timeout: 900_000 }, async (t) => {
  const c = cluster!;
  assert.equal(c.dynamicConfigFile, DYNAMIC_CONFIG_FILE, 'the server reads deploy/temporal/dynamicconfig.yaml, the file compose mounts');
  const [w1, w2] = c.workers;
  const [api1, api2] = c.apis;
  const testStarted = Date.now();
  const deadline = testStarted + 600_000;

  // --- Load: a batch through API 1, sync requests and async jobs through both APIs. -------------
  const openai = new OpenAI({ baseURL: `${api1.url}/v1`, apiKey: 'k', maxRetries: 0 });
  const text = Array.from({ length: LINES }, (_, i) =>
    JSON.stringify({ custom_id: `line-${i}`, method: 'POST', url: '/v1/chat/completions', body: chat('chat', `batch prompt ${i}`) }),
  ).join('\n');
  const file = await openai.files.create({ file: await toFile(Buffer.from(text), 'cluster.jsonl'), purpose: 'batch' });
  const batch = await openai.batches.create({ input_file_id: file.id, endpoint: '/v1/chat/completions', completion_window: '24h' });
  const progress = async (): Promise<number> => {
    for (let i = 0; i < 2; i++) {
      try {
        const { res, json } = await callJson(apiUrl(i), 'GET', `/v1/batches/${batch.id}`);
        if (res.status === 200) return (json.request_counts?.completed ?? 0) + (json.request_counts?.failed ?? 0);
      } catch {
        // down
      }
    }
    return -1;
  };
  const whenProgress = async (n: number) => {
    while ((await progress()) < n) {
      if (Date.now() > deadline) throw new Error(`batch did not reach ${n} lines`);
      await sleep(500);
    }
  };

  const run = `${Date.now()}`;
  let failuresOver = false;
  const syncResults: { key: string; status: number; content?: string; tries: number }[] = [];
  let syncNext = 0;
  const syncLoad = Promise.all(
    Array.from({ length: 2 }, async () => {
      while (!failuresOver && syncNext < SYNC_MAX) {
        const i = syncNext++;
        const key = `sync-${run}-${i}`;
        const r = await postUntilAnswered('/v1/chat/completions', chat('chat', `sync prompt ${i}`), key, i, deadline);
        syncResults.push({ key, status: r.status, content: r.json.choices?.[0]?.message?.content, tries: r.tries });
        await sleep(3_000);
      }
    }),
  );
  const asyncIds: { key: string; id: string; i: number }[] = [];
  const asyncLoad = (async () => {
    for (let i = 0; !failuresOver && i < ASYNC_MAX; i++) {
      const key = `async-${run}-${i}`;
      const r = await postUntilAnswered('/v1/requests', chat('chat', `async prompt ${i}`), key, i, deadline);
      assert.equal(r.status, 202, JSON.stringify(r.json));
      asyncIds.push({ key, id: r.json.id, i });
      await sleep(4_000);
    }
  })();

  // --- A worker and an API die mid-load. --------------------------------------------------------
  await whenProgress(200);
  log(`batch at ${await progress()}: SIGKILL ${w2.name} and ${api2.name}`);
  await Promise.all([w2.kill(), api2.kill()]);

  // --- A breaker opened by one process's calls (only API 1 and worker 1 are alive now)... ----------
  // The API runs the requests it starts on its own worker (eager start; gemini's calls are local).
  let opened = false;
  for (let i = 0; i < 40 && !opened; i++) {
    const { res, json } = await callJson(api1.url!, 'POST', '/v1/chat/completions', chat('flaky', `flaky before ${i}`));
    assert.equal(res.status, 200, JSON.stringify(json));
    assert.equal(res.headers.get('x-keel-provider'), 'anthropic');
    await sleep(400);
    // The provider-health workflow answers this query; right after a worker died it may not yet (its
    // sticky queue was the dead worker's): a 5xx then, and the next round asks again.
    const view = (await callJson(api1.url!, 'GET', '/v1/providers')).json;
    opened = (view.data ?? []).flatMap((p: Json) => p.targets).some((tg: Json) => tg.id === 'gemini/gemini-2.0-flash' && tg.breaker.state === 'open');
  }
  assert.ok(opened, 'the gemini breaker opened');
  const geminiCalls = fakes.gemini.calls().length;
  log(`gemini breaker open after ${geminiCalls} failed calls`);

  // ... protects a process that never called gemini: the replacement API, which plans what it starts.
  const w3 = await c.addWorker();
  const api2b = await c.addApi(api2.port);
  log(`${w3.name} and ${api2b.name} (port ${api2.port}) started`);
  await sleep(2_000);
  const flakyIds: string[] = [];
  for (let i = 0; i < 10; i++) {
    const { res, json } = await callJson(apiUrl(i), 'POST', '/v1/chat/completions', chat('flaky', `flaky after ${i}`));
    assert.equal(res.status, 200, JSON.stringify(json));
    assert.equal(res.headers.get('x-keel-provider'), 'anthropic', 'answered by the fallback target');
    flakyIds.push(res.headers.get('x-request-id')!);
  }
  assert.equal(fakes.gemini.calls().length, geminiCalls, 'no call reached the provider whose breaker is open');
  const plannedBy = await Promise.all(flakyIds.map(async (id) => (await history(id)).find((e) => e.eventType === EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED)?.workflowTaskCompletedEventAttributes?.identity));
  t.diagnostic(`flaky requests planned by: ${plannedBy.join(', ')}; ${api2b.name} is ${identity(api2b)}`);
  assert.ok(plannedBy.includes(identity(api2b)), `${api2b.name} planned some of them (and skipped gemini): ${plannedBy.join(', ')}`);

  // --- The Temporal server restarts; /healthz says it is unreachable meanwhile. ------------------
  await whenProgress(700);
  log(`batch at ${await progress()}: restarting the Temporal server`);
  await c.temporal.stop('SIGTERM');
  const restartedAt = Date.now();
  const t0 = Date.now();
  const down = await callJson(api1.url!, 'GET', '/healthz');
  assert.equal(down.res.status, 503);
  assert.equal(down.json.temporal, 'unreachable');
  assert.equal(down.json.error.code, 'temporal_unreachable');
  assert.ok(Date.now() - t0 < 8_000, `/healthz answered in ${Date.now() - t0} ms while Temporal was down`);
  await sleep(5_000);
  await c.temporal.start();
  log('Temporal server back');

  // --- PostgreSQL restarts (fast shutdown). --------------------------------------------------------
  await whenProgress(1_100);
  log(`batch at ${await progress()}: restarting PostgreSQL (fast)`);
  await c.postgres!.stop('fast');
  await sleep(3_000);
  await c.postgres!.start();
  log('PostgreSQL back');
  failuresOver = true;

  // --- The per-provider rate limit across both workers. -------------------------------------------
  fakes.openai.resetCalls();
  const limited = await Promise.all(
    Array.from({ length: 4 * RATE }, async (_, i) => {
      const r = await postUntilAnswered('/v1/chat/completions', chat('limited', `limited ${i}`), `limited-${run}-${i}`, i, deadline);
      assert.equal(r.status, 200, JSON.stringify(r.json));
      return r.json.keel.request_id as string;
    }),
  );
  const starts = fakes.openai.calls().filter((x) => x.status === 200).map((x) => x.startedAt).sort((a, b) => a - b);
  const windowMax = Math.max(...starts.map((s) => starts.filter((x) => x >= s && x < s + 1000).length));
  const callers = new Set(
    (await Promise.all(limited.map(async (id) => (await history(id)).find((e) => e.eventType === EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED)?.activityTaskStartedEventAttributes?.identity))).filter(Boolean),
  );
  t.diagnostic(`rate limit ${RATE}/s: ${starts.length} calls, at most ${windowMax} in any 1-s window, made by ${[...callers].join(', ')}`);
  assert.ok(windowMax <= RATE + 1, `${windowMax} calls within one rolling second (limit ${RATE}/s, tolerance 1: docs/ROUTING.md)`);
  const pollingProcesses = [api1, api2b, w1, w3];
  const known = new Set(pollingProcesses.map(identity));
  assert.ok(callers.size >= 2, `several processes made calls, each holding its share: ${[...callers].join(', ')}`);
  for (const caller of callers) assert.ok(known.has(caller!), `${caller} is one of the live processes`);

  // --- The surviving processes reconnected by themselves (never restarted). -----------------------
  assert.ok(pollingProcesses.every((p) => p.alive()), 'APIs 1 and 2b and workers 1 and 3 lived through both restarts');
  // A poller polls one partition of the queue at a time, and the server describes one partition per
  // call (the root is `keel-requests`, the others `/_sys/keel-requests/<n>`): every partition's
  // pollers together are the queue's (4 partitions by default; a name past the last one is an error).
  const polling: string[] = [];
  for (let n = 0; n < 8; n++) {
    const described = await client!.workflowService
      .describeTaskQueue({
        namespace: c.namespace,
        taskQueue: { name: n === 0 ? 'keel-requests' : `/_sys/keel-requests/${n}`, kind: proto.temporal.api.enums.v1.TaskQueueKind.TASK_QUEUE_KIND_NORMAL },
        taskQueueType: proto.temporal.api.enums.v1.TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
      })
      .catch(() => undefined);
    for (const p of described?.pollers ?? []) if (Number(p.lastAccessTime?.seconds ?? 0) * 1000 > restartedAt) polling.push(p.identity!);
  }
  for (const w of pollingProcesses) assert.ok(polling.includes(identity(w)), `${w.name} (${identity(w)}) polls again after the restarts: ${polling.join(', ')}`);

  // --- Everything that was asked for is there. ------------------------------------------------------
  await Promise.all([syncLoad, asyncLoad]);
  assert.ok(syncResults.length >= 20 && asyncIds.length >= 10, `${syncResults.length} sync, ${asyncIds.length} async`);
  for (const r of syncResults) {
    assert.equal(r.status, 200, `${r.key}: ${r.status}`);
    const view = await settled(requestIdForKey(r.key), 60_000);
    assert.equal(view.status, 'succeeded', r.key);
    assert.match(view.result.choices[0].message.content, /sync prompt \d+$/);
    assert.equal(view.result.choices[0].message.content, r.content, `${r.key}: the answer retrieved by id is the one returned`);
  }
  const retried = syncResults.filter((r) => r.tries > 1).length;
  for (const a of asyncIds) {
    const view = await settled(a.id, 120_000);
    assert.equal(view.status, 'succeeded', `${a.key}: ${JSON.stringify(view.error)}`);
    assert.match(view.result.choices[0].message.content, new RegExp(`async prompt ${a.i}$`));
  }
  const done = await (async () => {
    for (;;) {
      try {
        const b = await openai.batches.retrieve(batch.id);
        if (['completed', 'failed', 'cancelled', 'expired'].includes(b.status)) return b;
      } catch {
        // transient
      }
      if (Date.now() > deadline) throw new Error('batch did not finish');
      await sleep(1_000);
    }
  })();
  assert.equal(done.status, 'completed', JSON.stringify(done.errors));
  const lines: { custom_id: string; response?: { status_code: number } }[] = [];
  for (const id of [done.output_file_id, done.error_file_id]) {
    if (!id) continue;
    for (const l of (await (await openai.files.content(id)).text()).split('\n')) if (l) lines.push(JSON.parse(l));
  }
  const counts = new Map<string, number>();
  for (const l of lines) counts.set(l.custom_id, (counts.get(l.custom_id) ?? 0) + 1);
  const missing = Array.from({ length: LINES }, (_, i) => `line-${i}`).filter((id) => !counts.has(id));
  const twice = [...counts].filter(([, n]) => n > 1).map(([id]) => id);
  assert.deepEqual(missing, [], 'every custom_id is in the output or error file');
  assert.deepEqual(twice, [], 'no custom_id appears twice');
  assert.equal(lines.length, LINES);
  t.diagnostic(
    `batch: ${done.request_counts?.completed} completed, ${done.request_counts?.failed} failed; sync: ${syncResults.length} answered (${retried} after a retry with the same Idempotency-Key); async: ${asyncIds.length}; ${((Date.now() - testStarted) / 1000).toFixed(0)} s`,
  );
});

test('a failed request is replayed on the cluster: Keel\'s REST replay and a Temporal reset', { timeout: 180_000 }, async () => {
  const c = cluster!;
  fakes.anthropic.setBehaviour('replay-model', { default: { kind: 'error', status: 503 } });
  const failed: string[] = [];
  for (const i of [0, 1]) {
    const { res, json } = await callJson(apiUrl(i), 'POST', '/v1/chat/completions', chat('replay', `replay me ${i}`));
    assert.ok(res.status >= 500, `status ${res.status}: ${JSON.stringify(json)}`);
    failed.push(res.headers.get('x-request-id')!);
  }
  for (const id of failed) assert.equal((await settled(id, 30_000)).status, 'failed');
  // Found through PostgreSQL visibility by Keel's search attributes, as an operator finds them.
  const listed = await (async () => {
    for (let i = 0; i < 40; i++) {
      const { json } = await callJson(apiUrl(0), 'GET', '/v1/requests?status=failed&model=replay');
      const ids = (json.data as Json[]).map((r) => r.id as string);
      if (failed.every((id) => ids.includes(id))) return ids;
      await sleep(500);
    }
    return [];
  })();
  assert.deepEqual([...listed].sort(), [...failed].sort(), 'GET /v1/requests?status=failed&model=replay lists exactly the failed ones');
  fakes.anthropic.setBehaviour('replay-model', { default: { kind: 'ok' } });

  const replayed = await callJson(apiUrl(1), 'POST', `/v1/requests/${failed[0]}/replay`);
  assert.equal(replayed.res.status, 202, JSON.stringify(replayed.json));
  const byApi = await settled(failed[0], 60_000);
  assert.equal(byApi.status, 'succeeded');
  assert.match(byApi.result.choices[0].message.content, /replay me 0$/);

  // The Temporal UI's Reset: to the first completed workflow task, through the server's API.
  const handle = client!.workflow.getHandle(failed[1]);
  const { runId } = await handle.describe();
  const eventId = await firstWorkflowTaskCompletedEventId(client!, failed[1], runId);
  await client!.workflowService.resetWorkflowExecution({
    namespace: c.namespace,
    workflowExecution: { workflowId: failed[1], runId },
    reason: 'operator reset on the cluster',
    workflowTaskFinishEventId: eventId,
    requestId: `cluster-reset-${runId}`,
  });
  const byReset = await settled(failed[1], 60_000);
  assert.equal(byReset.status, 'succeeded');
  assert.match(byReset.result.choices[0].message.content, /replay me 1$/);
});

test("the cluster runs with Keel's server settings: namespace retention, dynamic config, timers on time", { timeout: 120_000 }, async (t) => {
  const c = cluster!;
  const ns = await client!.workflowService.describeNamespace({ namespace: c.namespace });
  assert.equal(Number(ns.config?.workflowExecutionRetentionTtl?.seconds), 7 * 86_400, 'retention 7 d (KEEL_NAMESPACE_RETENTION default)');
  // The server's own validator accepts every key and value of the shared file.
  const validated = execFileSync(ensureTemporalServer().server, ['validate-dynamic-config', DYNAMIC_CONFIG_FILE], { encoding: 'utf8' });
  assert.doesNotMatch(validated, /error|warning/i, validated);
  // A 200 ms hedge timer fires on time (the server's default may shift a timer by up to a second).
  const { res, json } = await callJson(apiUrl(0), 'POST', '/v1/chat/completions', chat('hedged', 'hedge me'));
  assert.equal(res.status, 200, JSON.stringify(json));
  assert.equal(res.headers.get('x-keel-provider'), 'openai', 'the hedge answered first');
  const events = await history(res.headers.get('x-request-id')!);
  const started = events.find((e) => e.eventType === EventType.EVENT_TYPE_TIMER_STARTED)!;
  const fired = events.find((e) => e.eventType === EventType.EVENT_TYPE_TIMER_FIRED)!;
  assert.ok(started && fired, 'the hedge delay is a timer in the history');
  const ms = (e: typeof started) => Number(e.eventTime!.seconds) * 1000 + Math.round((e.eventTime!.nanos ?? 0) / 1e6);
  const late = ms(fired) - ms(started) - 200;
  t.diagnostic(`hedge timer of 200 ms fired ${late} ms late`);
  assert.ok(late < 300, `the 200 ms timer fired ${late} ms late (history.timerProcessorMaxTimeShift is 10 ms)`);
});

test('npm run setup prepares another namespace on the cluster, and running it again changes nothing', { timeout: 120_000 }, async () => {
  const c = cluster!;
  const setup = (...args: string[]) =>
    execFileSync(process.execPath, ['--import', 'tsx', 'src/bin/setup.ts', '--address', c.address, ...args], {
      cwd: ROOT,
      encoding: 'utf8',
      env: { ...process.env, ...c.secrets, KEEL_CONFIG: join(dir, 'keel.yaml') },
    });
  const first = setup('--namespace', 'keel-setup-test', '--retention', '3d');
  assert.match(first, /namespace keel-setup-test created \(retention 3 d\)/);
  assert.match(first, /search attributes added: KeelModel, KeelProvider, KeelErrorClass, KeelBatchId, KeelStatus/);
  const ns = await client!.workflowService.describeNamespace({ namespace: 'keel-setup-test' });
  assert.equal(Number(ns.config?.workflowExecutionRetentionTtl?.seconds), 3 * 86_400);
  const attrs = await client!.connection.operatorService.listSearchAttributes({ namespace: 'keel-setup-test' });
  for (const name of ['KeelModel', 'KeelProvider', 'KeelErrorClass', 'KeelBatchId', 'KeelStatus', 'KeelKey']) {
    assert.equal(attrs.customAttributes?.[name], proto.temporal.api.enums.v1.IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD, name);
  }
  const again = setup('--namespace', 'keel-setup-test');
  assert.match(again, /namespace keel-setup-test exists \(retention 3 d\)/);
  assert.match(again, /search attributes: all present/);
});

test('/healthz: "no worker polling" is told apart from "Temporal unreachable"', { timeout: 120_000 }, async () => {
  const c = cluster!;
  const healthy = await callJson(c.apis.find((a) => a.alive())!.url!, 'GET', '/healthz');
  assert.equal(healthy.res.status, 200);
  // Every live process runs a worker (the APIs and the workers); the server counts what the
  // queue's root partition sees, so some of them (README, "Health").
  const polling = [...c.apis, ...c.workers].filter((p) => p.alive()).length;
  assert.ok(healthy.json.workers >= 1 && healthy.json.workers <= polling, `${healthy.json.workers} of ${polling} polling`);
  // An API whose task queue no worker polls (a misconfigured deployment).
  const env = { ...process.env, ...c.secrets, KEEL_CONFIG: join(dir, 'keel.yaml'), KEEL_DATA_DIR: dir, TEMPORAL_ADDRESS: c.address, KEEL_TASK_QUEUE: 'keel-nobody-polls' };
  const lonely = await spawnKeelRole({ role: 'api', name: 'api-lonely', env, port: 0, logFile: join(c.logsDir, 'api-lonely.log') });
  try {
    const { res, json } = await callJson(lonely.url!, 'GET', '/healthz');
    assert.equal(res.status, 503);
    assert.equal(json.temporal, 'ok');
    assert.equal(json.workers, 0);
    assert.equal(json.error.code, 'no_worker_polling');
  } finally {
    await lonely.stop(10_000);
  }
});

test('a streamed request is streamed live by the API that started it (the official SDK as the client)', { timeout: 120_000 }, async () => {
  const api = live(cluster!.apis)[0];
  const openai = new OpenAI({ baseURL: `${api.url}/v1`, apiKey: 'k', maxRetries: 0 });
  const { data, response } = await openai.chat.completions.create({ model: 'streamed', stream: true, messages: [{ role: 'user', content: 'stream me' }] }).withResponse();
  // Live: chunks come from the provider call as it streams, not from the record once it ended.
  assert.equal(response.headers.get('x-keel-stream'), 'live');
  let text = '';
  let chunks = 0;
  let finish: string | null | undefined;
  for await (const c of data) {
    text += c.choices[0]?.delta.content ?? '';
    if (c.choices[0]?.delta.content) chunks++;
    finish = c.choices[0]?.finish_reason ?? finish;
  }
  assert.equal(text, STREAM_TEXT);
  assert.ok(chunks > 1, `${chunks} content chunks`);
  assert.equal(finish, 'stop');
  const id = response.headers.get('x-request-id')!;
  const view = await settled(id, 30_000);
  assert.equal(view.result.choices[0].message.content, STREAM_TEXT, 'the recorded answer is the streamed one');
  // The API's own worker ran it: its first workflow task came back with the start.
  const events = await history(id);
  const by = events.find((e) => e.eventType === EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED)?.workflowTaskCompletedEventAttributes?.identity;
  assert.equal(by, identity(api));
});

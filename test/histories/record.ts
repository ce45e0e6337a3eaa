// `npm run record-histories`: records the workflow histories that test/replay-histories.test.ts
// replays. A dev server, Keel's real workers and API, and the fake providers of dev/fakes/ (no API
// keys); each scenario goes through Keel's HTTP API as a user's request would, and each execution's
// history is written to test/histories/<scenario>.json. Record once and commit the files; re-run
// only to add a scenario (docs/ARCHITECTURE.md, "Tests"): a recorded history stands for executions
// already in flight, so re-recording after a workflow change would hide exactly what replay checks.
// Hence a file that exists is kept unless its scenario is named: `npm run record-histories -- hedge`.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import OpenAI, { toFile } from 'openai';
import proto from '@temporalio/proto';
import type { temporal } from '@temporalio/proto';
import { startFakeProvider } from '../../dev/fakes/index.js';
import { providerHealthWorkflowId } from '../../src/core/task-queues.js';
import { keyWorkflowId } from '../../src/core/keys.js';
import { requestIdForKey } from '../../src/services/request-service.js';
import { historyToJSON } from '../helpers/history-json.js';
import { until } from '../helpers/http.js';
import { startKeel, startTemporal } from '../helpers/temporal.js';

const OUT_DIR = dirname(fileURLToPath(import.meta.url));
const SCENARIOS = ['fallback', 'race', 'hedge', 'failed', 'batch', 'provider-health', 'keyed', 'keyed-batch', 'virtual-key', 'stream', 'stream-hedge', 'v2-keyed', 'v2-batch', 'batch-health', 'batch-tick'];
const named = process.argv.slice(2);
for (const n of named) if (!SCENARIOS.includes(n)) throw new Error(`unknown scenario '${n}'; the scenarios are ${SCENARIOS.join(', ')}`);
const IDENTITY = 'keel-history-recorder';
const EventType = proto.temporal.api.enums.v1.EventType;
type History = temporal.api.history.v1.IHistory;

const dataDir = mkdtempSync(join(tmpdir(), 'keel-record-'));
process.env.KEEL_DATA_DIR = dataDir;

// Gateway keys on: the keyed scenarios need a virtual key, which only the admin key creates.
const ADMIN = `recorder-admin-${Date.now()}-key`;
const env = await startTemporal();
const a = await startFakeProvider({ type: 'openai' });
const b = await startFakeProvider({ type: 'anthropic' });
// One upstream model per scenario: health is kept per target, so one scenario's failures cannot
// reorder another's targets. Provider calls on the task-queue path, as the scenarios recorded before
// local calls existed (their assertions count activity tasks).
const keel = await startKeel(
  env,
  `
auth:
  adminKey: ${ADMIN}
defaults:
  retry: { maxAttempts: 2, initialIntervalMs: 50, backoffCoefficient: 2, maximumIntervalMs: 100, jitter: 0 }
  timeouts: { attemptMs: 10000, requestMs: 20000 }
  hedge: { delayMs: 300, maxShare: 1 }
health: { publishIntervalMs: 300, refreshIntervalMs: 300 }
batches: { window: 2, childrenPerRun: 10, flushSize: 2 }
# The recorded scenarios were recorded on the task-queue call path (before local calls existed); a
# streamed request's calls run in the API's process whatever the path (docs/STREAMING.md).
providers:
  a: { type: openai, baseURL: ${a.url}, callPath: queue, models: { keyed: { pricing: { input: 1, output: 2 } }, keyed-batch: { pricing: { input: 1, output: 2 } } } }
  b: { type: anthropic, baseURL: ${b.url}, callPath: queue }
models:
  keyed: { targets: [a/keyed] }
  keyed-batch: { targets: [a/keyed-batch] }
  fallback: { targets: [a/fallback, b/fallback] }
  raced: { targets: [a/race, b/race], mode: race }
  hedged: { targets: [a/hedge, b/hedge], mode: hedge }
  failing: { targets: [a/fail, b/fail] }
  batched: { targets: [a/batch] }
  streamed: { targets: [a/stream, b/stream], mode: race }
  streamed-hedge: { targets: [a/shedge, b/shedge], mode: hedge }
`,
  { identity: IDENTITY },
);
const client = new OpenAI({ baseURL: `${keel.url}/v1`, apiKey: ADMIN, maxRetries: 0 });

a.setBehaviour('fallback', { default: { kind: 'error', status: 503 } });
b.setBehaviour('fallback', { default: { kind: 'ok' } });
a.setBehaviour('race', { default: { kind: 'ok', latencyMs: 3000 } });
b.setBehaviour('race', { default: { kind: 'ok', latencyMs: 50 } });
a.setBehaviour('hedge', { default: { kind: 'ok', latencyMs: 3000 } });
b.setBehaviour('hedge', { default: { kind: 'ok', latencyMs: 50 } });
a.setBehaviour('fail', { default: { kind: 'error', status: 500 } });
b.setBehaviour('fail', { default: { kind: 'error', status: 529, code: 'overloaded_error' } });
a.setBehaviour('batch', { default: { kind: 'ok' } });
a.setBehaviour('keyed', { default: { kind: 'ok' } });
a.setBehaviour('keyed-batch', { default: { kind: 'ok' } });
a.setBehaviour('stream', { default: { kind: 'ok', latencyMs: 3000 } });
b.setBehaviour('stream', { default: { kind: 'ok' }, stream: { chunkDelayMs: 20 } });
a.setBehaviour('shedge', { default: { kind: 'ok', latencyMs: 3000 } });
b.setBehaviour('shedge', { default: { kind: 'ok' }, stream: { chunkDelayMs: 20 } });

const events = (h: History) => h.events ?? [];
const count = (h: History, type: proto.temporal.api.enums.v1.EventType) => events(h).filter((e) => e.eventType === type).length;

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

/**
 * Worker and client identities name this machine's host and pids, and failure stack traces its
 * folders: neither belongs in a committed file, and replay reads neither.
 */
function scrubbed(history: History): string {
  const json = JSON.parse(historyToJSON(history)) as unknown;
  const scrub = (v: unknown): void => {
    if (!v || typeof v !== 'object') return;
    const o = v as Record<string, unknown>;
    for (const [k, inner] of Object.entries(o)) {
      if (k === 'identity' && typeof inner === 'string') o[k] = IDENTITY;
      else if (typeof inner === 'string') o[k] = inner.replaceAll(ROOT, '');
      else scrub(inner);
    }
  };
  scrub(json);
  const text = JSON.stringify(json, null, 1) + '\n';
  const payloads = [...text.matchAll(/"data": "([A-Za-z0-9+/=]+)"/g)].map((m) => Buffer.from(m[1], 'base64').toString('utf8'));
  assert.ok(![text, ...payloads].some((t) => t.includes(ROOT)), 'a path of this machine is left in the history');
  return text;
}

async function closedHistory(workflowId: string): Promise<History> {
  const handle = env.client.workflow.getHandle(workflowId);
  await until(`${workflowId} to close`, async () => ((await handle.describe()).status.name !== 'RUNNING' ? true : undefined), 60_000);
  return handle.fetchHistory();
}

async function ask(model: string, key: string, sdk = client, keyId?: string): Promise<string> {
  await sdk.chat.completions.create({ model, max_tokens: 100, messages: [{ role: 'user', content: `a ${model} request` }] }, { headers: { 'Idempotency-Key': key } });
  return requestIdForKey(key, keyId);
}

/** A streamed request, read to its end by the official client. */
async function askStream(model: string, key: string): Promise<string> {
  const stream = await client.chat.completions.create({ model, stream: true, messages: [{ role: 'user', content: `a ${model} request` }] }, { headers: { 'Idempotency-Key': key } });
  for await (const chunk of stream) void chunk;
  return requestIdForKey(key);
}

try {
  const run = Date.now();
  const recorded: Record<string, History> = {};

  recorded.fallback = await closedHistory(await ask('fallback', `fallback-${run}`));
  assert.ok(count(recorded.fallback, EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED) >= 1, 'fallback: a failed');
  assert.equal(count(recorded.fallback, EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED), 1, 'fallback: b answered');

  recorded.race = await closedHistory(await ask('raced', `race-${run}`));
  assert.equal(count(recorded.race, EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED), 2, 'race: both targets started');
  assert.equal(count(recorded.race, EventType.EVENT_TYPE_ACTIVITY_TASK_CANCEL_REQUESTED), 1, 'race: the loser cancelled');

  recorded.hedge = await closedHistory(await ask('hedged', `hedge-${run}`));
  assert.equal(count(recorded.hedge, EventType.EVENT_TYPE_TIMER_FIRED), 1, 'hedge: the delay passed');
  assert.equal(count(recorded.hedge, EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED), 2, 'hedge: the second target started');
  assert.equal(count(recorded.hedge, EventType.EVENT_TYPE_ACTIVITY_TASK_CANCEL_REQUESTED), 1, 'hedge: the slow primary cancelled');

  // Streamed (docs/STREAMING.md): a race of two local calls, the loser told it lost; and a hedge whose
  // calls ran on the process's own queue while the hedge timer fired.
  recorded.stream = await closedHistory(await askStream('streamed', `stream-${run}`));
  const markers = events(recorded.stream).filter((e) => e.markerRecordedEventAttributes?.markerName === 'core_local_activity');
  assert.equal(markers.length, 2, 'stream: both targets called locally');
  assert.equal(count(recorded.stream, EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED), 0, 'stream: no task-queue call');
  recorded['stream-hedge'] = await closedHistory(await askStream('streamed-hedge', `stream-hedge-${run}`));
  assert.equal(count(recorded['stream-hedge'], EventType.EVENT_TYPE_TIMER_FIRED), 1, 'stream-hedge: the delay passed');
  assert.equal(count(recorded['stream-hedge'], EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED), 2, 'stream-hedge: the primary lost, the hedge answered');

  const failedKey = `failed-${run}`;
  await assert.rejects(ask('failing', failedKey), (err: unknown) => err instanceof OpenAI.APIError && err.status === 503);
  recorded.failed = await closedHistory(requestIdForKey(failedKey));
  assert.equal(count(recorded.failed, EventType.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED), 1, 'failed: a Failed execution');

  const lines = [1, 2, 3].map((i) => JSON.stringify({ custom_id: `line-${i}`, method: 'POST', url: '/v1/chat/completions', body: { model: 'batched', messages: [{ role: 'user', content: `line ${i}` }] } }));
  const file = await client.files.create({ file: await toFile(Buffer.from(lines.join('\n') + '\n'), 'input.jsonl'), purpose: 'batch' });
  const batch = await client.batches.create({ input_file_id: file.id, endpoint: '/v1/chat/completions', completion_window: '24h' });
  await until('the batch to complete', async () => ((await client.batches.retrieve(batch.id)).status === 'completed' ? true : undefined), 60_000);
  recorded.batch = await closedHistory(batch.id);
  assert.equal(count(recorded.batch, EventType.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_COMPLETED), 3, 'batch: three children');

  // A virtual key with a budget and a rate limit: its requests reserve through the key's workflow
  // and settle with it as they end; its batch's lines reserve in groups.
  const created = await fetch(`${keel.url}/v1/keys`, {
    method: 'POST',
    headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' },
    body: JSON.stringify({ name: 'recorded', budget: { usd: 1, period: 'month' }, rpm: 1000, tpm: 1_000_000 }),
  });
  assert.equal(created.status, 201);
  const vk = (await created.json()) as { id: string; secret: string };
  const keyed = new OpenAI({ baseURL: `${keel.url}/v1`, apiKey: vk.secret, maxRetries: 0 });
  recorded.keyed = await closedHistory(await ask('keyed', `keyed-${run}`, keyed, vk.id));
  assert.equal(count(recorded.keyed, EventType.EVENT_TYPE_EXTERNAL_WORKFLOW_EXECUTION_SIGNALED), 1, 'keyed: settled with the key');
  const keyedLines = [1, 2, 3].map((i) => JSON.stringify({ custom_id: `line-${i}`, method: 'POST', url: '/v1/chat/completions', body: { model: 'keyed-batch', max_tokens: 100, messages: [{ role: 'user', content: `line ${i}` }] } }));
  const keyedFile = await keyed.files.create({ file: await toFile(Buffer.from(keyedLines.join('\n') + '\n'), 'input.jsonl'), purpose: 'batch' });
  const keyedBatch = await keyed.batches.create({ input_file_id: keyedFile.id, endpoint: '/v1/chat/completions', completion_window: '24h' });
  await until('the keyed batch to complete', async () => ((await keyed.batches.retrieve(keyedBatch.id)).status === 'completed' ? true : undefined), 60_000);
  recorded['keyed-batch'] = await closedHistory(keyedBatch.id);
  assert.equal(count(recorded['keyed-batch'], EventType.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_COMPLETED), 3, 'keyed-batch: three children');
  // Executions of the V2 request type (docs/ARCHITECTURE.md, "Workflow types and versions"): a keyed
  // request, and a batch whose lines start as V2 children. Recorded after V2 existed; the older
  // scenarios above stand for V1 executions and are kept as they were recorded.
  recorded['v2-keyed'] = await closedHistory(await ask('keyed', `v2-keyed-${run}`, keyed, vk.id));
  assert.equal(count(recorded['v2-keyed'], EventType.EVENT_TYPE_EXTERNAL_WORKFLOW_EXECUTION_SIGNALED), 1, 'v2-keyed: settled with the key');
  const v2Batch = await client.batches.create({ input_file_id: file.id, endpoint: '/v1/chat/completions', completion_window: '24h' });
  await until('the V2 batch to complete', async () => ((await client.batches.retrieve(v2Batch.id)).status === 'completed' ? true : undefined), 60_000);
  recorded['v2-batch'] = await closedHistory(v2Batch.id);
  assert.equal(count(recorded['v2-batch'], EventType.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_COMPLETED), 3, 'v2-batch: three children');
  // A batch that reads health once for its lines (recorded after 'batch-health'; v2-batch is from before).
  const healthBatch = await client.batches.create({ input_file_id: file.id, endpoint: '/v1/chat/completions', completion_window: '24h' });
  await until('the batch-health batch to complete', async () => ((await client.batches.retrieve(healthBatch.id)).status === 'completed' ? true : undefined), 60_000);
  recorded['batch-health'] = await closedHistory(healthBatch.id);
  const pageRead = events(recorded['batch-health']).find((e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'readBatchPage');
  assert.match(Buffer.from(pageRead!.activityTaskScheduledEventAttributes!.input!.payloads![0].data!).toString(), /"withHealth":true/, 'batch-health: the page read brings health');
  // A batch whose runs spend a flush tick that finds nothing to record (recorded after 'batch-tick').
  const tickBatch = await client.batches.create({ input_file_id: file.id, endpoint: '/v1/chat/completions', completion_window: '24h' });
  await until('the batch-tick batch to complete', async () => ((await client.batches.retrieve(tickBatch.id)).status === 'completed' ? true : undefined), 60_000);
  recorded['batch-tick'] = await closedHistory(tickBatch.id);
  const tickPatch = events(recorded['batch-tick']).find(
    (e) => e.markerRecordedEventAttributes?.markerName === 'core_patch' && Buffer.from(e.markerRecordedEventAttributes.details!['patch-data'].payloads![0].data!).toString().includes('batch-tick'),
  );
  assert.ok(tickPatch, "batch-tick: the run asked 'batch-tick'");
  const changed = await fetch(`${keel.url}/v1/keys/${vk.id}`, { method: 'PATCH', headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' }, body: JSON.stringify({ rpm: 500 }) });
  assert.equal(changed.status, 200);
  // The key's workflow never closes while the key lives: its history so far.
  recorded['virtual-key'] = await env.client.workflow.getHandle(keyWorkflowId(vk.id)).fetchHistory();
  assert.ok(count(recorded['virtual-key'], EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_COMPLETED) >= 3, 'virtual-key: reservations and a change');
  assert.ok(count(recorded['virtual-key'], EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED) >= 4, 'virtual-key: settlements');

  // The singleton never closes: its history so far, once the worker's reports have reached it.
  const health = env.client.workflow.getHandle(providerHealthWorkflowId(keel.config.taskQueue));
  recorded['provider-health'] = await until(
    'health reports',
    async () => {
      const h = await health.fetchHistory();
      return count(h, EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED) >= 4 ? h : undefined;
    },
    30_000,
  );

  assert.deepEqual(Object.keys(recorded).sort(), [...SCENARIOS].sort(), 'every scenario recorded');
  for (const [name, history] of Object.entries(recorded)) {
    const path = join(OUT_DIR, `${name}.json`);
    if (existsSync(path) && !named.includes(name)) {
      console.log(`${name}: kept the committed test/histories/${name}.json (name it to re-record)`);
      continue;
    }
    writeFileSync(path, scrubbed(history));
    console.log(`${name}: ${events(history).length} events -> test/histories/${name}.json`);
  }
} finally {
  await keel.stop();
  await Promise.all([a.close(), b.close()]);
  await env.teardown();
  rmSync(dataDir, { recursive: true, force: true });
}

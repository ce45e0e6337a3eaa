// OpenAI Batch API end to end through the official openai SDK: upload, create, poll, download
// and match custom_ids; bad lines; failed lines and retry-failed; cancel; expiry; pagination.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import OpenAI, { toFile } from 'openai';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { startFakeProvider, type FakeProvider } from '../dev/fakes/index.js';
import { KeelBatchId } from '../src/core/search-attributes.js';
import { startKeel, startTemporal, type KeelUnderTest } from './helpers/temporal.js';
import { WORKFLOW_TYPES } from '../src/core/contract.js';
import { defaultPayloadConverter } from '@temporalio/common';
import type { temporal } from '@temporalio/proto';
import type { ChatWorkflowInput } from '../src/core/request-types.js';

/** The local activities a history ran, in order (their markers' activity types). */
function localActivities(h: temporal.api.history.v1.IHistory): string[] {
  return (h.events ?? [])
    .filter((e) => e.markerRecordedEventAttributes?.markerName === 'core_local_activity')
    .map((e) => defaultPayloadConverter.fromPayload<{ activity_type: string }>(e.markerRecordedEventAttributes!.details!.data!.payloads![0]).activity_type);
}

const dataDir = mkdtempSync(join(tmpdir(), 'keel-batches-'));
process.env.KEEL_DATA_DIR = dataDir;

let env: TestWorkflowEnvironment;
let keel: KeelUnderTest;
let alpha: FakeProvider;
let client: OpenAI;

before(async () => {
  env = await startTemporal();
  alpha = await startFakeProvider({ type: 'openai' });
  keel = await startKeel(
    env,
    `
defaults:
  retry: { maxAttempts: 2, initialIntervalMs: 50, backoffCoefficient: 2, maximumIntervalMs: 100, jitter: 0 }
  timeouts: { attemptMs: 20000, requestMs: 30000 }
batches: { window: 50, childrenPerRun: 60, flushSize: 20 }
providers:
  alpha: { type: openai, baseURL: ${alpha.url}, apiKey: k }
models:
  chat: { targets: [alpha/model-a] }
  flaky: { targets: [alpha/flaky] }
  slow: { targets: [alpha/slow] }
  paced: { targets: [alpha/paced] }
  lagging: { targets: [alpha/lagging] }
`,
  );
  client = new OpenAI({ baseURL: `${keel.url}/v1`, apiKey: 'client-key', maxRetries: 0 });
});

after(async () => {
  await keel?.stop();
  await alpha?.close();
  await env?.teardown();
  rmSync(dataDir, { recursive: true, force: true });
});

type Line = { custom_id: string; method?: string; url?: string; body?: unknown };
const chatLine = (custom_id: string, model = 'chat', content = `prompt ${custom_id}`): Line => ({
  custom_id,
  method: 'POST',
  url: '/v1/chat/completions',
  body: { model, messages: [{ role: 'user', content }] },
});

async function upload(lines: (Line | string)[]) {
  const text = lines.map((l) => (typeof l === 'string' ? l : JSON.stringify(l))).join('\n') + '\n';
  return client.files.create({ file: await toFile(Buffer.from(text), 'input.jsonl'), purpose: 'batch' });
}

async function waitFor(id: string, statuses: string[], timeoutMs = 90_000): Promise<OpenAI.Batch> {
  const until = Date.now() + timeoutMs;
  for (let i = 0; Date.now() < until; i++) {
    const b = await client.batches.retrieve(id);
    if (statuses.includes(b.status)) return b;
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`batch ${id} did not reach ${statuses.join('|')} within ${timeoutMs} ms`);
}

type OutLine = { id: string; custom_id: string | null; response: { status_code: number; request_id: string; body: any } | null; error: { code: string; message: string } | null };
async function download(fileId: string | null | undefined): Promise<OutLine[]> {
  if (!fileId) return [];
  const text = await (await client.files.content(fileId)).text();
  return text.split('\n').filter(Boolean).map((l) => JSON.parse(l) as OutLine);
}

describe('batches through the openai SDK', () => {
  test('upload, create, poll, download: every custom_id answered once, children tagged with the batch', async () => {
    const n = 150;
    const file = await upload(Array.from({ length: n }, (_, i) => chatLine(`req-${i}`)));
    assert.equal(file.object, 'file');
    assert.equal(file.purpose, 'batch');
    assert.match(file.id, /^file-/);
    const created = await client.batches.create({ input_file_id: file.id, endpoint: '/v1/chat/completions', completion_window: '24h', metadata: { team: 'data' } });
    assert.match(created.id, /^batch_/);
    assert.equal(created.status, 'validating');
    assert.deepEqual(created.metadata, { team: 'data' });
    const done = await waitFor(created.id, ['completed', 'failed']);
    assert.equal(done.status, 'completed', JSON.stringify(done.errors));
    assert.deepEqual(done.request_counts, { total: n, completed: n, failed: 0 });
    assert.ok(done.in_progress_at && done.finalizing_at && done.completed_at);
    assert.equal(done.error_file_id, null);
    const out = await download(done.output_file_id);
    assert.equal(out.length, n);
    const ids = new Set(out.map((l) => l.custom_id));
    assert.equal(ids.size, n);
    for (const l of out) {
      assert.equal(l.response?.status_code, 200);
      assert.equal(l.response?.body.choices[0].message.content, `[model-a] prompt ${l.custom_id}`);
      assert.match(l.id, /^batch_req_/);
    }
    // The line's request workflow: ID from batch + custom_id, searchable by KeelBatchId.
    const child = await env.client.workflow.getHandle(out[0].response!.request_id).describe();
    assert.equal(child.type, WORKFLOW_TYPES.request);
    assert.equal(child.typedSearchAttributes.get(KeelBatchId), created.id);
    assert.equal(out[0].response!.request_id, `${created.id}/0/${out[0].custom_id}`);
    // 150 children with childrenPerRun 60: the batch continued-as-new at least twice.
    const runs = [];
    for await (const w of env.client.workflow.list({ query: `WorkflowId = '${created.id}'` })) runs.push(w);
    assert.ok(runs.length >= 3, `expected >= 3 runs, got ${runs.length}`);
    // Health comes with the batch's page of lines, not from a read by each line: the first line of
    // each run carries the part for its own targets, and its history has no health read of its own
    // (docs/BATCHES.md).
    for (const first of ['req-0', 'req-60', 'req-120']) {
      const line = await env.client.workflow.getHandle(`${created.id}/0/${first}`).fetchHistory();
      const input = defaultPayloadConverter.fromPayload<ChatWorkflowInput>(line.events![0].workflowExecutionStartedEventAttributes!.input!.payloads![0]);
      assert.ok(input.health, `${first} was given the batch's health`);
      assert.ok(Object.keys(input.health.targets).every((t) => t === 'alpha/model-a'), JSON.stringify(input.health));
      assert.deepEqual(localActivities(line), ['callProvider'], first);
    }
    const outMeta = await client.files.retrieve(done.output_file_id!);
    assert.equal(outMeta.purpose, 'batch_output');
  });

  test('a flush tick that finds nothing to record while a line still runs does not stall the batch', async () => {
    // The first line answers at once and starts the 2 s flush tick; 19 more answer after 0.8 s and
    // fill flushSize (20), so they are recorded before the tick fires; the last line still runs then.
    // (~0.7 s between the first line and the others, ~1 s between them and the tick: room for a busy machine.)
    alpha.setBehaviour('paced', { default: { kind: 'ok', latencyMs: 800 } });
    alpha.setBehaviour('lagging', { default: { kind: 'ok', latencyMs: 6_000 } });
    const lines = [chatLine('t-first'), ...Array.from({ length: 19 }, (_, i) => chatLine(`t-${i}`, 'paced')), chatLine('t-last', 'lagging')];
    const created = await client.batches.create({ input_file_id: (await upload(lines)).id, endpoint: '/v1/chat/completions', completion_window: '24h' });
    const done = await waitFor(created.id, ['completed', 'failed']);
    assert.equal(done.status, 'completed', JSON.stringify(done.errors));
    assert.deepEqual(done.request_counts, { total: 21, completed: 21, failed: 0 });
    const events = (await env.client.workflow.getHandle(created.id).fetchHistory()).events ?? [];
    const at = (found: (e: (typeof events)[number]) => unknown) => events.findIndex(found);
    const activityType = new Map(events.filter((e) => e.activityTaskScheduledEventAttributes).map((e) => [String(e.eventId), e.activityTaskScheduledEventAttributes!.activityType?.name]));
    const firstFlush = at((e) => activityType.get(String(e.eventId)) === 'recordBatchResults');
    const lastLine = at((e) => e.childWorkflowExecutionCompletedEventAttributes?.workflowExecution?.workflowId === `${created.id}/0/t-last`);
    const tick = events.findIndex((e, i) => i > firstFlush && e.timerFiredEventAttributes);
    // The state the loop used to spin in (workflows/batch.ts, 'batch-tick'): the tick fired once the
    // first 20 lines' flush had begun, with nothing else left to record and the last line in flight.
    assert.ok(firstFlush >= 0 && tick > firstFlush && tick < lastLine, `flush at ${firstFlush}, tick at ${tick}, last line at ${lastLine}`);
    const stalled = events.filter((e) => e.workflowTaskTimedOutEventAttributes || e.workflowTaskFailedEventAttributes);
    assert.deepEqual(stalled.map((e) => `${e.eventId}: ${e.eventType}`), [], 'no workflow task of the batch timed out or failed');
  });

  test('bad lines are reported per line in the error file; the good ones run', async () => {
    const file = await upload([
      chatLine('good-1'),
      '{"custom_id": "broken", ',
      { ...chatLine('wrong-url'), url: '/v1/embeddings' },
      { ...chatLine('wrong-method'), method: 'GET' },
      chatLine('good-1'),
      chatLine('unknown-model', 'no-such-model'),
      { custom_id: 'bad-body', method: 'POST', url: '/v1/chat/completions', body: { model: 'chat' } },
      chatLine('good-2'),
    ]);
    const b = await client.batches.create({ input_file_id: file.id, endpoint: '/v1/chat/completions', completion_window: '24h' });
    const done = await waitFor(b.id, ['completed', 'failed']);
    assert.equal(done.status, 'completed');
    assert.deepEqual(done.request_counts, { total: 8, completed: 2, failed: 6 });
    const out = await download(done.output_file_id);
    assert.deepEqual(out.map((l) => l.custom_id).sort(), ['good-1', 'good-2']);
    const errors = await download(done.error_file_id);
    const codes = errors.map((l) => `${l.custom_id}:${l.error?.code}`).sort();
    assert.deepEqual(codes, [
      'bad-body:invalid_body',
      'good-1:duplicate_custom_id',
      'null:invalid_json_line',
      'unknown-model:model_not_found',
      'wrong-method:invalid_method',
      'wrong-url:mismatched_endpoint',
    ]);
    for (const e of errors) assert.equal(e.response, null);
  });

  test('a file with no runnable line fails the batch with errors naming the lines', async () => {
    const file = await upload(['not json', { ...chatLine('x'), url: '/v1/completions' }]);
    const b = await client.batches.create({ input_file_id: file.id, endpoint: '/v1/chat/completions', completion_window: '24h' });
    const done = await waitFor(b.id, ['completed', 'failed']);
    assert.equal(done.status, 'failed');
    assert.ok(done.failed_at);
    assert.deepEqual(done.errors?.data?.map((e) => [e.code, e.line]), [['invalid_json_line', 1], ['mismatched_endpoint', 2]]);
    await assert.rejects(client.batches.create({ input_file_id: 'file-nope', endpoint: '/v1/chat/completions', completion_window: '24h' }), OpenAI.NotFoundError);
    await assert.rejects(client.batches.create({ input_file_id: file.id, endpoint: '/v1/embeddings' as '/v1/chat/completions', completion_window: '24h' }), OpenAI.BadRequestError);
  });

  test('failed requests go to the error file with their status; retry-failed re-drives only them', async () => {
    alpha.setBehaviour('flaky', { default: { kind: 'error', status: 500 } });
    const lines = Array.from({ length: 10 }, (_, i) => chatLine(`f-${i}`, i % 2 === 0 ? 'flaky' : 'chat'));
    const b = await client.batches.create({ input_file_id: (await upload(lines)).id, endpoint: '/v1/chat/completions', completion_window: '24h' });
    const done = await waitFor(b.id, ['completed', 'failed']);
    assert.deepEqual(done.request_counts, { total: 10, completed: 5, failed: 5 });
    const errors = await download(done.error_file_id);
    assert.equal(errors.length, 5);
    for (const e of errors) {
      assert.equal(e.response?.status_code, 503);
      assert.equal(e.response?.body.error.code, 'unavailable');
    }
    alpha.setBehaviour('flaky', { default: { kind: 'ok' } });
    alpha.resetCalls();
    const res = await fetch(`${keel.url}/v1/batches/${b.id}/retry-failed`, { method: 'POST' });
    assert.equal(res.status, 200);
    const again = await waitFor(b.id, ['completed']);
    assert.deepEqual(again.request_counts, { total: 10, completed: 10, failed: 0 });
    assert.equal(alpha.calls().length, 5, 'only the failed lines ran again');
    assert.equal(again.error_file_id, null);
    const out = await download(again.output_file_id);
    assert.deepEqual(out.map((l) => l.custom_id).sort(), lines.map((l) => l.custom_id).sort());
    assert.match(out.find((l) => l.custom_id === 'f-0')!.response!.request_id, /\/1\/f-0$/);
  });

  test('cancel stops the batch: cancelling, then cancelled with partial results', async () => {
    alpha.setBehaviour('slow', { default: { kind: 'ok', latencyMs: 1_500 } });
    const b = await client.batches.create({
      input_file_id: (await upload(Array.from({ length: 200 }, (_, i) => chatLine(`c-${i}`, 'slow')))).id,
      endpoint: '/v1/chat/completions',
      completion_window: '24h',
    });
    await waitFor(b.id, ['in_progress']);
    const cancelling = await client.batches.cancel(b.id);
    assert.equal(cancelling.status, 'cancelling');
    const done = await waitFor(b.id, ['cancelled'], 60_000);
    assert.ok(done.cancelled_at && done.cancelling_at);
    assert.ok(done.request_counts!.completed + done.request_counts!.failed < 200, 'not every line ran');
    const errors = await download(done.error_file_id);
    for (const e of errors) assert.equal(e.error?.code, 'batch_cancelled');
    await assert.rejects(client.batches.cancel((await client.batches.list()).data.find((x) => x.status === 'completed')!.id), OpenAI.BadRequestError);
  });

  test('expiry: lines not run within the completion window are reported as batch_expired', async () => {
    alpha.setBehaviour('slow', { default: { kind: 'ok', latencyMs: 1_500 } });
    const b = await client.batches.create({
      input_file_id: (await upload(Array.from({ length: 120 }, (_, i) => chatLine(`e-${i}`, 'slow')))).id,
      endpoint: '/v1/chat/completions',
      completion_window: '3s' as '24h',
    });
    const done = await waitFor(b.id, ['expired'], 60_000);
    assert.ok(done.expired_at);
    const out = await download(done.output_file_id);
    const errors = await download(done.error_file_id);
    assert.equal(out.length + errors.length, 120);
    assert.ok(errors.some((e) => e.error?.code === 'batch_expired'));
  });

  test('list batches and files with pagination; retrieve and delete files', async () => {
    const first = await client.batches.list({ limit: 2 });
    assert.equal(first.data.length, 2);
    assert.equal(first.has_more, true);
    const second = await client.batches.list({ limit: 2, after: first.data[1].id });
    assert.ok(second.data.length >= 1);
    assert.ok(!second.data.some((b) => first.data.some((f) => f.id === b.id)));
    const all: string[] = [];
    for await (const b of client.batches.list({ limit: 2 })) all.push(b.id);
    assert.equal(new Set(all).size, all.length);
    assert.ok(all.length >= 6);
    assert.ok(first.data[0].created_at >= first.data[1].created_at);

    const f = await upload([chatLine('x')]);
    assert.equal((await client.files.retrieve(f.id)).bytes, f.bytes);
    const listed: string[] = [];
    for await (const x of client.files.list({ purpose: 'batch' })) listed.push(x.id);
    assert.ok(listed.includes(f.id));
    assert.deepEqual(await client.files.delete(f.id), { id: f.id, object: 'file', deleted: true });
    await assert.rejects(client.files.retrieve(f.id), OpenAI.NotFoundError);
    await assert.rejects(client.files.create({ file: await toFile(Buffer.from('x'), 'a.jsonl'), purpose: 'nonsense' as 'batch' }), OpenAI.BadRequestError);
  });
});

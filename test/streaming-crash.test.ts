// A gateway (API + worker in one process, `npm run gateway`) SIGKILLed while it streams answers
// (docs/STREAMING.md, "When a process dies mid-stream"). The clients' connections die with it: both
// official SDKs raise (never a clean end of the stream). The requests were durable from their start:
// another worker finishes them, and each client resumes by request id from the last chunk it had,
// through an API in another process, and gets the rest of the recorded answer and [DONE].
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import proto from '@temporalio/proto';
import OpenAI from 'openai';
import { startApi, type RunningApi } from '../src/api/server.js';
import { parseConfig } from '../src/config/load.js';
import { startFakeProvider, type FakeProvider } from '../dev/fakes/index.js';
import { freePort, spawnEntry } from './helpers/processes.js';
import { ensurePythonOpenAI, pythonStream } from './helpers/python-openai.js';
import { contentOf, readSse } from './helpers/sse.js';
import { startTemporal } from './helpers/temporal.js';

const EventType = proto.temporal.api.enums.v1.EventType;
const TEXT = Array.from({ length: 40 }, (_, i) => `word${i}`).join(' ');

let env: TestWorkflowEnvironment;
let fake: FakeProvider;
let api: RunningApi;
let configPath: string;
const children: ChildProcess[] = [];
const taskQueue = `keel-stream-crash-${process.pid}`;

const spawnRole = (entry: string, ready: RegExp, extraEnv: Record<string, string> = {}): Promise<ChildProcess> =>
  spawnEntry(entry, ready, { KEEL_CONFIG: configPath, TEMPORAL_ADDRESS: env.address, KEEL_TASK_QUEUE: taskQueue, ...extraEnv }, children);

before(async () => {
  await ensurePythonOpenAI();
  env = await startTemporal();
  fake = await startFakeProvider({ type: 'openai' });
  // Long enough to be mid-answer when the gateway dies: 40 chunks, 100 ms apart.
  fake.setBehaviour('m', { default: { kind: 'ok', content: TEXT }, stream: { chunkDelayMs: 100 } });
  const yaml = `
defaults:
  retry: { maxAttempts: 3, initialIntervalMs: 200, backoffCoefficient: 2, maximumIntervalMs: 1000, jitter: 0 }
providers:
  a: { type: openai, baseURL: ${fake.url} }
models:
  chat: { targets: [a/m] }
  hedged: { targets: [a/m, a/m2], mode: hedge, hedge: { delayMs: 600000, maxShare: 1 } }
`;
  configPath = join(mkdtempSync(join(tmpdir(), 'keel-stream-crash-')), 'keel.yaml');
  writeFileSync(configPath, yaml);
  // An API of its own (`npm run api`): where the clients come back.
  api = await startApi(parseConfig(yaml, { KEEL_TASK_QUEUE: taskQueue }), { address: env.address, port: 0 });
}, { timeout: 900_000 });

after(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  await api?.close();
  await fake?.close();
  await env?.teardown();
});

test('SIGKILL of a gateway mid-stream: both SDKs raise; the answer is finished elsewhere and resumed by id', { timeout: 300_000 }, async () => {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const gateway = await spawnRole('src/bin/gateway.ts', /keel gateway listening/, { PORT: String(port) });
  const died = new Promise((r) => gateway.once('exit', r));

  // The Node SDK: it reads 5 chunks, then the gateway dies.
  const client = new OpenAI({ baseURL: `${url}/v1`, apiKey: 'unused', maxRetries: 0 });
  let nodeChunks = 0;
  let nodeText = '';
  const { data, response } = await client.chat.completions.create({ model: 'chat', stream: true, messages: [{ role: 'user', content: 'Hello' }] }).withResponse();
  const nodeId = response.headers.get('x-request-id')!;
  const nodeDone = (async () => {
    try {
      for await (const c of data) {
        nodeText += c.choices[0]?.delta.content ?? '';
        if (c.choices[0]?.delta.content) nodeChunks++;
      }
      return undefined;
    } catch (err) {
      return err;
    }
  })();

  // The Python SDK, on a request of its own, at the same time.
  let pyChunks = 0;
  const python = pythonStream({ baseURL: url, model: 'chat' }, () => void pyChunks++);

  // A hedged request: its call runs on the gateway's own activity queue, which dies with it.
  const hedged = await fetch(`${url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'hedged', stream: true, messages: [{ role: 'user', content: 'Hello' }] }),
  });
  const hedgedId = hedged.headers.get('x-request-id')!;
  const hedgedRead = readSse(hedged);

  const start = Date.now();
  while ((nodeChunks < 5 || pyChunks < 3) && Date.now() - start < 30_000) await new Promise((r) => setTimeout(r, 20));
  assert.ok(nodeChunks >= 5 && pyChunks >= 3, `streams began (${nodeChunks}, ${pyChunks} chunks)`);
  gateway.kill('SIGKILL');
  await died;

  const nodeError = await nodeDone;
  assert.ok(nodeError instanceof Error, 'the Node SDK raised: the stream did not end as if complete');
  // What the Node SDK raises for a connection that dies mid-body (fetch's own error, not an OpenAI error class).
  assert.match(`${(nodeError as Error).message} ${String((nodeError as Error).cause)}`, /terminated|other side closed|socket/i);
  const py = await python;
  assert.equal(py.error?.connection_error, true, `the Python SDK raised APIConnectionError: ${JSON.stringify(py.error)}`);
  assert.ok(nodeText.length > 0 && TEXT.startsWith(nodeText));
  assert.ok((await hedgedRead).error, 'the hedged stream broke too');

  // Another worker finishes both requests (the dead worker's workflow task times out, the call runs again).
  await spawnRole('src/bin/worker.ts', /keel worker polling/);
  for (const id of [nodeId, py.request_id!]) {
    const result = (await env.client.workflow.getHandle(id).result()) as { completion: { choices: { message: { content: string } }[] } };
    assert.equal(result.completion.choices[0].message.content, TEXT);
    const events = (await env.client.workflow.getHandle(id).fetchHistory()).events ?? [];
    assert.ok(events.some((e) => e.eventType === EventType.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT), 'the dead gateway’s workflow task timed out');
  }

  // The hedged request's call waited on the dead process's queue, then ran the ordinary way (its provider's queue).
  const hedgedResult = (await env.client.workflow.getHandle(hedgedId).result()) as { completion: { choices: { message: { content: string } }[] } };
  assert.equal(hedgedResult.completion.choices[0].message.content, TEXT);
  const hedgedEvents = (await env.client.workflow.getHandle(hedgedId).fetchHistory()).events ?? [];
  const queues = hedgedEvents.filter((e) => e.eventType === EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED).map((e) => e.activityTaskScheduledEventAttributes!.taskQueue!.name);
  assert.match(queues[0]!, /^keel-process-/);
  assert.equal(queues.at(-1), 'keel-provider-a');

  // Each client resumes where it was, through the other API: the rest of the answer, then [DONE].
  const resumed = await readSse(await fetch(`${api.url}/v1/requests/${nodeId}/stream?after=${nodeChunks}`));
  assert.equal(resumed.events.at(-1)!.data, '[DONE]');
  assert.equal(resumed.events[0].id, String(nodeChunks + 1));
  assert.equal(nodeText + contentOf(resumed.events), TEXT);
  const pyResumed = await readSse(await fetch(`${api.url}/v1/requests/${py.request_id}/stream?after=${py.chunks}`));
  assert.equal(py.text + contentOf(pyResumed.events), TEXT);
});

// Encryption at rest end to end (docs/ENCRYPTION.md), against a real dev server whose SQLite file
// the test reads: canaries in prompts and answers never reach the database, `temporal workflow
// show` or the file store in clear, yet come back intact to clients (early and recorded answers,
// async jobs, batches); the codec server serves the CLI; keys rotate; histories written before
// the codec and histories from a rotated key replay; a missing key fails workflow tasks, naming
// the key, and loses nothing once the key is back. A codec-off Keel on the same server writes a
// control canary that the same checks do find, so the checks can fail.
import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { promisify } from 'node:util';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import OpenAI, { toFile } from 'openai';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { Client } from '@temporalio/client';
import { NativeConnection, Worker } from '@temporalio/worker';
import proto from '@temporalio/proto';
import { decodeOptionalFailureToOptionalError } from '@temporalio/common/lib/internal-non-workflow/index.js';
import { startFakeProvider, type FakeProvider } from '../dev/fakes/index.js';
import { keelDataConverter } from '../src/codec/data-converter.js';
import { parseConfig } from '../src/config/load.js';
import { KeelModel } from '../src/core/search-attributes.js';
import { ensureTemporalCli } from '../src/temporal/cli.js';
import { createKeelWorkers } from '../src/worker/workers.js';
import { startApi } from '../src/api/server.js';
import { callJson, settledRequest, until } from './helpers/http.js';
import { startKeel, startTemporal, workflowBundle, type KeelUnderTest } from './helpers/temporal.js';

const EventType = proto.temporal.api.enums.v1.EventType;
const dir = mkdtempSync(join(tmpdir(), 'keel-codec-'));
const dataDir = join(dir, 'data');
process.env.KEEL_DATA_DIR = dataDir;
const dbFile = join(dir, 'temporal.sqlite');

const tag = () => randomBytes(6).toString('hex');
const PROMPT = `prompt-canary-${tag()}`;
const ANSWER = `answer-canary-${tag()}`;
const FAILURE = `failure-canary-${tag()}`;
const BATCH_PROMPT = `batch-prompt-canary-${tag()}`;
const CONTROL = `control-canary-${tag()}`;
const K1 = randomBytes(32).toString('base64');
const K2 = randomBytes(32).toString('base64');
const TOKEN = randomBytes(24).toString('base64url');

let env: TestWorkflowEnvironment;
let fake: FakeProvider;
let keel: KeelUnderTest;

// Provider task queues are named after providers: each Keel here gets names of its own, as one
// deployment's processes all share one configuration (docs/ENCRYPTION.md, "Turning it on").
let instances = 0;
const providers = (url: string) => {
  const n = ++instances;
  return `
defaults:
  retry: { maxAttempts: 2, initialIntervalMs: 50, backoffCoefficient: 2, maximumIntervalMs: 100, jitter: 0 }
batches: { window: 20, flushSize: 5 }
providers:
  local${n}: { type: openai, baseURL: ${url} }
  queued${n}: { type: openai, baseURL: ${url}, callPath: queue }
models:
  chat: { targets: [local${n}/m] }
  queued: { targets: [queued${n}/m] }
  broken: { targets: [local${n}/broken] }
`;
};
const codec = (keys: string[], extra = '') => `
codec:
  enabled: true
  keys:
${keys.map((k) => `    - { id: ${k}, key: "\${KEEL_CODEC_${k.toUpperCase()}}" }`).join('\n')}
  server: { tokens: ["\${KEEL_CODEC_TOKEN}"] }
${extra}`;
const secrets = { KEEL_CODEC_K1: K1, KEEL_CODEC_K2: K2, KEEL_CODEC_TOKEN: TOKEN };

before(async () => {
  env = await startTemporal({ dbFilename: dbFile });
  fake = await startFakeProvider({ type: 'openai' });
  fake.setBehaviour('m', { default: { kind: 'ok', content: ANSWER } });
  fake.setBehaviour('broken', { default: { kind: 'error', status: 400, message: `the provider quotes the prompt: ${FAILURE}` } });
  keel = await startKeel(env, providers(fake.url) + codec(['k1']), { env: secrets });
});

after(async () => {
  await keel?.stop();
  await fake?.close();
  await env?.teardown();
  rmSync(dir, { recursive: true, force: true });
});

const ask = (base: string, model: string, content: string, extra: Record<string, unknown> = {}) =>
  callJson(base, 'POST', '/v1/chat/completions', { model, messages: [{ role: 'user', content }], ...extra });

/** Every file under `root` that holds `needle` (the dev server's SQLite and its WAL/journal, the file store). */
function filesHolding(root: string, needle: string): string[] {
  return readdirSync(root, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => join(e.parentPath, e.name))
    .filter((f) => readFileSync(f).includes(needle));
}

/**
 * `temporal workflow show --output json` for `id`, as every string in it reads: payload data is
 * base64 in that output, so each base64 string is decoded too.
 */
async function shown(id: string, extra: string[] = []): Promise<string> {
  // Asynchronously: the codec server the CLI calls runs in this process.
  const { stdout: out } = await promisify(execFile)(ensureTemporalCli(), ['workflow', 'show', '--workflow-id', id, '--output', 'json', ...extra, '--address', env.address, '--namespace', 'default'], { encoding: 'utf8', timeout: 60_000, maxBuffer: 64 * 1024 * 1024 });
  const texts: string[] = [];
  const walk = (v: unknown): void => {
    if (typeof v === 'string') {
      texts.push(v);
      if (/^[A-Za-z0-9+/]+={0,2}$/.test(v)) texts.push(Buffer.from(v, 'base64').toString('utf8'));
    } else if (Array.isArray(v)) v.forEach(walk);
    else if (v && typeof v === 'object') Object.values(v).forEach(walk);
  };
  walk(JSON.parse(out));
  return texts.join('\n');
}

function historyPayloadKeys(events: proto.temporal.api.history.v1.IHistoryEvent[]): string[] {
  const started = events[0].workflowExecutionStartedEventAttributes!.input!.payloads![0];
  const completed = events.find((e) => e.eventType === EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED)?.workflowExecutionCompletedEventAttributes?.result?.payloads?.[0];
  const key = (p: proto.temporal.api.common.v1.IPayload | undefined | null) => (p?.metadata?.['encryption-key-id'] ? Buffer.from(p.metadata['encryption-key-id']).toString() : 'clear');
  return [key(started), key(completed)];
}

describe('nothing in clear at rest', () => {
  const ids: string[] = [];
  let controlId = '';

  before(async () => {
    // Early answer on the local call path, a recorded answer through a provider task queue, a
    // failure whose provider message quotes the prompt, and an async job.
    const early = await ask(keel.url, 'chat', PROMPT);
    assert.equal(early.res.status, 200, JSON.stringify(early.json));
    assert.equal(early.res.headers.get('x-keel-answer'), 'early');
    assert.equal(early.json.choices[0].message.content, ANSWER);
    ids.push(early.res.headers.get('x-request-id')!);

    const queued = await ask(keel.url, 'queued', PROMPT, { keel: { answer: 'recorded' } });
    assert.equal(queued.res.status, 200, JSON.stringify(queued.json));
    assert.equal(queued.res.headers.get('x-keel-answer'), 'recorded');
    assert.equal(queued.json.choices[0].message.content, ANSWER);
    ids.push(queued.res.headers.get('x-request-id')!);

    const failed = await ask(keel.url, 'broken', PROMPT);
    assert.equal(failed.res.status, 400);
    assert.match(failed.json.error.message, new RegExp(FAILURE), 'the client still gets the provider message');
    ids.push(failed.res.headers.get('x-request-id')!);

    const job = await callJson(keel.url, 'POST', '/v1/requests', { model: 'queued', messages: [{ role: 'user', content: PROMPT }] });
    assert.equal(job.res.status, 202);
    const settled = await settledRequest(keel.url, job.json.id);
    assert.equal(settled.status, 'succeeded');
    assert.equal(settled.result.choices[0].message.content, ANSWER);
    ids.push(job.json.id);

    // The control: the same server, a Keel without the codec.
    const plain = await startKeel(env, providers(fake.url));
    try {
      fake.setBehaviour('m', { default: { kind: 'ok', content: CONTROL } });
      const control = await ask(plain.url, 'queued', CONTROL);
      assert.equal(control.json.choices[0].message.content, CONTROL);
      controlId = control.res.headers.get('x-request-id')!;
    } finally {
      fake.setBehaviour('m', { default: { kind: 'ok', content: ANSWER } });
      await plain.stop();
    }
  });

  test('the dev server\'s SQLite files hold no prompt, answer or provider message (the control canary is there)', () => {
    assert.ok(filesHolding(dir, CONTROL).some((f) => f.startsWith(dbFile)), 'the check finds clear text in the database');
    for (const canary of [PROMPT, ANSWER, FAILURE]) assert.deepEqual(filesHolding(dir, canary), [], `${canary} is stored in clear`);
  });

  test('`temporal workflow show --output json` shows ciphertext; with --codec-endpoint it shows the prompt', async () => {
    assert.ok((await shown(controlId)).includes(CONTROL), 'the check finds clear text in workflow show');
    for (const id of ids) {
      const text = await shown(id);
      for (const canary of [PROMPT, ANSWER, FAILURE]) assert.ok(!text.includes(canary), `${id}: ${canary} in workflow show`);
      assert.ok(text.includes('binary/encrypted'), `${id}: encrypted payloads`);
    }
    const codecFlags = ['--codec-endpoint', `${keel.url}/codec`, '--codec-auth', `Bearer ${TOKEN}`];
    const decoded = await shown(ids[0], codecFlags);
    assert.ok(decoded.includes(PROMPT) && decoded.includes(ANSWER), 'decoded through the codec server');
    assert.ok((await shown(ids[2], codecFlags)).includes(FAILURE), 'the failure message is decoded too');
  });

  test('search attributes stay clear for filtering; the API reads every request back', async () => {
    const description = await keel.api.client.workflow.getHandle(ids[0]).describe();
    assert.equal(description.typedSearchAttributes.get(KeelModel), 'chat');
    const listed = await until('visibility', async () => {
      const { json } = await callJson(keel.url, 'GET', '/v1/requests?status=failed&model=broken');
      return json.data.some((r: { id: string }) => r.id === ids[2]) ? json : undefined;
    });
    assert.ok(listed);
    const view = await callJson(keel.url, 'GET', `/v1/requests/${ids[1]}`);
    assert.equal(view.json.result.choices[0].message.content, ANSWER);
    const failed = await callJson(keel.url, 'GET', `/v1/requests/${ids[2]}`);
    assert.match(failed.json.error.message, new RegExp(FAILURE));
  });

  test('a batch: input, output and working files are encrypted in the file store, and the output is intact', async () => {
    const client = new OpenAI({ baseURL: `${keel.url}/v1`, apiKey: 'unused', maxRetries: 0 });
    const lines = Array.from({ length: 12 }, (_, i) => JSON.stringify({ custom_id: `c${i}`, method: 'POST', url: '/v1/chat/completions', body: { model: 'chat', messages: [{ role: 'user', content: `${BATCH_PROMPT} ${i}` }] } }));
    const file = await client.files.create({ file: await toFile(Buffer.from(`${lines.join('\n')}\n`), 'input.jsonl'), purpose: 'batch' });
    assert.equal(file.bytes, Buffer.byteLength(`${lines.join('\n')}\n`), 'File.bytes is the plaintext size');
    const input = await (await client.files.content(file.id)).text();
    assert.equal(input, `${lines.join('\n')}\n`);
    const created = await client.batches.create({ input_file_id: file.id, endpoint: '/v1/chat/completions', completion_window: '24h' });
    const done = await until('batch', async () => {
      const b = await client.batches.retrieve(created.id);
      return ['completed', 'failed', 'expired', 'cancelled'].includes(b.status) ? b : undefined;
    }, 120_000);
    assert.equal(done.status, 'completed');
    assert.deepEqual(done.request_counts, { total: 12, completed: 12, failed: 0 });
    const output = (await (await client.files.content(done.output_file_id!)).text()).trim().split('\n').map((l) => JSON.parse(l));
    assert.deepEqual(output.map((l) => l.custom_id).sort(), lines.map((_, i) => `c${i}`).sort());
    assert.ok(output.every((l) => l.response.body.choices[0].message.content === ANSWER));
    for (const canary of [BATCH_PROMPT, ANSWER, PROMPT]) assert.deepEqual(filesHolding(dataDir, canary), [], `${canary} in the file store`);
    assert.deepEqual(filesHolding(dir, BATCH_PROMPT), [], 'nor in the database');
  });
});

describe('the codec server', () => {
  const uiOrigin = 'http://localhost:8233';
  const payload = { metadata: { encoding: Buffer.from('json/plain').toString('base64') }, data: Buffer.from(JSON.stringify(PROMPT)).toString('base64') };
  const post = (path: string, body: unknown, headers: Record<string, string> = {}) =>
    fetch(`${keel.url}/codec/${path}`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-namespace': 'default', ...headers }, body: JSON.stringify(body) });

  test('encode and decode in the codec-server protocol, with a bearer token', async () => {
    const encoded = await post('encode', { payloads: [payload] }, { authorization: `Bearer ${TOKEN}` });
    assert.equal(encoded.status, 200);
    const enc = (await encoded.json()) as { payloads: { metadata: Record<string, string>; data: string }[] };
    assert.equal(Buffer.from(enc.payloads[0].metadata.encoding, 'base64').toString(), 'binary/encrypted');
    assert.ok(!Buffer.from(enc.payloads[0].data, 'base64').includes(PROMPT));
    const decoded = await post('default/decode', enc, { authorization: `Bearer ${TOKEN}` });
    assert.deepEqual(await decoded.json(), { payloads: [payload] });
  });

  test('no token, a wrong token or a bad body is refused; CORS answers only the UI origin', async () => {
    assert.equal((await post('decode', { payloads: [payload] })).status, 401);
    assert.equal((await post('decode', { payloads: [payload] }, { authorization: `Bearer ${TOKEN}x` })).status, 401);
    const bad = await post('decode', { payloads: 'nope' }, { authorization: `Bearer ${TOKEN}` });
    assert.equal(bad.status, 400);
    const preflight = await fetch(`${keel.url}/codec/decode`, { method: 'OPTIONS', headers: { origin: uiOrigin, 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type,x-namespace,authorization' } });
    assert.equal(preflight.status, 204);
    assert.equal(preflight.headers.get('access-control-allow-origin'), uiOrigin);
    assert.match(preflight.headers.get('access-control-allow-headers') ?? '', /Authorization/);
    const foreign = await fetch(`${keel.url}/codec/decode`, { method: 'OPTIONS', headers: { origin: 'http://evil.example', 'access-control-request-method': 'POST' } });
    assert.equal(foreign.headers.get('access-control-allow-origin'), null);
  });
});

describe('keys, rotation, mixed histories', () => {
  test('rotation: requests written with k1 and k2 are both readable, and an old one replays', async () => {
    const before = await ask(keel.url, 'queued', PROMPT);
    const oldId = before.res.headers.get('x-request-id')!;
    const rotated = await startKeel(env, providers(fake.url) + codec(['k1', 'k2']), { env: secrets });
    try {
      const after = await ask(rotated.url, 'queued', PROMPT);
      const newId = after.res.headers.get('x-request-id')!;
      // Each answer came early, a moment before its record (docs/REQUESTS.md): read once recorded.
      for (const id of [oldId, newId]) assert.equal((await settledRequest(rotated.url, id)).result.choices[0].message.content, ANSWER);
      const events = async (id: string) => (await rotated.api.client.workflow.getHandle(id).fetchHistory()).events ?? [];
      assert.deepEqual(historyPayloadKeys(await events(oldId)), ['k1', 'k1']);
      assert.deepEqual(historyPayloadKeys(await events(newId)), ['k2', 'k2']);
      // Replay of the old history against today's workflow code, decoded with today's keys.
      const history = await rotated.api.client.workflow.getHandle(oldId).fetchHistory();
      await Worker.runReplayHistory({ workflowBundle: await workflowBundle(rotated.config.codec), dataConverter: keelDataConverter(rotated.config.codec)! }, history, oldId);
      // A Temporal reset (Keel's replay) of a failed request works with encryption on.
      const failed = await ask(rotated.url, 'broken', PROMPT);
      const failedId = failed.res.headers.get('x-request-id')!;
      fake.setBehaviour('broken', { default: { kind: 'ok', content: ANSWER } });
      try {
        assert.equal((await callJson(rotated.url, 'POST', `/v1/requests/${failedId}/replay`)).res.status, 202);
        const replayed = await settledRequest(rotated.url, failedId);
        assert.equal(replayed.status, 'succeeded');
        assert.equal(replayed.result.choices[0].message.content, ANSWER);
      } finally {
        fake.setBehaviour('broken', { default: { kind: 'error', status: 400, message: `the provider quotes the prompt: ${FAILURE}` } });
      }
    } finally {
      await rotated.stop();
    }
  });

  test('a request started before the codec was enabled completes after it is enabled', async () => {
    const mixed = `mixed${tag()}`;
    // The first call fails; Temporal retries it 3 s later, by which time the worker has the codec.
    const yaml = `
defaults:
  retry: { maxAttempts: 3, initialIntervalMs: 3000, backoffCoefficient: 1, maximumIntervalMs: 3000, jitter: 0 }
providers:
  ${mixed}: { type: openai, baseURL: ${fake.url}, callPath: queue }
models:
  chat: { targets: [${mixed}/mixed] }
`;
    fake.setBehaviour('mixed', { script: [{ kind: 'error', status: 503 }], default: { kind: 'ok', content: ANSWER } });
    const plain = await startKeel(env, yaml);
    const taskQueue = plain.config.taskQueue;
    const job = await callJson(plain.url, 'POST', '/v1/requests', { model: 'chat', messages: [{ role: 'user', content: PROMPT }] });
    await until('the first call', () => (fake.calls('mixed').length >= 1 ? true : undefined));
    await plain.stop();
    const encrypted = await startKeel(env, yaml + codec(['k1']), { env: secrets, taskQueue });
    try {
      const settled = await settledRequest(encrypted.url, job.json.id);
      assert.equal(settled.status, 'succeeded');
      assert.equal(settled.result.choices[0].message.content, ANSWER);
      assert.equal(settled.attempts.length, 2);
      // One history, two encodings: the input from before, the result from after.
      const events = (await encrypted.api.client.workflow.getHandle(job.json.id).fetchHistory()).events ?? [];
      assert.deepEqual(historyPayloadKeys(events), ['clear', 'k1']);
    } finally {
      await encrypted.stop();
    }
  });

  test('a worker without the key fails the workflow task naming the key id; with the key it completes the request', async () => {
    // The API encrypts with k2; the only worker has k1.
    const shared = providers(fake.url);
    const yamlApi = shared + codec(['k1', 'k2']);
    const yamlWorker = shared + codec(['k1']);
    const taskQueue = `keel-codec-missing-${tag()}`;
    const apiConfig = parseConfig(yamlApi, { ...secrets, KEEL_TASK_QUEUE: taskQueue, PORT: '0' });
    const api = await startApi(apiConfig, { address: env.address, port: 0 });
    const connection = await NativeConnection.connect({ address: env.address });
    const startWorkers = async (yaml: string) => {
      const config = parseConfig(yaml, { ...secrets, KEEL_TASK_QUEUE: taskQueue });
      const { workers } = await createKeelWorkers({ connection, config, workflowBundle: await workflowBundle(config.codec) });
      return { workers, running: Promise.all(workers.map((w) => w.run())) };
    };
    const stopWorkers = async (w: Awaited<ReturnType<typeof startWorkers>>) => {
      for (const x of w.workers) if (x.getState() === 'RUNNING') x.shutdown();
      await w.running;
    };
    try {
      let lacking = await startWorkers(yamlWorker);
      const job = await callJson(api.url, 'POST', '/v1/requests', { model: 'chat', messages: [{ role: 'user', content: PROMPT }] });
      assert.equal(job.res.status, 202);
      const client: Client = api.client;
      const failedTask = await until('a failed workflow task', async () => {
        const events = (await client.workflow.getHandle(job.json.id).fetchHistory()).events ?? [];
        return events.find((e) => e.eventType === EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED);
      }, 30_000);
      // The task failure's message is encrypted too (by the worker, with its k1): decoded, it names k2.
      const failure = await decodeOptionalFailureToOptionalError(client.options.loadedDataConverter, failedTask.workflowTaskFailedEventAttributes!.failure);
      assert.ok(failure);
      assert.match(failure.message, /encrypted with key "k2", which this process does not have/);
      assert.equal((await callJson(api.url, 'GET', `/v1/requests/${job.json.id}`)).json.status, 'queued');
      await stopWorkers(lacking);
      lacking = await startWorkers(yamlApi);
      try {
        const settled = await settledRequest(api.url, job.json.id);
        assert.equal(settled.status, 'succeeded');
        assert.equal(settled.result.choices[0].message.content, ANSWER);
      } finally {
        await stopWorkers(lacking);
      }
    } finally {
      await api.close();
      await connection.close();
    }
  });

  test('a malformed key stops the worker at start-up with the field named and the value not printed', () => {
    const path = join(dir, 'bad-key.yaml');
    writeFileSync(path, providers(fake.url) + codec(['k1']));
    const bad = randomBytes(20).toString('base64');
    const run = spawnSync(process.execPath, ['--import', 'tsx', 'src/bin/worker.ts'], {
      env: { ...process.env, KEEL_CONFIG: path, KEEL_CODEC_K1: bad, KEEL_CODEC_TOKEN: TOKEN, TEMPORAL_ADDRESS: env.address },
      encoding: 'utf8',
      timeout: 60_000,
    });
    assert.equal(run.status, 1);
    assert.match(run.stderr, /codec\.keys\.0\.key: must be 32 random bytes in base64/);
    assert.ok(!run.stderr.includes(bad) && !run.stdout.includes(bad));
  });
});

// The README's quick start, end to end, as a user runs it: `npm start` (src/bin/start.ts: the Temporal
// CLI dev server with SQLite in the data folder, a worker, the API and the demo providers) with
// keel.config.yaml moved to free loopback ports, a chat completion, `npm run batch -- file.jsonl`
// (src/bin/batch.ts) against it, and Ctrl-C (SIGINT) stopping everything it started.
import assert from 'node:assert/strict';
import { WORKFLOW_TYPES } from '../src/core/contract.js';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import { parse, stringify } from 'yaml';
import { scrape } from './helpers/prometheus.js';
import { callJson, until, type Json } from './helpers/http.js';
import { freePort } from './helpers/processes.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const START_TIMEOUT_MS = 180_000; // first start bundles the workflows (webpack) on a shared machine
const BATCH_TIMEOUT_MS = 240_000;
const STOP_TIMEOUT_MS = 30_000;
const VALID_LINES = 200;
const BAD_LINE_AT = 100; // 0-based position of the invalid line in the file

const tmp = mkdtempSync(join(tmpdir(), 'keel-quickstart-'));
const dataDir = join(tmp, 'data');
const configPath = join(tmp, 'keel.config.yaml');

interface Ports {
  api: number;
  temporal: number;
  ui: number;
  fakes: Record<string, number>;
}
let ports: Ports;
let apiUrl: string;
const fakeProviders: { name: string; model: string }[] = [];
let publicModels: string[] = [];
let start: ChildProcess | undefined;
let startExited: Promise<void> | undefined;
let out = '';
let temporalPid: number | undefined;
let batchCli: ChildProcess | undefined;

/** A child environment with nothing from the caller's shell that would point Keel elsewhere. */
function cleanEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const k of ['TEMPORAL_ADDRESS', 'TEMPORAL_NAMESPACE', 'KEEL_TASK_QUEUE', 'HOST', 'PORT', 'KEEL_URL', 'KEEL_CONFIG', 'KEEL_DATA_DIR', 'KEEL_ADMIN_KEY', 'NODE_TEST_CONTEXT']) delete env[k];
  return { ...env, ...extra };
}

const alive = (c: ChildProcess | undefined) => c !== undefined && c.exitCode === null && c.signalCode === null;

/** Linux: the children of `ppid` as [pid, comm]. */
function childrenOf(ppid: number): [number, string][] {
  const found: [number, string][] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const close = stat.lastIndexOf(')');
      const comm = stat.slice(stat.indexOf('(') + 1, close);
      const parent = Number(stat.slice(close + 2).split(' ')[1]);
      if (parent === ppid) found.push([Number(entry), comm]);
    } catch {
      // gone meanwhile
    }
  }
  return found;
}

/** Running (a zombie counts as gone: it has exited and only waits to be reaped). */
function pidRunning(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

function acceptsConnections(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(2_000, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

/** keel.config.yaml as shipped, with each demo (`fake:`) provider moved to a free loopback port. */
async function writeQuickstartConfig(): Promise<Record<string, number>> {
  const raw = parse(readFileSync(join(ROOT, 'keel.config.yaml'), 'utf8')) as Json;
  const fakes: Record<string, number> = {};
  for (const [name, p] of Object.entries(raw.providers as Record<string, Json>)) {
    if (!p.fake) continue;
    const url = new URL(p.baseURL);
    assert.equal(url.hostname, '127.0.0.1', `demo provider ${name} must be on loopback`);
    url.port = String((fakes[name] = await freePort()));
    p.baseURL = url.toString().replace(/\/$/, '');
    fakeProviders.push({ name, model: Object.keys(p.models ?? { demo: {} })[0] });
  }
  assert.ok(fakeProviders.length >= 1, 'keel.config.yaml has demo providers');
  publicModels = Object.keys(raw.models ?? {});
  writeFileSync(configPath, stringify(raw));
  return fakes;
}

function runBatchCli(file: string): Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/bin/batch.ts', file], {
      cwd: ROOT,
      env: cleanEnv({ KEEL_URL: apiUrl }),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    batchCli = child;
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (b: Buffer) => (stdout += b.toString()));
    child.stderr!.on('data', (b: Buffer) => (stderr += b.toString()));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`batch-cli did not finish within ${BATCH_TIMEOUT_MS} ms:\n${stdout}\n${stderr}`));
    }, BATCH_TIMEOUT_MS);
    child.once('error', reject);
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

async function download(fileId: string): Promise<Json[]> {
  const res = await fetch(`${apiUrl}/v1/files/${fileId}/content`, { signal: AbortSignal.timeout(30_000) });
  assert.equal(res.status, 200, `GET /v1/files/${fileId}/content`);
  return (await res.text()).split('\n').filter(Boolean).map((l) => JSON.parse(l) as Json);
}

describe('quick start: npm start, a chat completion, npm run batch, Ctrl-C', () => {
  before(async () => {
    ports = { api: await freePort(), temporal: await freePort(), ui: await freePort(), fakes: await writeQuickstartConfig() };
    apiUrl = `http://127.0.0.1:${ports.api}`;
    // `npm start` is `tsx src/bin/start.ts` after the dependency check; this is the same entry point.
    start = spawn(process.execPath, ['--import', 'tsx', 'src/bin/start.ts'], {
      cwd: ROOT,
      env: cleanEnv({
        KEEL_CONFIG: configPath,
        KEEL_DATA_DIR: dataDir,
        PORT: String(ports.api),
        TEMPORAL_PORT: String(ports.temporal),
        TEMPORAL_UI_PORT: String(ports.ui),
      }),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const child = start;
    startExited = new Promise((resolve) => child.once('exit', () => resolve()));
    const keep = (b: Buffer) => (out = (out + b.toString()).slice(-50_000));
    child.stdout!.on('data', keep);
    child.stderr!.on('data', keep);
    const deadline = Date.now() + START_TIMEOUT_MS;
    while (!/Keel is running/.test(out)) {
      if (!alive(child)) throw new Error(`src/bin/start.ts exited at start (code ${child.exitCode}, signal ${child.signalCode}):\n${out}`);
      if (Date.now() > deadline) throw new Error(`src/bin/start.ts not ready within ${START_TIMEOUT_MS} ms:\n${out}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    const temporal = childrenOf(child.pid!).filter(([, comm]) => comm === 'temporal');
    assert.equal(temporal.length, 1, `one Temporal dev server child of src/bin/start.ts: ${JSON.stringify(childrenOf(child.pid!))}`);
    temporalPid = temporal[0][0];
  });

  after(async () => {
    if (alive(batchCli)) batchCli!.kill('SIGKILL');
    if (alive(start)) {
      temporalPid ??= childrenOf(start!.pid!).find(([, comm]) => comm === 'temporal')?.[0];
      start!.kill('SIGKILL');
      await Promise.race([startExited, new Promise((r) => setTimeout(r, 5_000))]);
    }
    // SIGKILL leaves the dev server orphaned: stop the one this test started, by its pid.
    if (temporalPid !== undefined && pidRunning(temporalPid)) process.kill(temporalPid, 'SIGKILL');
    rmSync(tmp, { recursive: true, force: true });
  });

  test('prints where everything is, with the ports it was given', () => {
    assert.match(out, new RegExp(`API +${apiUrl}/v1`));
    assert.match(out, new RegExp(`Health +${apiUrl}/healthz`));
    assert.match(out, new RegExp(`Temporal UI +http://localhost:${ports.ui}\\b`));
    assert.match(out, new RegExp(`Temporal +127\\.0\\.0\\.1:${ports.temporal}\\b`));
    for (const { name } of fakeProviders) assert.match(out, new RegExp(`demo provider ${name} \\(\\w+\\) on http://127\\.0\\.0\\.1:${ports.fakes[name]}`));
    assert.ok(existsSync(join(dataDir, 'temporal.sqlite')), 'the dev server keeps its SQLite file in KEEL_DATA_DIR');
  });

  test('healthy, the Temporal UI answers, and every demo provider gives a real answer', async () => {
    await until('GET /healthz 200', async () => ((await fetch(`${apiUrl}/healthz`)).status === 200 ? true : undefined), 30_000);
    const ui = await fetch(`http://127.0.0.1:${ports.ui}/`, { signal: AbortSignal.timeout(10_000) });
    assert.equal(ui.status, 200, 'Temporal UI');

    // The README's example request.
    const { res, json } = await callJson(apiUrl, 'POST', '/v1/chat/completions', { model: 'chat', messages: [{ role: 'user', content: 'Hello' }] });
    assert.equal(res.status, 200, JSON.stringify(json));
    assert.equal(json.object, 'chat.completion');
    assert.match(json.choices[0].message.content, /^\[[\w.-]+\] Hello$/);
    assert.ok(fakeProviders.some((f) => f.name === res.headers.get('x-keel-provider')), `x-keel-provider ${res.headers.get('x-keel-provider')}`);
    assert.ok(res.headers.get('x-request-id'));
    assert.match(res.headers.get('x-keel-ui-url') ?? '', new RegExp(`^http://localhost:${ports.ui}/`));

    // Each demo provider (one per wire format) directly.
    for (const { name, model } of fakeProviders) {
      const { res, json } = await callJson(apiUrl, 'POST', '/v1/chat/completions', { model: `${name}/${model}`, messages: [{ role: 'user', content: `Hi ${name}` }] });
      assert.equal(res.status, 200, `${name}: ${JSON.stringify(json)}`);
      assert.equal(res.headers.get('x-keel-provider'), name);
      assert.equal(json.choices[0].message.content, `[${model}] Hi ${name}`);
    }
  });

  test("GET /metrics: the API's and the worker's metrics, and the Temporal SDK's, in one scrape", async () => {
    const sent = 1 + fakeProviders.length;
    // Each part counts a request as its step is done (the SDK once the completion is sent): read until all have.
    const s = await until('the requests above counted', async () => {
      const now = await scrape(`${apiUrl}/metrics`);
      const counted = now.value('keel_requests_total', { outcome: 'succeeded' }) >= sent && now.value('temporal_workflow_completed', { workflow_type: WORKFLOW_TYPES.request }) >= sent;
      return counted ? now : undefined;
    });
    assert.equal(s.value('keel_requests_total', { outcome: 'succeeded' }), sent);
    assert.equal(s.value('keel_chat_completions_total', { outcome: 'succeeded', answered_at: 'early' }), sent);
    assert.equal(s.value('keel_temporal_metrics_up'), 1);
  });

  test('npm run batch: progress lines, status completed, every line answered once, the bad line in the error file', async () => {
    // Lines spread over the quick start's public models (fallback, race and hedge).
    const models = publicModels;
    assert.ok(models.includes('chat'), `public models: ${models.join(', ')}`);
    const valid = Array.from({ length: VALID_LINES }, (_, i) => ({
      custom_id: `req-${i}`,
      method: 'POST',
      url: '/v1/chat/completions',
      body: { model: models[i % models.length], messages: [{ role: 'user', content: `prompt req-${i}` }] },
    }));
    const bad = { custom_id: 'bad-url', method: 'POST', url: '/v1/embeddings', body: { model: 'chat', input: 'x' } };
    const lines: object[] = [...valid];
    lines.splice(BAD_LINE_AT, 0, bad);
    const file = join(tmp, 'prompts.jsonl');
    writeFileSync(file, lines.map((l) => JSON.stringify(l)).join('\n') + '\n');
    const total = lines.length;

    const t0 = Date.now();
    const run = await runBatchCli(file);
    const text = `exit ${run.code}\n--- stdout\n${run.stdout}--- stderr\n${run.stderr}`;
    console.log(`batch-cli: ${total} lines in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    // OpenAI semantics: an invalid line goes to the error file; the batch still completes.
    assert.equal(run.code, 0, text);
    assert.equal(run.signal, null);
    // eslint-disable-next-line no-control-regex -- an escape sequence is exactly what must not appear
    assert.doesNotMatch(run.stdout, /[\r\x1b]/, 'plain lines when stdout is not a TTY');

    const stdout = run.stdout.split('\n');
    assert.match(stdout[0], /^uploaded prompts\.jsonl as file-\S+ \(\d+ bytes\)$/, text);
    const batchId = /^batch (batch_\S+)$/m.exec(run.stdout)?.[1];
    assert.ok(batchId, text);
    const progressRe = /^\[([#-]{30})\]\s+(\d+\.\d)% (\d+)\/(\d+) ok (\d+) failed (\d+) {2}(\w+) {2}\d+ req\/s {2}(\d+)s$/;
    const progress = stdout.map((l) => progressRe.exec(l)).filter((m) => m !== null);
    assert.ok(progress.length >= 1, `progress lines:\n${text}`);
    // A new line when the counts or the status change, otherwise at most one every 30 s.
    for (let i = 1; i < progress.length; i++) {
      const same = progress[i].slice(3, 8).join() === progress[i - 1].slice(3, 8).join();
      if (same) assert.ok(Number(progress[i][8]) - Number(progress[i - 1][8]) >= 29, `an unchanged progress line within 30 s:\n${text}`);
    }
    for (const m of progress) {
      const [, barText, pct, done, tot, ok, failed] = m;
      assert.equal(Number(done), Number(ok) + Number(failed));
      if (Number(tot) > 0) {
        assert.equal(Number(tot), total);
        assert.equal(Number(pct), Number(((Number(done) / total) * 100).toFixed(1)));
        assert.equal(barText.replace(/-/g, '').length, Math.round((Number(done) / total) * 30));
      }
    }
    for (let i = 1; i < progress.length; i++) assert.ok(Number(progress[i][3]) >= Number(progress[i - 1][3]), 'progress never goes back');
    const last = progress[progress.length - 1];
    assert.deepEqual(last.slice(1, 8), ['#'.repeat(30), '100.0', String(total), String(total), String(VALID_LINES), '1', 'completed'], text);
    assert.match(run.stdout, /^status completed after \d+\.\d s$/m);
    const outputId = /^output_file_id (file-\S+)$/m.exec(run.stdout)?.[1];
    const errorId = /^error_file_id {2}(file-\S+)$/m.exec(run.stdout)?.[1];
    assert.ok(outputId && errorId, text);
    assert.match(run.stdout, new RegExp(`^download: curl ${apiUrl}/v1/files/${outputId}/content$`, 'm'));

    const { json: batch } = await callJson(apiUrl, 'GET', `/v1/batches/${batchId}`);
    assert.equal(batch.status, 'completed');
    assert.deepEqual(batch.request_counts, { total, completed: VALID_LINES, failed: 1 });
    assert.equal(batch.output_file_id, outputId);
    assert.equal(batch.error_file_id, errorId);

    const output = await download(outputId);
    assert.equal(output.length, VALID_LINES);
    const seen = new Map<string, number>();
    for (const l of output) seen.set(l.custom_id, (seen.get(l.custom_id) ?? 0) + 1);
    for (const v of valid) assert.equal(seen.get(v.custom_id), 1, `${v.custom_id} once in the output`);
    assert.equal(seen.size, VALID_LINES);
    for (const l of output) {
      assert.equal(l.error, null);
      assert.equal(l.response.status_code, 200, JSON.stringify(l));
      assert.match(l.response.body.choices[0].message.content, new RegExp(`^\\[[\\w.-]+\\] prompt ${l.custom_id}$`));
    }
    const errors = await download(errorId);
    assert.deepEqual(
      errors.map((l) => [l.custom_id, l.error?.code, l.response]),
      [['bad-url', 'mismatched_endpoint', null]],
    );
  });

  test('Ctrl-C (SIGINT) stops src/bin/start.ts and everything it started', async () => {
    const child = start!;
    assert.ok(alive(child), 'still running before SIGINT');
    assert.ok(temporalPid !== undefined && pidRunning(temporalPid), 'the dev server is running');
    assert.equal(await acceptsConnections(ports.temporal), true);
    const t0 = Date.now();
    child.kill('SIGINT');
    const stopped = await Promise.race([startExited!.then(() => true), new Promise<false>((r) => setTimeout(() => r(false), STOP_TIMEOUT_MS))]);
    assert.ok(stopped, `src/bin/start.ts still running ${STOP_TIMEOUT_MS} ms after SIGINT:\n${out.slice(-3_000)}`);
    console.log(`start.ts stopped ${Date.now() - t0} ms after SIGINT`);
    assert.equal(child.signalCode, null, out.slice(-3_000));
    assert.equal(child.exitCode, 0, out.slice(-3_000));
    assert.match(out, /keel: stopping \.\.\.\n(.*\n)*keel: stopped/);
    assert.equal(pidRunning(temporalPid!), false, `the Temporal dev server (pid ${temporalPid}) outlived src/bin/start.ts`);
    for (const [what, port] of [['Temporal', ports.temporal], ['Temporal UI', ports.ui], ['API', ports.api], ...Object.entries(ports.fakes)] as [string, number][]) {
      assert.equal(await acceptsConnections(port), false, `${what} port ${port} still accepts connections`);
    }
  });
});

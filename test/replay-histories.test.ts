// Replay: the histories of real executions in test/histories/ (recorded with
// `npm run record-histories`) replayed against the current workflow bundle. A workflow change that
// would make in-flight executions fail on their next workflow task fails here first. Also proves the
// check can fail: a copy of the workflows with one extra timer is refused, and the same change
// behind `patched()` is accepted.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import { DefaultLogger, Runtime, Worker, type ReplayResult, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { DeterminismViolationError } from '@temporalio/workflow';
import { historyFromJSON } from './helpers/history-json.js';
import { tracingWorkflowBundle, workflowBundle } from './helpers/temporal.js';

Runtime.install({ logger: new DefaultLogger('ERROR') });

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const HISTORIES = join(ROOT, 'test', 'histories');
/** The scenarios recorded so far; a new one is added here and by the recorder. */
const SCENARIOS = ['batch', 'batch-health', 'failed', 'fallback', 'hedge', 'keyed', 'keyed-batch', 'provider-health', 'race', 'stream', 'stream-hedge', 'v2-batch', 'v2-keyed', 'virtual-key', 'batch-tick'];
const REQUEST_SCENARIOS = ['failed', 'fallback', 'hedge', 'keyed', 'race', 'stream', 'stream-hedge', 'v2-keyed'];

function recorded(names?: string[]) {
  return readdirSync(HISTORIES)
    .filter((f) => f.endsWith('.json'))
    .map((f) => f.slice(0, -'.json'.length))
    .filter((name) => !names || names.includes(name))
    .sort()
    .map((name) => ({ workflowId: name, history: historyFromJSON(JSON.parse(readFileSync(join(HISTORIES, `${name}.json`), 'utf8'))) }));
}

/** The sinks workers register (none is called while replaying; unregistered ones would be logged). */
const SINKS = {
  answers: { settled: { fn: () => undefined } },
  metrics: { requestEnded: { fn: () => undefined }, keyBudget: { fn: () => undefined } },
  exporter: { export: { fn: () => undefined } },
};

async function replay(bundle: WorkflowBundleWithSourceMap, names?: string[]): Promise<ReplayResult[]> {
  const results: ReplayResult[] = [];
  for await (const r of Worker.runReplayHistories({ workflowBundle: bundle, sinks: SINKS }, recorded(names))) results.push(r);
  return results;
}

describe('recorded histories replay against the current workflow code', () => {
  test('every scenario has a recorded history', () => {
    const names = recorded().map((h) => h.workflowId);
    for (const s of SCENARIOS) assert.ok(names.includes(s), `test/histories/${s}.json is missing (npm run record-histories)`);
  });

  test('every history in test/histories replays without a determinism error', async () => {
    const results = await replay(await workflowBundle());
    assert.deepEqual(results.map((r) => r.workflowId), recorded().map((h) => h.workflowId), 'one result per file');
    assert.deepEqual(
      results.filter((r) => r.error).map((r) => `${r.workflowId}: ${r.error!.message}`),
      [],
    );
  });
});

describe('turning tracing on keeps in-flight executions running', () => {
  // Tracing compiles Temporal's OpenTelemetry interceptors into the bundle; a deployment that turns
  // it on restarts its workers with executions in flight, recorded without them.
  test('every history in test/histories replays against the tracing bundle', async () => {
    const results = await replay(await tracingWorkflowBundle());
    assert.equal(results.length, recorded().length);
    assert.deepEqual(
      results.filter((r) => r.error).map((r) => `${r.workflowId}: ${r.error!.message}`),
      [],
    );
  });
});

describe('the replay check can fail', () => {
  // The change a developer might make: one more timer in the request workflow after planning.
  const ANCHOR = '  const queue = [...plan.targets];\n';
  let dir: string;
  let changed: WorkflowBundleWithSourceMap;
  let patchedChange: WorkflowBundleWithSourceMap;

  /** Bundles a copy of workflows/ whose chat-completion.ts has `insert` before ANCHOR (and `imports` on top). */
  async function bundleVariant(name: string, insert: string, imports = ''): Promise<WorkflowBundleWithSourceMap> {
    const root = join(dir, name);
    cpSync(join(ROOT, 'workflows'), join(root, 'workflows'), { recursive: true });
    // The copy imports ../src and the packages exactly as the original does.
    for (const shared of ['src', 'activities', 'node_modules']) symlinkSync(join(ROOT, shared), join(root, shared), 'dir');
    const file = join(root, 'workflows', 'chat-completion.ts');
    const code = readFileSync(file, 'utf8');
    assert.ok(code.includes(ANCHOR), `the anchor line moved in workflows/chat-completion.ts; update this test: ${JSON.stringify(ANCHOR)}`);
    writeFileSync(file, imports + code.replace(ANCHOR, insert + ANCHOR));
    const out = join(root, 'bundle');
    mkdirSync(out);
    // The project's bundler, in a child process as the worker runs it (webpack's heap stays there).
    const child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'src/worker/workflow-bundle-build.ts'), join(root, 'workflows', 'index.ts'), out], { cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr!.on('data', (b: Buffer) => (stderr += b.toString()));
    const codeOut = await new Promise<number | null>((resolve) => child.once('exit', resolve));
    assert.equal(codeOut, 0, `bundling ${name} failed:\n${stderr}`);
    return { code: readFileSync(join(out, 'workflows.js'), 'utf8'), sourceMap: readFileSync(join(out, 'workflows.js.map'), 'utf8') };
  }

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'keel-replay-'));
    [changed, patchedChange] = await Promise.all([
      bundleVariant('changed', '  await sleep(10);\n'),
      bundleVariant('patched', "  if (patched('replay-check-extra-timer')) await sleep(10);\n", "import { patched } from '@temporalio/workflow';\n"),
    ]);
  });

  after(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('an extra timer in the request workflow is a determinism violation for every recorded request', async () => {
    const results = await replay(changed, REQUEST_SCENARIOS);
    assert.equal(results.length, REQUEST_SCENARIOS.length);
    for (const r of results) {
      assert.ok(r.error, `${r.workflowId} replayed although the workflow now starts a timer it did not`);
      assert.ok(r.error instanceof DeterminismViolationError, `${r.workflowId}: ${String(r.error)}`);
      // A history of local calls meets the timer where it expects their markers.
      assert.match(r.error.message, /Nondeterminism error: (Timer machine|Missing associated machine for LocalActivity)/, `${r.workflowId}: ${r.error.message}`);
    }
  });

  test('the same change behind patched() replays the recorded histories', async () => {
    const results = await replay(patchedChange);
    assert.deepEqual(
      results.filter((r) => r.error).map((r) => `${r.workflowId}: ${r.error!.message}`),
      [],
    );
  });
});

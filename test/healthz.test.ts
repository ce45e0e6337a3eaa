// GET /healthz of a gateway (`npm run gateway`, the API of docker-compose.yml and `npm run cluster`)
// when Temporal goes away: a prompt 503 `temporal_unreachable`, not a wait on the client's retries.
// A gateway's API runs on the worker's native connection, whose retries outlast the probe's
// deadline; the probe bounds its own wait.
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { startFakeProvider, type FakeProvider } from '../dev/fakes/index.js';
import { freePort, spawnEntry } from './helpers/processes.js';
import { startTemporal } from './helpers/temporal.js';

const children: ChildProcess[] = [];
let fake: FakeProvider | undefined;

after(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  await fake?.close();
});

test('a gateway answers /healthz within its 3 s bound (tolerance 2 s) with 503 temporal_unreachable once Temporal is gone', { timeout: 300_000 }, async () => {
  const env = await startTemporal();
  let tornDown = false;
  try {
    fake = await startFakeProvider({ type: 'openai' });
    const configPath = join(mkdtempSync(join(tmpdir(), 'keel-healthz-')), 'keel.yaml');
    writeFileSync(configPath, `providers:\n  a: { type: openai, baseURL: ${fake.url} }\nmodels:\n  chat: { targets: [a/m] }\n`);
    const port = await freePort();
    await spawnEntry('src/bin/gateway.ts', /keel gateway listening/, { KEEL_CONFIG: configPath, TEMPORAL_ADDRESS: env.address, KEEL_TASK_QUEUE: `keel-healthz-${process.pid}`, PORT: String(port) }, children);
    const url = `http://127.0.0.1:${port}/healthz`;
    const up = await fetch(url);
    assert.equal(up.status, 200, await up.text());

    await env.teardown();
    tornDown = true;
    for (let i = 0; i < 2; i++) {
      const started = performance.now();
      const down = await fetch(url);
      const ms = performance.now() - started;
      const body = (await down.json()) as { temporal: string; error?: { code: string } };
      assert.equal(down.status, 503);
      assert.equal(body.temporal, 'unreachable');
      assert.equal(body.error?.code, 'temporal_unreachable');
      assert.ok(ms < 5_000, `answered in ${ms.toFixed(0)} ms`);
    }
  } finally {
    if (!tornDown) await env.teardown();
  }
});

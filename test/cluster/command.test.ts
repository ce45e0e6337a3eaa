// `npm run cluster` as a user runs it: it prints where everything is, answers through each API it
// lists, and Ctrl-C stops every process it started (PostgreSQL, the Temporal server, the roles).
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { freeLowPorts } from '../../src/temporal/ports.js';
import { callJson } from '../helpers/http.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'keel-cluster-command-'));
// Run as root, PostgreSQL runs as another user, who must pass through this folder to its data.
chmodSync(dir, 0o711);
after(() => rmSync(dir, { recursive: true, force: true }));

/** Processes whose command line mentions `text` (this machine may run other developers' clusters). */
function processesMentioning(text: string): number[] {
  return readdirSync('/proc')
    .filter((p) => /^\d+$/.test(p))
    .filter((p) => {
      try {
        return readFileSync(`/proc/${p}/cmdline`, 'utf8').includes(text);
      } catch {
        return false;
      }
    })
    .map(Number);
}

test('npm run cluster: prints the topology, answers on both APIs, Ctrl-C stops everything', { timeout: 600_000 }, async () => {
  const [temporalPort] = await freeLowPorts(1);
  // Two consecutive API ports: the command gives API i the port --api-port + i. Below the range
  // Keel's own processes pick free ports from (20000-31999: src/temporal/ports.ts), as a user's
  // --api-port 3000 is: one of them cannot take the second port before the second API binds it.
  const base = await (async () => {
    for (;;) {
      const p = 10_000 + Math.floor(Math.random() * 9_000);
      const { createServer } = await import('node:net');
      const free = (port: number) =>
        new Promise<boolean>((r) => {
          const s = createServer().once('error', () => r(false));
          s.listen(port, '127.0.0.1', () => s.close(() => r(true)));
        });
      if ((await free(p)) && (await free(p + 1))) return p;
    }
  })();
  const data = join(dir, 'data');
  const { KEEL_ADMIN_KEY: _unset, ...parentEnv } = process.env;
  const child = spawn('npm', ['run', 'cluster', '--', '--data-dir', data, '--api-port', String(base), '--temporal-port', String(temporalPort)], {
    cwd: ROOT,
    env: parentEnv,
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  let out = '';
  child.stdout!.on('data', (b: Buffer) => (out += b.toString()));
  child.stderr!.on('data', (b: Buffer) => (out += b.toString()));
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  try {
    const deadline = Date.now() + 480_000;
    while (!out.includes('Press Ctrl-C to stop.')) {
      if (child.exitCode !== null) throw new Error(`npm run cluster exited:\n${out}`);
      if (Date.now() > deadline) throw new Error(`npm run cluster not up in time:\n${out}`);
      await new Promise((r) => setTimeout(r, 500));
    }
    assert.match(out, /Keel cluster is running \(2 APIs, each with a worker of its own, and 2 workers\)/);
    for (const port of [base, base + 1]) assert.match(out, new RegExp(`api-\\d +http://127\\.0\\.0\\.1:${port}/v1`));
    assert.match(out, new RegExp(`Temporal +127\\.0\\.0\\.1:${temporalPort} +namespace default +\\(PostgreSQL 127\\.0\\.0\\.1:\\d+\\)`));
    assert.match(out, /deploy\/keel\.production\.yaml; server: deploy\/temporal\/config\.yaml, \S+deploy\/temporal\/dynamicconfig\.yaml/);
    // The production config requires keys: the runner made an admin key and says where it is.
    const keyFile = join(data, 'secrets.json');
    assert.match(out, new RegExp(`admin key +KEEL_ADMIN_KEY in ${keyFile.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`));
    const admin = (JSON.parse(readFileSync(keyFile, 'utf8')) as Record<string, string>).KEEL_ADMIN_KEY;
    assert.ok(!out.includes(admin), 'the key itself is never printed');
    for (const port of [base, base + 1]) {
      const open = await callJson(`http://127.0.0.1:${port}`, 'POST', '/v1/chat/completions', { model: 'chat', messages: [{ role: 'user', content: 'Hello' }] });
      assert.equal(open.res.status, 401, 'no key, no answer');
      const { res, json } = await callJson(`http://127.0.0.1:${port}`, 'POST', '/v1/chat/completions', { model: 'chat', messages: [{ role: 'user', content: 'Hello' }] }, { authorization: `Bearer ${admin}` });
      assert.equal(res.status, 200, JSON.stringify(json));
      assert.equal(res.headers.get('x-keel-provider'), 'openai', "the production config's first target, pointed at a fake");
      // The 2 APIs (each with a worker of its own) and the 2 workers poll; the server counts what
      // the queue's root partition sees, so some of the 4 (README, "Health").
      const health = await callJson(`http://127.0.0.1:${port}`, 'GET', '/healthz');
      assert.equal(health.res.status, 200);
      assert.ok(health.json.workers >= 1 && health.json.workers <= 4, `${health.json.workers} polling`);
    }
    assert.ok(processesMentioning(data).length >= 1, 'PostgreSQL runs on the data folder');

    // Ctrl-C: the terminal signals the foreground process group (npm exits on it at once; the
    // runner stops everything, then says so).
    process.kill(-child.pid!, 'SIGINT');
    const stopDeadline = Date.now() + 120_000;
    while (!out.includes('keel cluster: stopped') && Date.now() < stopDeadline) await new Promise((r) => setTimeout(r, 250));
    assert.match(out, /keel cluster: stopped/, out.slice(-3_000));
    assert.doesNotMatch(out, /while stopping/, 'stopped without errors');
    await Promise.race([exited, new Promise((r) => setTimeout(r, 10_000))]);
    await new Promise((r) => setTimeout(r, 1_000));
    assert.deepEqual(processesMentioning(data), [], 'no PostgreSQL left on the data folder');
    for (const port of [base, base + 1, temporalPort]) {
      await assert.rejects(fetch(`http://127.0.0.1:${port}/`, { signal: AbortSignal.timeout(2_000) }), `nothing listens on ${port} any more`);
    }
    assert.ok(existsSync(join(data, 'postgres', 'PG_VERSION')), 'the data folder is kept for the next run');
  } finally {
    // A failed run still stops what it started: the roles, the server and PostgreSQL run in process
    // groups of their own, which only the runner's own stop reaches (a SIGKILL of npm leaves them).
    if (!out.includes('keel cluster: stopped')) {
      try {
        process.kill(-child.pid!, 'SIGINT');
      } catch {
        // gone
      }
      const until = Date.now() + 90_000;
      while (!out.includes('keel cluster: stopped') && Date.now() < until) await new Promise((r) => setTimeout(r, 250));
    }
    try {
      process.kill(-child.pid!, 'SIGKILL');
    } catch {
      // stopped
    }
  }
});

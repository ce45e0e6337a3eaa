// Configuration: the documented shape loads; every mistake names its field and the process exits non-zero.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { ConfigError, loadConfig, parseConfig } from '../src/config/load.js';
import { WORKER_PROCESS_ENV } from '../src/worker/process-env.js';

const ISSUE_EXAMPLE = `
providers:
  alpha:
    type: openai
    baseURL: http://127.0.0.1:9101/v1
    apiKey: \${ALPHA_KEY}
  beta:
    type: anthropic
    baseURL: http://127.0.0.1:9102
models:
  chat:
    targets: [alpha/model-a, beta/model-b]
`;

test('the documented example loads, with environment substitution', () => {
  const config = parseConfig(ISSUE_EXAMPLE, { ALPHA_KEY: 'sk-test-123' });
  assert.equal(config.providers.alpha.apiKey, 'sk-test-123');
  assert.deepEqual(config.routing.models.chat.targets, ['alpha/model-a', 'beta/model-b']);
  assert.equal(config.port, 3000);
  // The workflow-facing view never holds a key.
  assert.ok(!JSON.stringify(config.routing).includes('sk-test-123'));
});

test('the default keel.config.yaml loads without any environment', () => {
  const config = loadConfig('keel.config.yaml', {});
  assert.ok(Object.keys(config.providers).length >= 3);
  assert.ok(config.routing.models.chat);
});

function configError(yaml: string, env: NodeJS.ProcessEnv = { ALPHA_KEY: 'k' }): string {
  try {
    parseConfig(yaml, env);
  } catch (err) {
    assert.ok(err instanceof ConfigError, String(err));
    return err.message;
  }
  assert.fail('expected a ConfigError');
}

test('errors name the offending field', () => {
  assert.match(configError(ISSUE_EXAMPLE, {}), /ALPHA_KEY is not set/);
  assert.match(configError(ISSUE_EXAMPLE.replace('type: openai', 'type: cohere')), /providers\.alpha\.type/);
  assert.match(configError(ISSUE_EXAMPLE.replace('http://127.0.0.1:9101/v1', 'not a url'), { ALPHA_KEY: 'k' }), /providers\.alpha\.baseURL/);
  assert.match(configError(ISSUE_EXAMPLE.replace('beta/model-b', 'omega/model-b'), { ALPHA_KEY: 'k' }), /models\.chat\.targets\.1: unknown provider "omega"/);
  assert.match(configError(ISSUE_EXAMPLE.replace('targets: [alpha/model-a, beta/model-b]', 'targets: [model-a]'), { ALPHA_KEY: 'k' }), /models\.chat\.targets\.0/);
  assert.match(configError(`${ISSUE_EXAMPLE}\nbogus: 1\n`, { ALPHA_KEY: 'k' }), /bogus/);
  assert.match(configError('providers: [1, 2'), /not valid YAML/);
  assert.match(configError('models: {}'), /providers/);
});

test('a bad configuration makes the API exit non-zero with the field in the message, and no key printed', () => {
  const dir = mkdtempSync(join(tmpdir(), 'keel-config-'));
  const path = join(dir, 'bad.yaml');
  writeFileSync(path, ISSUE_EXAMPLE.replace('type: anthropic', 'type: nope'));
  const run = spawnSync(process.execPath, ['--import', 'tsx', 'src/bin/api.ts'], {
    env: { ...process.env, KEEL_CONFIG: path, ALPHA_KEY: 'sk-secret-value-1234', TEMPORAL_ADDRESS: '127.0.0.1:1' },
    encoding: 'utf8',
    timeout: 60_000,
  });
  assert.equal(run.status, 1);
  assert.match(run.stderr, /providers\.beta\.type/);
  assert.ok(!run.stderr.includes('sk-secret-value-1234') && !run.stdout.includes('sk-secret-value-1234'));
});

test('a missing configuration file is a clear error', () => {
  assert.throws(() => loadConfig('/nonexistent/keel.yaml', {}), /cannot read configuration: ENOENT/);
});

test('`npm run worker` launches the worker with the memory settings the tests and benchmarks use', () => {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { scripts: Record<string, string> };
  const script = pkg.scripts.worker;
  assert.ok(script.includes(`MALLOC_ARENA_MAX=${WORKER_PROCESS_ENV.MALLOC_ARENA_MAX} `), script);
  assert.ok(script.includes(`$NODE_OPTIONS ${WORKER_PROCESS_ENV.NODE_OPTIONS}`), script);
  assert.ok(script.endsWith('tsx src/bin/worker.ts'), script);
});

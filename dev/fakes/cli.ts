// Runs one fake provider until SIGINT/SIGTERM, for the demo and for benchmarks in other processes
// (which then steer it through its /__fake control routes).
//   tsx dev/fakes/cli.ts --type openai --port 9101 [--latency-ms 50] [--jitter-ms 20] [--host 127.0.0.1] [--require-api-key KEY]
// Prints the SDK base URL alone on stdout, so a launcher can read it.

import { parseArgs } from 'node:util';
import { startFakeProvider } from './fake-provider.js';
import type { FakeModelBehaviour } from './behaviour.js';
import type { FakeProviderType } from './wire.js';
import { PROVIDER_TYPES } from '../../src/config/schema.js';

const USAGE =
  'usage: tsx dev/fakes/cli.ts --type openai|anthropic|gemini [--port N] [--host H] [--latency-ms N] [--jitter-ms N] [--require-api-key KEY]';
const TYPES: readonly FakeProviderType[] = PROVIDER_TYPES;

function fail(message: string): never {
  process.stderr.write(`${message}\n${USAGE}\n`);
  process.exit(2);
}

function nonNegative(name: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isFinite(n) || n < 0) fail(`--${name} must be a non-negative number, got ${value}`);
  return n;
}

let values;
try {
  ({ values } = parseArgs({
    options: {
      type: { type: 'string' },
      port: { type: 'string' },
      host: { type: 'string' },
      'latency-ms': { type: 'string' },
      'jitter-ms': { type: 'string' },
      'require-api-key': { type: 'string' },
    },
    strict: true,
  }));
} catch (err) {
  fail(err instanceof Error ? err.message : String(err));
}

const type = values.type as FakeProviderType | undefined;
if (!type || !TYPES.includes(type)) fail(`--type must be one of ${TYPES.join(', ')}`);
const latencyMs = nonNegative('latency-ms', values['latency-ms']);
const jitterMs = nonNegative('jitter-ms', values['jitter-ms']);
const behaviours: Record<string, FakeModelBehaviour> =
  latencyMs === undefined && jitterMs === undefined ? {} : { '*': { latency: { baseMs: latencyMs ?? 0, jitterMs: jitterMs ?? 0 } } };

const fake = await startFakeProvider({
  type,
  port: nonNegative('port', values.port) ?? 0,
  ...(values.host !== undefined ? { host: values.host } : {}),
  ...(values['require-api-key'] !== undefined ? { requireApiKey: values['require-api-key'] } : {}),
  behaviours,
});
process.stdout.write(`${fake.url}\n`);

const stop = (): void => {
  fake.close().then(
    () => process.exit(0),
    () => process.exit(1),
  );
};
process.once('SIGINT', stop);
process.once('SIGTERM', stop);

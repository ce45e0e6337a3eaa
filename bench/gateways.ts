// Keel against its peers and its floors, in one run, against one 0 ms OpenAI-compatible fake:
// a direct call; Keel as `npm start` runs it and as the api + worker split; LiteLLM's proxy and
// Portkey's gateway (installed by the bench into .keel/bench/ on first run); and the bare-Temporal
// floors (bench/floor-workflows.ts, in this process). Latency: sequential requests, interleaved
// in rounds so load drift hits every target alike. Throughput: requests/s at 8 and 64 concurrent
// clients, each target for a bounded count and time, interleaved too.
//
//   npx tsx bench/gateways.ts [--n 200] [--concurrency 8,64] [--seconds 8] [--max-requests 4000]
//     [--rounds 2] [--only keel,peers,floors | ids] [--no-throughput] [--no-latency] [--fake-latency-ms 0]
// (or N=, CONCURRENCY=, BENCH_SECONDS=, ONLY= in the environment). `npm run bench:gateways` runs it.
// Writes bench/results/gateways.json (gateways-fake-<N>ms.json when the fake takes N ms to answer).
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { startDevServer } from '../src/temporal/dev-server.js';
import { ensureTemporalCli } from '../src/temporal/cli.js';
import { installRuntime } from '../src/worker/temporal-runtime.js';
import { freePort } from '../test/helpers/processes.js';
import { registerStop, runBench, stopAll, stopChildrenOnExit } from './gateways/children.js';
import { groupPids } from './gateways/cpu.js';
import { startExternalFake } from './gateways/fake.js';
import { ANSWER_AHEAD, FLOORS, startFloors, type FloorName } from './gateways/floors.js';
import { startKeelNpmStart, startKeelSplit } from './gateways/keel.js';
import { ensureLiteLLM, LITELLM_VERSION, startLiteLLM, type RunningPeer } from './gateways/litellm.js';
import { ROOT } from './gateways/paths.js';
import { ensurePortkey, PORTKEY_VERSION, startPortkey } from './gateways/portkey.js';
import { checkAnswer, httpTarget, latencySummary, log, markdownTables, measureLatency, measureThroughput, MESSAGES, REQUEST_TIMEOUT_MS, throughputSummary, withTimeout, type Target } from './gateways/measure.js';
import { writeResults } from './stats.js';

const { values: flags } = parseArgs({
  options: {
    n: { type: 'string' },
    warmup: { type: 'string' },
    batch: { type: 'string' },
    concurrency: { type: 'string' },
    seconds: { type: 'string' },
    'max-requests': { type: 'string' },
    rounds: { type: 'string' },
    only: { type: 'string' },
    'no-throughput': { type: 'boolean' },
    'no-latency': { type: 'boolean' },
    'fake-latency-ms': { type: 'string' },
  },
  strict: true,
});
const num = (flag: string | undefined, env: string | undefined, fallback: number, min: 'positive' | 'zero' = 'positive') => {
  const v = Number(flag ?? env ?? fallback);
  if (!Number.isFinite(v) || v < 0 || (min === 'positive' && v === 0)) throw new Error(`not a ${min === 'positive' ? 'positive' : 'non-negative'} number: ${flag ?? env}`);
  return v;
};
const OPTS = {
  n: num(flags.n, process.env.N, 200),
  warmup: num(flags.warmup, process.env.WARMUP, 20),
  /** Sequential requests per target per round. */
  batch: num(flags.batch, undefined, 10),
  concurrency: (flags.concurrency ?? process.env.CONCURRENCY ?? '8,64').split(',').map((c) => num(c, undefined, 1)),
  seconds: num(flags.seconds, process.env.BENCH_SECONDS, 8),
  maxRequests: num(flags['max-requests'], undefined, 4000),
  rounds: num(flags.rounds, undefined, 2),
  only: (flags.only ?? process.env.ONLY ?? 'all').split(',').map((s) => s.trim()),
  latency: !flags['no-latency'],
  /** How long the fake takes to answer: 0 measures the gateways' own cost; a provider's generation time shows what of it overlaps the call. */
  fakeLatencyMs: num(flags['fake-latency-ms'], undefined, 0, 'zero'),
  throughput: !flags['no-throughput'],
};
const GROUPS: Record<string, string[]> = {
  keel: ['keel-start', 'keel-start-call', 'keel-start-recorded', 'keel-split'],
  peers: ['litellm', 'portkey'],
  floors: Object.keys(FLOORS),
};
const KNOWN = ['all', 'direct', ...Object.keys(GROUPS), ...Object.values(GROUPS).flat()];
for (const id of OPTS.only) if (!KNOWN.includes(id)) throw new Error(`--only: unknown target ${id}; one of ${KNOWN.join(', ')}`);
const wanted = (id: string) =>
  id === 'direct' || OPTS.only.includes('all') || OPTS.only.includes(id) || Object.entries(GROUPS).some(([g, ids]) => OPTS.only.includes(g) && ids.includes(id));

const LABELS: Record<string, string> = {
  direct: 'direct call (openai SDK → fake)',
  'keel-start': 'Keel, `npm start` (one process + its dev server)',
  'keel-start-call': 'Keel, `npm start`, a model set to `answer: call`',
  'keel-start-recorded': 'Keel, `npm start`, a model set to `answer: recorded`',
  'keel-split': 'Keel, `npm run api` + `npm run worker`',
  litellm: `LiteLLM proxy ${LITELLM_VERSION} (1 worker)`,
  portkey: `Portkey gateway ${PORTKEY_VERSION}`,
  ...Object.fromEntries(Object.entries(FLOORS).map(([id, label]) => [id, `floor: ${label}`])),
};

// ---- the run --------------------------------------------------------------------------------

function commandVersion(cmd: string, args: string[]): string | undefined {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', cwd: ROOT, timeout: 30_000 }).trim();
  } catch {
    return undefined;
  }
}


async function main() {
  stopChildrenOnExit();
  // No SDK metrics exporter: the floors measured here run without one.
  await installRuntime({ metrics: false });
  const work = mkdtempSync(join(tmpdir(), 'keel-bench-gateways-'));
  // Registered first, so removed last, also when Ctrl-C ends the run.
  const removeWork = () => rmSync(work, { recursive: true, force: true });
  registerStop('temp folder', () => [], async () => removeWork(), removeWork);
  const unavailable: Record<string, string> = {};
  const versions: Record<string, string | undefined> = {
    keelCommit: commandVersion('git', ['rev-parse', '--short', 'HEAD']),
    temporalCli: commandVersion(ensureTemporalCli(), ['--version']),
  };
  const loadAtStart = loadavg();
  const startedAt = new Date().toISOString();
  try {
    // Installs first: a refusal is known before anything else starts.
    if (wanted('litellm')) versions.litellm = await ensureLiteLLM(log).catch((err) => void (unavailable.litellm = `install failed: ${(err as Error).message}`));
    if (wanted('portkey')) versions.portkey = await ensurePortkey(log).catch((err) => void (unavailable.portkey = `install failed: ${(err as Error).message}`));

    const fake = await startExternalFake(OPTS.fakeLatencyMs);
    log(`fake provider at ${fake.url}${OPTS.fakeLatencyMs > 0 ? `, answering after ${OPTS.fakeLatencyMs} ms` : ''}`);
    // Every target's CPU count includes the client (this process) and the fake.
    const common = () => [process.pid, ...groupPids(fake.child.pid)];
    const targets: Target[] = [httpTarget('direct', fake.url, 'm', { cpuPids: common })];

    let floorsEager: { asked: number; granted: number } | undefined;
    const needServer = wanted('keel-split') || Object.keys(FLOORS).some(wanted);
    if (needServer) {
      // One dev server with Keel's settings (SQLite in WAL mode in a temp folder) for the split
      // and the floors.
      const server = await startDevServer({ dataDir: join(work, 'temporal'), port: await freePort(), headless: true });
      registerStop('dev server (split, floors)', () => [server.process.pid!], () => server.stop());
      log(`dev server for the split and the floors at ${server.address}`);
      const floorIds = (Object.keys(FLOORS) as FloorName[]).filter(wanted);
      if (floorIds.length > 0) {
        const floors = await startFloors(server.address, fake.url);
        registerStop('floors worker', () => [], () => floors.stop());
        floorsEager = floors.eager;
        const body = { model: 'm', messages: MESSAGES };
        for (const id of floorIds) {
          targets.push({
            id,
            // The floors' worker runs in this process.
            cpuPids: () => [...common(), server.process.pid!],
            serverPids: () => [server.process.pid!],
            async call() {
              const result = await withTimeout(floors.call[id](body), REQUEST_TIMEOUT_MS, id);
              if (id !== 'floor-start') checkAnswer(id, result);
            },
            ...(ANSWER_AHEAD.has(id) && { drain: () => withTimeout(floors.drainStarted(), 120_000, `${id}: the started workflows`) }),
          });
        }
      }
      if (wanted('keel-split')) {
        log('starting Keel split (npm run worker + npm run api) ...');
        const split = await startKeelSplit(fake.url, work, server.address);
        targets.push(
          httpTarget('keel-split', split.baseURL, 'chat', { cpuPids: () => [...common(), server.process.pid!, ...split.roles.map((r) => r.pid)], serverPids: () => [server.process.pid!] }),
        );
      }
    }
    const answerPoints = { 'keel-start': ['chat', ['early']], 'keel-start-call': ['chat-call', ['call', 'early']], 'keel-start-recorded': ['chat-recorded', ['recorded']] } as const;
    if (Object.keys(answerPoints).some(wanted)) {
      log('starting Keel with npm start ...');
      const keel = await startKeelNpmStart(fake.url, work);
      // One process for its three answer points (the same target, a model each); npm, tsx, node and
      // the dev server it runs: one process group.
      for (const [id, [model, answeredAt]] of Object.entries(answerPoints)) {
        if (!wanted(id)) continue;
        targets.push(httpTarget(id, keel.baseURL, model, { answeredAt, cpuPids: () => [...common(), ...groupPids(keel.child.pid)], serverPids: () => groupPids(keel.child.pid, 'temporal') }));
      }
    }
    const peers: [string, () => Promise<RunningPeer>][] = [
      ['litellm', () => startLiteLLM(fake.url, work)],
      ['portkey', () => startPortkey(fake.url)],
    ];
    for (const [id, start] of peers) {
      if (!wanted(id) || unavailable[id]) continue;
      log(`starting ${id} ...`);
      try {
        const peer = await start();
        targets.push(httpTarget(id, peer.baseURL, peer.model, { apiKey: peer.apiKey, headers: peer.headers, cpuPids: () => [...common(), ...groupPids(peer.child.pid)] }));
      } catch (err) {
        unavailable[id] = `start failed: ${(err as Error).message.slice(0, 2_000)}`;
      }
    }
    for (const [id, why] of Object.entries(unavailable)) log(`NOT MEASURED: ${id}: ${why}`);

    // Every target answers a chat completion through the fake before anything is measured.
    for (const t of targets) await t.call();
    log(`measuring ${targets.map((t) => t.id).join(', ')}`);

    // Keel's answer points, counted per phase (warm-up calls included in the latency phase's).
    const answeredAt = () => Object.fromEntries(targets.filter((t) => t.answeredAt).map((t) => [t.id, { ...t.answeredAt }]));
    const latency = OPTS.latency ? await measureLatency(targets, OPTS) : undefined;
    const answeredInLatency = answeredAt();
    const throughput = OPTS.throughput ? await measureThroughput(targets, OPTS) : undefined;
    const answeredInAll = answeredAt();

    const latencyOut = latency && latencySummary(latency, LABELS);
    const throughputOut = throughput && throughputSummary(throughput);
    const ratios: Record<string, Record<string, number>> = {};
    if (throughputOut) {
      for (const [c, byTarget] of Object.entries(throughputOut)) {
        const rps = (id: string) => byTarget[id]?.requestsPerS;
        ratios[c] = {};
        for (const keel of ['keel-start', 'keel-start-call', 'keel-start-recorded', 'keel-split']) {
          for (const other of ['litellm', 'portkey', 'floor-eager-local', 'floor-start-call']) {
            if (rps(keel) && rps(other)) ratios[c][`${keel}/${other}`] = +(rps(keel)! / rps(other)!).toFixed(2);
          }
        }
      }
    }
    const results = {
      command: `npx tsx bench/gateways.ts ${process.argv.slice(2).join(' ')}`.trim(),
      startedAt,
      options: OPTS,
      versions,
      loadAverage: { atStart: loadAtStart.map((x) => +x.toFixed(2)), atEnd: loadavg().map((x) => +x.toFixed(2)) },
      ...(Object.keys(unavailable).length > 0 && { notMeasured: unavailable }),
      ...(floorsEager && { eagerStarts: floorsEager }),
      answeredAt: { latencyPhase: answeredInLatency, bothPhases: answeredInAll },
      latency: latencyOut,
      throughput: throughputOut,
      throughputRatios: ratios,
    };
    console.log(JSON.stringify(results, null, 2));
    log(`written to ${writeResults(OPTS.fakeLatencyMs > 0 ? `gateways-fake-${OPTS.fakeLatencyMs}ms` : 'gateways', results)}`);

    console.error(`\n${markdownTables(targets.map((t) => t.id), LABELS, latencyOut, throughputOut)}\n`);
    for (const [id, why] of Object.entries(unavailable)) console.error(`NOT MEASURED: ${LABELS[id]}: ${why.split('\n')[0]}`);
  } finally {
    await stopAll();
    rmSync(work, { recursive: true, force: true });
  }
}

runBench(main);

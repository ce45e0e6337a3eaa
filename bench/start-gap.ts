// Why `npm start` adds more than bench/overhead.ts: the same one-target Keel in each shape between
// the two, measured in one run, interleaved, against 0 ms fakes, so each step's cost shows.
//
//   overhead.ts: worker + API in the bench process (test/helpers/temporal.ts), an in-memory dev
//                server without UI, the fake in the same process;
//   npm start:   src/bin/start.ts in a process of its own (npm → tsx → node), its own dev server
//                with SQLite on disk (WAL) and the UI, the fake in another process.
//
// Variants (--only a,b,... picks some; `inproc-mem` and `npm-start` are the two ends):
//   inproc-mem          overhead.ts exactly: in-process Keel, in-memory server, in-process fake
//   inproc-mem-extfake  the same, calling the external fake
//   child-mem           src/bin/start.ts as a child (node --import tsx) on that in-memory server
//   child-disk          start.ts child on a dev server with SQLite on disk, headless
//   child-disk-ui       start.ts child on a dev server with SQLite on disk and the UI
//   inproc-disk-ui      in-process Keel on that same disk + UI server
//   node-start          `node --import tsx src/bin/start.ts` with its own dev server
//   npm-start           `npm start` as a user runs it
//   npm-start-quickstart `npm start` with keel.config.yaml's three providers and models pointed at
//                       the external fake (several providers, health publishing for each)
//   npm-start-used      `npm start` whose data folder already holds --prefill requests (2,000 by
//                       default; the quick start keeps .keel/temporal.sqlite across runs)
//
//   npx tsx bench/start-gap.ts [--n 200] [--only ...]   → bench/results/start-gap.json
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import OpenAI from 'openai';
import { parse, stringify } from 'yaml';
import { startFakeProvider } from '../dev/fakes/index.js';
import { startDevServer } from '../src/temporal/dev-server.js';
import { freePort } from '../test/helpers/processes.js';
import { startKeel, startTemporal } from '../test/helpers/temporal.js';
import { registerStop, runBench, stopAll, stopChildrenOnExit } from './gateways/children.js';
import { childPids, groupPids } from './gateways/cpu.js';
import { startExternalFake } from './gateways/fake.js';
import { oneTargetConfig, startKeelNpmStart } from './gateways/keel.js';
import { hopBreakdown } from './gateways/histories.js';
import { httpTarget, latencySummary, log, markdownTables, measureLatency, type Target } from './gateways/measure.js';
import { ROOT } from './gateways/paths.js';
import { pool, writeResults } from './stats.js';

const VARIANTS = {
  'inproc-mem': 'in-process Keel, in-memory server, in-process fake (bench/overhead.ts)',
  'inproc-mem-extfake': 'in-process Keel, in-memory server, external fake',
  'child-mem': 'start.ts child, in-memory server (headless)',
  'child-disk': 'start.ts child, SQLite on disk (WAL), headless',
  'child-disk-ui': 'start.ts child, SQLite on disk (WAL) + UI',
  'inproc-disk-ui': 'in-process Keel, SQLite on disk (WAL) + UI',
  'node-start': '`node --import tsx src/bin/start.ts`, its own server',
  'npm-start': '`npm start`, its own server',
  'npm-start-quickstart': '`npm start`, keel.config.yaml (3 providers) → external fake',
  'npm-start-used': '`npm start`, data folder already holding --prefill requests',
} as const;
type Variant = keyof typeof VARIANTS;
const DEFAULT: Variant[] = ['inproc-mem', 'inproc-mem-extfake', 'child-mem', 'child-disk', 'child-disk-ui', 'inproc-disk-ui', 'node-start', 'npm-start'];

const { values: flags } = parseArgs({ options: { n: { type: 'string' }, warmup: { type: 'string' }, only: { type: 'string' }, 'no-histories': { type: 'boolean' }, prefill: { type: 'string' } }, strict: true });
const only = (flags.only ?? DEFAULT.join(',')).split(',').map((s) => s.trim()) as Variant[];
for (const v of only) if (!(v in VARIANTS)) throw new Error(`--only: unknown variant ${v}; one of ${Object.keys(VARIANTS).join(', ')}`);
const OPTS = { n: Number(flags.n ?? process.env.N ?? 200), warmup: Number(flags.warmup ?? 20), batch: 10, concurrency: [], seconds: 0, maxRequests: 0, rounds: 0 };
const LABELS: Record<string, string> = { direct: 'direct call to the external fake', 'direct-inproc': 'direct call to the in-process fake', ...VARIANTS };

/** keel.config.yaml's providers and models, every provider an OpenAI-compatible one at the fake. */
function quickstartConfig(fakeUrl: string): string {
  const raw = parse(readFileSync(join(ROOT, 'keel.config.yaml'), 'utf8')) as { providers: Record<string, Record<string, unknown>>; models: Record<string, { targets: string[] }> };
  const providers = Object.fromEntries(Object.keys(raw.providers).map((name) => [name, { type: 'openai', baseURL: fakeUrl, apiKey: 'bench', models: { m: {} } }]));
  const models = Object.fromEntries(Object.entries(raw.models).map(([name, m]) => [name, { ...m, targets: m.targets.map((t) => `${t.split('/')[0]}/m`) }]));
  // `chat` is the fallback model the user calls: its first target answers.
  return stringify({ providers, models });
}

async function main() {
  stopChildrenOnExit();
  const work = mkdtempSync(join(tmpdir(), 'keel-bench-start-gap-'));
  // Registered first, so removed last, also when Ctrl-C ends the run.
  const removeWork = () => rmSync(work, { recursive: true, force: true });
  registerStop('temp folder', () => [], async () => removeWork(), removeWork);
  const loadAtStart = loadavg();
  try {
    const fake = await startExternalFake();
    const common = () => [process.pid, ...groupPids(fake.child.pid)];
    const targets: Target[] = [httpTarget('direct', fake.url, 'm', { cpuPids: common })];
    let queue = 0;
    /** Where each variant's request workflows run, to read their histories afterwards. */
    const where: Record<string, { address: string; taskQueue: string }> = {};
    const ownQueue = (yaml: string) => `temporal: { taskQueue: keel-gap-${++queue} }\n${yaml}`;

    const needMem = only.some((v) => ['inproc-mem', 'inproc-mem-extfake', 'child-mem'].includes(v));
    const mem = needMem ? await startTemporal() : undefined;
    if (mem) registerStop('in-memory dev server', () => [], () => mem.teardown());
    const needDiskUi = only.includes('child-disk-ui') || only.includes('inproc-disk-ui');
    const diskUi = needDiskUi ? await startDevServer({ dataDir: join(work, 'disk-ui'), port: await freePort(), uiPort: await freePort() }) : undefined;
    if (diskUi) registerStop('disk + UI dev server', () => [diskUi.process.pid!], () => diskUi.stop());
    const disk = only.includes('child-disk') ? await startDevServer({ dataDir: join(work, 'disk'), port: await freePort(), headless: true }) : undefined;
    if (disk) registerStop('disk dev server', () => [disk.process.pid!], () => disk.stop());

    // The in-memory server is the Temporal CLI the SDK started as a child of this process.
    const memPid = mem ? childPids(process.pid, 'temporal').filter((pid) => pid !== disk?.process.pid && pid !== diskUi?.process.pid) : [];
    const memServerPids = () => memPid;
    /** The Temporal server's pid, where one is a process of this bench's (not the in-memory one's, which the SDK runs). */
    const serverPids = (address: string) => [disk, diskUi].filter((s) => s?.address === address).map((s) => s!.process.pid!);
    const inProcess = async (id: string, address: string, fakeUrl: string) => {
      const keel = await startKeel({ address } as TestWorkflowEnvironment, oneTargetConfig(fakeUrl));
      where[id] = { address, taskQueue: keel.config.taskQueue };
      registerStop(id, () => [], () => keel.stop());
      const server = () => [...serverPids(address), ...(address === mem?.address ? memServerPids() : [])];
      targets.push(httpTarget(id, `${keel.url}/v1`, 'chat', { cpuPids: () => [...common(), ...server()], serverPids: server }));
    };
    const child = async (id: string, opts: Parameters<typeof startKeelNpmStart>[2], address?: string) => {
      log(`starting ${id} ...`);
      const keel = await startKeelNpmStart(fake.url, work, { label: id, ...opts });
      where[id] = { address: keel.temporalAddress, taskQueue: /taskQueue: (keel-gap-\d+)/.exec(opts?.config ?? '')?.[1] ?? 'keel-requests' };
      // Its own dev server is in its process group; a shared one is not.
      const server = () => (address ? [...serverPids(address), ...(address === mem?.address ? memServerPids() : [])] : groupPids(keel.child.pid, 'temporal'));
      targets.push(httpTarget(id, keel.baseURL, 'chat', { cpuPids: () => [...new Set([...common(), ...groupPids(keel.child.pid), ...server()])], serverPids: server }));
      return keel;
    };
    const startTs: [string, ...string[]] = [process.execPath, '--import', 'tsx', 'src/bin/start.ts'];

    for (const v of only) {
      switch (v) {
        case 'inproc-mem': {
          const inproc = await startFakeProvider({ type: 'openai' });
          registerStop('in-process fake', () => [], () => inproc.close());
          targets.push(httpTarget('direct-inproc', inproc.url, 'm', { cpuPids: common }));
          await inProcess(v, mem!.address, inproc.url);
          break;
        }
        case 'inproc-mem-extfake':
          await inProcess(v, mem!.address, fake.url);
          break;
        case 'child-mem':
          await child(v, { command: startTs, env: { TEMPORAL_ADDRESS: mem!.address }, config: ownQueue(oneTargetConfig(fake.url)) }, mem!.address);
          break;
        case 'child-disk':
          await child(v, { command: startTs, env: { TEMPORAL_ADDRESS: disk!.address }, config: ownQueue(oneTargetConfig(fake.url)) }, disk!.address);
          break;
        case 'child-disk-ui':
          await child(v, { command: startTs, env: { TEMPORAL_ADDRESS: diskUi!.address }, config: ownQueue(oneTargetConfig(fake.url)) }, diskUi!.address);
          break;
        case 'inproc-disk-ui':
          await inProcess(v, diskUi!.address, fake.url);
          break;
        case 'node-start':
          await child(v, { command: startTs });
          break;
        case 'npm-start':
          await child(v, {});
          break;
        case 'npm-start-used': {
          const keel = await child(v, {});
          const prefill = Number(flags.prefill ?? 2000);
          const client = new OpenAI({ baseURL: keel.baseURL, apiKey: 'bench', maxRetries: 2 });
          const until = Date.now() + 15 * 60_000;
          let done = 0;
          await pool(prefill, 16, async () => {
            if (Date.now() > until) return;
            await client.chat.completions.create({ model: 'chat', messages: [{ role: 'user', content: 'prefill' }] });
            done += 1;
          });
          log(`${v}: prefilled with ${done} requests`);
          break;
        }
        case 'npm-start-quickstart':
          await child(v, { config: quickstartConfig(fake.url) });
          break;
      }
    }
    for (const t of targets) await t.call();
    log(`measuring ${targets.map((t) => t.id).join(', ')}`);
    const latency = latencySummary(await measureLatency(targets, OPTS), LABELS);
    // The measured requests' own histories: the most recent ones of each variant.
    const hops: Record<string, Record<string, number>> = {};
    if (!flags['no-histories']) for (const [id, w] of Object.entries(where)) hops[id] = await hopBreakdown(w.address, w.taskQueue, Math.min(OPTS.n, 100));
    const results = {
      command: `npx tsx bench/start-gap.ts ${process.argv.slice(2).join(' ')}`.trim(),
      options: { n: OPTS.n, warmup: OPTS.warmup, batch: OPTS.batch, variants: only },
      loadAverage: { atStart: loadAtStart.map((x) => +x.toFixed(2)), atEnd: loadavg().map((x) => +x.toFixed(2)) },
      latency,
      historyHopsMsMedian: hops,
    };
    console.log(JSON.stringify(results, null, 2));
    log(`written to ${writeResults('start-gap', results)}`);
    console.error(`\n${markdownTables(targets.map((t) => t.id), LABELS, latency, undefined)}\n`);
    const cols = ['wft1Wait', 'wft1Run', 'activityWait', 'activityRun', 'wft2Wait', 'wft2Run', 'total'];
    console.error(`| variant | ${cols.join(' | ')} |\n| --- |${cols.map(() => ' --- |').join('')}`);
    for (const [id, h] of Object.entries(hops)) console.error(`| ${id} | ${cols.map((c) => h[c]).join(' | ')} |`);
  } finally {
    await stopAll();
    rmSync(work, { recursive: true, force: true });
  }
}

runBench(main);

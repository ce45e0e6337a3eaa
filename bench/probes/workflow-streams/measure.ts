// docs/STREAMING.md, "Where the tokens travel": per-chunk delivery latency of
// @temporalio/workflow-streams (signals in batches, subscribers long-polling an update) against an
// in-process channel (an EventEmitter between the activity and the subscriber), for an activity that
// publishes N chunks D ms apart, on a Temporal dev server with Keel's dynamic config.
//   cd bench/probes/workflow-streams && npm install && TEMPORAL_CLI=<temporal> N=200 GAP=10 npm run measure
// It is not part of Keel's install (the package pins Temporal 1.23; Keel uses 1.24).
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Client, Connection } from '@temporalio/client';
import { NativeConnection, Worker, Runtime, DefaultLogger } from '@temporalio/worker';
import { WorkflowStreamClient } from '@temporalio/workflow-streams/client';
import * as activities from './activities.js';
Runtime.install({ logger: new DefaultLogger('WARN') });
const CLI = process.env.TEMPORAL_CLI!;
const port = 17233 + Math.floor(Math.random() * 1000);
const dyn = { 'matching.numTaskqueueReadPartitions': 1, 'matching.numTaskqueueWritePartitions': 1, 'history.transferProcessorMaxPollRPS': 10000, 'history.timerProcessorMaxPollRPS': 10000, 'history.visibilityProcessorMaxPollRPS': 10000, 'history.timerProcessorMaxTimeShift': '10ms' };
const args = ['server', 'start-dev', '--headless', '--ip', '127.0.0.1', '--port', String(port), '--log-level', 'error', ...Object.entries(dyn).flatMap(([k, v]) => ['--dynamic-config-value', `${k}=${JSON.stringify(v)}`])];
const server = spawn(CLI, args, { stdio: 'ignore' });
const address = `127.0.0.1:${port}`;
let connection: Connection | undefined;
for (let i = 0; i < 100 && !connection; i++) { try { connection = await Connection.connect({ address }); await connection.healthService.check({}); } catch { connection = undefined; await new Promise((r) => setTimeout(r, 300)); } }
const client = new Client({ connection: connection! });
const nc = await NativeConnection.connect({ address });
const worker = await Worker.create({ connection: nc, taskQueue: 'm', workflowsPath: fileURLToPath(new URL('./workflows.ts', import.meta.url)), activities });
const running = worker.run();
const pct = (xs: number[], p: number) => { const s = [...xs].sort((a, b) => a - b); return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]; };
const now = () => performance.now() + performance.timeOrigin;
async function one(label: string, n: number, gap: number, batchMs: number, path: 'remote' | 'local', channel: 'wfs' | 'direct') {
  const id = `m-${label}-${Date.now()}`;
  const lat: number[] = [];
  let firstAt = 0;
  const started = now();
  let doneRecv: () => void;
  const donePromise = new Promise<void>((r) => (doneRecv = r));
  if (channel === 'direct') {
    activities.board.on(id, (m: any) => { if (m.done) return doneRecv(); if (!firstAt) firstAt = now(); lat.push(now() - m.t); });
  }
  const handle = await client.workflow.start('streamed', { taskQueue: 'm', workflowId: id, args: [n, gap, batchMs, path, channel] });
  if (channel === 'wfs') {
    const sc = WorkflowStreamClient.create(client, id);
    (async () => {
      for await (const item of sc.subscribe(['tokens', 'done'], 0, { pollCooldown: 0, resultType: true } as any) as AsyncGenerator<any>) {
        if (item.topic === 'done') break;
        if (!firstAt) firstAt = now();
        lat.push(now() - item.data.t);
      }
      doneRecv();
    })();
  }
  await donePromise;
  const total = now() - started;
  await handle.result();
  const events = (await handle.fetchHistory()).events!.length;
  console.log(JSON.stringify({ label, n, gap, received: lat.length, ttftFromStartMs: +(firstAt - started).toFixed(1), latencyP50: +pct(lat, 50).toFixed(1), latencyP95: +pct(lat, 95).toFixed(1), latencyMax: +Math.max(...lat).toFixed(1), totalMs: +total.toFixed(0), historyEvents: events }));
}
const N = Number(process.env.N ?? 200), GAP = Number(process.env.GAP ?? 10);
for (let rep = 0; rep < Number(process.env.REPS ?? 2); rep++) {
  await one('direct-remote', N, GAP, 0, 'remote', 'direct');
  await one('direct-local', N, GAP, 0, 'local', 'direct');
  await one('wfs-forceFlush-remote', N, GAP, 0, 'remote', 'wfs');
  await one('wfs-batch50ms-remote', N, GAP, 50, 'remote', 'wfs');
  await one('wfs-batch2s(default)-remote', N, GAP, 2000, 'remote', 'wfs');
  await one('wfs-forceFlush-local', N, GAP, 0, 'local', 'wfs');
}
worker.shutdown(); await running; await nc.close(); await connection!.close(); server.kill('SIGTERM');

// The bare-Temporal floors, in the bench process: a worker for bench/floor-workflows.ts and the
// clients that drive it, against a dev server started with Keel's settings. No Keel code: what
// "one call = one durable workflow" costs at least, in each of the shapes Keel could take.
import { randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import OpenAI from 'openai';
import { Context } from '@temporalio/activity';
import { Client, Connection, WithStartWorkflowOperation } from '@temporalio/client';
import { bundleWorkflowCode, NativeConnection, Worker } from '@temporalio/worker';
import { callUpdate, type floorActivityWorkflow, type floorEmptyWorkflow, type floorLocalActivityWorkflow, type floorUpdateWorkflow } from '../floor-workflows.js';

const TASK_QUEUE = 'bench-floors';

export const FLOORS = {
  'floor-activity': 'workflow + activity, plain client',
  'floor-local': 'workflow + local activity, plain client',
  'floor-eager-activity': 'eager start (shared NativeConnection) + activity',
  'floor-uws-local': 'Update-with-Start, local activity in the handler',
  'floor-eager-local': 'eager start + local activity',
  'floor-start': 'durable start alone (workflow.start)',
  'floor-start-call': 'eager start, then the call from the starting process; recorded after the answer',
} as const;
export type FloorName = keyof typeof FLOORS;
/** The floors whose client has its answer before the workflow ends: their slots wait for those workflows (`drainStarted`). */
export const ANSWER_AHEAD: ReadonlySet<FloorName> = new Set(['floor-start', 'floor-start-call']);

export interface Floors {
  /** One request; resolves with the fake's answer (undefined for `floor-start`, which only starts). */
  call: Record<FloorName, (body: unknown) => Promise<unknown>>;
  /** Waits for the workflows the `ANSWER_AHEAD` floors started to finish, so their work is counted in their slot, not the next target's. */
  drainStarted(): Promise<void>;
  /** Eager starts asked for and granted by the server. */
  eager: { asked: number; granted: number };
  stop(): Promise<void>;
}

const quiet = { log: () => undefined, trace: () => undefined, debug: () => undefined, info: () => undefined, warn: console.warn, error: console.error };

export async function startFloors(temporalAddress: string, fakeUrl: string): Promise<Floors> {
  const native = await NativeConnection.connect({ address: temporalAddress });
  const workflowBundle = await bundleWorkflowCode({ workflowsPath: fileURLToPath(new URL('../floor-workflows.ts', import.meta.url)), logger: quiet });
  const openai = new OpenAI({ baseURL: fakeUrl, apiKey: 'bench', maxRetries: 0 });
  const callFake = (body: unknown) => openai.chat.completions.create(body as OpenAI.ChatCompletionCreateParamsNonStreaming);
  // `floor-start-call`: the answer of each call the client made, by workflow id, for the workflow's local activity.
  const calls = new Map<string, Promise<unknown>>();
  const worker = await Worker.create({
    connection: native,
    taskQueue: TASK_QUEUE,
    workflowBundle,
    activities: {
      callFake,
      takeCall: async () => {
        const id = Context.current().info.workflowExecution?.workflowId ?? '';
        const answer = calls.get(id);
        calls.delete(id);
        if (!answer) throw new Error(`no call for ${id}`);
        return await answer;
      },
    },
  });
  const running = worker.run();
  const plainConnection = await Connection.connect({ address: temporalAddress });
  // What an API process has: a client on a connection of its own.
  const plain = new Client({ connection: plainConnection });
  // Eager start needs the client on the worker's own connection (one process).
  const shared = new Client({ connection: native });
  const eager = { asked: 0, granted: 0 };
  let started: Promise<unknown>[] = [];
  const options = () => ({ taskQueue: TASK_QUEUE, workflowId: `floor-${randomUUID()}` });
  const startEagerly = async (name: 'floorActivityWorkflow' | 'floorLocalActivityWorkflow' | 'floorRecordCallWorkflow', opts: { workflowId: string; args: unknown[] }) => {
    const handle = await shared.workflow.start<(...args: unknown[]) => Promise<unknown>>(name, { taskQueue: TASK_QUEUE, ...opts, requestEagerStart: true });
    eager.asked += 1;
    if (handle.eagerlyStarted) eager.granted += 1;
    return handle;
  };
  const eagerly = async (name: 'floorActivityWorkflow' | 'floorLocalActivityWorkflow', body: unknown) => (await startEagerly(name, { ...options(), args: [body] })).result();
  return {
    call: {
      'floor-activity': (body) => plain.workflow.execute<typeof floorActivityWorkflow>('floorActivityWorkflow', { ...options(), args: [body] }),
      'floor-local': (body) => plain.workflow.execute<typeof floorLocalActivityWorkflow>('floorLocalActivityWorkflow', { ...options(), args: [body] }),
      'floor-eager-activity': (body) => eagerly('floorActivityWorkflow', body),
      'floor-uws-local': (body) =>
        plain.workflow.executeUpdateWithStart(callUpdate, {
          args: [body],
          startWorkflowOperation: new WithStartWorkflowOperation<typeof floorUpdateWorkflow>('floorUpdateWorkflow', { ...options(), workflowIdConflictPolicy: 'FAIL' }),
        }),
      'floor-eager-local': (body) => eagerly('floorLocalActivityWorkflow', body),
      'floor-start': async () => {
        const handle = await plain.workflow.start<typeof floorEmptyWorkflow>('floorEmptyWorkflow', options());
        started.push(handle.result().catch(() => undefined));
        return undefined;
      },
      // Keel's `answer: call` without Keel: the call goes out once the start is durable, and the
      // client has its answer while the workflow still records it.
      'floor-start-call': async (body) => {
        const { workflowId } = options();
        // In the map before the start: the worker may run the workflow's first task, and its
        // local activity, before this continuation does.
        let sent!: (answer: Promise<unknown>) => void;
        calls.set(workflowId, new Promise<unknown>((resolve) => (sent = resolve)));
        try {
          const handle = await startEagerly('floorRecordCallWorkflow', { workflowId, args: [] });
          started.push(handle.result().catch(() => undefined));
        } catch (err) {
          calls.delete(workflowId);
          throw err;
        }
        const answer = callFake(body);
        sent(answer);
        return await answer;
      },
    },
    async drainStarted() {
      const pending = started;
      started = [];
      await Promise.all(pending);
    },
    eager,
    async stop() {
      // The Temporal runtime may have begun the shutdown itself (it handles SIGINT and SIGTERM).
      if (worker.getState() === 'RUNNING') worker.shutdown();
      await running;
      await plainConnection.close();
      await native.close();
    },
  };
}

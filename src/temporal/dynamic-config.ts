// The Temporal server settings Keel depends on, in one place: the dev server gets them as
// `--dynamic-config-value` flags (dev-server.ts), a cluster as a dynamic config file
// (deploy/temporal/dynamicconfig.yaml, which `npm run setup -- --dynamic-config FILE` writes and
// test/compose.test.ts checks is up to date). BENCHMARKS.md, "Where the time went", has the
// measurements behind each value.
import { stringify } from 'yaml';
import { providerTaskQueue } from '../core/task-queues.js';

/**
 * Server-wide values, the same on the dev server and on a cluster.
 *
 * History queue readers unthrottled: every task hop (a workflow task, an activity task) passes
 * through the history service's transfer queue, whose reader defaults to 20 loads a second. Past
 * its burst, each hop waited ~40 ms for a token, which tripled a request's latency and capped a
 * batch at ~13 requests a second. The reader still loads only when notified of new tasks.
 *
 * Timers fire on time: by default the timer queue may shift a timer by up to a second, and a
 * 150 ms hedge delay or a 200 ms retry backoff fired ~1 s late.
 */
export const KEEL_SERVER_DYNAMIC_CONFIG: Readonly<Record<string, string | number>> = {
  'history.transferProcessorMaxPollRPS': 10_000,
  'history.timerProcessorMaxPollRPS': 10_000,
  'history.visibilityProcessorMaxPollRPS': 10_000,
  'history.timerProcessorMaxTimeShift': '10ms',
};

/**
 * A cluster's own: IDs up to 255 characters, the width of the ID columns in Temporal's SQL schema,
 * so a longer request id or Idempotency-Key is refused by the API instead of failing in PostgreSQL.
 */
export const CLUSTER_ONLY_DYNAMIC_CONFIG: Readonly<Record<string, string | number>> = {
  'limit.maxIDLength': 255,
};

/**
 * One partition for each provider's task queue: the server splits a task queue's rate limit
 * across its partitions, which distorts the low per-provider limits Keel sets (docs/ROUTING.md);
 * and with a few pollers, tasks written to a partition nobody polls wait to be forwarded. The dev
 * server applies this to every queue; a cluster only to the provider queues, so the request and
 * batch queues keep the default four partitions to spread over matching hosts.
 */
export const PARTITION_KEYS = ['matching.numTaskqueueReadPartitions', 'matching.numTaskqueueWritePartitions'] as const;

/** What the dev server runs with: the server-wide values, and one partition for every queue. */
export const DEV_SERVER_DYNAMIC_CONFIG: Readonly<Record<string, string | number>> = {
  ...Object.fromEntries(PARTITION_KEYS.map((k) => [k, 1])),
  ...KEEL_SERVER_DYNAMIC_CONFIG,
};

const HEADER = `# Temporal dynamic config for Keel's production topology (docker-compose.yml, \`npm run cluster\`).
# Generated from src/temporal/dynamic-config.ts and the providers of deploy/keel.production.yaml by
#   KEEL_CONFIG=deploy/keel.production.yaml npm run setup -- --dynamic-config deploy/temporal/dynamicconfig.yaml
# test/compose.test.ts fails when this file and the generator disagree; the Temporal server
# re-reads the file every 10 s (config.yaml, dynamicConfigClient), so no restart is needed.
`;

/** The dynamic config file for a cluster whose Keel configuration has these providers. */
export function clusterDynamicConfigYaml(providerNames: readonly string[]): string {
  const doc: Record<string, { value: string | number; constraints?: { taskQueueName: string } }[]> = {};
  for (const [key, value] of Object.entries({ ...KEEL_SERVER_DYNAMIC_CONFIG, ...CLUSTER_ONLY_DYNAMIC_CONFIG })) doc[key] = [{ value }];
  const queues = [...providerNames].sort().map(providerTaskQueue);
  for (const key of PARTITION_KEYS) doc[key] = queues.map((taskQueueName) => ({ value: 1, constraints: { taskQueueName } }));
  return HEADER + stringify(doc, { flowCollectionPadding: true });
}

/** The provider task queues that a dynamic config file gives one partition (both keys). */
export function singlePartitionQueues(doc: unknown): string[] {
  const sets = PARTITION_KEYS.map((key) => {
    const entries = (doc as Record<string, unknown> | null)?.[key];
    if (!Array.isArray(entries)) return new Set<string>();
    return new Set(
      entries
        .filter((e: { value?: unknown; constraints?: { taskQueueName?: unknown } }) => e?.value === 1 && typeof e.constraints?.taskQueueName === 'string')
        .map((e: { constraints: { taskQueueName: string } }) => e.constraints.taskQueueName),
    );
  });
  return [...sets[0]].filter((q) => sets[1].has(q));
}

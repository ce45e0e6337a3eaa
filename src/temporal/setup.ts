// Keel's set-up of a Temporal cluster, for any cluster (`npm run setup -- --address …`;
// docker-compose.yml's temporal-setup service and `npm run cluster` run the same code): what the
// dev server does for Keel by itself.
//  - the namespace, with a retention period (the dev server's namespace exists from the start);
//  - Keel's search attributes (the dev server gets them as --search-attribute flags);
//  - waits until the frontend serves both: a new namespace and new attributes reach the
//    frontend's caches within seconds, and a request started before would fail.
// The server's dynamic config (timers, queue readers, partitions) is a file the server reads, not
// an API: `npm run setup -- --dynamic-config FILE` writes it (dynamic-config.ts).
// Idempotent: run it on every deploy.
import { Connection } from '@temporalio/client';
import { TypedSearchAttributes } from '@temporalio/common';
import { msToTs } from '@temporalio/common/lib/time.js';
import proto from '@temporalio/proto';
import { KEEL_SEARCH_ATTRIBUTES } from '../core/search-attributes.js';

const { IndexedValueType } = proto.temporal.api.enums.v1;

export const DEFAULT_RETENTION = '7d';

/** `7d`, `72h`, `90m`: a namespace retention period in seconds. Temporal's minimum is one day. */
export function parseRetention(text: string): number {
  const m = /^(\d+)\s*(d|h|m)$/.exec(text.trim());
  if (!m) throw new Error(`retention '${text}': write it as a number of days, hours or minutes, e.g. 7d or 72h`);
  const seconds = Number(m[1]) * { d: 86_400, h: 3_600, m: 60 }[m[2] as 'd' | 'h' | 'm'];
  if (seconds < 86_400) throw new Error(`retention '${text}': Temporal keeps closed workflows for at least one day`);
  return seconds;
}

export interface SetupOptions {
  address: string;
  namespace: string;
  /** Seconds. A new namespace gets it; an existing one is changed to it only when `updateRetention`. */
  retentionSeconds: number;
  updateRetention?: boolean;
  /** How long to wait for the frontend to answer and to serve the namespace (default 120 s). */
  timeoutMs?: number;
  log?: (line: string) => void;
}

export interface SetupResult {
  namespaceCreated: boolean;
  retentionSeconds: number;
  searchAttributesAdded: string[];
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function retrying<T>(what: string, deadline: number, fn: () => Promise<T>): Promise<T> {
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      return await fn();
    } catch (err) {
      last = err;
      await sleep(500);
    }
  }
  throw new Error(`${what}: ${(last as Error)?.message ?? 'timed out'}`);
}

function isNotFound(err: unknown): boolean {
  // gRPC NOT_FOUND (5): the namespace does not exist.
  return (err as { code?: number }).code === 5;
}

export async function setUpKeelNamespace(opts: SetupOptions): Promise<SetupResult> {
  const log = opts.log ?? (() => undefined);
  const deadline = Date.now() + (opts.timeoutMs ?? 120_000);
  const connection = await retrying(`Temporal at ${opts.address} does not answer`, deadline, async () => {
    const c = await Connection.connect({ address: opts.address, connectTimeout: 2_000 });
    await c.healthService.check({});
    return c;
  });
  try {
    const { workflowService, operatorService } = connection;
    const namespace = opts.namespace;
    let namespaceCreated = false;
    let retentionSeconds = opts.retentionSeconds;
    const described = await workflowService.describeNamespace({ namespace }).catch((err: unknown) => {
      if (isNotFound(err)) return undefined;
      throw err;
    });
    if (!described) {
      await workflowService.registerNamespace({
        namespace,
        description: 'Keel: LLM requests and batches',
        workflowExecutionRetentionPeriod: msToTs(opts.retentionSeconds * 1000),
      });
      namespaceCreated = true;
      log(`namespace ${namespace} created (retention ${opts.retentionSeconds / 86_400} d)`);
    } else {
      const current = Number(described.config?.workflowExecutionRetentionTtl?.seconds ?? 0);
      if (opts.updateRetention && current !== opts.retentionSeconds) {
        await workflowService.updateNamespace({ namespace, config: { workflowExecutionRetentionTtl: msToTs(opts.retentionSeconds * 1000) } });
        log(`namespace ${namespace}: retention ${current / 86_400} d -> ${opts.retentionSeconds / 86_400} d`);
      } else {
        retentionSeconds = current;
        log(`namespace ${namespace} exists (retention ${current / 86_400} d)`);
      }
    }

    // A namespace that was just registered may not be in the frontend's cache yet.
    const existing = await retrying(`namespace ${namespace} not served`, deadline, () => operatorService.listSearchAttributes({ namespace }));
    const missing: Record<string, number> = {};
    for (const key of KEEL_SEARCH_ATTRIBUTES) {
      const want = IndexedValueType[`INDEXED_VALUE_TYPE_${key.type}` as keyof typeof IndexedValueType] as number;
      const have = existing.customAttributes?.[key.name];
      if (have === undefined || have === null) missing[key.name] = want;
      else if (have !== want) {
        throw new Error(`search attribute ${key.name} exists in namespace ${namespace} with type ${IndexedValueType[have]}, Keel needs ${TypedSearchAttributes.toMetadataType(key.type)}`);
      }
    }
    if (Object.keys(missing).length > 0) {
      await operatorService.addSearchAttributes({ namespace, searchAttributes: missing });
      log(`search attributes added: ${Object.keys(missing).join(', ')}`);
    } else {
      log('search attributes: all present');
    }

    // Served: a visibility query naming every attribute is accepted (a missing one is an error).
    const query = KEEL_SEARCH_ATTRIBUTES.map((k) => `${k.name} = 'keel-setup-probe'`).join(' AND ');
    await retrying(`namespace ${namespace} with Keel's search attributes not served`, deadline, () =>
      workflowService.countWorkflowExecutions({ namespace, query }),
    );
    return { namespaceCreated, retentionSeconds, searchAttributesAdded: Object.keys(missing) };
  } finally {
    await connection.close();
  }
}

// Activities of a running batch: pages of lines in, results out. Results never pass through the
// batch workflow: it hands over child workflow IDs, and the activity reads each child's outcome
// from Temporal and writes it into a results chunk whose key the workflow chose, so a retried
// activity rewrites the same chunk instead of adding lines twice.
import { WorkflowFailedError, WorkflowUpdateFailedError, type Client } from '@temporalio/client';
import { ApplicationFailure, CancelledFailure, TerminatedFailure, WorkflowNotFoundError } from '@temporalio/common';
import { reserveKeyUpdate } from '../../src/core/contract.js';
import { keyWorkflowId, type Refusal, type ReserveItem, type ReserveOutcome } from '../../src/core/keys.js';
import type { BatchStore } from '../../src/store/batch-store.js';
import type { BatchItem, BatchObject, RecordItem, RequestCounts } from '../../src/core/batch-types.js';
import { readLines } from '../../src/store/file-store.js';
import { failureError } from '../../src/core/openai-error.js';
import type { ChatWorkflowResult } from '../../src/core/request-types.js';
import type { RoutingHealth } from '../../src/core/health-types.js';
import type { RoutingConfig } from '../../src/config/schema.js';
import type { ChatRequestBody } from '../../src/core/chat-request.js';
import { healthTargets } from '../../src/core/routing.js';
import { errorLine, isSuccess, responseLine, type BatchOutputLine } from './lines.js';

export interface ReadPageInput {
  source: string;
  offset: number;
  maxItems: number;
  /** Bounds the activity result well under Temporal's 2 MB payload limit. */
  maxBytes: number;
  /** Bring back this worker's health snapshot for the page's targets too. */
  withHealth?: boolean;
}

export interface ReadPageOutput {
  items: BatchItem[];
  eof: boolean;
  /** The snapshot, and the targets it was read for (a target without stats has no entry). */
  health?: { read: RoutingHealth; targets: string[] };
}

export interface RecordInput {
  batchId: string;
  chunkKey: string;
  items: RecordItem[];
  counts: RequestCounts;
  /** What a child that was cancelled (batch cancel, expiry) is reported as. */
  cancelCode?: 'batch_cancelled' | 'batch_expired';
  /** The targets of the lines the batch starts next: their health comes back with the counts. */
  healthTargets?: string[];
}

/** The counts after a chunk, and this worker's health snapshot for the targets asked (none yet: absent). */
export type RecordOutput = RequestCounts & { health?: RoutingHealth };

export interface UnstartedInput {
  batchId: string;
  source: string;
  offset: number;
  chunkKey: string;
  counts: RequestCounts;
}

const READ_CHUNK = 256 * 1024;
const FETCH_CONCURRENCY = 32;

async function pool<T, R>(items: T[], width: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = Array.from({ length: items.length });
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(width, items.length) }, async () => {
      while (next < items.length) {
        const i = next++;
        out[i] = await fn(items[i]);
      }
    }),
  );
  return out;
}

export function createBatchRunActivities(client: Client, files: BatchStore, routing: RoutingConfig, readHealth?: (targets: string[]) => RoutingHealth | undefined) {
  const cancelledMessage = { batch_cancelled: 'The batch was cancelled before this request finished.', batch_expired: 'This request could not be executed before the completion window expired.' };

  async function outcomeLine(batchId: string, item: RecordItem, cancelCode?: RecordInput['cancelCode']): Promise<BatchOutputLine> {
    if (item.error) return errorLine(batchId, item.customId, item.error.code, item.error.message);
    try {
      const result = (await client.workflow.getHandle(item.childId).result()) as ChatWorkflowResult;
      return responseLine(batchId, item.customId, item.childId, 200, result.completion);
    } catch (err) {
      if (!(err instanceof WorkflowFailedError)) throw err;
      if (cancelCode && (err.cause instanceof CancelledFailure || err.cause instanceof TerminatedFailure)) {
        return errorLine(batchId, item.customId, cancelCode, cancelledMessage[cancelCode]);
      }
      const { error } = failureError(err.cause);
      return responseLine(batchId, item.customId, item.childId, error.status, { error: error.toObject() });
    }
  }

  /** One page of lines from `offset`: whole lines, within maxItems and maxBytes. */
  async function readPage(input: ReadPageInput): Promise<ReadPageOutput> {
    const items: BatchItem[] = [];
    let offset = input.offset;
    let bytes = 0;
    let carry: Buffer = Buffer.alloc(0);
    for (;;) {
      const buf = await files.store.readRange(input.source, offset + carry.length, READ_CHUNK);
      const data = carry.length ? Buffer.concat([carry, buf]) : buf;
      let start = 0;
      for (;;) {
        const nl = data.indexOf(0x0a, start);
        if (nl === -1) break;
        const line = data.subarray(start, nl);
        if (items.length > 0 && bytes + line.length > input.maxBytes) return { items, eof: false };
        const parsed = JSON.parse(line.toString('utf8')) as { custom_id: string; model: string; body: Record<string, unknown> };
        items.push({ customId: parsed.custom_id, model: parsed.model, body: parsed.body, end: offset + nl + 1 });
        bytes += line.length;
        start = nl + 1;
        if (items.length >= input.maxItems) return { items, eof: false };
      }
      // valid.jsonl is written by Keel with a newline after every line: a tail without one is the end.
      if (buf.length < READ_CHUNK) return { items, eof: true };
      offset += start;
      carry = data.subarray(start);
    }
  }

  return {
    /**
     * Reserves the next lines against the batch's virtual key (one Update for the group, in file
     * order: the first refusal stops the rest). A refused Update is every line's refusal.
     */
    async reserveBatchLines(input: { keyId: string; items: ReserveItem[] }): Promise<ReserveOutcome[]> {
      try {
        return await client.workflow.getHandle(keyWorkflowId(input.keyId)).executeUpdate(reserveKeyUpdate, { args: [input.items] });
      } catch (err) {
        const gone: Refusal = { code: 'key_revoked', message: 'The batch\'s API key no longer exists' };
        if (err instanceof WorkflowNotFoundError) return input.items.map(() => ({ ok: false, refusal: gone }));
        if (err instanceof WorkflowUpdateFailedError && err.cause instanceof ApplicationFailure && err.cause.details?.[0]) {
          const [first, outcomes] = err.cause.details as [Refusal, ReserveOutcome[] | undefined];
          return input.items.map((_, i) => outcomes?.[i] ?? { ok: false, refusal: first });
        }
        throw err;
      }
    },

    async readBatchPage(input: ReadPageInput): Promise<ReadPageOutput> {
      const page = await readPage(input);
      if (!input.withHealth || !readHealth) return page;
      const targets = healthTargets(page.items.map((item) => item.body as ChatRequestBody), routing);
      const read = readHealth(targets);
      return read ? { ...page, health: { read, targets } } : page;
    },

    async recordBatchResults(input: RecordInput): Promise<RecordOutput> {
      const lines = await pool(input.items, FETCH_CONCURRENCY, (item) => outcomeLine(input.batchId, item, input.cancelCode));
      await files.store.put(input.chunkKey, lines.map((l) => `${JSON.stringify(l)}\n`).join(''));
      const ok = lines.filter(isSuccess).length;
      const counts = { ...input.counts, completed: input.counts.completed + ok, failed: input.counts.failed + lines.length - ok };
      await files.patchBatch(input.batchId, { request_counts: counts });
      // Read last, so the snapshot is as fresh as it can be when the batch starts lines with it.
      const health = input.healthTargets && readHealth?.(input.healthTargets);
      return { ...counts, ...(health && { health }) };
    },

    /** Expiry: every line that never started goes to the error file as `batch_expired`, as OpenAI does. */
    async writeUnstartedErrors(input: UnstartedInput): Promise<RequestCounts> {
      const out: string[] = [];
      // Lines before the offset have started: only the bytes after it count.
      let pos = 0;
      for await (const line of readLines(files.store, input.source)) {
        const len = Buffer.byteLength(line) + 1;
        pos += len;
        if (pos <= input.offset) continue;
        if (line.trim() === '') continue;
        const { custom_id } = JSON.parse(line) as { custom_id: string };
        out.push(`${JSON.stringify(errorLine(input.batchId, custom_id, 'batch_expired', 'This request could not be executed before the completion window expired.'))}\n`);
      }
      await files.store.put(input.chunkKey, out.join(''));
      const counts = { ...input.counts, failed: input.counts.failed + out.length };
      await files.patchBatch(input.batchId, { request_counts: counts });
      return counts;
    },

    async updateBatch(input: { batchId: string; patch: Partial<BatchObject>; stamp?: 'in_progress_at' | 'finalizing_at' | 'failed_at' | 'cancelling_at' }): Promise<void> {
      const patch = { ...input.patch, ...(input.stamp && { [input.stamp]: Math.floor(Date.now() / 1000) }) };
      await files.patchBatch(input.batchId, patch);
    },
  };
}


// `finalizing`: the results chunks become OpenAI's output and error files. A line may have been
// written more than once (a reset batch, a retry-failed round): the last chunk wins per
// custom_id, so every custom_id appears exactly once. Streaming passes keep memory to one index.
import { derivedFileId, keys, type BatchStore } from '../../src/store/batch-store.js';
import type { BatchObject, RequestCounts } from '../../src/core/batch-types.js';
import { readLines } from '../../src/store/file-store.js';
import { isSuccess, type BatchOutputLine } from './lines.js';

export interface FinalizeInput {
  batchId: string;
  round: number;
  status: 'completed' | 'cancelled' | 'expired';
}

interface Source {
  key: string;
  /** Invalid input lines are reported one by one, never merged by custom_id (duplicates among them are the point). */
  perLine: boolean;
}

async function sources(files: BatchStore, batchId: string, withInvalid: boolean): Promise<Source[]> {
  const out: Source[] = [];
  if (withInvalid && (await files.store.size(keys.invalid(batchId))) !== undefined) out.push({ key: keys.invalid(batchId), perLine: true });
  for (const key of await files.store.list(keys.results(batchId))) out.push({ key, perLine: false });
  return out;
}

interface PositionedLine {
  text: string;
  line: BatchOutputLine;
  /** Order across all sources: a later line of the same key supersedes an earlier one. */
  pos: number;
  /** custom_id for merged sources; per-line sources get a key of their own. */
  key: string;
}

async function* positionedLines(files: BatchStore, srcs: Source[]): AsyncGenerator<PositionedLine> {
  for (let s = 0; s < srcs.length; s++) {
    let i = 0;
    for await (const text of readLines(files.store, srcs[s].key)) {
      if (text.trim() === '') continue;
      const pos = s * 10_000_000 + i++;
      const line = JSON.parse(text) as BatchOutputLine;
      yield { text, line, pos, key: srcs[s].perLine ? `#${pos}` : `=${line.custom_id}` };
    }
  }
}

/** key → position of its last line. */
async function lastPositions(files: BatchStore, srcs: Source[]): Promise<Map<string, number>> {
  const last = new Map<string, number>();
  for await (const { key, pos } of positionedLines(files, srcs)) last.set(key, pos);
  return last;
}

async function* keptLines(files: BatchStore, srcs: Source[], last: Map<string, number>, want: 'ok' | 'error', tally: { n: number }): AsyncGenerator<string> {
  for await (const { text, line, pos, key } of positionedLines(files, srcs)) {
    if (last.get(key) !== pos || (want === 'ok') !== isSuccess(line)) continue;
    tally.n += 1;
    yield `${text}\n`;
  }
}

export function createBatchFinalizeActivities(files: BatchStore) {
  return {
    async finalizeBatch(input: FinalizeInput): Promise<BatchObject> {
      const batch = await files.getBatch(input.batchId);
      if (!batch) throw new Error(`batch ${input.batchId} has no record`);
      const srcs = await sources(files, input.batchId, true);
      const last = await lastPositions(files, srcs);
      const now = Math.floor(Date.now() / 1000);
      const written: Record<'ok' | 'error', string | null> = { ok: null, error: null };
      const tallies = { ok: { n: 0 }, error: { n: 0 } };
      for (const want of ['ok', 'error'] as const) {
        const id = derivedFileId(input.batchId, want === 'ok' ? 'output' : 'error', input.round);
        // A keyed batch's output belongs to its key, as its input did.
        const owner = batch.keel?.key_id ? { keel: { key_id: batch.keel.key_id } } : {};
        await files.putFile({ id, created_at: now, filename: `${input.batchId}_${want === 'ok' ? 'output' : 'error'}.jsonl`, purpose: 'batch_output', ...owner }, keptLines(files, srcs, last, want, tallies[want]));
        if (tallies[want].n > 0) written[want] = id;
        else await files.deleteFile(id);
        // The previous round's files are superseded by this round's.
        if (input.round > 0) await files.deleteFile(derivedFileId(input.batchId, want === 'ok' ? 'output' : 'error', input.round - 1));
      }
      const counts: RequestCounts = { total: batch.request_counts.total, completed: tallies.ok.n, failed: tallies.error.n };
      const stamp = input.status === 'completed' ? 'completed_at' : input.status === 'cancelled' ? 'cancelled_at' : 'expired_at';
      return files.patchBatch(input.batchId, {
        status: input.status,
        output_file_id: written.ok,
        error_file_id: written.error,
        request_counts: counts,
        [stamp]: now,
      });
    },

    /** retry-failed: the lines whose latest result is a failure, with their bodies, as the next round's source. */
    async prepareRetry(input: { batchId: string; round: number }): Promise<{ count: number; counts: RequestCounts }> {
      const batch = await files.getBatch(input.batchId);
      if (!batch) throw new Error(`batch ${input.batchId} has no record`);
      const srcs = await sources(files, input.batchId, false);
      const last = await lastPositions(files, srcs);
      const failed = new Set<string>();
      for await (const { line, pos, key } of positionedLines(files, srcs)) {
        if (line.custom_id !== null && last.get(key) === pos && !isSuccess(line)) failed.add(line.custom_id);
      }
      async function* bodies(): AsyncGenerator<string> {
        for await (const text of readLines(files.store, keys.valid(input.batchId))) {
          if (text.trim() === '') continue;
          const { custom_id } = JSON.parse(text) as { custom_id: string };
          if (failed.has(custom_id)) yield `${text}\n`;
        }
      }
      await files.store.put(keys.retry(input.batchId, input.round), bodies());
      const counts = { ...batch.request_counts, failed: Math.max(0, batch.request_counts.failed - failed.size) };
      await files.patchBatch(input.batchId, { request_counts: counts });
      return { count: failed.size, counts };
    },
  };
}

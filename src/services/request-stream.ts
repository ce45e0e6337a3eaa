// A request's answer as a stream of chunks (docs/STREAMING.md): live from this process's stream
// board while the request's provider call runs here, and from the request's record for whatever the
// board does not hold (a client resuming after the end, a request run by another process, chunks
// dropped from a full buffer). Either way chunk N is the same chunk: the record keeps where the live
// stream cut the answer. How the stream ends is the request's outcome — the finish and usage chunks
// and [DONE] only after the workflow has the answer, an error event when it failed — never the
// provider call's own end.
import type { ChatCompletion } from 'openai/resources/chat/completions';
import type { StreamReader } from '../channels/stream-board.js';
import type { ApiError } from '../core/openai-error.js';
import type { ChatWorkflowResult, PartialStream } from '../core/request-types.js';
import { piecesToChunks, recordedPieces, tailChunks, type LayoutEntry } from '../core/stream-chunks.js';
import type { RequestHandle, RequestOutcome, RequestService, StartedRequest } from './request-service.js';

export type StreamEvent =
  | { type: 'chunk'; seq: number; data: string }
  | { type: 'done' }
  /** The request failed; `attempts` for the error's `keel` block. */
  | { type: 'error'; error: ApiError };

export interface FollowedStream {
  events: AsyncGenerator<StreamEvent>;
  /** The provider answering: the call that owns the live stream, or the recorded answer's. */
  provider(): string | undefined;
  /** Whether any chunk came from the live stream (false: all from the record). */
  live(): boolean;
}

/** Chunk JSON strings of a recorded (or partial) answer, in order; seq = index + 1. */
function recordedChunks(completion: ChatCompletion, layout: readonly LayoutEntry[] | undefined): string[] {
  const header = { id: completion.id, created: completion.created, model: completion.model };
  return piecesToChunks(header, recordedPieces(completion, layout)).map((c) => JSON.stringify(c));
}

function choicesWithContent(completion: ChatCompletion, layout: readonly LayoutEntry[] | undefined): Set<number> {
  return new Set(recordedPieces(completion, layout).map((p) => p.choice));
}

/**
 * Follows request `requestId`'s stream from after chunk `after`. `source`: the request just started
 * (its outcome may settle early in this process) or a handle on one (its recorded outcome).
 */
export function followStream(requests: RequestService, requestId: string, source: StartedRequest | RequestHandle, after: number): FollowedStream {
  const board = requests.local?.streams?.board;
  let reader: StreamReader | undefined = board?.read(requestId, after);
  let provider: string | undefined;
  let live = false;

  async function* events(): AsyncGenerator<StreamEvent> {
    let cursor = after;
    const outcome = requests.outcome(source);
    let settled: RequestOutcome | undefined;
    outcome.then(
      (o) => void (settled = o),
      () => undefined,
    );
    try {
      while (!settled) {
        if (reader) {
          const got = reader.take();
          if (got === 'gap') {
            // What comes next is no longer held here: it is read from the record once the request ends.
            reader.close();
            reader = undefined;
          } else {
            if (got.length > 0) {
              provider ??= reader.owner()?.split('/')[0];
              live = true;
            }
            for (const c of got) {
              cursor = c.seq;
              yield { type: 'chunk', seq: c.seq, data: c.data };
            }
            if (settled) break;
          }
        }
        await Promise.race([reader ? reader.changed() : new Promise<never>(() => undefined), outcome.catch(() => undefined)]);
      }
      const end = settled ?? (await outcome);
      if (end.ok) {
        provider ??= end.result.keel.provider;
        yield* recordedEnd(end.result, cursor, after, requests.uiLink(requestId));
        yield { type: 'done' };
      } else {
        const partial: PartialStream | undefined = end.failure?.stream;
        if (partial) {
          const chunks = recordedChunks(partial.completion, partial.layout);
          for (let seq = Math.max(cursor, after) + 1; seq <= chunks.length; seq++) yield { type: 'chunk', seq, data: chunks[seq - 1] };
        }
        yield { type: 'error', error: end.error };
      }
    } finally {
      reader?.close();
    }
  }

  return { events: events(), provider: () => provider, live: () => live };
}

/** The chunks after `cursor` of a recorded answer: the rest of its content, its finish (and usage) chunks. */
function* recordedEnd(result: ChatWorkflowResult, cursor: number, after: number, uiUrl: string): Generator<StreamEvent> {
  const layout = result.stream?.layout;
  const chunks = recordedChunks(result.completion, layout);
  const tail = tailChunks(result.completion, {
    includeUsage: result.stream?.includeUsage ?? false,
    choicesWithContent: choicesWithContent(result.completion, layout),
    // Keel's block, as a completion carries it, rides on the last chunk (SDKs ignore what they do not know).
    extra: { keel: { ...result.keel, ui_url: uiUrl } },
  }).map((c) => JSON.stringify(c));
  const all = [...chunks, ...tail];
  for (let seq = Math.max(cursor, after) + 1; seq <= all.length; seq++) yield { type: 'chunk', seq, data: all[seq - 1] };
}

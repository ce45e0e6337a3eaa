// One streamed provider call (docs/STREAMING.md): the provider's own streaming, its pieces published
// as `chat.completion.chunk`s to the API in this process as they come, and the assembled answer
// returned, so the workflow's history holds the answer once (with where its chunks were cut).
//
// The first piece of content decides everything after it. Before it, a failure is an ordinary
// provider failure (retried, falls back: the client has seen nothing). With it, the call claims the
// request's stream; a call that finds the stream claimed by another (a race, a hedge) has lost and
// aborts its HTTP call. After it, a failure is a StreamBroke: the client has part of an answer.
import type { ChatCompletion } from 'openai/resources/chat/completions';
import type { StreamBoard, StreamProducer } from '../../src/channels/stream-board.js';
import type { PartialStream, StreamCallSpec, StreamProgress } from '../../src/core/request-types.js';
import { assemble, layoutEntry, pieceChunk, recordedPieces, type ChunkHeader, type LayoutEntry, type StreamPiece } from '../../src/core/stream-chunks.js';
import { newCompletionId } from '../providers/common.js';
import { ProviderCallError, type ChatRequest, type ProviderAdapter } from '../providers/types.js';

/** The stream broke after the client had content: `cause` is what broke it, `partial` what the client has. */
export class StreamBroke extends Error {
  constructor(
    override readonly cause: unknown,
    readonly partial: PartialStream,
    readonly progress: StreamProgress,
  ) {
    super('stream interrupted', { cause });
    this.name = 'StreamBroke';
  }
}

export type StreamCallResult =
  | { lost: false; completion: ChatCompletion; layout: LayoutEntry[]; progress: StreamProgress }
  | { lost: true; to?: string };

export interface StreamCallOptions {
  adapter: ProviderAdapter;
  request: ChatRequest;
  upstreamModel: string;
  spec: StreamCallSpec;
  /** The API's channel in this process; absent in a process without one (the answer is only assembled). */
  board?: StreamBoard;
  requestId: string;
  runId: string;
  /** Unique per attempt within the request. */
  callId: string;
  target: string;
  /** The activity's cancellation. */
  cancelled: AbortSignal;
  /** Called as chunks go out (heartbeats carry it on a task queue). */
  onProgress?: (chunks: number) => void;
}

type Abort = 'cancelled' | 'lost' | 'stalled';

/** What a target that cannot take a prefix is asked after the partial answer. */
export const CONTINUE_INSTRUCTION =
  'Your previous answer was cut off. Continue it exactly where it stopped: do not repeat anything already written, and start with the very next characters.';

/**
 * The request asking a target to continue `partial` (docs/STREAMING.md, "Recovery"): as an
 * assistant prefix the answer goes on from (`prefill`: Anthropic), or as the assistant's turn
 * followed by an instruction to continue it (OpenAI, Gemini). A prefix may not end in whitespace
 * (Anthropic refuses it), so it goes without; the continuation's leading whitespace is then the
 * client's already, and is dropped (streamCall).
 */
export function continuingRequest(request: ChatRequest, partial: PartialStream, prefill: boolean): ChatRequest {
  const text = partial.completion.choices[0]?.message.content ?? '';
  const messages = [...request.messages, { role: 'assistant' as const, content: prefill ? text.trimEnd() : text }];
  if (!prefill) messages.push({ role: 'user', content: CONTINUE_INSTRUCTION });
  return { ...request, messages };
}

function lostTo(producer: StreamProducer | undefined): StreamCallResult {
  const to = producer?.owner;
  return to ? { lost: true, to } : { lost: true };
}

/** Thrown by an adapter for a stall detected here: an ordinary attempt timeout before the first token. */
function stalled(ms: number, first: boolean): ProviderCallError {
  return new ProviderCallError('timeout', first ? `no first chunk within ${ms} ms` : `the stream stalled: no chunk for ${ms} ms`);
}

export async function streamCall(o: StreamCallOptions): Promise<StreamCallResult> {
  const continuation = o.spec.continuation;
  const before = continuation ? recordedPieces(continuation.completion, continuation.layout) : [];
  const overlap = /\s$/.test(continuation?.completion.choices[0]?.message.content ?? '');
  const controller = new AbortController();
  let why: Abort | undefined;
  const abort = (reason: Abort) => {
    why ??= reason;
    controller.abort(new DOMException(`stream call ${reason}`, 'AbortError'));
  };
  const producer: StreamProducer | undefined = o.board?.join(o.requestId, o.runId, o.callId, o.target, () => abort('lost'));
  // Another call already streams this request's answer: this one has lost before calling anyone.
  if (producer?.lost) return lostTo(producer);
  const onCancel = () => abort('cancelled');
  if (o.cancelled.aborted) onCancel();
  o.cancelled.addEventListener('abort', onCancel, { once: true });

  let header: ChunkHeader | undefined = continuation && { id: continuation.completion.id, created: continuation.completion.created, model: continuation.completion.model };
  const pieces: StreamPiece[] = [];
  const layout: LayoutEntry[] = [...(continuation?.layout ?? [])];
  const seen = new Set(before.map((p) => p.choice));
  const finishes = new Map<number, ChatCompletion.Choice['finish_reason']>();
  let usage: ChatCompletion['usage'];
  let claimed = false;
  let chars = 0;
  const progress = (): StreamProgress => ({
    chunks: pieces.length,
    chars,
    ...(continuation && { continuedAt: { chunks: continuation.layout.length, chars: before.reduce((n, p) => n + p.text.length, 0) } }),
  });
  const claim = (): boolean => {
    if (claimed) return true;
    claimed = producer ? producer.claim(continuation ? { continueAfter: continuation.layout.length } : {}) : true;
    if (!claimed) abort('lost');
    return claimed;
  };

  const iterator = o.adapter.stream(o.request, o.upstreamModel, controller.signal)[Symbol.asyncIterator]();
  let timer: NodeJS.Timeout | undefined;
  try {
    for (;;) {
      // Before the first content, the attempt's budget for a first chunk; after it, the stall limit.
      const limit = pieces.length === 0 ? o.spec.firstChunkTimeoutMs : o.spec.idleTimeoutMs;
      timer = setTimeout(() => abort('stalled'), limit);
      const step = await iterator.next();
      clearTimeout(timer);
      // The SDKs end a stream quietly when its request is aborted: that is no end of the answer.
      if (why) throw controller.signal.reason;
      if (step.done) break;
      const ev = step.value;
      if (ev.type === 'start') {
        header ??= { id: ev.id ?? newCompletionId(), created: ev.created ?? Math.floor(Date.now() / 1000), model: o.upstreamModel };
      } else if (ev.type === 'piece') {
        header ??= { id: newCompletionId(), created: Math.floor(Date.now() / 1000), model: o.upstreamModel };
        if (pieces.length === 0 && overlap && ev.piece.kind === 'text') {
          // The client has the whitespace the partial answer ended with (a prefix goes without it).
          const text = ev.piece.text.replace(/^\s+/, '');
          if (!text) continue;
          ev.piece.text = text;
        }
        if (!claim()) return lostTo(producer);
        const first = !seen.has(ev.piece.choice);
        seen.add(ev.piece.choice);
        pieces.push(ev.piece);
        layout.push(layoutEntry(ev.piece));
        chars += ev.piece.text.length;
        producer?.publish([JSON.stringify(pieceChunk(header, ev.piece, first))]);
        o.onProgress?.(pieces.length);
      } else if (ev.type === 'finish') {
        finishes.set(ev.choice, ev.reason);
      } else {
        usage = ev.usage;
      }
    }
    // An answer without content (an empty text) is still this call's answer, if nobody else's came first.
    if (!claim()) return lostTo(producer);
    header ??= { id: newCompletionId(), created: Math.floor(Date.now() / 1000), model: o.upstreamModel };
    const completion = assemble(header, [...before, ...pieces]);
    for (const [choice, reason] of finishes) {
      const c = completion.choices.find((x) => x.index === choice);
      if (c) c.finish_reason = reason;
      else completion.choices.push({ index: choice, finish_reason: reason, logprobs: null, message: { role: 'assistant', content: null, refusal: null } });
    }
    if (completion.choices.length === 0) completion.choices.push({ index: 0, finish_reason: 'stop', logprobs: null, message: { role: 'assistant', content: '', refusal: null } });
    completion.choices.sort((a, b) => a.index - b.index);
    if (usage) completion.usage = usage;
    return { lost: false, completion, layout, progress: progress() };
  } catch (err) {
    clearTimeout(timer);
    if (why === 'lost') return lostTo(producer);
    const cause = why === 'stalled' ? stalled(pieces.length === 0 ? o.spec.firstChunkTimeoutMs : o.spec.idleTimeoutMs, pieces.length === 0) : err;
    // A cancelled call (its request cancelled, a lost race the workflow decided) is no failure of the stream.
    if (why === 'cancelled' || !claimed || pieces.length === 0) throw cause;
    producer?.interrupt();
    const partial: PartialStream = { completion: assemble(header!, [...before, ...pieces]), layout };
    for (const c of partial.completion.choices) c.finish_reason = finishes.get(c.index) ?? (null as unknown as ChatCompletion.Choice['finish_reason']);
    throw new StreamBroke(cause, partial, progress());
  } finally {
    o.cancelled.removeEventListener('abort', onCancel);
    producer?.leave();
    // The generator's own cleanup (the SDK aborts its request when iteration stops early).
    void iterator.return?.(undefined).catch(() => undefined);
  }
}

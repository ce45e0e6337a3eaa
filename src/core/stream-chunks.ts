// A streamed answer as OpenAI's `chat.completion.chunk`s, built one way wherever it is built: live
// by the provider call as pieces arrive, and again from the recorded completion (a client resuming
// after the stream's end, an API that did not see it live). The call records where each chunk cut
// the answer (its layout: one small tuple per chunk, in the activity's result), so chunk N is the
// same chunk whichever way it is produced (docs/STREAMING.md). Pure and workflow-safe: no zod.
import type { ChatCompletion, ChatCompletionChunk } from 'openai/resources/chat/completions';
import type { CompletionUsage } from 'openai/resources/completions';

/** One piece of a streamed answer: a choice's text or refusal, or a piece of one tool call's arguments. */
export type StreamPiece =
  | { choice: number; kind: 'text'; text: string }
  | { choice: number; kind: 'refusal'; text: string }
  | { choice: number; kind: 'tool'; index: number; text: string; id?: string; name?: string };

/**
 * Where one chunk cut the answer: [choice, what, length in UTF-16 units]; what is -1 for text,
 * -2 for a refusal, i ≥ 0 for the arguments of tool call i (whose first chunk carries its id and name).
 */
export type LayoutEntry = [number, number, number];

/** The fields every chunk of one stream shares. */
export interface ChunkHeader {
  id: string;
  created: number;
  model: string;
}

const TEXT = -1;
const REFUSAL = -2;

export function layoutEntry(piece: StreamPiece): LayoutEntry {
  return [piece.choice, piece.kind === 'text' ? TEXT : piece.kind === 'refusal' ? REFUSAL : piece.index, piece.text.length];
}

/** OpenAI's field order: id, object, created, model, choices. */
function chunk(h: ChunkHeader, choices: ChatCompletionChunk.Choice[]): ChatCompletionChunk {
  return { id: h.id, object: 'chat.completion.chunk', created: h.created, model: h.model, choices };
}

/** The chunk carrying `piece`; `first` when it is its choice's first (it then carries the role). */
export function pieceChunk(header: ChunkHeader, piece: StreamPiece, first: boolean): ChatCompletionChunk {
  const delta: ChatCompletionChunk.Choice.Delta = first ? { role: 'assistant' } : {};
  if (piece.kind === 'text') delta.content = piece.text;
  else if (piece.kind === 'refusal') delta.refusal = piece.text;
  else {
    const head = piece.id !== undefined ? { id: piece.id, type: 'function' as const } : {};
    delta.tool_calls = [{ index: piece.index, ...head, function: { ...(piece.name !== undefined && { name: piece.name }), arguments: piece.text } }];
  }
  return chunk(header, [{ index: piece.choice, delta, logprobs: null, finish_reason: null }]);
}

/**
 * The pieces a recorded completion was streamed in, cut again by its layout; without a layout (a
 * request that was not streamed live), one piece per choice's text, refusal and tool call.
 */
export function recordedPieces(completion: ChatCompletion, layout?: readonly LayoutEntry[]): StreamPiece[] {
  const entries = layout ?? defaultLayout(completion);
  const offsets = new Map<string, number>();
  const out: StreamPiece[] = [];
  for (const [choice, what, length] of entries) {
    const message = completion.choices.find((c) => c.index === choice)?.message ?? completion.choices[choice]?.message;
    const key = `${choice}:${what}`;
    const at = offsets.get(key) ?? 0;
    offsets.set(key, at + length);
    if (what === TEXT) out.push({ choice, kind: 'text', text: (message?.content ?? '').slice(at, at + length) });
    else if (what === REFUSAL) out.push({ choice, kind: 'refusal', text: (message?.refusal ?? '').slice(at, at + length) });
    else {
      const call = message?.tool_calls?.[what];
      const fn = call?.type === 'function' ? call.function : undefined;
      const text = (fn?.arguments ?? '').slice(at, at + length);
      out.push(at === 0 ? { choice, kind: 'tool', index: what, text, ...(call && { id: call.id }), name: fn?.name ?? '' } : { choice, kind: 'tool', index: what, text });
    }
  }
  return out;
}

function defaultLayout(completion: ChatCompletion): LayoutEntry[] {
  const out: LayoutEntry[] = [];
  for (const c of completion.choices) {
    const m = c.message;
    if (m.content) out.push([c.index, TEXT, m.content.length]);
    if (m.refusal) out.push([c.index, REFUSAL, m.refusal.length]);
    (m.tool_calls ?? []).forEach((call, i) => out.push([c.index, i, call.type === 'function' ? call.function.arguments.length : 0]));
  }
  return out;
}

/** The content chunks of pieces, in order, each with the role on its choice's first. */
export function piecesToChunks(header: ChunkHeader, pieces: readonly StreamPiece[], seenBefore: ReadonlySet<number> = new Set()): ChatCompletionChunk[] {
  const seen = new Set(seenBefore);
  return pieces.map((p) => {
    const first = !seen.has(p.choice);
    seen.add(p.choice);
    return pieceChunk(header, p, first);
  });
}

/**
 * The chunks that end a successful stream: each choice's finish reason (with the role for a choice
 * that had no content chunk), then — when the client asked for it — the usage (with `cost`).
 * `extra` (Keel's own fields) rides on the last one.
 */
export function tailChunks(
  completion: ChatCompletion,
  opts: { includeUsage: boolean; choicesWithContent: ReadonlySet<number>; extra?: Record<string, unknown> },
): ChatCompletionChunk[] {
  const header: ChunkHeader = { id: completion.id, created: completion.created, model: completion.model };
  const out: ChatCompletionChunk[] = completion.choices.map((c) =>
    chunk(header, [
      {
        index: c.index,
        delta: opts.choicesWithContent.has(c.index) ? {} : { role: 'assistant', content: c.message.content ?? '' },
        logprobs: null,
        finish_reason: c.finish_reason,
      },
    ]),
  );
  if (opts.includeUsage) out.push({ ...chunk(header, []), usage: completion.usage as CompletionUsage });
  if (opts.extra && out.length > 0) Object.assign(out[out.length - 1], opts.extra);
  return out;
}

/** Pieces put together: the completion a streamed answer amounts to (finish reasons and usage added by the caller). */
export function assemble(header: ChunkHeader, pieces: readonly StreamPiece[]): ChatCompletion {
  const choices = new Map<number, ChatCompletion.Choice>();
  const choice = (index: number) => {
    let c = choices.get(index);
    if (!c) {
      c = { index, finish_reason: 'stop', logprobs: null, message: { role: 'assistant', content: null, refusal: null } };
      choices.set(index, c);
    }
    return c;
  };
  for (const p of pieces) {
    const m = choice(p.choice).message;
    if (p.kind === 'text') m.content = (m.content ?? '') + p.text;
    else if (p.kind === 'refusal') m.refusal = (m.refusal ?? '') + p.text;
    else {
      const calls = (m.tool_calls ??= []);
      const call = (calls[p.index] ??= { id: p.id ?? '', type: 'function', function: { name: p.name ?? '', arguments: '' } });
      if (call.type === 'function') call.function.arguments += p.text;
    }
  }
  return {
    ...header,
    object: 'chat.completion',
    choices: [...choices.values()].sort((a, b) => a.index - b.index),
    usage: { prompt_tokens: 0, completion_tokens: 0, total_tokens: 0 },
  };
}

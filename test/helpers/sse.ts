// Server-sent events as a client reads them off the wire: for tests that check what the SDKs hide
// (event ids, [DONE], the exact bytes of each chunk).
export interface SseEvent {
  id?: string;
  data: string;
  /** When the event arrived (performance.now()). */
  at: number;
}

/** The events of `res`'s body as they arrive; stops at the body's end (or when the consumer stops). */
export async function* sseEvents(res: Response): AsyncGenerator<SseEvent> {
  const reader = res.body!.getReader();
  const decoder = new TextDecoder();
  let buffer = '';
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let end: number;
      while ((end = buffer.indexOf('\n\n')) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        let id: string | undefined;
        const data: string[] = [];
        for (const line of block.split('\n')) {
          if (line.startsWith('id: ')) id = line.slice(4);
          else if (line.startsWith('data: ')) data.push(line.slice(6));
        }
        if (data.length > 0) yield { ...(id !== undefined && { id }), data: data.join('\n'), at: performance.now() };
      }
    }
  } finally {
    await reader.cancel().catch(() => undefined);
  }
}

/** Every event of a stream, and the error that ended the body early, if any. */
export async function readSse(res: Response): Promise<{ events: SseEvent[]; error?: unknown }> {
  const events: SseEvent[] = [];
  try {
    for await (const e of sseEvents(res)) events.push(e);
    return { events };
  } catch (error) {
    return { events, error };
  }
}

/** The text content of the chunk events, in order. */
export function contentOf(events: readonly SseEvent[]): string {
  return events
    .filter((e) => e.data.startsWith('{') && !e.data.startsWith('{"error"'))
    .map((e) => (JSON.parse(e.data) as { choices: { delta: { content?: string } }[] }).choices[0]?.delta.content ?? '')
    .join('');
}

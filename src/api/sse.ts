// Server-sent events of a request's stream, in OpenAI's shape (docs/STREAMING.md): each chunk as
// `id: <seq>` + `data: <chat.completion.chunk>`, then `data: [DONE]`; a failure after the first
// chunk as `data: {"error": {...}}`, which the official SDKs (Node and Python) raise as APIError —
// never [DONE] after it. Writes wait for the socket to drain, so a slow client holds nothing here
// beyond what the stream board holds anyway.
import type { Response } from 'express';
import { ApiError } from '../core/openai-error.js';
import type { FollowedStream, StreamEvent } from '../services/request-stream.js';
import { sendError } from './errors.js';

const KEEP_ALIVE_MS = 15_000;

export interface SseOptions {
  /** Headers known before the first event (x-request-id, x-keel-ui-url, ...). */
  headers: Record<string, string>;
  /**
   * `first-event`: the status and headers go out with the first event, so a request that fails
   * before its first chunk is an ordinary HTTP error (POST /v1/chat/completions). `now`: at once,
   * with comments keeping the connection alive until the first event (a client following a request).
   */
  headersAt: 'first-event' | 'now';
  requestId: string;
  uiUrl: string;
}

/** The error event's body: OpenAI's error object, and Keel's block beside it. */
export function errorEventData(error: ApiError, requestId: string, uiUrl: string): string {
  const keel = (error.extra?.keel ?? {}) as Record<string, unknown>;
  return JSON.stringify({ error: error.toObject(), keel: { ...keel, request_id: requestId, ui_url: uiUrl } });
}

export async function sendStream(res: Response, stream: FollowedStream, opts: SseOptions): Promise<void> {
  let closed = false;
  const drained = () =>
    new Promise<void>((resolve) => {
      const done = () => {
        res.off('drain', done);
        res.off('close', done);
        resolve();
      };
      res.once('drain', done);
      res.once('close', done);
    });
  res.once('close', () => {
    closed = true;
    // A client that goes away does not cancel the request; it may resume by id (GET /v1/requests/:id/stream).
    void stream.events.return(undefined);
  });
  const write = async (text: string) => {
    if (closed) return;
    if (!res.write(text)) await drained();
  };
  const open = (provider?: string, live?: boolean) => {
    res.socket?.setNoDelay(true);
    res.writeHead(200, {
      ...opts.headers,
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache',
      connection: 'keep-alive',
      // Proxies that buffer responses (nginx) would batch the chunks.
      'x-accel-buffering': 'no',
      ...(provider && { 'x-keel-provider': provider }),
      // live: chunks as the provider sends them; recorded: the answer was streamed from its record.
      ...(live !== undefined && { 'x-keel-stream': live ? 'live' : 'recorded' }),
    });
    res.flushHeaders();
  };

  let keepAlive: NodeJS.Timeout | undefined;
  if (opts.headersAt === 'now') {
    open();
    keepAlive = setInterval(() => void write(': keep-alive\n\n'), KEEP_ALIVE_MS);
  }
  let first = true;
  try {
    for await (const ev of stream.events) {
      if (closed) break;
      if (first && opts.headersAt === 'first-event') {
        if (ev.type === 'error') {
          // Nothing was streamed: the client gets the error as it would without streaming.
          const keel = (ev.error.extra?.keel ?? {}) as Record<string, unknown>;
          const attempts = keel.attempts as unknown[] | undefined;
          if (attempts) res.setHeader('x-keel-attempts', String(attempts.length));
          for (const [k, v] of Object.entries(opts.headers)) res.setHeader(k, v);
          sendError(res, new ApiError(ev.error.status, ev.error.message, ev.error.type, ev.error.param, ev.error.code, { ...ev.error.extra, keel: { ...keel, request_id: opts.requestId, ui_url: opts.uiUrl } }));
          return;
        }
        open(stream.provider(), stream.live());
      }
      first = false;
      await write(eventText(ev, opts));
      if (ev.type !== 'chunk') break;
    }
  } finally {
    clearInterval(keepAlive);
    if (!closed && res.headersSent) res.end();
  }
}

function eventText(ev: StreamEvent, opts: SseOptions): string {
  switch (ev.type) {
    case 'chunk':
      return `id: ${ev.seq}\ndata: ${ev.data}\n\n`;
    case 'done':
      return 'data: [DONE]\n\n';
    case 'error':
      return `data: ${errorEventData(ev.error, opts.requestId, opts.uiUrl)}\n\n`;
  }
}

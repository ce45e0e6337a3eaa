// Where a streamed request's chunks pass from its provider call to the API that streams them, in
// the same process (docs/STREAMING.md). Tokens do not travel through Temporal: a chunk per history
// event would bloat the request's history, and Temporal's own stream channel
// (@temporalio/workflow-streams) costs tens of milliseconds per chunk (measured, docs/STREAMING.md).
//
// Per request: the chunks with sequence numbers (1, 2, …), the calls producing them, and which call
// owns the stream. The first call to produce content claims it; the others are told at once that
// they lost (a race or a hedge: they abort their HTTP call). A call that breaks after its first
// token gives the stream up as interrupted, and only a call continuing that answer may take it over.
// Readers (the SSE responses) each keep their own cursor, so a slow client holds no chunk in memory
// that the buffer does not hold anyway, and several clients can follow one stream.
//
// Bounds: a stream is dropped `retentionMs` after its last chunk once no call produces it; the
// buffer holds at most `bufferBytes` in all, and past that the oldest chunks go first. A reader
// whose next chunk is gone sees a gap and reads the rest from the request's record.
import type { StreamingSettings } from '../config/schema.js';

export interface StreamChunk {
  seq: number;
  /** The chunk's JSON, as sent in an SSE `data:` line. */
  data: string;
}

interface Producer {
  target: string;
  onLost: () => void;
}

class RequestStream {
  chunks: StreamChunk[] = [];
  /** Chunks up to this sequence number are no longer held. */
  base = 0;
  last = 0;
  bytes = 0;
  owner: { callId: string; target: string } | undefined;
  /** The workflow run producing it: a replayed request (a new run) starts a new stream. */
  runId: string | undefined;
  /** The owner broke after its first token: only a continuation may take the stream over. */
  interrupted = false;
  readonly producers = new Map<string, Producer>();
  readonly wakers = new Set<() => void>();
  touchedAt: number;

  constructor(now: number) {
    this.touchedAt = now;
  }

  wake(): void {
    for (const w of [...this.wakers]) w();
    this.wakers.clear();
  }
}

/** A provider call's side of one request's stream. */
export interface StreamProducer {
  /** Another call already owns the stream (this one has lost before it began). */
  readonly lost: boolean;
  /** provider/model of the call that owns the stream, if one does. */
  readonly owner: string | undefined;
  /**
   * Takes the stream for this call: true when it is this call's (now or already). `continueAfter`:
   * the call continues an interrupted answer whose first `continueAfter` chunks the client has.
   */
  claim(opts?: { continueAfter?: number }): boolean;
  /** Appends chunks (JSON) after the last one; returns the last sequence number. */
  publish(chunks: readonly string[]): number;
  /** The owner broke after its first token. */
  interrupt(): void;
  /** The call is over (whatever its outcome). */
  leave(): void;
}

/** A reader's side: its cursor through one request's stream. */
export interface StreamReader {
  /** The last sequence number handed out. */
  readonly cursor: number;
  /** Chunks after the cursor that the buffer holds now (the cursor moves past them); 'gap' when the next one is no longer held. */
  take(): StreamChunk[] | 'gap';
  /** Resolves when a chunk is published or the owner changes. */
  changed(): Promise<void>;
  /** provider/model of the call that owns the stream, once one does. */
  owner(): string | undefined;
  close(): void;
}

export class StreamBoard {
  private readonly streams = new Map<string, RequestStream>();
  private bytes = 0;
  private readonly sweeper: NodeJS.Timeout;

  constructor(
    private readonly settings: StreamingSettings,
    private readonly now: () => number = Date.now,
  ) {
    this.sweeper = setInterval(() => this.sweep(), Math.min(settings.retentionMs, 10_000));
    this.sweeper.unref();
  }

  /** Whether this process holds (or held until recently) the request's stream. */
  has(requestId: string): boolean {
    return this.streams.has(requestId);
  }

  /** Bytes of chunks held, across requests. */
  get heldBytes(): number {
    return this.bytes;
  }

  /** Registers a provider call of the request's run `runId`; `onLost` fires when another call claims the stream. */
  join(requestId: string, runId: string, callId: string, target: string, onLost: () => void): StreamProducer {
    let stream = this.stream(requestId);
    if (stream.runId !== undefined && stream.runId !== runId) {
      // The request was replayed: its new run streams a new answer. Readers of the old one read the record.
      this.bytes -= stream.bytes;
      stream.base = stream.last;
      stream.wake();
      const fresh = new RequestStream(this.now());
      this.streams.set(requestId, fresh);
      stream = fresh;
    }
    stream.runId = runId;
    const alreadyLost = stream.owner !== undefined && stream.owner.callId !== callId;
    if (!alreadyLost) stream.producers.set(callId, { target, onLost });
    return {
      lost: alreadyLost,
      get owner() {
        return stream.owner?.target;
      },
      claim: (opts: { continueAfter?: number } = {}) => {
        if (stream.owner?.callId === callId) return true;
        if (stream.owner) return false;
        const continuing = opts.continueAfter !== undefined;
        // An interrupted answer is continued, never restarted by another call.
        if (stream.interrupted !== continuing) return false;
        if (continuing && stream.last < opts.continueAfter!) {
          // What the client had was not streamed here (another process): readers take it from the record.
          stream.base = stream.last = opts.continueAfter!;
          this.bytes -= stream.bytes;
          stream.bytes = 0;
          stream.chunks = [];
        }
        stream.owner = { callId, target };
        stream.interrupted = false;
        stream.touchedAt = this.now();
        for (const [id, p] of stream.producers) if (id !== callId) p.onLost();
        stream.wake();
        return true;
      },
      publish: (chunks: readonly string[]) => {
        if (stream.owner?.callId !== callId) throw new Error(`call ${callId} publishes to a stream it does not own`);
        for (const data of chunks) {
          stream.chunks.push({ seq: ++stream.last, data });
          stream.bytes += data.length;
          this.bytes += data.length;
        }
        stream.touchedAt = this.now();
        stream.wake();
        this.trim();
        return stream.last;
      },
      interrupt: () => {
        if (stream.owner?.callId !== callId) return;
        stream.owner = undefined;
        stream.interrupted = true;
        stream.wake();
      },
      leave: () => {
        stream.producers.delete(callId);
        stream.touchedAt = this.now();
      },
    };
  }

  /** A reader from sequence number `after` (0: from the start); the stream is kept while it reads. */
  read(requestId: string, after: number): StreamReader {
    const stream = this.stream(requestId);
    let cursor = after;
    let wake: (() => void) | undefined;
    return {
      get cursor() {
        return cursor;
      },
      take() {
        if (cursor < stream.base) return 'gap';
        const from = stream.chunks.findIndex((c) => c.seq > cursor);
        if (from < 0) return [];
        const out = stream.chunks.slice(from);
        cursor = out[out.length - 1].seq;
        return out;
      },
      changed() {
        return new Promise<void>((resolve) => {
          wake = resolve;
          stream.wakers.add(resolve);
        });
      },
      owner: () => stream.owner?.target,
      close() {
        if (wake) stream.wakers.delete(wake);
        wake?.();
      },
    };
  }

  /** Stops the sweeper (tests, shutdown). */
  close(): void {
    clearInterval(this.sweeper);
  }

  private stream(requestId: string): RequestStream {
    let stream = this.streams.get(requestId);
    if (!stream) {
      stream = new RequestStream(this.now());
      this.streams.set(requestId, stream);
    }
    return stream;
  }

  /** Past the byte bound: the oldest streams' chunks go first (a reader then sees a gap). */
  private trim(): void {
    if (this.bytes <= this.settings.bufferBytes) return;
    const oldestFirst = [...this.streams.entries()].sort((a, b) => a[1].touchedAt - b[1].touchedAt);
    for (const [id, stream] of oldestFirst) {
      while (stream.chunks.length > 0 && this.bytes > this.settings.bufferBytes) {
        const dropped = stream.chunks.shift()!;
        stream.base = dropped.seq;
        stream.bytes -= dropped.data.length;
        this.bytes -= dropped.data.length;
      }
      if (stream.chunks.length === 0 && stream.producers.size === 0) this.streams.delete(id);
      if (this.bytes <= this.settings.bufferBytes) return;
    }
  }

  private sweep(): void {
    const now = this.now();
    for (const [id, stream] of this.streams) {
      if (stream.producers.size === 0 && now - stream.touchedAt >= this.settings.retentionMs) {
        this.bytes -= stream.bytes;
        this.streams.delete(id);
        stream.wake();
      }
    }
  }
}

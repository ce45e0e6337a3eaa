// A fake LLM provider on loopback: the wire format of one real provider, per-model scripted
// behaviour, a record of every call, and a small HTTP control surface for other processes.
// Plain node:http rather than a framework, because resets, hangs and abort detection need the
// socket itself.

import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { z } from 'zod';
import {
  BehaviourBook,
  delayBefore,
  fakeModelBehaviourSchema,
  type FakeModelBehaviour,
  type FakeStep,
} from './behaviour.js';
import {
  composeAnswer,
  splitPieces,
  type ErrorSpec,
  type FakeProviderType,
  type GenerateRoute,
  type NeutralRequest,
  type StreamEvent,
  type WireFormat,
} from './wire.js';
import { anthropicWire } from './wire-anthropic.js';
import { geminiWire } from './wire-gemini.js';
import { openaiWire } from './wire-openai.js';

export interface FakeCall {
  id: number;
  model: string;
  /** Epoch ms (Date.now()). */
  startedAt: number;
  endedAt?: number;
  step: FakeStep['kind'];
  status?: number;
  /** The client closed the connection before the answer was complete. */
  aborted: boolean;
  abortedAt?: number;
  /** An API key was presented (and matched requireApiKey if set). The key itself is never recorded. */
  authorized: boolean;
  /** Parsed request body as received. */
  request: unknown;
  /** The client asked for a streamed answer. */
  stream: boolean;
  /** Content events written so far (streamed answers). */
  chunksSent: number;
  /** When each content event was written (epoch ms, sub-millisecond: performance.timeOrigin + performance.now()). */
  chunkTimes: number[];
}

export interface WaitForCallsOptions {
  model?: string;
  /** Default 5000. */
  timeoutMs?: number;
  /** Count only the calls that satisfy this, e.g. `(c) => c.aborted`; re-checked as calls progress. */
  where?: (call: FakeCall) => boolean;
}

export interface FakeProvider {
  readonly type: FakeProviderType;
  readonly port: number;
  /** The SDK's base URL: openai → http://127.0.0.1:PORT/v1; anthropic and gemini → http://127.0.0.1:PORT. */
  readonly url: string;
  /** Replaces the model's behaviour (and restarts its script); model '*' is the fallback. */
  setBehaviour(model: string, behaviour: FakeModelBehaviour): void;
  /** Live records in arrival order: a call's record is updated as it progresses. */
  calls(model?: string): FakeCall[];
  /** Forgets the calls and restarts every script. */
  resetCalls(): void;
  /** Resolves once n calls (to `model`, matching `where`) have arrived; rejects after timeoutMs. */
  waitForCalls(n: number, opts?: WaitForCallsOptions): Promise<FakeCall[]>;
  /** Stops listening and destroys open sockets, hanging calls included. */
  close(): Promise<void>;
}

export interface FakeProviderOptions {
  type: FakeProviderType;
  /** Default 0: any free port. */
  port?: number;
  /** Default 127.0.0.1. */
  host?: string;
  behaviours?: Record<string, FakeModelBehaviour>;
  requireApiKey?: string;
}

const WIRES: Record<FakeProviderType, WireFormat> = { openai: openaiWire, anthropic: anthropicWire, gemini: geminiWire };

const DEFAULT_SLOW_BODY_CHUNKS = 4;
const DEFAULT_WAIT_MS = 5000;
// A syntactically broken body that still looks like the start of an answer, as a proxy cutting a
// response short would leave it.
const MALFORMED_BODY = '{"id":"fake-malformed","object":"chat.completion","choices":[{"index":0,"message":{"content":"trunc';

export async function startFakeProvider(opts: FakeProviderOptions): Promise<FakeProvider> {
  const wire = WIRES[opts.type];
  if (!wire) throw new Error(`unknown fake provider type: ${String(opts.type)}`);
  const fake = new FakeProviderServer(wire, opts);
  await fake.listen(opts.port ?? 0, opts.host ?? '127.0.0.1');
  return fake;
}

/** One request/response pair. Owns the timers of its step so an abort or shutdown cancels them. */
class Exchange {
  private readonly timers = new Set<NodeJS.Timeout>();
  private resetByUs = false;

  constructor(
    readonly call: FakeCall,
    private readonly req: IncomingMessage,
    private readonly res: ServerResponse,
    private readonly requestIdHeader: string | undefined,
    isShuttingDown: () => boolean,
    private readonly changed: () => void,
  ) {
    let over = false;
    const ended = (abortedNow: boolean) => {
      if (over) return;
      over = true;
      this.cancelTimers();
      const now = Date.now();
      call.endedAt ??= now;
      if (abortedNow && !this.resetByUs && !isShuttingDown()) {
        call.aborted = true;
        call.abortedAt = now;
      }
      changed();
    };
    // 'close' before 'finish' is the client going away mid-answer; we learn of it at once.
    res.once('finish', () => ended(false));
    res.once('close', () => {
      if (!res.writableFinished) ended(true);
    });
    if (req.socket.destroyed) ended(true);
  }

  after(ms: number, action: () => void): void {
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      action();
    }, ms);
    this.timers.add(timer);
  }

  private cancelTimers(): void {
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.clear();
  }

  private head(status: number, headers: Record<string, string | number>): boolean {
    if (this.res.destroyed || this.res.headersSent) return false;
    this.call.status = status;
    const reqId = this.requestIdHeader ? { [this.requestIdHeader]: `req_fake_${this.call.id}` } : {};
    if (status === 529) this.res.statusMessage = 'Overloaded';
    this.res.writeHead(status, { 'content-type': 'application/json', ...reqId, ...headers });
    return true;
  }

  sendText(status: number, text: string, headers: Record<string, string> = {}): void {
    if (this.head(status, { 'content-length': Buffer.byteLength(text), ...headers })) this.res.end(text);
  }

  sendJson(status: number, body: unknown, headers: Record<string, string> = {}): void {
    this.sendText(status, JSON.stringify(body), headers);
  }

  /** Headers now, the body in pieces: a client must not treat headers as the whole answer. */
  trickle(text: string, chunkDelayMs: number, chunks: number): void {
    const bytes = Buffer.from(text);
    if (!this.head(200, { 'content-length': bytes.length })) return;
    this.res.flushHeaders();
    // Split bytes, not characters: a cut through a multi-byte character is what a real slow
    // network does too, and it keeps content-length exact.
    const size = Math.ceil(bytes.length / chunks);
    const pieces = Array.from({ length: chunks }, (_, i) => bytes.subarray(i * size, (i + 1) * size));
    const sendPiece = (i: number) => {
      if (i === pieces.length - 1) this.res.end(pieces[i]);
      else {
        this.res.write(pieces[i]);
        this.after(chunkDelayMs, () => sendPiece(i + 1));
      }
    };
    this.after(chunkDelayMs, () => sendPiece(0));
  }

  /**
   * A streamed answer: the events in order, each content event `chunkDelayMs` after the previous
   * one; with `brk`, after `afterChunks` content events the stream is reset, stalls or ends with
   * `errorEvent`.
   */
  streamEvents(events: StreamEvent[], chunkDelayMs: number, brk?: { afterChunks: number; how: 'reset' | 'stall' | 'error'; errorEvent: string }): void {
    if (!this.head(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' })) return;
    this.res.flushHeaders();
    let sentContent = 0;
    const breakNow = (): boolean => {
      if (!brk || sentContent < brk.afterChunks) return false;
      if (brk.how === 'reset') this.drop();
      else if (brk.how === 'error') this.res.end(brk.errorEvent);
      // 'stall': nothing more; the connection stays open until the client gives up.
      return true;
    };
    // `waited`: the delay before events[i] has passed.
    const send = (i: number, waited: boolean): void => {
      if (this.res.destroyed) return;
      for (; i < events.length; i++) {
        const ev = events[i];
        if (ev.content) {
          if (breakNow()) return;
          if (sentContent > 0 && chunkDelayMs > 0 && !waited) {
            const at = i;
            this.after(chunkDelayMs, () => send(at, true));
            return;
          }
          waited = false;
          sentContent++;
          this.call.chunksSent = sentContent;
          this.call.chunkTimes.push(performance.timeOrigin + performance.now());
        }
        this.res.write(ev.sse);
        if (ev.content) this.changed();
      }
      if (!breakNow()) this.res.end();
    };
    send(0, false);
  }

  /**
   * The connection closed in the middle of a streamed body (no last chunk), as when an upstream
   * or a proxy dies mid-answer. The socket is ended (what was written goes out, then a FIN) rather
   * than reset: an RST makes the client's TCP drop what it has received and not read yet, so the
   * chunks sent before it might never be seen.
   */
  drop(): void {
    this.resetByUs = true;
    this.call.endedAt = Date.now();
    this.req.socket.end();
  }

  /** RST rather than FIN, so the client sees ECONNRESET as from a crashed upstream. */
  reset(): void {
    this.resetByUs = true;
    this.call.endedAt = Date.now();
    this.req.socket.resetAndDestroy();
  }
}

class FakeProviderServer implements FakeProvider {
  readonly type: FakeProviderType;
  port = 0;
  url = '';
  private readonly book = new BehaviourBook();
  private readonly records: FakeCall[] = [];
  private readonly watchers = new Set<() => unknown>();
  private readonly server: http.Server;
  private readonly requireApiKey: string | undefined;
  private nextId = 1;
  private shuttingDown = false;
  private closed?: Promise<void>;

  constructor(
    private readonly wire: WireFormat,
    opts: FakeProviderOptions,
  ) {
    this.type = wire.type;
    this.requireApiKey = opts.requireApiKey;
    for (const [model, behaviour] of Object.entries(opts.behaviours ?? {})) this.book.set(model, behaviour);
    this.server = http.createServer((req, res) => void this.handle(req, res));
    // Outlast any client's idle keep-alive, so a benchmark never sees a reset we did not script
    // (the race of a request sent on a socket the server is just closing).
    this.server.keepAliveTimeout = 30_000;
  }

  async listen(port: number, host: string): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, () => {
        this.server.off('error', reject);
        resolve();
      });
    });
    this.port = (this.server.address() as AddressInfo).port;
    const urlHost = host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host.includes(':') ? `[${host}]` : host;
    this.url = `http://${urlHost}:${this.port}${this.wire.basePath}`;
  }

  setBehaviour(model: string, behaviour: FakeModelBehaviour): void {
    this.book.set(model, behaviour);
  }

  calls(model?: string): FakeCall[] {
    return model === undefined ? [...this.records] : this.records.filter((c) => c.model === model);
  }

  resetCalls(): void {
    this.records.length = 0;
    this.book.rewind();
  }

  waitForCalls(n: number, opts: WaitForCallsOptions = {}): Promise<FakeCall[]> {
    const timeoutMs = opts.timeoutMs ?? DEFAULT_WAIT_MS;
    const matching = () => this.calls(opts.model).filter(opts.where ?? (() => true));
    return new Promise((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const check = (): boolean => {
        const found = matching();
        if (found.length < n) return false;
        clearTimeout(timer);
        this.watchers.delete(check);
        resolve(found);
        return true;
      };
      if (check()) return;
      timer = setTimeout(() => {
        this.watchers.delete(check);
        const scope = opts.model === undefined ? '' : ` to ${opts.model}`;
        reject(new Error(`fake ${this.type}: saw ${matching().length} of ${n} expected call(s)${scope} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.watchers.add(check);
    });
  }

  close(): Promise<void> {
    this.shuttingDown = true;
    this.closed ??= new Promise<void>((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
    return this.closed;
  }

  private changed(): void {
    for (const watcher of [...this.watchers]) watcher();
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const arrivedAt = Date.now();
    try {
      const url = new URL(req.url ?? '/', 'http://fake.invalid');
      if (url.pathname.startsWith('/__fake/')) return await this.control(req, res, url);
      const route = this.wire.route(req.method ?? 'GET', url);
      const bodyText = await readBody(req);
      if (!route) return sendRaw(res, 404, this.wire.error(errorSpec(404, `no route for ${req.method} ${url.pathname}`)));
      const key = this.wire.apiKey(req.headers, url);
      const authorized = !!key && (this.requireApiKey === undefined || key === this.requireApiKey);
      if (route.op === 'models') {
        if (this.requireApiKey !== undefined && !authorized) return sendRaw(res, 401, this.wire.error(errorSpec(401)));
        const seen = this.records.map((c) => c.model).filter((m) => m !== '');
        return sendRaw(res, 200, this.wire.models([...new Set([...this.book.models(), ...seen])]));
      }
      this.generate(req, res, route, bodyText, authorized, arrivedAt);
    } catch (err) {
      // Mostly a client that went away while we read its body; nothing is left to answer.
      if (!res.headersSent && !res.destroyed) sendRaw(res, 500, this.wire.error(errorSpec(500, `fake provider failure: ${String(err)}`)));
    }
  }

  private generate(
    req: IncomingMessage,
    res: ServerResponse,
    route: GenerateRoute,
    bodyText: string,
    authorized: boolean,
    startedAt: number,
  ): void {
    let body: unknown;
    let parsed: NeutralRequest | string;
    try {
      body = JSON.parse(bodyText);
      parsed = this.wire.parse(body, route);
    } catch {
      parsed = 'request body is not valid JSON';
    }
    const model = typeof parsed === 'object' ? parsed.model : (route.model ?? modelField(body));
    const stream = typeof parsed === 'object' ? parsed.stream : route.stream === true;
    const call: FakeCall = { id: this.nextId++, model, startedAt, step: 'error', aborted: false, authorized, request: body, stream, chunksSent: 0, chunkTimes: [] };
    this.records.push(call);
    const ex = new Exchange(call, req, res, this.wire.requestIdHeader, () => this.shuttingDown, () => this.changed());
    this.changed();
    if (call.endedAt !== undefined) return;

    // Rejected requests never reach the model, so they leave its script where it was.
    if (this.requireApiKey !== undefined && !authorized) return this.sendError(ex, errorSpec(401));
    if (typeof parsed === 'string') return this.sendError(ex, errorSpec(400, parsed));

    const request = parsed;
    const { step, behaviour } = this.book.next(request.model);
    call.step = step.kind;
    ex.after(delayBefore(step, behaviour), () => {
      try {
        if (request.stream && (step.kind === 'ok' || step.kind === 'stream-break')) return this.performStream(ex, step, request, behaviour);
        this.perform(ex, step, request);
      } catch (err) {
        // A timer callback: throwing here would take the whole process down.
        this.sendError(ex, errorSpec(500, `fake provider failure: ${String(err)}`));
      }
    });
  }

  private performStream(ex: Exchange, step: Extract<FakeStep, { kind: 'ok' | 'stream-break' }>, req: NeutralRequest, behaviour: FakeModelBehaviour | undefined): void {
    const chunks = step.chunks ?? behaviour?.stream?.chunks;
    const chunkDelayMs = step.chunkDelayMs ?? behaviour?.stream?.chunkDelayMs ?? 0;
    const events = this.wire.stream(req, composeAnswer(req, step.content), `fake-${ex.call.id}`, (text) => splitPieces(text, chunks));
    if (step.kind === 'ok') return ex.streamEvents(events, chunkDelayMs);
    const errorEvent = this.wire.streamError(errorSpec(step.status ?? 500, step.message, step.code));
    ex.streamEvents(events, chunkDelayMs, { afterChunks: step.afterChunks, how: step.how, errorEvent });
  }

  private perform(ex: Exchange, step: FakeStep, req: NeutralRequest): void {
    const answer = () => this.wire.answer(req, composeAnswer(req, step.kind === 'ok' ? step.content : undefined), `fake-${ex.call.id}`);
    switch (step.kind) {
      case 'ok':
        return ex.sendJson(200, answer());
      case 'error': {
        const headers: Record<string, string> = {};
        if (step.retryAfterSec !== undefined) headers['retry-after'] = String(step.retryAfterSec);
        if (step.retryAfterMs !== undefined) headers['retry-after-ms'] = String(step.retryAfterMs);
        const retryAfterMs = step.retryAfterMs ?? (step.retryAfterSec !== undefined ? step.retryAfterSec * 1000 : undefined);
        const spec = errorSpec(step.status, step.message, step.code);
        return this.sendError(ex, retryAfterMs === undefined ? spec : { ...spec, retryAfterMs }, headers);
      }
      case 'hang':
        return; // the Exchange records the client's abort whenever it comes
      case 'reset':
        return ex.reset();
      case 'malformed':
        return ex.sendText(200, MALFORMED_BODY);
      case 'slow-body':
        return ex.trickle(JSON.stringify(answer()), step.chunkDelayMs, step.chunks ?? DEFAULT_SLOW_BODY_CHUNKS);
      case 'stream-break':
        // Asked without streaming, the same failure as the whole answer would see.
        if (step.how === 'reset') return ex.reset();
        if (step.how === 'stall') return;
        return this.sendError(ex, errorSpec(step.status ?? 500, step.message, step.code));
    }
  }

  private sendError(ex: Exchange, spec: ErrorSpec, headers: Record<string, string> = {}): void {
    ex.sendJson(spec.status, this.wire.error(spec), headers);
  }

  private async control(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    const bodyText = await readBody(req);
    const modelPath = /^\/__fake\/models\/(.+)$/.exec(url.pathname);
    if (modelPath && req.method === 'PUT') {
      let json: unknown;
      try {
        json = JSON.parse(bodyText);
      } catch {
        return sendRaw(res, 400, { error: 'body is not valid JSON' });
      }
      const behaviour = fakeModelBehaviourSchema.safeParse(json);
      if (!behaviour.success) return sendRaw(res, 400, { error: z.prettifyError(behaviour.error) });
      this.setBehaviour(decodeURIComponent(modelPath[1]), behaviour.data);
      return sendRaw(res, 204);
    }
    if (url.pathname === '/__fake/calls' && req.method === 'GET') {
      const calls = this.calls(url.searchParams.get('model') ?? undefined);
      return sendRaw(res, 200, calls.map(({ request: _request, chunkTimes: _times, ...rest }) => rest));
    }
    if (url.pathname === '/__fake/calls' && req.method === 'DELETE') {
      this.resetCalls();
      return sendRaw(res, 204);
    }
    return sendRaw(res, 404, { error: `no control route for ${req.method} ${url.pathname}` });
  }
}

function errorSpec(status: number, message?: string, code?: string): ErrorSpec {
  const reason = status === 529 ? 'Overloaded' : (http.STATUS_CODES[status] ?? 'Error');
  return { status, message: message ?? `${reason} (fake provider)`, ...(code !== undefined ? { code } : {}) };
}

function modelField(body: unknown): string {
  const model = body && typeof body === 'object' ? (body as { model?: unknown }).model : undefined;
  return typeof model === 'string' ? model : '';
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

/** For answers outside a recorded call (control surface, model lists, unknown routes). */
function sendRaw(res: ServerResponse, status: number, body?: unknown): void {
  if (res.destroyed || res.headersSent) return;
  if (body === undefined) {
    res.writeHead(status).end();
    return;
  }
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) }).end(text);
}

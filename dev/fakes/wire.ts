// The neutral form the three wire modules translate to and from, and the answer logic they
// share, so that every provider answers the same request the same way (tests compare them).

import type { IncomingHttpHeaders } from 'node:http';
import type { z } from 'zod';
import type { ProviderType } from '../../src/config/schema.js';

/** The fakes speak every wire format Keel has an adapter for. */
export type FakeProviderType = ProviderType;

export interface NeutralRequest {
  model: string;
  /** Text of the last user turn: what the echo repeats and a tool call carries. */
  lastUserText: string;
  /** The conversation ends on that user turn rather than on a tool result, so a `use tool` prompt
   * cannot make an agent loop call the tool forever. */
  endsWithUser: boolean;
  /** All prompt text, for the token estimate. */
  promptChars: number;
  /** Names of the function tools offered. */
  tools: string[];
  toolChoice: { mode: 'auto' | 'none' | 'forced'; name?: string };
  maxTokens?: number;
  stop: string[];
  n: number;
  stream: boolean;
  /** OpenAI's stream_options.include_usage: a last chunk with usage. */
  includeUsage?: boolean;
  /**
   * The answer so far, when the conversation asks to continue it: a last assistant turn (a prefix
   * to continue, as Anthropic's prefill), or an assistant turn followed by one user turn (asked to
   * go on). A scripted `content` that starts with it is answered with the rest.
   */
  priorAssistantText?: string;
}

export interface NeutralChoice {
  text: string;
  toolCall?: { name: string; args: Record<string, unknown> };
  finish: 'stop' | 'stop_sequence' | 'length' | 'tool';
  stopSequence?: string;
}

export interface NeutralAnswer {
  choices: NeutralChoice[];
  promptTokens: number;
  completionTokens: number;
}

export interface ErrorSpec {
  status: number;
  message: string;
  code?: string;
  retryAfterMs?: number;
}

export type GenerateRoute = { op: 'generate'; model?: string; stream?: boolean };

/** One server-sent event of a streamed answer; `content` marks the events a `stream-break` counts. */
export interface StreamEvent {
  sse: string;
  content: boolean;
}
export type Route = GenerateRoute | { op: 'models' };

export interface WireFormat {
  readonly type: FakeProviderType;
  /** Path appended to http://host:port to form the base URL the official SDK expects. */
  readonly basePath: string;
  /** Header that carries a request id, as the real API sends one. */
  readonly requestIdHeader?: string;
  route(method: string, url: URL): Route | undefined;
  apiKey(headers: IncomingHttpHeaders, url: URL): string | undefined;
  /** The neutral request, or why the body is a bad request. */
  parse(body: unknown, route: GenerateRoute): NeutralRequest | string;
  answer(req: NeutralRequest, answer: NeutralAnswer, id: string): unknown;
  error(spec: ErrorSpec): unknown;
  /** The answer as this wire format streams it, its text cut by `pieces`. */
  stream(req: NeutralRequest, answer: NeutralAnswer, id: string, pieces: (text: string) => string[]): StreamEvent[];
  /** The event this wire format sends when generation fails after the stream has begun. */
  streamError(spec: ErrorSpec): string;
  models(ids: string[]): unknown;
}

/** `data: <json>` as one SSE event. */
export function sseData(data: unknown, event?: string, eol = '\n'): string {
  return `${event ? `event: ${event}${eol}` : ''}data: ${typeof data === 'string' ? data : JSON.stringify(data)}${eol}${eol}`;
}

/** Cuts `text` into `chunks` near-equal pieces, or by default one piece per word (with its trailing space). */
export function splitPieces(text: string, chunks?: number): string[] {
  if (text.length === 0) return [];
  if (chunks === undefined) return text.match(/\s*\S+\s*/g) ?? [text];
  const n = Math.min(chunks, [...text].length);
  const chars = [...text];
  const out: string[] = [];
  for (let i = 0; i < n; i++) out.push(chars.slice(Math.floor((i * chars.length) / n), Math.floor(((i + 1) * chars.length) / n)).join(''));
  return out;
}

/** `Array.prototype.findLast`, which the ES2022 lib does not declare. */
export function findLast<T>(items: readonly T[], test: (item: T) => boolean): T | undefined {
  for (let i = items.length - 1; i >= 0; i--) if (test(items[i])) return items[i];
  return undefined;
}

export const estimateTokens = (chars: number): number => Math.ceil(chars / 4);

export function bearerToken(headers: IncomingHttpHeaders): string | undefined {
  const match = /^Bearer\s+(.+)$/i.exec(headers.authorization ?? '');
  return match?.[1];
}

export function describeIssues(error: z.ZodError): string {
  const issue = error.issues[0];
  if (!issue) return 'invalid request body';
  const where = issue.path.length > 0 ? `${issue.path.join('.')}: ` : '';
  return `${where}${issue.message}`;
}

export function composeAnswer(req: NeutralRequest, content?: string): NeutralAnswer {
  const tool = chooseTool(req);
  const choices: NeutralChoice[] = [];
  for (let i = 0; i < req.n; i++) {
    choices.push(tool ? toolChoice(tool, req) : textChoice(continued(content, req.priorAssistantText) ?? `[${req.model}] ${req.lastUserText}`, req));
  }
  const completionChars = choices.reduce(
    (sum, c) => sum + (c.toolCall ? c.toolCall.name.length + JSON.stringify(c.toolCall.args).length : c.text.length),
    0,
  );
  return { choices, promptTokens: estimateTokens(req.promptChars), completionTokens: estimateTokens(completionChars) };
}

/** A model asked to continue its answer goes on from where it stopped. */
function continued(content: string | undefined, prior: string | undefined): string | undefined {
  if (content === undefined || !prior) return content;
  const at = content.startsWith(prior) ? prior.length : content.startsWith(prior.trimEnd()) ? prior.trimEnd().length : -1;
  return at < 0 ? content : content.slice(at);
}

function chooseTool(req: NeutralRequest): string | undefined {
  if (req.tools.length === 0 || req.toolChoice.mode === 'none') return undefined;
  if (req.toolChoice.mode === 'forced') return req.toolChoice.name ?? req.tools[0];
  if (req.endsWithUser && /^use tool/i.test(req.lastUserText.trimStart())) return req.tools[0];
  return undefined;
}

function toolChoice(name: string, req: NeutralRequest): NeutralChoice {
  return { text: '', toolCall: { name, args: { echo: req.lastUserText } }, finish: 'tool' };
}

function textChoice(full: string, req: NeutralRequest): NeutralChoice {
  let text = full;
  let finish: NeutralChoice['finish'] = 'stop';
  let stopSequence: string | undefined;
  let cut = -1;
  for (const seq of req.stop) {
    const at = seq === '' ? -1 : text.indexOf(seq);
    if (at >= 0 && (cut < 0 || at < cut)) {
      cut = at;
      stopSequence = seq;
    }
  }
  if (cut >= 0) {
    text = text.slice(0, cut);
    finish = 'stop_sequence';
  }
  // The real limit is in tokens; four characters a token is the same estimate usage reports.
  if (req.maxTokens !== undefined && text.length > req.maxTokens * 4) {
    text = text.slice(0, req.maxTokens * 4);
    finish = 'length';
    stopSequence = undefined;
  }
  return { text, finish, ...(stopSequence !== undefined ? { stopSequence } : {}) };
}

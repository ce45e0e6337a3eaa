// What a fake model does on each call: scripted steps, a default, and latency.

import { z } from 'zod';

/** How a streamed answer is cut: `chunks` content pieces (default: one per word), `chunkDelayMs` apart. */
export interface FakeStreamShape {
  chunks?: number;
  chunkDelayMs?: number;
}

export type FakeStep =
  | ({ kind: 'ok'; latencyMs?: number; content?: string } & FakeStreamShape)
  | ({
      /**
       * A streamed answer that goes wrong after `afterChunks` content chunks: the connection is reset,
       * the stream stalls (nothing more, connection open), or the provider sends its wire format's
       * error event. Asked without streaming: a reset, a hang, or an HTTP error.
       */
      kind: 'stream-break';
      afterChunks: number;
      how: 'reset' | 'stall' | 'error';
      latencyMs?: number;
      content?: string;
      status?: number;
      code?: string;
      message?: string;
    } & FakeStreamShape)
  | {
      kind: 'error';
      status: number;
      latencyMs?: number;
      retryAfterSec?: number;
      retryAfterMs?: number;
      code?: string;
      message?: string;
    }
  | { kind: 'hang' }
  | { kind: 'reset'; afterMs?: number }
  | { kind: 'malformed'; latencyMs?: number }
  | { kind: 'slow-body'; chunkDelayMs: number; chunks?: number };

/** Per ok-call latency: base + uniform jitter; with probability stragglerShare it is multiplied by stragglerFactor. */
export interface FakeLatency {
  baseMs: number;
  jitterMs?: number;
  stragglerShare?: number;
  stragglerFactor?: number;
}

export interface FakeModelBehaviour {
  script?: FakeStep[];
  default?: FakeStep;
  latency?: FakeLatency;
  /** How this model's streamed answers are cut, unless a step says otherwise. */
  stream?: FakeStreamShape;
}

const ms = z.number().finite().nonnegative();
const streamShape = { chunks: z.number().int().min(1).optional(), chunkDelayMs: ms.optional() };

// Strict objects: a misspelt field in a benchmark's behaviour should fail loudly, not be ignored.
export const fakeStepSchema: z.ZodType<FakeStep> = z.discriminatedUnion('kind', [
  z.strictObject({ kind: z.literal('ok'), latencyMs: ms.optional(), content: z.string().optional(), ...streamShape }),
  z.strictObject({
    kind: z.literal('stream-break'),
    afterChunks: z.number().int().nonnegative(),
    how: z.enum(['reset', 'stall', 'error']),
    latencyMs: ms.optional(),
    content: z.string().optional(),
    status: z.number().int().min(400).max(599).optional(),
    code: z.string().optional(),
    message: z.string().optional(),
    ...streamShape,
  }),
  z.strictObject({
    kind: z.literal('error'),
    status: z.number().int().min(400).max(599),
    latencyMs: ms.optional(),
    retryAfterSec: ms.optional(),
    retryAfterMs: ms.optional(),
    code: z.string().optional(),
    message: z.string().optional(),
  }),
  z.strictObject({ kind: z.literal('hang') }),
  z.strictObject({ kind: z.literal('reset'), afterMs: ms.optional() }),
  z.strictObject({ kind: z.literal('malformed'), latencyMs: ms.optional() }),
  z.strictObject({ kind: z.literal('slow-body'), chunkDelayMs: ms, chunks: z.number().int().min(1).optional() }),
]);

export const fakeLatencySchema: z.ZodType<FakeLatency> = z.strictObject({
  baseMs: ms,
  jitterMs: ms.optional(),
  stragglerShare: z.number().min(0).max(1).optional(),
  stragglerFactor: z.number().min(0).optional(),
});

export const fakeModelBehaviourSchema: z.ZodType<FakeModelBehaviour> = z.strictObject({
  script: z.array(fakeStepSchema).optional(),
  default: fakeStepSchema.optional(),
  latency: fakeLatencySchema.optional(),
  stream: z.strictObject(streamShape).optional(),
});

const DEFAULT_STRAGGLER_FACTOR = 10;

export function sampleLatency(latency: FakeLatency | undefined, random: () => number = Math.random): number {
  if (!latency) return 0;
  let value = latency.baseMs + (latency.jitterMs ?? 0) * random();
  if (latency.stragglerShare && random() < latency.stragglerShare) value *= latency.stragglerFactor ?? DEFAULT_STRAGGLER_FACTOR;
  return value;
}

/** How long to wait before acting on a step. The model's latency shapes successes only: real
 * rejections (429s, auth) come back fast, and a step that wants otherwise says so itself. */
export function delayBefore(step: FakeStep, behaviour: FakeModelBehaviour | undefined): number {
  switch (step.kind) {
    case 'ok':
    case 'stream-break':
      return step.latencyMs ?? sampleLatency(behaviour?.latency);
    case 'error':
    case 'malformed':
      return step.latencyMs ?? 0;
    case 'reset':
      return step.afterMs ?? 0;
    case 'hang':
    case 'slow-body':
      return 0;
  }
}

const OK: FakeStep = { kind: 'ok' };

/** The behaviours of one fake provider. A script belongs to its entry, so a '*' script is consumed
 * by calls to every model that falls back to it. */
export class BehaviourBook {
  private readonly entries = new Map<string, { behaviour: FakeModelBehaviour; position: number }>();

  set(model: string, behaviour: FakeModelBehaviour): void {
    this.entries.set(model, { behaviour: fakeModelBehaviourSchema.parse(behaviour), position: 0 });
  }

  next(model: string): { step: FakeStep; behaviour?: FakeModelBehaviour } {
    const entry = this.entries.get(model) ?? this.entries.get('*');
    if (!entry) return { step: OK };
    const { behaviour } = entry;
    const scripted = behaviour.script?.[entry.position];
    if (scripted) {
      entry.position++;
      return { step: scripted, behaviour };
    }
    return { step: behaviour.default ?? OK, behaviour };
  }

  rewind(): void {
    for (const entry of this.entries.values()) entry.position = 0;
  }

  models(): string[] {
    return [...this.entries.keys()].filter((m) => m !== '*');
  }
}

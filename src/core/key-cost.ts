// A request's worst-case cost and tokens, reserved against a virtual key's budget and TPM limit
// before any provider call (docs/KEYS.md, "What a request reserves"). Pure and zod-free: the API
// and the batch workflow both compute it.
import type { RoutingConfig } from '../config/schema.js';
import type { FeatureUse } from './capabilities.js';
import type { ChatRequestBody } from './chat-request.js';
import { modelAllowed } from './keys.js';
import { planRequest, targetKey, type PlanInput, type Target } from './routing.js';

/**
 * Tokens reserved for each image, audio or file part. Covers the most any provider charges for one
 * image (OpenAI's mini models at high detail, ~37k tokens) and about an hour of audio; a long PDF
 * can cost more, and is then charged what the provider reports.
 */
export const MEDIA_PART_TOKENS = 40_000;
/** Role markers, tool-use system prompts and reply priming the providers add around the text. */
export const PROMPT_OVERHEAD_TOKENS = 1_000;

const MEDIA_TYPES = new Set(['image_url', 'input_audio', 'file']);

/** UTF-8 length without TextEncoder (workflow code). */
export function utf8Length(text: string): number {
  let n = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < text.length) {
      n += 4;
      i++;
    } else n += 3;
  }
  return n;
}

type PromptFields = Pick<ChatRequestBody, 'messages' | 'tools' | 'functions' | 'tool_choice' | 'response_format'>;

/**
 * An upper bound on the prompt's tokens: every tokenizer the providers use (byte-level BPE, or
 * SentencePiece with byte fallback) spends at least one byte of UTF-8 per token, so the bytes of
 * the text the request carries — messages, tools, the response schema, as JSON — bound its tokens.
 * Media parts count MEDIA_PART_TOKENS each instead of their (base64) bytes.
 */
export function promptTokenBound(req: PromptFields): number {
  let media = 0;
  const text = JSON.stringify(
    [req.messages, req.tools ?? null, req.functions ?? null, req.tool_choice ?? null, req.response_format ?? null],
    (_key, value: unknown) => {
      if (value && typeof value === 'object' && MEDIA_TYPES.has((value as { type?: unknown }).type as string) && !Array.isArray(value)) {
        media += 1;
        return null;
      }
      return value;
    },
  );
  return utf8Length(text) + media * MEDIA_PART_TOKENS + PROMPT_OVERHEAD_TOKENS;
}

export interface WorstCase {
  /** The cost on the most expensive target the request could be routed to, nano-USD (0 without pricing). */
  nanos: number;
  /** Prompt bound plus the largest output any candidate target could produce. */
  tokens: number;
  promptTokens: number;
  /** provider/model of candidates without configured pricing. */
  unpriced: string[];
  /** provider/model of candidates whose output has no bound (no max_tokens, no configured limit). */
  unbounded: string[];
}

type CostInput = PlanInput & PromptFields & Pick<ChatRequestBody, 'max_tokens' | 'max_completion_tokens' | 'n'>;

/**
 * Every target a request could be sent to: the plan without health (which only skips or reorders)
 * and without the cap on targets (health-aware planning may skip some and bring later ones in).
 * Throws PlanError like planRequest.
 */
export function candidateTargets(req: PlanInput, routing: RoutingConfig, features?: readonly FeatureUse[]): Target[] {
  const uncapped = { ...routing, limits: { ...routing.limits, maxTargets: Number.MAX_SAFE_INTEGER } };
  return planRequest(req, uncapped, undefined, features ? { features } : {}).targets;
}

export function worstCase(req: CostInput, routing: RoutingConfig, features?: readonly FeatureUse[]): WorstCase {
  const promptTokens = promptTokenBound(req);
  const requested = req.max_completion_tokens ?? req.max_tokens ?? undefined;
  const choices = req.n ?? 1;
  let nanos = 0;
  let tokens = promptTokens;
  const unpriced: string[] = [];
  const unbounded: string[] = [];
  for (const t of candidateTargets(req, routing, features)) {
    const facts = routing.providers[t.provider]?.models?.[t.model];
    const limit = facts?.maxOutputTokens ?? facts?.contextWindow;
    const perChoice = requested !== undefined && limit !== undefined ? Math.min(requested, limit) : (requested ?? limit);
    if (perChoice === undefined) unbounded.push(targetKey(t));
    const output = (perChoice ?? 0) * choices;
    tokens = Math.max(tokens, promptTokens + output);
    if (!facts?.pricing) {
      unpriced.push(targetKey(t));
      continue;
    }
    // USD per million tokens is nano-USD per thousand tokens.
    nanos = Math.max(nanos, Math.round((promptTokens * facts.pricing.input + output * facts.pricing.output) * 1_000));
  }
  return { nanos, tokens, promptTokens, unpriced, unbounded };
}

/** What a key allows a request, as far as the request alone decides it. */
export interface KeyAllowance {
  /** Allowed model names and patterns (absent: all). */
  models?: readonly string[];
  /** A budget: every candidate target must be priced and the output bounded. */
  budgeted: boolean;
  /** A TPM limit: the output must be bounded. */
  tpm: boolean;
}

export interface KeyedRequestProblem {
  status: 400 | 403;
  code: 'model_not_allowed' | 'model_not_priced' | 'max_tokens_required';
  message: string;
  param: string;
}

/**
 * Why a key cannot make this request, before anything is reserved: a model it may not use, or —
 * for a key with a budget or a TPM limit — a worst case Keel cannot bound. `wc` is the worst case
 * (worstCase), computed by the caller when it reserves.
 */
export function keyedRequestProblem(key: KeyAllowance, req: PlanInput, routing: RoutingConfig, wc?: WorstCase): KeyedRequestProblem | undefined {
  for (const name of [...(req.model !== undefined ? [req.model] : []), ...(req.models ?? [])]) {
    if (!modelAllowed(key.models, name, routing.models[name]?.targets ?? [])) {
      return { status: 403, code: 'model_not_allowed', message: `This key may not use the model '${name}'`, param: 'model' };
    }
  }
  if (!wc) return undefined;
  if (key.budgeted && wc.unpriced.length > 0) {
    return { status: 400, code: 'model_not_priced', message: `This key has a budget, and ${wc.unpriced.join(', ')} has no configured pricing: Keel cannot bound what the request would cost`, param: 'model' };
  }
  if ((key.budgeted || key.tpm) && wc.unbounded.length > 0) {
    return {
      status: 400,
      code: 'max_tokens_required',
      message: `This key has a ${key.budgeted ? 'budget' : 'token limit'}: set max_tokens (or max_completion_tokens), since ${wc.unbounded.join(', ')} has no configured output limit`,
      param: 'max_tokens',
    };
  }
  return undefined;
}

// One adapter (and so one SDK client) per configured endpoint, reused across calls: building a
// client per call would redo its setup on every attempt.
//
// Base URLs, as each SDK appends its own path:
//   openai:    {baseURL}/chat/completions                  (e.g. https://api.openai.com/v1)
//   anthropic: {baseURL}/v1/messages                       (a trailing /v1 is dropped)
//   gemini:    {baseURL}/{v1beta}/models/{model}:generateContent  (a trailing /v1beta etc. is used as the version)
import { createHash } from 'node:crypto';
import type { ProviderType } from '../../src/config/schema.js';
import { anthropicRequestBody, createAnthropicAdapter } from './anthropic/adapter.js';
import { createGeminiAdapter, geminiRequestBody } from './gemini/adapter.js';
import { createOpenAIAdapter, openaiRequestBody } from './openai/adapter.js';
import type { ProviderAdapter, RequestTranslator } from './types.js';

/** An adapter per wire format (config's provider `type`). */
export type AdapterType = ProviderType;
export interface AdapterOptions {
  baseURL: string;
  apiKey?: string;
}

const FACTORIES: Record<AdapterType, (opts: AdapterOptions) => ProviderAdapter> = {
  openai: createOpenAIAdapter,
  anthropic: createAnthropicAdapter,
  gemini: createGeminiAdapter,
};

/** Each wire format's pure request translation, the first step of its adapter's `complete`. */
export const REQUEST_TRANSLATORS: Record<AdapterType, RequestTranslator> = {
  openai: openaiRequestBody,
  anthropic: anthropicRequestBody,
  gemini: geminiRequestBody,
};

const cache = new Map<string, ProviderAdapter>();

export function createAdapter(type: AdapterType, opts: AdapterOptions): ProviderAdapter {
  // Hashed so the map's keys never hold a key in the clear (heap dumps, debug printing).
  const key = createHash('sha256').update(JSON.stringify([type, opts.baseURL, opts.apiKey ?? null])).digest('hex');
  let adapter = cache.get(key);
  if (!adapter) {
    const factory = FACTORIES[type];
    if (!factory) throw new Error(`unknown provider type "${String(type)}"`);
    adapter = factory(opts);
    cache.set(key, adapter);
  }
  return adapter;
}

/** For tests: forget cached clients. */
export function clearAdapterCache(): void {
  cache.clear();
}

export type { ProviderAdapter } from './types.js';

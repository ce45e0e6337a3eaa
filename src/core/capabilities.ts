// What each wire format can carry, and which of those features a request uses: the routing core
// reads both to leave out targets that could not translate a request (falling back to one that
// can, or answering 400 when none can), so an unsupported feature is decided before any call.
// Pure and workflow-safe: the request workflow plans with it too (behind a patch, see
// workflows/health-plan.ts); changing what it returns changes plans, so it needs a new patch.
import type { ProviderType } from '../config/schema.js';
import type { ChatRequestBody } from './chat-request.js';
import { contentText } from './message-content.js';
import { fileMediaType, splitDataUrl } from './media-types.js';
import { jsonPath } from './zod-issues.js';

/** Features some wire format cannot carry, as a client would name them. */
export const FEATURES = {
  multiple_choices: 'several choices (n > 1)',
  legacy_functions: 'legacy function calling (functions, function_call)',
  function_messages: "legacy 'function' role messages",
  input_audio: 'audio input (input_audio parts)',
  file_id: 'files given by file_id',
  non_pdf_file: 'files other than PDF',
  image_type: 'images other than JPEG, PNG, GIF or WebP',
  custom_tools: 'custom (non-function) tools',
  audio_output: 'audio output (modalities: ["audio"], assistant audio)',
  logprobs: 'log probabilities (logprobs)',
  no_turn: 'a conversation without user or assistant content',
} as const;
export type Feature = keyof typeof FEATURES;

/**
 * The facts, one place for all three wire formats. An adapter throws `unsupported()` only for
 * features listed here (test/request-validation.property.test.ts holds every adapter to it);
 * audio output and logprobs are listed although the adapters would silently drop them, because
 * a client that asks for them must not get an answer without them.
 */
export const UNSUPPORTED: Record<ProviderType, readonly Feature[]> = {
  openai: [],
  anthropic: [
    'multiple_choices',
    'legacy_functions',
    'function_messages',
    'input_audio',
    'file_id',
    'non_pdf_file',
    'image_type',
    'custom_tools',
    'audio_output',
    'logprobs',
    'no_turn',
  ],
  gemini: ['legacy_functions', 'file_id', 'custom_tools', 'audio_output', 'logprobs', 'no_turn'],
};

/** Anthropic's image media types (its adapter refuses any other data-URL image). */
export const ANTHROPIC_IMAGE_TYPES = ['image/jpeg', 'image/png', 'image/gif', 'image/webp'] as const;

/** One feature a request uses, and where (the first place it does). */
export interface FeatureUse {
  feature: Feature;
  param: string;
}

/** The features a validated request uses, each with the first place it is used. */
export function requestFeatures(req: ChatRequestBody): FeatureUse[] {
  const found = new Map<Feature, string>();
  const use = (feature: Feature, ...path: (string | number)[]) => {
    if (!found.has(feature)) found.set(feature, jsonPath(path) ?? '');
  };

  if ((req.n ?? 1) > 1) use('multiple_choices', 'n');
  if (req.functions?.length) use('legacy_functions', 'functions');
  if (req.modalities?.includes('audio')) use('audio_output', 'modalities');
  if (req.logprobs === true) use('logprobs', 'logprobs');
  req.tools?.forEach((t, i) => t.type === 'custom' && use('custom_tools', 'tools', i));
  if (typeof req.tool_choice === 'object' && req.tool_choice.type === 'custom') use('custom_tools', 'tool_choice');

  // Whether the conversation has a turn the Messages / generateContent formats can carry: they
  // have no place for a conversation of system instructions alone.
  let turn = false;
  req.messages.forEach((m, i) => {
    switch (m.role) {
      case 'user':
        if (typeof m.content === 'string') {
          turn ||= m.content !== '';
          break;
        }
        m.content.forEach((part, j) => {
          turn ||= part.type !== 'text' || part.text !== '';
          if (part.type === 'input_audio') use('input_audio', 'messages', i, 'content', j);
          if (part.type === 'image_url') {
            const media = splitDataUrl(part.image_url.url)?.mediaType;
            if (media && !(ANTHROPIC_IMAGE_TYPES as readonly string[]).includes(media)) use('image_type', 'messages', i, 'content', j);
          }
          if (part.type === 'file') {
            if (part.file.file_data === undefined) use('file_id', 'messages', i, 'content', j);
            else if (fileMediaType(part.file.file_data, part.file.filename) !== 'application/pdf') use('non_pdf_file', 'messages', i, 'content', j);
          }
        });
        break;
      case 'assistant':
        turn ||= contentText(m.content) !== '' || (m.tool_calls?.length ?? 0) > 0;
        m.tool_calls?.forEach((call, j) => call.type === 'custom' && use('custom_tools', 'messages', i, 'tool_calls', j));
        if (m.function_call) use('legacy_functions', 'messages', i, 'function_call');
        if (m.audio) use('audio_output', 'messages', i, 'audio');
        break;
      case 'tool':
        turn = true;
        break;
      case 'function':
        turn = true;
        use('function_messages', 'messages', i);
        break;
    }
  });
  if (!turn) use('no_turn', 'messages');
  return [...found].map(([feature, param]) => ({ feature, param }));
}

/** The first feature of `uses` that `type` cannot carry. */
export function unsupportedBy(type: ProviderType, uses: readonly FeatureUse[]): FeatureUse | undefined {
  const missing = UNSUPPORTED[type];
  return uses.find((u) => missing.includes(u.feature));
}
